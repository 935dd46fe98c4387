"""A container Proxy Server: Traefik for TLS and an nginx site router for the routes (Press's proxy jobs,
which use it, are in ``engine.jobs.proxy``).

Containers (all labelled, on the cluster network):
- ``<prefix>-traefik``: entry points ``web`` (:80) and ``websecure`` (:443) published on the host; the
  file provider watches ``/etc/traefik/dynamic`` (volume ``<prefix>-traefik-dynamic``), which holds the
  certificates and two catch-all routers to the site router (engine.clients.traefik). Its API is on an entry
  point bound to the container's own loopback; the jobs ask it, through ``docker exec`` of ``wget``,
  which generation of its files Traefik has applied.
- ``<prefix>-router``: nginx (the front image) mapping each host name to its site (engine.clients.site_router),
  one map file per host in volume ``<prefix>-router``; a change rewrites the site's files and sends
  nginx SIGHUP, whatever the number of sites. It also answers the suspended / deactivated pages. Its
  check server (the container's loopback) says what the map holds for a host: the ``Reload NGINX``
  steps wait until it serves the job's change.

Which bench serves a site is not in Press's proxy payloads: it comes from
``Topology.bench_for_site`` (the Site's ``bench`` in Press), which is known before the bench has
created the site's directory (Press sends ``New Site`` and ``Add Site to Upstream`` together).
The proxy and the app servers must share the cluster network: routes name the benches' fronts
(``<app prefix>-<bench>-front:80``, which also passes ``/socket.io`` to its backend); the backends
themselves are on their benches' own networks, out of the proxy's and other benches' reach.
Traefik and the router keep only the capabilities they need (binding ports 80/443; nginx's switch to
its worker user), with ``no-new-privileges`` and a pids limit. A container of the same name that the
engine did not make for this server is never replaced or removed.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import io
import json
import secrets
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import docker
import docker.errors
from docker.models.containers import Container

from press_selfhosted.engine import naming
from press_selfhosted.engine.clients import acme, docker_exec, site_router, traefik
from press_selfhosted.engine.clients.containers import tar_archive, unchanged_or_removed
from press_selfhosted.engine.clients.docker_hosts import docker_errors
from press_selfhosted.engine.clients.servers import ContainerServer
from press_selfhosted.engine.clients.site_router import SiteRoute
from press_selfhosted.engine.clients.traefik import HostRoute, Sites
from press_selfhosted.engine.errors import (
	CommandFailed,
	EngineError,
	HostTaken,
	ProxyNotReady,
	RoutesNotLoaded,
	ValidationError,
)
from press_selfhosted.engine.validation import validate_fqdn

ROLE_TRAEFIK = "traefik"
ROLE_ROUTER = "proxy-router"
ROLE_FORMER_PAGES = "proxy-pages"  # the page service of the former per-site Traefik routes
FRONT_PORT = 80  # a bench front listens here on the cluster network
API_ADDRESS = "127.0.0.1:8080"
ROOT = docker_exec.Exec(user="root", workdir="/")
READ = docker_exec.Exec(user="root", workdir="/", reads_only=True)  # a command that changes nothing


@dataclass(frozen=True)
class ProxySettings:
	"""How the Traefik and router containers of a proxy server run. Port 0 lets Docker pick a free port."""

	traefik_image: str
	router_image: str  # an nginx image (the benches' static-file front image)
	bind_address: str = "0.0.0.0"
	http_port: int = 80
	https_port: int = 443
	reload_timeout: float = 30.0
	acme: acme.AcmeResolver | None = None  # sites get certificates from this ACME server
	default_certificate: acme.DefaultCertificate | None = None  # served when no other matches
	dns_challenge: acme.DnsChallenge | None = None  # DNS-01 beside ACME's HTTP-01, for wildcards
	wildcard_domains: tuple[str, ...] = ()  # root domains whose wildcard is obtained by DNS-01

	def __post_init__(self):
		acme.validate_dns_settings(self.acme, self.dns_challenge, self.wildcard_domains)


@dataclass(frozen=True)
class ContainerSpec:
	name: str
	image: str
	command: tuple[str, ...]
	labels: dict[str, str]
	network: str
	volumes: dict[str, str] = field(default_factory=dict)  # volume name → mount point
	ports: dict[str, tuple] = field(default_factory=dict)  # "80/tcp" → (address,) or (address, port)
	content: str = ""  # a digest of files the engine writes into the container before it starts
	cap_add: tuple[str, ...] = ()  # every other capability is dropped
	pids_limit: int = 512
	environment: dict[str, str] = field(default_factory=dict)  # never a secret: it shows in inspect

	@property
	def digest(self) -> str:
		described = [
			self.image,
			self.command,
			self.network,
			sorted(self.volumes.items()),
			sorted(self.ports.items()),
			self.content,
			sorted(self.cap_add),
			self.pids_limit,
			"no-new-privileges",
		]
		if self.environment:
			# only when set, so that containers made before the field existed keep their digest
			described.append(sorted(self.environment.items()))
		return hashlib.sha256(json.dumps(described, default=list).encode()).hexdigest()[:16]


# --- containers -----------------------------------------------------------------------------------


def _credentials_tar(files: dict[str, bytes]) -> bytes:
	"""The DNS-01 credential files for ``put_archive`` into the ACME directory: readable by root alone
	(Traefik's user), in a directory only root enters."""
	directory = acme.DNS_CREDENTIALS_DIRECTORY.removeprefix(acme.ACME_DIRECTORY + "/")
	entries: dict[str, tuple[bytes | None, int]] = {directory: (None, 0o700)}
	for path, content in files.items():
		entries[path.removeprefix(acme.ACME_DIRECTORY + "/")] = (content, 0o400)
	return tar_archive(entries)


def _container_file(server: ContainerServer, container: Container, path: str) -> bytes | None:
	"""A file's content in ``container`` (running or only created), None when it has none."""
	with docker_errors(server.docker, f"reading {path} in {container.name}"):
		try:
			stream, _stat = container.get_archive(path)
		except docker.errors.NotFound:
			return None
		with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
			return archive.extractfile(archive.getmembers()[0]).read()


def _ensure_network(client: docker.DockerClient, server: ContainerServer) -> None:
	if not client.networks.list(names=[server.network]):
		client.networks.create(
			server.network,
			driver="bridge",
			labels=naming.labels(server.name, "network"),
			check_duplicate=True,
		)


def _ensure_container(
	client: docker.DockerClient,
	server: ContainerServer,
	spec: ContainerSpec,
	prepare: Callable[[Container], None] | None = None,
) -> Container:
	"""The container as ``spec`` says, created only when missing or different (then replaced)."""
	with docker_errors(server.docker, f"ensuring container {spec.name}"):
		try:
			found = client.containers.get(spec.name)
		except docker.errors.NotFound:
			found = None
		container = unchanged_or_removed(found, spec.digest, server.name, spec.labels[naming.ROLE])
		if container is None:
			_ensure_network(client, server)
			for volume in spec.volumes:
				try:
					found = client.volumes.get(volume)
				except docker.errors.NotFound:
					client.volumes.create(volume, labels=naming.labels(server.name, spec.labels[naming.ROLE]))
				else:
					naming.require_owned(found, "volume", server.name, spec.labels[naming.ROLE])
			container = client.containers.create(
				spec.image,
				command=list(spec.command),
				name=spec.name,
				labels={**spec.labels, naming.SPEC: spec.digest},
				volumes={volume: {"bind": path, "mode": "rw"} for volume, path in spec.volumes.items()},
				ports=spec.ports,
				network=spec.network,
				restart_policy={"Name": "unless-stopped"},
				cap_drop=["ALL"],
				cap_add=list(spec.cap_add),
				security_opt=["no-new-privileges"],
				pids_limit=spec.pids_limit,
				environment=spec.environment,
			)
			if prepare:
				prepare(container)
		if container.status != "running":
			container.start()
		container.reload()
		return container


def _binding(address: str, port: int) -> tuple:
	return (address, port) if port else (address,)


def traefik_spec(server: ContainerServer, settings: ProxySettings) -> ContainerSpec:
	volumes = {naming.resource_name(server.container_prefix, "traefik-dynamic"): traefik.DYNAMIC_DIRECTORY}
	if settings.acme:
		# acme.json holds the ACME account key and the certificates: kept across container changes.
		volumes[naming.resource_name(server.container_prefix, "traefik-acme")] = acme.ACME_DIRECTORY
	return ContainerSpec(
		name=naming.resource_name(server.container_prefix, "traefik"),
		image=settings.traefik_image,
		command=(
			f"--entrypoints.{traefik.WEB}.address=:80",
			f"--entrypoints.{traefik.WEBSECURE}.address=:443",
			f"--entrypoints.traefik.address={API_ADDRESS}",
			"--api.insecure=true",
			f"--providers.file.directory={traefik.DYNAMIC_DIRECTORY}",
			"--providers.file.watch=true",
			"--log.level=INFO",
			*(settings.acme.arguments(settings.dns_challenge) if settings.acme else ()),
		),
		labels=naming.labels(server.name, ROLE_TRAEFIK),
		network=server.network,
		volumes=volumes,
		content=settings.acme.content_digest if settings.acme else "",
		environment=settings.dns_challenge.environment() if settings.dns_challenge else {},
		cap_add=("NET_BIND_SERVICE",),
		ports={
			"80/tcp": _binding(settings.bind_address, settings.http_port),
			"443/tcp": _binding(settings.bind_address, settings.https_port),
		},
	)


def router_spec(server: ContainerServer, settings: ProxySettings) -> ContainerSpec:
	return ContainerSpec(
		name=naming.resource_name(server.container_prefix, "router"),
		image=settings.router_image,
		command=("nginx", "-c", site_router.CONF, "-g", "daemon off;"),
		labels=naming.labels(server.name, ROLE_ROUTER),
		network=server.network,
		volumes={naming.resource_name(server.container_prefix, "router"): site_router.DIRECTORY},
		content=hashlib.sha256(site_router.nginx_conf().encode()).hexdigest(),
		cap_add=("CHOWN", "DAC_OVERRIDE", "NET_BIND_SERVICE", "SETGID", "SETUID"),
	)


# --- the running proxy ----------------------------------------------------------------------------

# How the router container fetches from its check server: curl (the nginx images), wget (Debian's
# nginx), python3; each host's answer on a line of its own, after the host and a tab.
_CHECK = (
	'if command -v curl >/dev/null; then get() { curl -s -f "$1"; }; '
	'elif command -v wget >/dev/null; then get() { wget -q -O - "$1"; }; '
	"else get() { python3 -c 'import sys, urllib.request as u; "
	'sys.stdout.write(u.urlopen(sys.argv[1], timeout=5).read().decode())\' "$1"; }; fi; '
	f'for host; do printf "%s\\t" "$host"; get "http://{site_router.CHECK_ADDRESS}/route?host=$host" '
	'|| echo "!unreachable"; done'
)
# Files per archive and exec when many are written at once (an adoption): argv stays far below ARG_MAX.
BATCH = 2000
SITES_ATTEMPTS = 20  # replacing sites.yml while other jobs on the proxy replace it too
# A mark in Traefik's dynamic directory, written with a change's files and removed by the bump of the
# generation that publishes them: a job that stopped between the two finds it and publishes when run again.
UNPUBLISHED = ".unpublished"


def _changed(listed: tuple[str, ...], add: tuple[str, ...], remove: tuple[str, ...]) -> tuple[str, ...]:
	"""``listed`` without ``remove`` and with ``add`` (which wins), sorted."""
	return tuple(sorted((set(listed) - set(remove)) | set(add)))


@dataclass
class Proxy:
	"""The Traefik and site router containers of a proxy server and the files they read."""

	server: ContainerServer
	traefik: Container
	router: Container
	settings: ProxySettings

	@classmethod
	def ensure(cls, client: docker.DockerClient, server: ContainerServer, settings: ProxySettings) -> Proxy:
		"""The containers as the settings say, and Traefik's files; returns once Traefik has applied
		a change made here (a default certificate set or removed, the resolver switched)."""
		made = []  # the router, when it was (re)created here

		def write_router_conf(container: Container) -> None:
			made.append(container)
			conf = {"nginx.conf": (site_router.nginx_conf().encode(), 0o644)}
			container.put_archive(site_router.DIRECTORY, tar_archive(conf))

		def write_acme_files(container: Container) -> None:
			if settings.acme and settings.acme.ca_bundle:
				files = {acme.ACME_CA_BUNDLE.rpartition("/")[2]: (settings.acme.ca_bundle.encode(), 0o644)}
				container.put_archive(acme.ACME_DIRECTORY, tar_archive(files))
			if settings.acme:
				# before Traefik starts and reads it: an account of the former ACME server is dropped
				resolvers = (settings.acme.name, settings.acme.dns_name)
				stored = _container_file(server, container, acme.ACME_STORAGE)
				kept = acme.without_other_servers_accounts(stored, settings.acme.directory_url, resolvers)
				if kept is not None:
					name = acme.ACME_STORAGE.rpartition("/")[2]
					container.put_archive(acme.ACME_DIRECTORY, tar_archive({name: (kept, 0o600)}))
			if settings.dns_challenge:
				# before Traefik starts: lego reads them when the resolver is made
				container.put_archive(acme.ACME_DIRECTORY, _credentials_tar(settings.dns_challenge.files()))

		router = _ensure_container(client, server, router_spec(server, settings), write_router_conf)
		container = _ensure_container(client, server, traefik_spec(server, settings), write_acme_files)
		proxy = cls(server, container, router, settings)
		if made:
			proxy.wait_for_router()
		changed = proxy.ensure_sites()
		changed = proxy.ensure_default_certificate() or changed
		proxy.ensure_dns_challenge()
		former_pages = proxy._former_pages(client)
		if made or former_pages:
			changed = proxy.adopt_former_routes(None) or changed
			if former_pages:
				# once Traefik has applied the removal of the former files, nothing routes to it
				proxy.wait_for_generation(None)
				former_pages.remove(force=True, v=True)
				try:
					volume = client.volumes.get(former_pages.name)
				except docker.errors.NotFound:
					volume = None
				if volume is not None:
					naming.require_owned(volume, "volume", server.name, ROLE_FORMER_PAGES)
					volume.remove(force=True)
		if changed:
			proxy.wait_for_generation(None)
		return proxy

	@classmethod
	def existing(
		cls, client: docker.DockerClient, server: ContainerServer, settings: ProxySettings
	) -> Proxy | None:
		"""The proxy as it runs, creating and changing nothing (None: it has no Traefik or router)."""
		found = []
		for spec in (traefik_spec(server, settings), router_spec(server, settings)):
			containers = client.containers.list(all=True, filters={"name": f"^{spec.name}$"})
			if not containers:
				return None
			found.append(containers[0])
		return cls(server, *found, settings)

	def _former_pages(self, client: docker.DockerClient) -> Container | None:
		"""The page service of the former layout, while its routes are not adopted yet."""
		name = naming.resource_name(self.server.container_prefix, "pages")
		for container in client.containers.list(all=True, filters={"name": f"^{name}$"}):
			naming.require_owned(container, "container", self.server.name, ROLE_FORMER_PAGES)
			return container
		return None

	def held_certificates(self) -> list[acme.HeldCertificate]:
		"""The certificates Traefik's resolvers hold in ``acme.json`` (read in memory)."""
		if self.settings.acme is None:
			return []
		resolvers = (self.settings.acme.name, self.settings.acme.dns_name)
		return acme.held_certificates(self._file(self.traefik, acme.ACME_STORAGE) or b"{}", resolvers)

	@property
	def router_url(self) -> str:
		return f"http://{self.router.name}:{site_router.PORT}"

	def published_port(self, container_port: str) -> int:
		return int(self.traefik.ports[container_port][0]["HostPort"])

	@property
	def cert_resolver(self) -> str | None:
		return self.settings.acme.name if self.settings.acme else None

	@property
	def containers(self) -> str:
		return f"{self.traefik.name} and {self.router.name}"

	# --- files ---------------------------------------------------------------------------------

	def dynamic_path(self, file_name: str) -> str:
		return f"{traefik.DYNAMIC_DIRECTORY}/{file_name}"

	def read(self, file_name: str) -> Sites | HostRoute | None:
		content = self._file(self.traefik, self.dynamic_path(file_name))
		return None if content is None else traefik.parse(content.decode(), file_name)

	def _file(self, container: Container, path: str) -> bytes | None:
		return _container_file(self.server, container, path)

	def _write(
		self,
		ctx: docker_exec.Transcript | None,
		container: Container,
		directory: str,
		files: dict[str, tuple[bytes, int]],
		removed: tuple[str, ...] = (),
	) -> None:
		"""Write files (paths relative to ``directory``) atomically: each one is copied under a
		temporary name in its own directory (a name neither Traefik nor nginx reads), then renamed over
		the old one, so no half-written file is ever read; then ``removed`` go. Without a job
		(``ctx``) nothing is logged."""
		token = secrets.token_hex(4)
		items = list(files.items())
		for start in range(0, max(len(items), 1), BATCH):
			staged, moves = {}, []
			for path, content in items[start : start + BATCH]:
				folder, _, name = path.rpartition("/")
				temporary = f"{folder}/.{name}.{token}.tmp" if folder else f".{name}.{token}.tmp"
				staged[temporary] = content
				moves += [temporary, path]
			last = start + BATCH >= len(items)
			gone = list(removed) if last else []
			if not moves and not gone:
				continue
			if staged:
				with docker_errors(self.server.docker, f"copying files into {container.name}"):
					container.put_archive(directory, tar_archive(staged))
			script = (
				'cd "$1" || exit 1; shift; while [ "$1" != "--" ]; do mv -f "$1" "$2" || exit 1; shift 2; done; '
				'shift; [ "$#" -eq 0 ] || rm -rf -- "$@"'
			)
			argv = ["sh", "-c", script, "sh", directory, *moves, "--", *gone]
			(ctx.run if ctx else docker_exec.run)(container, argv, ROOT)

	def holds(self, files: dict[str, tuple[bytes, int]]) -> bool:
		"""Whether Traefik's dynamic directory holds exactly ``files`` (path → content, mode) already, and
		published (no change is left :data:`UNPUBLISHED`). Every write makes Traefik read all its files
		again: a retried job writes only what is missing."""
		script = (
			'[ -e "$1" ] && exit 3; shift; for path; do [ -f "$path" ] || exit 3; '
			'printf "%s %s\\n" "$(stat -c %a -- "$path")" "$(sha256sum < "$path" | cut -d " " -f 1)"; done'
		)
		argv = ["sh", "-c", script, "sh", self.dynamic_path(UNPUBLISHED), *files]
		result = docker_exec.run(self.traefik, argv, READ, check=False)
		if result.exit_code not in (0, 3):
			raise CommandFailed(self.traefik.name, result)
		wanted = [f"{mode:o} {hashlib.sha256(content).hexdigest()}" for content, mode in files.values()]
		return result.exit_code == 0 and result.stdout.splitlines() == wanted

	def holds_any(self, paths: list[str]) -> bool:
		"""Whether any of ``paths`` (files or folders of Traefik's dynamic directory) exists, or a change
		was left :data:`UNPUBLISHED` (a removal then is done and published again)."""
		script = 'for path; do [ -e "$path" ] && exit 0; done; exit 3'
		argv = ["sh", "-c", script, "sh", self.dynamic_path(UNPUBLISHED), *paths]
		result = docker_exec.run(self.traefik, argv, READ, check=False)
		if result.exit_code not in (0, 3):
			raise CommandFailed(self.traefik.name, result)
		return result.exit_code == 0

	def write(
		self,
		ctx: docker_exec.Transcript | None,
		files: dict[str, tuple[bytes, int]],
		removed: list[str] | tuple = (),
	) -> None:
		"""Files of Traefik's dynamic directory (paths inside the container); see :meth:`_write`."""
		prefix = traefik.DYNAMIC_DIRECTORY + "/"
		relative = {path.removeprefix(prefix): content for path, content in files.items()}
		self._write(ctx, self.traefik, traefik.DYNAMIC_DIRECTORY, relative, tuple(removed))

	def unpublished(self) -> bool:
		"""Whether a change was left :data:`UNPUBLISHED`: a job stopped between its write and its bump."""
		mark = self.dynamic_path(UNPUBLISHED)
		found = docker_exec.run(self.traefik, ["test", "-e", mark], READ, check=False)
		if found.exit_code not in (0, 1):
			raise CommandFailed(self.traefik.name, found)
		return found.exit_code == 0

	def write_unpublished(
		self,
		ctx: docker_exec.Transcript,
		files: dict[str, tuple[bytes, int]],
		removed: list[str] | tuple = (),
	) -> None:
		""":meth:`write`, the change marked :data:`UNPUBLISHED` (the mark goes first) until :meth:`bump`
		publishes it; :meth:`holds` and :meth:`holds_any` see the mark."""
		self.write(ctx, {self.dynamic_path(UNPUBLISHED): (b"", 0o644), **files}, removed)

	# --- Traefik: the sites document and its generation ------------------------------------------

	def sites(self) -> Sites | None:
		return self.read(traefik.SITES_FILE)

	def bump(
		self,
		ctx: docker_exec.Transcript | None,
		add: tuple[str, ...] = (),
		remove: tuple[str, ...] = (),
		add_domains: tuple[str, ...] = (),
		remove_domains: tuple[str, ...] = (),
	) -> int:
		"""Write ``sites.yml`` with the next generation (and the ACME site names and custom domains
		changed): written after every other file of the change, so once Traefik shows this generation it
		has read them.

		Jobs of different sites run at once on one proxy, so the file is replaced only if it still holds
		the generation this change was computed from (else it is read again): no name is lost."""
		for _attempt in range(SITES_ATTEMPTS):
			current = self.sites()
			base = current or Sites(self.router_url)
			sites = Sites(
				self.router_url,
				self.cert_resolver,
				_changed(base.acme_sites, add, remove),
				base.generation + 1,
				_changed(base.acme_domains, add_domains, remove_domains),
			)
			if self._replace_sites(ctx, sites, current):
				if ctx:
					ctx.log(f"Traefik's files are at generation {sites.generation}")
				return sites.generation
		raise EngineError(
			f"{traefik.SITES_FILE} on proxy server {self.server.name} changed {SITES_ATTEMPTS} times while this "
			"job wrote it. Fix: run the job again."
		)

	def _replace_sites(self, ctx: docker_exec.Transcript | None, sites: Sites, current: Sites | None) -> bool:
		"""``sites.yml`` replaced by ``sites`` if it still is ``current`` (False: it changed meanwhile).
		The check and the rename hold a lock directory, so two jobs never both replace one generation."""
		temporary = f".{traefik.SITES_FILE}.{secrets.token_hex(4)}.tmp"
		staged = {temporary: (traefik.render(sites).encode(), 0o644)}
		with docker_errors(self.server.docker, f"copying {traefik.SITES_FILE} into {self.traefik.name}"):
			self.traefik.put_archive(traefik.DYNAMIC_DIRECTORY, tar_archive(staged))
		# the header's keys are sorted: the generation is followed by a comma
		marker = f'"generation": {current.generation},' if current else ""
		script = (
			'cd "$1" || exit 1; n=0; until mkdir .sites.lock 2>/dev/null; do n=$((n + 1)); '
			# a lock left by an exec killed between mkdir and rmdir is taken over after 10 s
			'[ "$n" -lt 200 ] || { rmdir .sites.lock; n=0; }; sleep 0.05; done; '
			'if [ -z "$2" ]; then [ ! -e "$4" ]; else head -n 1 "$4" | grep -q -F -e "$2"; fi; same=$?; '
			'if [ "$same" -eq 0 ]; then mv -f "$3" "$4" && rm -f "$5"; else rm -f "$3"; fi; rmdir .sites.lock; '
			'[ "$same" -eq 0 ] || exit 3'
		)
		argv = [
			"sh",
			"-c",
			script,
			"sh",
			traefik.DYNAMIC_DIRECTORY,
			marker,
			temporary,
			traefik.SITES_FILE,
			UNPUBLISHED,
		]
		result = docker_exec.run(self.traefik, argv, ROOT, check=False)
		if result.exit_code not in (0, 3):
			raise CommandFailed(self.traefik.name, result)
		if ctx and result.exit_code == 3:
			ctx.log(f"{traefik.SITES_FILE} changed meanwhile (another job): read again")
		return result.exit_code == 0

	def _certify(
		self, ctx: docker_exec.Transcript, route: SiteRoute | None, previous: SiteRoute | None
	) -> None:
		"""The names Traefik obtains certificates for as ``route`` says (None: the site is gone),
		``previous`` being what was published: its site name and ACME custom domains while the proxy
		has a resolver, and none of the other hosts of either. ``sites.yml`` changes only when they do."""
		hosts = tuple({*(previous.hosts if previous else ()), *(route.hosts if route else ())})
		certified = route is not None and route.cert_resolver is not None
		sites = (route.site,) if certified else ()
		domains = route.acme_domains if certified else ()
		current = self.sites()
		if current is not None and (current.acme_sites, current.acme_domains) == (
			_changed(current.acme_sites, sites, hosts),
			_changed(current.acme_domains, domains, hosts),
		):
			return
		self.bump(ctx, sites, hosts, domains, hosts)

	def ensure_sites(self) -> bool:
		"""``sites.yml`` naming this router and resolver (written when either changed)."""
		current = self.sites()
		if current and (current.router_url, current.cert_resolver) == (self.router_url, self.cert_resolver):
			return False
		self.bump(None)
		return True

	def loaded_generation(self) -> str:
		"""The generation Traefik's API shows (or why none)."""
		url = f"http://{API_ADDRESS}/api/http/middlewares/{traefik.GENERATION}@file"
		result = docker_exec.run(self.traefik, ["wget", "-O", "-", url], READ, check=False)
		if result.exit_code != 0:
			return "absent" if "404" in result.stderr else f"API unreachable: {result.stderr.strip()[-200:]}"
		try:
			headers = json.loads(result.stdout)["headers"]["customRequestHeaders"]
		except (ValueError, KeyError, TypeError):  # seen once: an empty answer while Traefik reloaded
			return f"API answered: {result.stdout[:200]!r}"
		return headers.get(traefik.GENERATION_HEADER, "absent")

	def wait_for_generation(self, ctx: docker_exec.Transcript | None) -> None:
		self.verify(ctx, {})

	def ensure_default_certificate(self) -> bool:
		"""The operator's default certificate as the settings say: written when missing or changed,
		removed when no longer configured (True: changed). Traefik applies it without a restart."""
		document = self.dynamic_path(acme.DEFAULT_CERTIFICATE_FILE)
		wanted = self.settings.default_certificate
		if wanted is None:
			if self._file(self.traefik, document) is None:
				return False
			self.write(None, {}, [document, self.dynamic_path(acme.DEFAULT_CERTIFICATE_DIRECTORY)])
		else:
			files = acme.default_certificate_files(traefik.DYNAMIC_DIRECTORY, wanted)
			if all(self._file(self.traefik, path) == content for path, (content, _mode) in files.items()):
				return False
			# The document names the certificate files: they go first (dict order), so Traefik never
			# reads a document whose files are missing or older.
			self.write(None, files)
		self.bump(None)
		return True

	# --- the site router -------------------------------------------------------------------------

	def _router_file(self, host: str) -> str | None:
		content = self._file(self.router, f"{site_router.DIRECTORY}/{site_router.map_file(host)}")
		return None if content is None else content.decode()

	def ensure_dns_challenge(self) -> None:
		"""The DNS-01 credential files and the wildcard documents as the settings say."""
		if self.settings.acme:  # the credentials live in the ACME volume
			self._ensure_dns_credentials()
		self._ensure_wildcard_documents()

	def _ensure_dns_credentials(self) -> None:
		"""Credentials that changed are rewritten and Traefik restarted (lego reads them once, when it
		makes the resolver); files of variables no longer set are removed."""
		dns = self.settings.dns_challenge
		wanted = dns.files() if dns else {}
		held = self._credentials()
		stale = sorted(held.keys() - wanted.keys())
		if stale:
			docker_exec.run(self.traefik, ["rm", "-f", "--", *stale], ROOT)
		if any(held.get(path) != content for path, content in wanted.items()):
			with docker_errors(self.server.docker, f"writing the DNS credentials into {self.traefik.name}"):
				self.traefik.put_archive(acme.ACME_DIRECTORY, _credentials_tar(wanted))
				self.traefik.restart()
			self.wait_until_answering()

	def _ensure_wildcard_documents(self) -> None:
		"""One document per wildcard domain; those of domains no longer listed are removed."""
		resolver = self.settings.acme.dns_name if self.settings.dns_challenge else ""
		wanted = acme.wildcard_files(traefik.DYNAMIC_DIRECTORY, self.settings.wildcard_domains, resolver)
		script = 'cd "$1" && for f in "$2"*.yml; do [ -e "$f" ] && echo "$1/$f"; done; true'
		listed = docker_exec.run(
			self.traefik,
			["sh", "-c", script, "sh", traefik.DYNAMIC_DIRECTORY, acme.WILDCARD_FILE_PREFIX],
			READ,
		)
		stale = sorted(set(listed.stdout.split()) - wanted.keys())
		if stale:
			docker_exec.run(self.traefik, ["rm", "-f", "--", *stale], ROOT)
		changed = {
			path: (content, 0o644)
			for path, content in wanted.items()
			if self._file(self.traefik, path) != content
		}
		if changed:
			self.write(None, changed)

	def _credentials(self) -> dict[str, bytes]:
		"""Path → content of the DNS-01 credential files in the container (read in memory only)."""
		with docker_errors(self.server.docker, f"reading the DNS credentials in {self.traefik.name}"):
			try:
				stream, _stat = self.traefik.get_archive(acme.DNS_CREDENTIALS_DIRECTORY)
			except docker.errors.NotFound:
				return {}
			with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
				return {
					f"{acme.ACME_DIRECTORY}/{member.name}": archive.extractfile(member).read()
					for member in archive.getmembers()
					if member.isfile()
				}

	def site(self, site: str) -> SiteRoute | None:
		"""The route of a site, from the header of its own map file (None: no such site; a name that
		is only another site's domain has no header)."""
		text = self._router_file(site)
		if text is None or not text.startswith(traefik.HEADER):
			return None
		return site_router.parse(text, site_router.map_file(site))

	def owner_of(self, host: str) -> str | None:
		"""The site a host name routes to on this proxy (None: it routes nowhere)."""
		text = self._router_file(host)
		return site_router.owner(site_router.served_value(text)) if text else None

	def _write_router(
		self, ctx: docker_exec.Transcript | None, files: dict[str, str], removed: tuple[str, ...]
	) -> None:
		encoded = {path: (text.encode(), 0o644) for path, text in files.items()}
		self._write(ctx, self.router, site_router.DIRECTORY, encoded, removed)
		self.reload_router()

	def reload_router(self) -> None:
		"""nginx re-reads its configuration and the map on SIGHUP (new workers, the old ones finish
		their requests); a configuration it cannot read leaves the old one serving (verify says so)."""
		with docker_errors(self.server.docker, f"reloading {self.router.name}"):
			self.router.kill(signal="HUP")

	def publish(self, ctx: docker_exec.Transcript, route: SiteRoute, previous: SiteRoute | None) -> None:
		"""The site's map files as ``route`` says, ``previous`` being what they said (its hosts that
		``route`` drops are removed, a renamed site's old name too)."""
		# A resolver set or removed since the route was written applies at the site's next job.
		route = dataclasses.replace(route, cert_resolver=self.cert_resolver)
		before = previous.hosts if previous else ()
		for host in route.hosts:
			if host in before:
				continue
			owner = self.owner_of(host)
			if owner not in (None, route.site):
				raise HostTaken(self.server.name, host, owner, route.site)
		gone = tuple(site_router.map_file(host) for host in before if host not in route.hosts)
		ctx.log(f"writing the routes of {route.site} ({route.status}): {', '.join(route.hosts)}")
		self._write_router(ctx, site_router.render(route), gone)
		self._certify(ctx, route, previous)

	def unpublish(self, ctx: docker_exec.Transcript, route: SiteRoute) -> None:
		ctx.log(f"removing the routes of {route.site}: {', '.join(route.hosts)}")
		self._write_router(ctx, {}, tuple(site_router.map_file(host) for host in route.hosts))
		self._certify(ctx, None, route)

	def served(self, hosts: list[str]) -> dict[str, str | None]:
		"""What the router's check server answers for each host (None: no route)."""
		result = docker_exec.run(self.router, ["sh", "-c", _CHECK, "sh", *hosts], READ, check=False)
		answers = {}
		for line in result.stdout.splitlines():
			host, _, value = line.partition("\t")
			answers[host] = value or None
		return {host: answers.get(host, f"no answer ({result.stderr.strip()[-200:]})") for host in hosts}

	def verify(self, ctx: docker_exec.Transcript | None, expected: dict[str, str | None]) -> None:
		"""Wait until the router serves ``expected`` (host → map value, None: no route) and Traefik
		has applied the generation of its files. nginx applies a SIGHUP and Traefik its files
		asynchronously, so one look right after the write could miss them."""
		deadline = time.monotonic() + self.settings.reload_timeout
		while True:
			wrong = {
				host: seen for host, seen in self.served(list(expected)).items() if seen != expected[host]
			}
			sites = self.sites()
			generation = self.loaded_generation()
			if sites is None or generation != str(sites.generation):
				wanted = sites.generation if sites else "a sites.yml"
				wrong[f"Traefik generation (want {wanted})"] = generation
			if not wrong:
				break
			if time.monotonic() > deadline:
				raise RoutesNotLoaded(self.server.name, wrong, self.containers)
			time.sleep(0.2)
		if ctx:
			ctx.log(f"the proxy serves {len(expected)} host change(s); Traefik at generation {generation}")

	def wait_for_router(self) -> None:
		"""Wait until a new router's workers answer: nginx ignores SIGHUP until it has read its
		configuration, so a change published before that would not be served until the next one."""
		deadline = time.monotonic() + self.settings.reload_timeout
		while (answer := self.served(["localhost"])["localhost"]) is not None:
			self.router.reload()
			if self.router.status != "running" or time.monotonic() > deadline:
				logs = self.router.logs(tail=20).decode(errors="replace")
				raise ProxyNotReady(
					self.server.name, self.router.name, f"{self.router.status}: {answer}", logs
				)
			time.sleep(0.2)

	def wait_until_answering(self) -> str:
		"""Traefik's version once its API answers (within the reload timeout)."""
		deadline = time.monotonic() + self.settings.reload_timeout
		url = f"http://{API_ADDRESS}/api/version"
		while True:
			result = docker_exec.run(self.traefik, ["wget", "-q", "-O", "-", url], READ, check=False)
			if result.exit_code == 0:
				return json.loads(result.stdout).get("Version", "?")
			self.traefik.reload()
			if self.traefik.status != "running" or time.monotonic() > deadline:
				logs = self.traefik.logs(tail=20).decode(errors="replace")
				raise ProxyNotReady(self.server.name, self.traefik.name, self.traefik.status, logs)
			time.sleep(0.5)

	# --- hosts with certificates -------------------------------------------------------------------

	def hosts_of(self, site: str) -> list[HostRoute]:
		"""The host routes (custom domains with their certificates) that serve ``site``."""
		marker = f'"site": {json.dumps(site)}'
		script = 'cd "$1" && grep -l -F -e "$2" -- host_*.yml 2>/dev/null; true'
		found = docker_exec.run(
			self.traefik, ["sh", "-c", script, "sh", traefik.DYNAMIC_DIRECTORY, marker], READ
		)
		hosts = [self.read(name) for name in found.stdout.split()]
		return [host for host in hosts if isinstance(host, HostRoute) and host.site == site]

	def publish_host(self, ctx: docker_exec.Transcript, host: HostRoute) -> None:
		ctx.log(f"writing {host.file_name}")
		self.write(ctx, {self.dynamic_path(host.file_name): (traefik.render(host).encode(), 0o644)})

	# --- the certificate report and the former layout ----------------------------------------------

	def site_certificates(self) -> list[acme.SiteCertificate]:
		"""Each site name and custom domain this proxy asks its ACME resolver to certify, with what
		Traefik holds for it.

		One exec lists every map file's time and every site's header line (thousands of sites: no
		read per file)."""
		resolver = self.cert_resolver
		if resolver is None:
			return []
		script = (
			'cd "$1" || exit 1; find . -maxdepth 1 -name "*.map" -printf "%T@ %f\\n"; echo "--"; '
			'find . -maxdepth 1 -name "*.map" -exec grep -H -m 1 -e "^$2" {} +; true'
		)
		directory = f"{site_router.DIRECTORY}/{site_router.ROUTES}"
		listed = docker_exec.run(self.router, ["sh", "-c", script, "sh", directory, traefik.HEADER], READ)
		times_part, _, headers_part = listed.stdout.partition("--\n")
		written = {}
		for line in times_part.splitlines():
			seconds, _, name = line.partition(" ")
			written[name] = datetime.datetime.fromtimestamp(int(float(seconds)), datetime.timezone.utc)
		held = acme.stored_certificates(self._file(self.traefik, acme.ACME_STORAGE) or b"{}", resolver)
		found = []
		for line in headers_part.splitlines():
			path, _, header = line.partition(":")
			name = path.removeprefix("./")
			route = site_router.parse(header, name)
			if route.cert_resolver != resolver:
				continue
			issued, expires = held.get(route.site, (None, None))
			found.append(acme.SiteCertificate(route.site, written[name], expires, not_before=issued))
			for domain in route.acme_domains:
				# since the domain's own map file was written (when it was added)
				routed = written.get(site_router.map_file(domain).removeprefix(f"{site_router.ROUTES}/"))
				issued, expires = held.get(domain, (None, None))
				found.append(
					acme.SiteCertificate(route.site, routed or written[name], expires, domain, issued)
				)
		return found

	def wildcards_requested(self) -> dict[str, datetime.datetime]:
		"""Each root domain whose wildcard this proxy asks its DNS-01 resolver for → since when (the time of
		its document, rewritten only when it changes)."""
		if not self.settings.wildcard_domains:
			return {}
		script = 'cd "$1" || exit 1; find . -maxdepth 1 -name "$2*.yml" -printf "%T@ %f\\n"'
		argv = ["sh", "-c", script, "sh", traefik.DYNAMIC_DIRECTORY, acme.WILDCARD_FILE_PREFIX]
		written = {}
		for line in docker_exec.run(self.traefik, argv, READ).stdout.splitlines():
			seconds, _, name = line.partition(" ")
			written[name] = datetime.datetime.fromtimestamp(int(float(seconds)), datetime.timezone.utc)
		return {
			domain: written[acme.wildcard_file_name(domain)]
			for domain in self.settings.wildcard_domains
			if acme.wildcard_file_name(domain) in written
		}

	def retry_certificates(self, names: tuple[str, ...]) -> int:
		"""Ask the ACME resolvers again for ``names`` (site names and custom domains this proxy certifies by
		HTTP-01, ``*.<root domain>`` wildcards by DNS-01) after a failed challenge was fixed (DNS now
		pointing here, port 80 opened, a DNS provider's credential corrected).

		Traefik asks its resolver for a name only when it reads a configuration that lists the name and
		it holds no certificate for it; a failure is not retried on its own. So each name's route file
		is touched (its grace period starts again: the record goes back to Pending, not straight to
		Failure) and ``sites.yml`` is written with the next generation, which makes Traefik read its
		whole configuration again. Names that have a certificate are left to Traefik's renewal. Returns
		the generation written."""
		sites = self.sites()
		certified = sites.acme_names if sites and sites.cert_resolver else ()
		wildcards = (
			{f"*.{domain}" for domain in self.settings.wildcard_domains} if self.settings.acme else set()
		)
		for name in names:
			validate_fqdn(name.removeprefix("*."), "name")
			if name not in certified and name not in wildcards:
				raise ValidationError(
					"name",
					name,
					f"proxy server {self.server.name} does not ask an ACME resolver for this name",
					"retry a name the proxy certifies by ACME: its site, a custom domain Press sent without a "
					"certificate, or the wildcard of a root domain set to DNS-01",
				)
		routed = [
			f"{site_router.DIRECTORY}/{site_router.map_file(name)}" for name in names if name in certified
		]
		if routed:
			docker_exec.run(self.router, ["touch", "-c", *routed], ROOT)
		requested = [
			f"{traefik.DYNAMIC_DIRECTORY}/{acme.wildcard_file_name(name.removeprefix('*.'))}"
			for name in names
			if name in wildcards
		]
		if requested:
			docker_exec.run(self.traefik, ["touch", "-c", *requested], ROOT)
		return self.bump(None)

	def adopt_former_routes(self, ctx: docker_exec.Transcript | None) -> bool:
		"""The routes of the former layout (one ``site_*.yml`` of Traefik routers per site) written into
		the router, then those files removed (True: there were some). Until they go, Traefik's
		per-site routers outrank the catch-all, so the sites are served throughout. A host two former
		files claimed stays with the first site (by file name)."""
		script = 'cd "$1" && find . -maxdepth 1 -name "site_*.yml" -exec grep -H -m 1 "" {} +; true'
		listed = docker_exec.run(self.traefik, ["sh", "-c", script, "sh", traefik.DYNAMIC_DIRECTORY], READ)
		files, routes, claimed = [], [], set()
		for line in sorted(listed.stdout.splitlines()):
			path, _, header = line.partition(":")
			files.append(self.dynamic_path(path.removeprefix("./")))
			route = site_router.parse(header, path)
			kept = tuple(domain for domain in route.domains if domain not in claimed)
			route = dataclasses.replace(route, domains=kept, cert_resolver=self.cert_resolver)
			if route.site in claimed:
				continue
			claimed.update(route.hosts)
			routes.append(route)
		if not files:
			return False
		maps = {path: text for route in routes for path, text in site_router.render(route).items()}
		self._write_router(ctx, maps, ())
		certified = tuple(route.site for route in routes if route.cert_resolver)
		self.bump(ctx, add=certified)
		if routes:
			self.verify(ctx, site_router.expected(routes[-1]))
		self.write(ctx, {}, files)
		self.bump(ctx)
		return True
