"""A container Proxy Server: Traefik with the file provider, a static page service, and Press's proxy jobs.

Containers (all labelled, on the cluster network):
- ``<prefix>-traefik``: entry points ``web`` (:80) and ``websecure`` (:443) published on the host; the
  file provider watches ``/etc/traefik/dynamic`` (volume ``<prefix>-traefik-dynamic``), so a route file
  takes effect when it is replaced and Traefik is never restarted. Its API is on an entry point bound
  to the container's own loopback (nothing outside the container reaches it); the ``Reload NGINX``
  steps ask it, through ``docker exec`` of ``wget``, whether the routers are loaded.
- ``<prefix>-pages``: nginx (the front image) serving the suspended / deactivated pages, written by
  the engine into volume ``<prefix>-pages`` together with the nginx configuration.

Which bench serves a site is not in Press's proxy payloads: it comes from
``Topology.bench_for_site`` (the Site's ``bench`` in Press), which is known before the bench has
created the site's directory (Press sends ``New Site`` and ``Add Site to Upstream`` together).
The proxy and the app servers must share the cluster network: routes name the benches' fronts
(``http://<app prefix>-<bench>-front:80``, which also passes ``/socket.io`` to its backend); the
backends themselves are on their benches' own networks, out of the proxy's and other benches' reach.
Traefik and the page service keep only the capabilities they need (binding ports 80/443; nginx's
switch to its worker user), with ``no-new-privileges`` and a pids limit. A container of the same
name that the engine did not make for this server is never replaced or removed.
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

from press_selfhosted.engine import acme, commands, naming, traefik
from press_selfhosted.engine.agent.handlers import ContainerServer, Handler, StepContext, handler
from press_selfhosted.engine.docker_hosts import docker_errors
from press_selfhosted.engine.errors import EngineError
from press_selfhosted.engine.traefik import HostRoute, SiteRoute
from press_selfhosted.engine.validation import ValidationError, validate_fqdn

SPEC_LABEL = "press.spec"
ROLE_TRAEFIK = "traefik"
ROLE_PAGES = "proxy-pages"
PAGES_DIRECTORY = "/srv/pages"
API_ADDRESS = "127.0.0.1:8080"
ROOT = commands.Exec(user="root", workdir="/")


class SiteNotOnProxy(EngineError):
	def __init__(self, server: str, site: str):
		super().__init__(
			f"Site {site} has no route on proxy server {server}. Run 'Add Site to Upstream' for it first "
			"(Press does so when the site is created)."
		)


class RoutesNotLoaded(EngineError):
	def __init__(self, server: str, wrong: dict):
		shown = ", ".join(f"{name}: {seen or 'absent'}" for name, seen in sorted(wrong.items()))
		super().__init__(
			f"Traefik on proxy server {server} did not load the routes written for this job ({shown}). "
			"Check the Traefik container's log (docker logs) for a configuration error."
		)


class ProxyNotReady(EngineError):
	def __init__(self, server: str, container: str, status: str, logs: str):
		super().__init__(
			f"Traefik of proxy server {server} (container {container}, {status}) does not answer. "
			f"Fix: look at its log, below, then set the server up again. Last log lines:\n{logs}"
		)


@dataclass(frozen=True)
class ProxySettings:
	"""How the Traefik and page containers of a proxy server run. Port 0 lets Docker pick a free port."""

	traefik_image: str
	pages_image: str  # an nginx image (the benches' static-file front image)
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


# --- static pages ---------------------------------------------------------------------------------

PAGE_TEXT = {
	"suspended": (
		"Site suspended",
		"This site has been suspended. Its owner can restore it from the dashboard.",
	),
	"suspended_saas": (
		"Site suspended",
		"This site has been suspended. Please contact the provider of this service.",
	),
	"deactivated": ("Site deactivated", "This site has been deactivated by its owner."),
}


def page_html(page: str) -> str:
	title, text = PAGE_TEXT[page]
	return (
		f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>\n'
		f"<body><h1>{title}</h1><p>{text}</p></body></html>\n"
	)


def pages_nginx_conf() -> str:
	"""Traefik rewrites a page route's path to ``/status/<page>``; nginx answers with the page and
	its status code (``error_page`` keeps the 503 while serving the file)."""
	locations = []
	for page, code in traefik.PAGES.values():
		if code == 200:
			locations.append(f"\t\tlocation = /status/{page} {{ try_files /{page}.html =404; }}")
		else:
			locations.append(
				f"\t\tlocation = /status/{page} {{ error_page {code} /{page}.html; return {code}; }}"
			)
	return (
		"worker_processes 1;\npid /tmp/nginx.pid;\nerror_log stderr;\nevents {}\n"
		"http {\n\taccess_log off;\n\tdefault_type text/html;\n"
		f"\tserver {{\n\t\tlisten 80 default_server;\n\t\troot {PAGES_DIRECTORY}/html;\n"
		+ "\n".join(locations)
		+ "\n\t\tlocation ~ ^/[a-z_]+\\.html$ { internal; }\n\t\tlocation / { return 404; }\n\t}\n}\n"
	)


def pages_files() -> dict[str, bytes]:
	files = {f"html/{page}.html": page_html(page).encode() for page, _code in traefik.PAGES.values()}
	files["nginx.conf"] = pages_nginx_conf().encode()
	return files


# --- containers -----------------------------------------------------------------------------------


def _tar(files: dict[str, tuple[bytes | None, int]]) -> bytes:
	"""A tar of ``name → (content, mode)``, owned by root; content None is a directory."""
	buffer = io.BytesIO()
	with tarfile.open(fileobj=buffer, mode="w") as archive:
		for name, (content, mode) in files.items():
			info = tarfile.TarInfo(name)
			info.mode = mode
			info.mtime = int(time.time())  # a route file's time is when it was written (certificate report)
			if content is None:
				info.type = tarfile.DIRTYPE
				archive.addfile(info)
				continue
			info.size = len(content)
			archive.addfile(info, io.BytesIO(content))
	return buffer.getvalue()


def _credentials_tar(files: dict[str, bytes]) -> bytes:
	"""The DNS-01 credential files for ``put_archive`` into the ACME directory: readable by root alone
	(Traefik's user), in a directory only root enters."""
	directory = acme.DNS_CREDENTIALS_DIRECTORY.removeprefix(acme.ACME_DIRECTORY + "/")
	entries: dict[str, tuple[bytes | None, int]] = {directory: (None, 0o700)}
	for path, content in files.items():
		entries[path.removeprefix(acme.ACME_DIRECTORY + "/")] = (content, 0o400)
	return _tar(entries)


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
			container = client.containers.get(spec.name)
		except docker.errors.NotFound:
			container = None
		if container is not None:
			# an operator's container of the same name (or another server's) is left alone
			naming.require_owned(container, "container", server.name, spec.labels[naming.ROLE])
		if container is not None and container.labels.get(SPEC_LABEL) != spec.digest:
			container.remove(force=True)
			container = None
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
				labels={**spec.labels, SPEC_LABEL: spec.digest},
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


def pages_spec(server: ContainerServer, settings: ProxySettings) -> ContainerSpec:
	content = hashlib.sha256()
	for name, data in sorted(pages_files().items()):
		content.update(name.encode() + b"\0" + data)
	return ContainerSpec(
		name=naming.resource_name(server.container_prefix, "pages"),
		image=settings.pages_image,
		command=("nginx", "-c", f"{PAGES_DIRECTORY}/nginx.conf", "-g", "daemon off;"),
		labels=naming.labels(server.name, ROLE_PAGES),
		network=server.network,
		volumes={naming.resource_name(server.container_prefix, "pages"): PAGES_DIRECTORY},
		content=content.hexdigest(),
		cap_add=("CHOWN", "DAC_OVERRIDE", "NET_BIND_SERVICE", "SETGID", "SETUID"),
	)


# --- the running proxy ----------------------------------------------------------------------------


def loaded_signature(router: dict) -> str:
	"""What a loaded router must look like (see traefik.router_signature), from Traefik's API answer."""
	if router.get("status") != "enabled":
		return f"{router.get('status')}: {'; '.join(router.get('error') or [])}"
	names = (router.get("service", ""), *router.get("middlewares", []))
	return "|".join([router.get("rule", ""), *(name.split("@")[0] for name in names)])


def loaded_url(service: dict) -> str:
	"""Where a loaded service forwards to, from Traefik's API answer."""
	servers = (service.get("loadBalancer") or {}).get("servers") or [{}]
	return servers[0].get("url", "")


@dataclass
class Proxy:
	"""The Traefik container of a proxy server and the files in its dynamic directory."""

	server: ContainerServer
	traefik: Container
	settings: ProxySettings

	@classmethod
	def ensure(cls, client: docker.DockerClient, server: ContainerServer, settings: ProxySettings) -> Proxy:
		pages = pages_spec(server, settings)

		def write_pages(container: Container) -> None:
			files = {name: (data, 0o644) for name, data in pages_files().items()}
			container.put_archive(PAGES_DIRECTORY, _tar(files))

		def write_acme_files(container: Container) -> None:
			if settings.acme and settings.acme.ca_bundle:
				files = {acme.ACME_CA_BUNDLE.rpartition("/")[2]: (settings.acme.ca_bundle.encode(), 0o644)}
				container.put_archive(acme.ACME_DIRECTORY, _tar(files))
			if settings.dns_challenge:
				# before Traefik starts: lego reads them when the resolver is made
				container.put_archive(acme.ACME_DIRECTORY, _credentials_tar(settings.dns_challenge.files()))

		_ensure_container(client, server, pages, write_pages)
		container = _ensure_container(client, server, traefik_spec(server, settings), write_acme_files)
		proxy = cls(server, container, settings)
		proxy.ensure_default_certificate()
		proxy.ensure_dns_challenge()
		return proxy

	@classmethod
	def existing(
		cls, client: docker.DockerClient, server: ContainerServer, settings: ProxySettings
	) -> Proxy | None:
		"""The proxy as it runs, creating and changing nothing (None: it has no Traefik container)."""
		name = traefik_spec(server, settings).name
		found = client.containers.list(all=True, filters={"name": f"^{name}$"})
		if not found:
			return None
		return cls(server, found[0], settings)

	def site_certificates(self) -> list[acme.SiteCertificate]:
		"""Each site this proxy asks its ACME resolver to certify, with what Traefik holds for it.

		One exec lists every route file's time and state line (thousands of sites: no read per file)."""
		resolver = self.cert_resolver
		if resolver is None:
			return []
		script = (
			'cd "$1" || exit 1; set -- site_*.yml; [ -e "$1" ] || exit 0; '
			'stat -c "%Y %n" -- "$@"; echo "--"; grep -H -m 1 "" -- "$@"'
		)
		listed = commands.run(self.traefik, ["sh", "-c", script, "sh", traefik.DYNAMIC_DIRECTORY], ROOT)
		times_part, _, headers_part = listed.stdout.partition("\n--\n")
		written = {}
		for line in times_part.splitlines():
			seconds, _, name = line.partition(" ")
			written[name] = datetime.datetime.fromtimestamp(int(seconds), datetime.timezone.utc)
		held = acme.stored_certificates(self._file(acme.ACME_STORAGE) or b"{}", resolver)
		found = []
		for line in headers_part.splitlines():
			name, _, header = line.partition(":")
			route = traefik.parse(header, name)
			if isinstance(route, SiteRoute) and route.cert_resolver == resolver:
				found.append(acme.SiteCertificate(route.site, written[name], held.get(route.site)))
		return found

	def held_certificates(self) -> list[acme.HeldCertificate]:
		"""The certificates Traefik's resolvers hold in ``acme.json`` (read in memory)."""
		if self.settings.acme is None:
			return []
		resolvers = (self.settings.acme.name, self.settings.acme.dns_name)
		return acme.held_certificates(self._file(acme.ACME_STORAGE) or b"{}", resolvers)

	@property
	def pages_url(self) -> str:
		return f"http://{pages_spec(self.server, self.settings).name}:80"

	def published_port(self, container_port: str) -> int:
		return int(self.traefik.ports[container_port][0]["HostPort"])

	@property
	def cert_resolver(self) -> str | None:
		return self.settings.acme.name if self.settings.acme else None

	def _path(self, file_name: str) -> str:
		return f"{traefik.DYNAMIC_DIRECTORY}/{file_name}"

	def read(self, file_name: str) -> SiteRoute | HostRoute | None:
		content = self._file(self._path(file_name))
		return None if content is None else traefik.parse(content.decode(), file_name)

	def _file(self, path: str) -> bytes | None:
		with docker_errors(self.server.docker, f"reading {path} in {self.traefik.name}"):
			try:
				stream, _stat = self.traefik.get_archive(path)
			except docker.errors.NotFound:
				return None
			with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
				return archive.extractfile(archive.getmembers()[0]).read()

	def ensure_default_certificate(self) -> None:
		"""The operator's default certificate as the settings say: written when missing or changed,
		removed when no longer configured. Traefik's file provider applies it without a restart."""
		document = self._path(acme.DEFAULT_CERTIFICATE_FILE)
		wanted = self.settings.default_certificate
		if wanted is None:
			if self._file(document) is not None:
				paths = [document, self._path(acme.DEFAULT_CERTIFICATE_DIRECTORY)]
				commands.run(self.traefik, ["rm", "-rf", "--", *paths], ROOT)
			return
		files = acme.default_certificate_files(traefik.DYNAMIC_DIRECTORY, wanted)
		if all(self._file(path) == content for path, (content, _mode) in files.items()):
			return
		# The document names the certificate files: they go first, so Traefik never reads a
		# document whose files are missing or older.
		self.write(None, files)

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
			commands.run(self.traefik, ["rm", "-f", "--", *stale], ROOT)
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
		listed = commands.run(
			self.traefik,
			["sh", "-c", script, "sh", traefik.DYNAMIC_DIRECTORY, acme.WILDCARD_FILE_PREFIX],
			ROOT,
		)
		stale = sorted(set(listed.stdout.split()) - wanted.keys())
		if stale:
			commands.run(self.traefik, ["rm", "-f", "--", *stale], ROOT)
		changed = {path: (content, 0o644) for path, content in wanted.items() if self._file(path) != content}
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
		return self.read(f"site_{traefik.route_id(site)}.yml")

	def write(self, ctx: StepContext | None, files: dict[str, tuple[bytes, int]]) -> None:
		"""Write files (paths inside the Traefik container) atomically: each one is copied under a
		temporary name in its own directory (a name Traefik does not read), then renamed over the
		old one, so Traefik never sees a half-written file. Without a job (``ctx``) nothing is logged."""
		token = secrets.token_hex(4)
		staged, moves = {}, []
		for path, content in files.items():
			relative = path.removeprefix(traefik.DYNAMIC_DIRECTORY + "/")
			directory, _, name = relative.rpartition("/")
			temporary = f"{directory}/.{name}.{token}.tmp" if directory else f".{name}.{token}.tmp"
			staged[temporary] = content
			moves += [self._path(temporary), path]
		with docker_errors(self.server.docker, f"copying route files into {self.traefik.name}"):
			self.traefik.put_archive(traefik.DYNAMIC_DIRECTORY, _tar(staged))
		rename = 'while [ "$#" -gt 0 ]; do mv -f "$1" "$2" || exit 1; shift 2; done'
		(ctx.run if ctx else commands.run)(self.traefik, ["sh", "-c", rename, "sh", *moves], ROOT)

	def publish(self, ctx: StepContext, route: SiteRoute | HostRoute) -> None:
		if isinstance(route, SiteRoute):
			# A resolver set or removed since the file was written applies at the site's next job.
			route = dataclasses.replace(route, cert_resolver=self.cert_resolver)
		ctx.log(f"writing {route.file_name} ({getattr(route, 'status', 'certificate')})")
		self.write(ctx, {self._path(route.file_name): (traefik.render(route).encode(), 0o644)})

	def remove(self, ctx: StepContext, paths: list[str]) -> None:
		ctx.run(self.traefik, ["rm", "-rf", "--", *paths], ROOT)

	def verify(self, ctx: StepContext, expected: dict[str, str | None]) -> None:
		"""Wait until Traefik serves ``expected`` (traefik.expected_state; None: no such router or
		service). The file provider applies a change asynchronously, so one look right after the write
		could miss it."""
		deadline = time.monotonic() + self.settings.reload_timeout
		while True:
			wrong = {}
			for item, want in expected.items():
				seen = self.loaded(item)
				if seen != want:
					wrong[item] = seen
			if not wrong:
				break
			if time.monotonic() > deadline:
				raise RoutesNotLoaded(self.server.name, wrong)
			time.sleep(0.2)
		ctx.log(f"Traefik loaded {len(expected)} route change(s); its file provider reloads by itself.")

	def wait_until_answering(self) -> str:
		"""Traefik's version once its API answers (within the reload timeout)."""
		deadline = time.monotonic() + self.settings.reload_timeout
		url = f"http://{API_ADDRESS}/api/version"
		while True:
			result = commands.run(self.traefik, ["wget", "-q", "-O", "-", url], ROOT, check=False)
			if result.exit_code == 0:
				return json.loads(result.stdout).get("Version", "?")
			self.traefik.reload()
			if self.traefik.status != "running" or time.monotonic() > deadline:
				logs = self.traefik.logs(tail=20).decode(errors="replace")
				raise ProxyNotReady(self.server.name, self.traefik.name, self.traefik.status, logs)
			time.sleep(0.5)

	def hosts_of(self, site: str) -> list[HostRoute]:
		"""The host routes (custom domains with their certificates) that serve ``site``."""
		marker = f'"site": {json.dumps(site)}'
		script = 'cd "$1" && grep -l -F -e "$2" -- host_*.yml 2>/dev/null; true'
		found = commands.run(
			self.traefik, ["sh", "-c", script, "sh", traefik.DYNAMIC_DIRECTORY, marker], ROOT
		)
		hosts = [self.read(name) for name in found.stdout.split()]
		return [host for host in hosts if isinstance(host, HostRoute) and host.site == site]

	def loaded(self, item: str) -> str | None:
		"""``routers/<name>``: its signature, ``services/<name>``: its URL, as Traefik's API reports them
		(None: not loaded).

		The API listens on the container's own loopback only, so it is asked from inside with ``wget``
		(busybox's in Traefik's image); the answer is interpreted here."""
		url = f"http://{API_ADDRESS}/api/http/{item}@file"
		result = commands.run(self.traefik, ["wget", "-O", "-", url], ROOT, check=False)
		if result.exit_code == 0:
			try:
				answer = json.loads(result.stdout)
			except ValueError:  # seen once: an empty answer while Traefik reloaded
				return f"API answered no JSON: {result.stdout[:200]!r}"
			return loaded_signature(answer) if item.startswith("routers/") else loaded_url(answer)
		if "404" in result.stderr:
			return None
		return f"API unreachable: {result.stderr.strip()[-200:]}"


# --- Press's proxy jobs ---------------------------------------------------------------------------


def _upstream(ctx: StepContext) -> str:
	return ctx.payload.get("path_args", {}).get("upstream", "")


def _site_of_path(ctx: StepContext) -> str:
	return validate_fqdn(ctx.job.site or ctx.payload.get("path_args", {}).get("site"), "site")


class ProxyJobs:
	"""The step functions of Press's proxy jobs on a container Proxy Server."""

	def __init__(self, settings: ProxySettings | Callable[[ContainerServer], ProxySettings]):
		# A callable is asked when a step runs, so a wrong setting (a TLS file that cannot be read)
		# fails the proxy job that needs it rather than every agent request; it is given the proxy
		# server (a root domain's DNS-01 settings are the server's).
		self.settings = settings

	def proxy(self, ctx: StepContext) -> Proxy:
		return self.proxy_of(ctx.docker, ctx.server)

	def proxy_of(self, client: docker.DockerClient, server: ContainerServer) -> Proxy:
		settings = self.settings(server) if callable(self.settings) else self.settings
		return Proxy.ensure(client, server, settings)

	def _existing(self, proxy: Proxy, site: str) -> SiteRoute:
		route = proxy.site(site)
		if route is None:
			raise SiteNotOnProxy(proxy.server.name, site)
		return route

	def add_site(self, ctx: StepContext) -> None:
		proxy = self.proxy(ctx)
		site = validate_fqdn(ctx.payload.get("name"), "name")
		upstream = _upstream(ctx)
		app = ctx.topology.app_server_by_ip(upstream)
		bench = ctx.topology.bench_for_site(site)
		names = naming.BenchNames.of(app.container_prefix, bench)
		current = proxy.site(site)
		route = SiteRoute(
			site=site,
			upstream=upstream,
			app_server=app.name,
			bench=bench,
			front=f"http://{names.front}:80",
			socketio=f"http://{names.front}:80",  # the front passes /socket.io on to its backend
			pages=proxy.pages_url,
			status=current.status if current else traefik.ACTIVE,
			domains=current.domains if current else (),
			cert_resolver=proxy.cert_resolver,
		)
		if route == current:
			ctx.log(f"{route.file_name} already routes {site} to bench {bench}")
			return
		proxy.publish(ctx, route)

	def add_domain(self, ctx: StepContext) -> None:
		proxy = self.proxy(ctx)
		site = validate_fqdn(ctx.payload.get("name"), "name")
		domain = validate_fqdn(ctx.payload.get("domain"), "domain")
		current = self._existing(proxy, site)
		route = current.with_domains(added=(domain,))
		if route == current:
			ctx.log(f"{domain} already routes to {site}")
			return
		proxy.publish(ctx, route)

	def update_status(self, ctx: StepContext) -> None:
		proxy = self.proxy(ctx)
		status = ctx.payload.get("status")
		traefik.validate_status(status)
		extra = tuple(
			traefik.validate_host_name(d, "extra_domains") for d in ctx.payload.get("extra_domains") or ()
		)
		current = self._existing(proxy, _site_of_path(ctx))
		route = current.with_status(status, extra)
		if route == current:
			ctx.log(f"{route.site} is already {status} on this proxy")
			return
		proxy.publish(ctx, route)

	def remove_site(self, ctx: StepContext) -> None:
		proxy = self.proxy(ctx)
		current = proxy.site(_site_of_path(ctx))
		if current is None:
			ctx.log("no route file for this site: nothing to remove")
			return
		proxy.remove(ctx, [proxy._path(current.file_name)])
		proxy.verify(ctx, dict.fromkeys(traefik.expected_state(current)))

	# --- Rename Site on Upstream -----------------------------------------------------------------

	@staticmethod
	def _names(ctx: StepContext) -> tuple[str, str]:
		old, new = _site_of_path(ctx), validate_fqdn(ctx.payload.get("new_name"), "new_name")
		if old == new:
			raise ValidationError("new_name", new, "must differ from the site's name", "choose another name")
		return old, new

	def rename_site(self, ctx: StepContext) -> None:
		"""The site's route file under the new name: written first, then the old one removed."""
		proxy = self.proxy(ctx)
		old, new = self._names(ctx)
		current = proxy.site(old)
		if current is None:
			if proxy.site(new) is None:
				raise SiteNotOnProxy(proxy.server.name, old)
			ctx.log(f"{old} is routed as {new} already")
			return
		sent = ctx.payload.get("domains")
		domains = current.domains if sent is None else tuple(validate_fqdn(d, "domains") for d in sent)
		route = dataclasses.replace(
			current, site=new, domains=tuple(d for d in domains if d not in (old, new))
		)
		proxy.publish(ctx, route)
		proxy.remove(ctx, [proxy._path(current.file_name)])

	def rename_host(self, ctx: StepContext) -> None:
		"""A certificate Press sent for the site's own name moves with it, as the Agent renames its
		host directory (Press issues one for the new name in its own time)."""
		proxy = self.proxy(ctx)
		old, new = self._names(ctx)
		host = proxy.read(HostRoute(old).file_name)
		if host is None:
			ctx.log(f"no certificate of its own for {old}")
			return
		renamed = HostRoute(new, site=new if host.site in (old, new) else host.site)
		ctx.run(
			proxy.traefik,
			[
				"sh",
				"-c",
				'rm -rf -- "$2" && cp -a -- "$1" "$2"',
				"sh",
				host.certificate_directory,
				renamed.certificate_directory,
			],
			ROOT,
		)
		proxy.publish(ctx, renamed)
		proxy.remove(ctx, [proxy._path(host.file_name), host.certificate_directory])

	def retarget_hosts(self, ctx: StepContext) -> None:
		"""Custom domains that served the old name serve the new one."""
		proxy = self.proxy(ctx)
		old, new = self._names(ctx)
		hosts = proxy.hosts_of(old)
		for host in hosts:
			proxy.publish(ctx, dataclasses.replace(host, site=new))
		if not hosts:
			ctx.log(f"no custom domain served {old}")

	def reload_renamed(self, ctx: StepContext) -> None:
		proxy = self.proxy(ctx)
		old, new = self._names(ctx)
		route = self._existing(proxy, new)
		gone = dict.fromkeys(traefik.expected_state(dataclasses.replace(route, site=old)))
		proxy.verify(ctx, {**gone, **traefik.expected_state(route)})

	def add_host(self, ctx: StepContext) -> None:
		proxy = self.proxy(ctx)
		host = HostRoute(
			name=traefik.validate_host_name(ctx.payload.get("name"), "name"),
			site=None if str(ctx.payload.get("name")).startswith("*.") else ctx.payload.get("target"),
		)
		certificate = ctx.payload.get("certificate") or {}
		self._install_certificate(ctx, proxy, host, certificate, ctx.secret("privkey.pem"), "certificate")
		if host.site:
			current = self._existing(proxy, host.site)
			if host.name not in current.domains:
				proxy.publish(ctx, current.with_domains(added=(host.name,)))

	def add_wildcard_hosts(self, ctx: StepContext) -> None:
		"""Press's wildcard certificates of root domains (a JSON array: ``domain``, ``certificate``), each
		served by SNI for every site under its domain."""
		proxy = self.proxy(ctx)
		items = ctx.payload.get("items")
		if not isinstance(items, list):
			raise ValidationError(
				"body",
				type(items).__name__,
				"not a list of wildcard domains",
				"send Press's wildcard domains",
			)
		for index, item in enumerate(items):
			domain = validate_fqdn((item or {}).get("domain"), f"{index}.domain")
			host = HostRoute(name=f"*.{domain}", site=None)
			private_key = ctx.secret(f"{index}.certificate.privkey.pem")
			self._install_certificate(
				ctx, proxy, host, item.get("certificate") or {}, private_key, f"{index}.certificate"
			)
		if not items:
			ctx.log("no wildcard domain was sent: nothing to install")

	def _install_certificate(
		self, ctx: StepContext, proxy: Proxy, host: HostRoute, certificate: dict, private_key: str, field: str
	) -> None:
		chains = {key: certificate.get(key) for key in ("fullchain.pem", "chain.pem")}
		for key, value in chains.items():
			if not value or "BEGIN CERTIFICATE" not in value:
				raise ValidationError(
					f"{field}.{key}",
					value,
					"a PEM certificate is required",
					"send the TLS Certificate's chain",
				)
		if "PRIVATE KEY" not in (private_key or ""):
			raise ValidationError(
				f"{field}.privkey.pem",
				"",
				"a PEM private key is required",
				"check the TLS Certificate's private key",
				show_value=False,
			)
		paths = traefik.certificate_files(host)
		files = {paths[key]: (value.encode(), 0o644) for key, value in chains.items()}
		files[paths["privkey.pem"]] = (private_key.encode(), 0o600)
		ctx.log(f"writing the certificate of {host.name} into {host.certificate_directory}")
		proxy.write(ctx, files)
		proxy.publish(ctx, host)

	def remove_host(self, ctx: StepContext) -> None:
		proxy = self.proxy(ctx)
		name = traefik.validate_host_name(ctx.payload.get("path_args", {}).get("host"), "host")
		host = proxy.read(HostRoute(name).file_name) or HostRoute(name)
		proxy.remove(ctx, [proxy._path(host.file_name), host.certificate_directory])
		if host.site and (site := proxy.site(host.site)) and name in site.domains:
			site = site.with_domains(removed=(name,))
			proxy.publish(ctx, site)
			# Traefik reloads the whole directory at once: once the site's routers changed, the
			# certificate is gone as well.
			proxy.verify(ctx, traefik.expected_state(site))

	def reload(self, site_of: Callable[[StepContext], str | None]) -> Callable[[StepContext], None]:
		"""Press's 'Reload NGINX': Traefik reloads by itself; this checks that it has."""

		def step(ctx: StepContext) -> None:
			if ctx.payload.get("skip_reload"):
				ctx.log("skip_reload was asked: not waiting for Traefik")
				return
			site = site_of(ctx)
			if site is None:
				ctx.log("a wildcard certificate has no router of its own; Traefik picks it up by SNI")
				return
			proxy = self.proxy(ctx)
			proxy.verify(ctx, traefik.expected_state(self._existing(proxy, site)))

		return step

	def handlers(self) -> list[Handler]:
		def payload_site(ctx: StepContext) -> str:
			return validate_fqdn(ctx.payload.get("name"), "name")

		def host_site(ctx: StepContext) -> str | None:
			return None if str(ctx.payload.get("name")).startswith("*.") else ctx.payload.get("target")

		upstreams = "proxy/upstreams/{upstream}"
		return [
			handler(
				"Add Site to Upstream",
				"POST",
				f"{upstreams}/sites",
				[
					("Add Site File to Upstream Directory", self.add_site),
					("Reload NGINX", self.reload(payload_site)),
				],
			),
			handler(
				"Remove Site from Upstream",
				"DELETE",
				f"{upstreams}/sites/{{site}}",
				[("Remove Site File from Upstream Directory", self.remove_site)],
			),
			handler(
				"Update Site Status",
				"POST",
				f"{upstreams}/sites/{{site}}/status",
				[("Update Site File", self.update_status), ("Reload NGINX", self.reload(_site_of_path))],
			),
			handler(
				"Add Domain to Upstream",
				"POST",
				f"{upstreams}/domains",
				[
					("Add Site File to Upstream Directory", self.add_domain),
					("Reload NGINX", self.reload(payload_site)),
				],
			),
			handler(
				"Add Host to Proxy",
				"POST",
				"proxy/hosts",
				[("Add Host to Proxy", self.add_host), ("Reload NGINX", self.reload(host_site))],
			),
			handler(
				"Add Wildcard Hosts to Proxy",
				"POST",
				"proxy/wildcards",
				[
					("Add Wildcard Hosts to Proxy", self.add_wildcard_hosts),
					("Reload NGINX", self.reload(lambda ctx: None)),
				],
			),
			handler(
				"Rename Site on Upstream",
				"POST",
				f"{upstreams}/sites/{{site}}/rename",
				[
					("Rename Site File in Upstream Directory", self.rename_site),
					("Rename Host Directory", self.rename_host),
					("Rename Site in Host Directory", self.retarget_hosts),
					("Reload NGINX", self.reload_renamed),
				],
			),
			handler(
				"Remove Host from Proxy",
				"DELETE",
				"proxy/hosts/{host}",
				[("Remove Host from Proxy", self.remove_host)],
			),
		]
