"""The bench lifecycle on a container app server: New Bench, Update Bench Configuration, Bench Restart,
Archive Bench, as handlers whose steps are Press's Agent Job Type steps.

What a bench is on a container server (all names start with the server's ``container_prefix``, all
objects carry the ``press.*`` labels):
- ``<prefix>-<bench>``: the backend (the bench image from the registry, user ``frappe``, ``--init``,
  restart always, CPU/memory limits from ``bench_config``, nothing published), on the bench's own
  network ``<prefix>-<bench>-net`` only, with the bench name as alias;
- ``<prefix>-<bench>-front``: the static-file front (nginx) serving ``/assets`` and ``/files`` from the
  shared sites volume and proxying the rest (``/socket.io`` included) to the backend; it is on the
  bench's network and on the cluster network, where the proxy routes sites to it on port 80;
- volumes ``<prefix>-<bench>-sites`` and ``<prefix>-<bench>-logs``, seeded from the image.

Tenant isolation: the code of a bench runs in its backend, which reaches its own front, the database
server's MariaDB (connected to each bench network) and the outside world, and nothing of another
bench (Docker keeps bridge networks apart). Every container drops all capabilities but what its
role needs (the backend none), runs with ``no-new-privileges`` and a pids limit.

Volume rule on archive: the logs volume is dropped; the sites volume is dropped only when it holds
no site data (no site directory and nothing under ``sites/archived``), otherwise it is kept, labelled,
for the operator (archived sites' files live there).

Every step is idempotent: it looks at the labelled containers and volumes that exist and does only
what is missing, so the sweep's rerun of a job converges. Nothing is replaced or removed unless its
labels say the engine made it for this server and bench.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import posixpath
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import docker
import docker.errors
import docker.utils
from docker.models.containers import Container

from press_selfhosted.engine import naming
from press_selfhosted.engine.clients.containers import tar_archive, unchanged_or_removed
from press_selfhosted.engine.clients.docker_exec import BENCH_DIRECTORY, CommandResult, Exec, run
from press_selfhosted.engine.clients.mariadb import find_mariadb_container
from press_selfhosted.engine.errors import (
	BenchError,
	BenchHasSites,
	BenchImageMissing,
	BenchUnhealthy,
	RegistryLoginFailed,
)
from press_selfhosted.engine.jobs.handlers import Handler, StepContext, handler
from press_selfhosted.engine.naming import BenchNames

SITES = f"{BENCH_DIRECTORY}/sites"
LOGS = f"{BENCH_DIRECTORY}/logs"
_ROOT = Exec(user="root", workdir="/")  # nginx reload and the health probe in the front
# How containers run; part of the spec hash, so that an older container is made again at its next job.
HARDENING = {"security_opt": ["no-new-privileges"], "cap_drop": ["ALL"]}
# nginx's master starts as root (port 80, its log files), then becomes www-data
NGINX_CAPABILITIES = ["CHOWN", "DAC_OVERRIDE", "NET_BIND_SERVICE", "SETGID", "SETUID"]
# the scratch container copies the image's sites into the volume keeping owners and modes
SCRATCH_CAPABILITIES = ["CHOWN", "DAC_OVERRIDE", "FOWNER"]
LAYOUT = "bench-net-1"  # the backend on its bench's own network only


@dataclass(frozen=True)
class BenchSettings:
	health_timeout: float = 120.0  # seconds the bench gets to answer through its front
	scratch_timeout: float = 600.0  # seeding a sites volume copies the image's assets
	backend_pids: int = 4096  # gunicorn, workers, the scheduler, redis and node threads
	front_pids: int = 512
	# Host folders a Bench Mount may use (site config press_selfhosted_bench_mount_roots); none by
	# default: a host path mounted into a tenant's bench (/, the Docker socket) would be its escape.
	mount_roots: tuple[str, ...] = ()


@dataclass(frozen=True)
class Mount:
	source: str
	destination: str


@dataclass(frozen=True)
class BenchSpec:
	"""What Press asks for a bench (``bench_config`` of the New Bench / Update Bench Configuration body)."""

	name: str
	image: str
	vcpu: float | None = None
	memory_max: int | None = None
	memory_high: int | None = None
	memory_swap: int | None = None
	environment: dict[str, str] = field(default_factory=dict)
	mounts: tuple[Mount, ...] = ()

	@classmethod
	def from_payload(
		cls, bench: str, payload: dict[str, Any], mount_roots: tuple[str, ...] = ()
	) -> BenchSpec:
		config = payload.get("bench_config") or {}
		image = config.get("docker_image")
		if not image:
			raise BenchError(
				f"Bench {bench}: bench_config.docker_image is missing; Press sends it from the Bench"
			)
		mounts = [_mount(bench, mount, mount_roots) for mount in payload.get("mounts") or []]
		return cls(
			name=bench,
			image=image,
			vcpu=_number(config.get("vcpu")),
			memory_max=_number(config.get("memory_max")),
			memory_high=_number(config.get("memory_high")),
			memory_swap=_number(config.get("memory_swap")),
			environment={str(k): str(v) for k, v in (config.get("environment_variables") or {}).items()},
			mounts=tuple(mounts),
		)

	@property
	def spec_hash(self) -> str:
		key = json.dumps(
			[self.image, self.environment, [vars(m) for m in self.mounts], HARDENING, LAYOUT], sort_keys=True
		)
		return hashlib.sha256(key.encode()).hexdigest()[:16]

	def limits(self) -> dict[str, Any]:
		"""docker-py keyword arguments; CPU as period/quota because ``docker update`` cannot change NanoCpus."""
		found: dict[str, Any] = {}
		if self.vcpu:
			found["cpu_period"] = 100_000
			found["cpu_quota"] = int(self.vcpu * 100_000)
		if self.memory_max:
			found["mem_limit"] = f"{int(self.memory_max)}m"
		if self.memory_high:
			found["mem_reservation"] = f"{int(self.memory_high)}m"
		if self.memory_max:
			# always with the memory limit: Docker refuses to update a memory limit above the swap limit
			# a container already has (e.g. one made without limits); without memory_swap, Docker's own
			# default for a memory limit given alone (as much swap again)
			swap = self.memory_swap or 2 * self.memory_max
			found["memswap_limit"] = -1 if swap < 0 else f"{int(swap)}m"
		return found


def _mount(bench: str, mount: dict, roots: tuple[str, ...]) -> Mount:
	"""A Bench Mount whose host folder lies under one of ``roots`` (normalised: no way out with ``..``)."""
	source, destination = mount.get("source"), mount.get("destination")
	if not mount.get("is_absolute_path"):
		raise BenchError(
			f"Bench {bench}: mount {source!r} is relative to a bench directory, which a "
			"container server does not have. Fix: use an absolute path (is_absolute_path)."
		)
	if not isinstance(source, str) or not isinstance(destination, str) or not destination.startswith("/"):
		raise BenchError(f"Bench {bench}: mount {source!r} -> {destination!r} needs two absolute paths.")
	normal = posixpath.normpath(source)
	inside = [root for root in roots if normal == root or normal.startswith(root.rstrip("/") + "/")]
	if not source.startswith("/") or not inside or normal in ("/", *roots):
		allowed = ", ".join(roots) or "none"
		raise BenchError(
			f"Bench {bench}: the host folder {source!r} of a mount is not under a folder benches may mount "
			f"(allowed: {allowed}): a tenant's bench must not see the host. Fix: put the folder under one, "
			"or add its parent to the site config key press_selfhosted_bench_mount_roots."
		)
	return Mount(normal, posixpath.normpath(destination))


def _number(value: Any) -> float | None:
	return value if isinstance(value, (int, float)) and value else None


def _labels(ctx: StepContext, role: str, bench: str, **extra: str) -> dict[str, str]:
	return {**naming.labels(ctx.server.name, role, bench=bench), **extra}


def _get(collection, name: str):
	try:
		return collection.get(name)
	except docker.errors.NotFound:
		return None


# --- registry and image ---------------------------------------------------------------------------


def pull_image(ctx: StepContext, image: str) -> None:
	"""Log in with the credentials Press sends (password from the SecretSource) and pull ``image``."""
	registry = ctx.payload.get("registry") or {}
	url, username = registry.get("url") or "", registry.get("username") or ""
	auth = None
	if username:
		password = ctx.secret("registry_password")
		auth = {"username": username, "password": password}
		try:
			ctx.docker.login(username=username, password=password, registry=url, reauth=True)
		except docker.errors.APIError as error:
			raise RegistryLoginFailed(
				f"Registry {url} refused the login of user {username!r} on server {ctx.server.name}: "
				f"{ctx.redact(error.explanation or str(error))}. Fix: correct the registry password "
				"(Local Registry / Press Settings docker_registry_password) or the registry URL."
			) from error
		ctx.log(f"logged in to {url} as {username}")
	repository, tag = docker.utils.parse_repository_tag(image)
	try:
		ctx.docker.images.pull(repository, tag=tag or "latest", auth_config=auth)
	except docker.errors.APIError as error:
		detail = ctx.redact(error.explanation or str(error))
		raise BenchImageMissing(
			f"Image {image} could not be pulled from registry {url or repository} on server "
			f"{ctx.server.name}: {detail}. Fix: push the image to the registry (build the Deploy "
			"Candidate again) or correct the Cluster repository / docker_registry_url."
		) from error
	ctx.log(f"pulled {image}")


def _ensure_local_image(ctx: StepContext, image: str) -> None:
	if _get(ctx.docker.images, image) is None:
		pull_image(ctx, image)


# --- network and volumes ----------------------------------------------------------------------------


def _network(client: docker.DockerClient, name: str):
	found = [network for network in client.networks.list(names=[name]) if network.name == name]
	return found[0] if found else None


def _create_network(ctx: StepContext, name: str, labels: dict[str, str], driver: str = "bridge") -> None:
	try:
		ctx.docker.networks.create(
			name, driver=driver, labels=labels, attachable=True if driver == "overlay" else None
		)
	except docker.errors.APIError as error:
		# another job created it meanwhile
		if error.status_code != 409:
			raise
	ctx.log(f"network {name} ready")


def ensure_network(ctx: StepContext) -> None:
	"""The cluster network: the proxy and the benches' fronts."""
	if _network(ctx.docker, ctx.server.network) is None:
		_create_network(ctx, ctx.server.network, naming.labels(ctx.server.name, "network"))


def ensure_bench_network(ctx: StepContext, names: BenchNames, bench: str) -> None:
	"""The bench's own network (the cluster network's driver: overlay clusters span hosts), joined by
	the database server's MariaDB container so that the bench reaches it and nothing else."""
	network = _network(ctx.docker, names.network)
	if network is None:
		cluster = _network(ctx.docker, ctx.server.network)
		driver = (cluster.attrs.get("Driver") if cluster else None) or "bridge"
		_create_network(ctx, names.network, _labels(ctx, "bench-network", bench), driver)
		network = _network(ctx.docker, names.network)
	else:
		naming.require_owned(network, "network", ctx.server.name, "bench-network", bench)
	connect_database(ctx, names.network)


def connect_database(ctx: StepContext, network_name: str) -> None:
	database = ctx.topology.database_for(ctx.server.name)
	if database is None:
		return  # not a container database server: the bench reaches it by its address
	db_server = ctx.topology.server("Database Server", database.server)
	client = ctx.docker_of(db_server)
	container = find_mariadb_container(client, db_server, database.host)
	if network_name in (container.attrs["NetworkSettings"]["Networks"] or {}):
		return
	network = _network(client, network_name)
	if network is None:
		raise BenchError(
			f"The MariaDB container {container.name} of database server {db_server.name} runs on another "
			f"Docker host than bench network {network_name}. Fix: run the cluster on a swarm overlay network "
			"(bench networks then span hosts), or the database server on the app server's Docker host."
		)
	network.connect(container)
	ctx.log(f"{container.name} of database server {db_server.name} joined {network_name}")


def disconnect_database(ctx: StepContext, network) -> None:
	"""Whatever still joins the bench's network (the database server's MariaDB) leaves it, so that it can go.

	The network is inspected afresh: a listed network carries no containers (docker-py 6.1, Press's pin)."""
	network.reload()
	for container in network.containers:
		with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
			network.disconnect(container, force=True)


def ensure_volumes(ctx: StepContext, names: BenchNames, bench: str) -> None:
	for volume, role in ((names.sites, "bench-sites"), (names.logs, "bench-logs")):
		found = _get(ctx.docker.volumes, volume)
		if found is None:
			ctx.docker.volumes.create(volume, labels=_labels(ctx, role, bench))
			ctx.log(f"volume {volume} created")
		else:
			# a volume of that name someone else made would hand its data to this bench
			naming.require_owned(found, "volume", ctx.server.name, role, bench)


@contextlib.contextmanager
def scratch(
	ctx: StepContext, names: BenchNames, bench: str, image: str, command: list[str] | None
) -> Iterator[Any]:
	"""A labelled throw-away container (root, no network) with the bench's volumes under /seed.

	A scratch left behind by a dead worker is removed first, so reruns never find two.
	"""
	stale = _get(ctx.docker.containers, names.scratch)
	if stale is not None:
		naming.require_owned(stale, "container", ctx.server.name, "scratch", bench)
		stale.remove(force=True)
	container = ctx.docker.containers.create(
		image,
		command,
		entrypoint=[] if command else None,
		name=names.scratch,
		user="root",
		working_dir=BENCH_DIRECTORY,
		network_mode="none",
		labels=_labels(ctx, "scratch", bench),
		volumes={
			names.sites: {"bind": "/seed/sites", "mode": "rw"},
			names.logs: {"bind": "/seed/logs", "mode": "rw"},
		},
		cap_add=SCRATCH_CAPABILITIES,
		pids_limit=256,
		**HARDENING,
	)
	try:
		yield container
	finally:
		container.remove(force=True)


def run_scratch(
	ctx: StepContext, names: BenchNames, bench: str, image: str, script: str, timeout: float
) -> str:
	with scratch(ctx, names, bench, image, ["sh", "-c", script]) as container:
		container.start()
		status = container.wait(timeout=timeout)
		output = container.logs(stdout=True, stderr=True).decode(errors="replace")
		if status.get("StatusCode") != 0:
			raise BenchError(
				f"Bench {bench}: `{script}` exited with code {status.get('StatusCode')} in a helper "
				f"container on server {ctx.server.name}:\n{output[-2000:]}"
			)
		return output


def seed_volumes(ctx: StepContext, names: BenchNames, spec: BenchSpec, timeout: float) -> None:
	"""Copy the image's sites (dereferencing links, as the Agent's ``cp -LR``) into the sites volume."""
	run_scratch(
		ctx,
		names,
		spec.name,
		spec.image,
		"cp -LR --preserve=mode,ownership sites/. /seed/sites/ && chown --reference=sites /seed/sites "
		"&& chown --reference=logs /seed/logs",
		timeout,
	)
	ctx.log(f"volume {names.sites} seeded from {spec.image}")


def write_common_site_config(ctx: StepContext, names: BenchNames, spec: BenchSpec) -> None:
	"""Merge the request's ``common_site_config`` into ``sites/common_site_config.json`` (as the Agent)."""
	with scratch(ctx, names, spec.name, spec.image, None) as container:
		current: dict[str, Any] = {}
		with contextlib.suppress(docker.errors.NotFound):
			chunks, _ = container.get_archive("/seed/sites/common_site_config.json")
			with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as archive:
				member = archive.next()
				current = json.load(archive.extractfile(member)) if member else {}
		sent = ctx.payload.get("common_site_config") or {}
		current.update({key: ctx.unmasked(f"common_site_config.{key}", value) for key, value in sent.items()})
		database = ctx.topology.database_for(ctx.server.name)
		if database is not None:
			# Press writes the Database Server's private_ip; sites reach its MariaDB container by name
			current.update(db_host=database.host, db_port=database.port)
			ctx.log(f"db_host {database.host}:{database.port}: the MariaDB container of {database.server}")
		container.put_archive(
			"/seed/sites",
			tar_archive(
				{"common_site_config.json": (json.dumps(current, indent=1).encode(), 0o644)}, owner=1000
			),
		)
	ctx.log("common_site_config.json written")


# --- containers ---------------------------------------------------------------------------------


def ensure_backend(ctx: StepContext, names: BenchNames, spec: BenchSpec, settings: BenchSettings) -> bool:
	"""Backend container up with ``spec``; replaced when image/env/mounts changed. True if (re)created."""
	found = _get(ctx.docker.containers, names.backend)
	existing = unchanged_or_removed(found, spec.spec_hash, ctx.server.name, "bench", spec.name)
	if found is not None and existing is None:
		ctx.log(f"container {names.backend} replaced (image, environment, mounts or hardening changed)")
	created = existing is None
	if created:
		volumes = {
			names.sites: {"bind": SITES, "mode": "rw"},
			names.logs: {"bind": LOGS, "mode": "rw"},
			**{mount.source: {"bind": mount.destination, "mode": "rw"} for mount in spec.mounts},
		}
		existing = ctx.docker.containers.create(
			spec.image,
			name=names.backend,
			hostname=spec.name,
			user="frappe",
			init=True,
			restart_policy={"Name": "always"},
			labels=_labels(ctx, "bench", spec.name, **{naming.SPEC: spec.spec_hash}),
			environment=spec.environment,
			volumes=volumes,
			network=names.network,
			pids_limit=settings.backend_pids,
			**HARDENING,
			**spec.limits(),
		)
		ctx.log(f"container {names.backend} created from {spec.image}")
	_ensure_alias(ctx, existing, spec.name, names.network)
	if existing.status != "running":
		existing.start()
		ctx.log(f"container {names.backend} started")
	return created


def _ensure_alias(ctx: StepContext, container: Container, alias: str, network_name: str) -> None:
	"""The bench's name answers for its backend on the bench's network (common_site_config names it).

	Set by reconnecting, not at creation: docker-py 6.1 (Press's pin) cannot pass endpoint aliases to
	``containers.create``; checked every run, so a crash between creation and reconnection heals."""
	container.reload()
	endpoint = (container.attrs["NetworkSettings"]["Networks"] or {}).get(network_name) or {}
	if alias in (endpoint.get("Aliases") or []):
		return
	network = ctx.docker.networks.get(network_name)
	if endpoint:
		network.disconnect(container)
	network.connect(container, aliases=[alias])


def apply_limits(ctx: StepContext, names: BenchNames, spec: BenchSpec) -> None:
	container = _get(ctx.docker.containers, names.backend)
	limits = spec.limits()
	if container is None or not limits:
		ctx.log("no limits to apply" if container else f"{names.backend} does not exist yet")
		return
	container.update(**limits)
	ctx.log(f"limits of {names.backend}: {limits}")


FRONT_CONF = """# written by press_selfhosted: static files from the sites volume, the rest to the backend
map $http_x_frappe_site_name $press_site {{ default $http_x_frappe_site_name; "" $host; }}
map $http_upgrade $press_connection {{ default upgrade; "" close; }}
map $http_x_forwarded_proto $press_proto {{ default $http_x_forwarded_proto; "" $scheme; }}
server {{
	listen 80 default_server;
	root {sites};
	client_max_body_size 100m;
	resolver 127.0.0.11 valid=10s ipv6=off;
	set $press_backend {backend};
	location /assets {{ try_files $uri =404; add_header Cache-Control "max-age=31536000"; }}
	location ~ ^/files/.*\\.(htm|html|svg|xml) {{
		add_header Content-disposition "attachment";
		try_files /$press_site/public/$uri @webserver;
	}}
	location /files {{ try_files /$press_site/public/$uri @webserver; }}
	# private files: Frappe answers X-Accel-Redirect /protected/<path in the site folder>
	location ~ ^/protected/(.*) {{ internal; try_files /$press_site/$1 =404; }}
	location /socket.io {{
		proxy_http_version 1.1;
		proxy_set_header Upgrade $http_upgrade;
		proxy_set_header Connection $press_connection;
		proxy_set_header X-Frappe-Site-Name $press_site;
		proxy_set_header Origin $press_proto://$http_host;
		proxy_set_header Host $host;
		proxy_pass http://$press_backend:9000;
	}}
	location / {{ try_files /nonexistent @webserver; }}
	location @webserver {{
		proxy_http_version 1.1;
		proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
		proxy_set_header X-Forwarded-Proto $press_proto;
		proxy_set_header X-Frappe-Site-Name $press_site;
		proxy_set_header Host $host;
		proxy_set_header X-Use-X-Accel-Redirect True;
		proxy_read_timeout 120;
		proxy_redirect off;
		proxy_pass http://$press_backend:8000;
	}}
}}
"""
FRONT_CONF_PATH = "/etc/nginx/conf.d"
FRONT_CONF_NAME = "press-bench.conf"


def front_image(ctx: StepContext) -> str:
	if not ctx.server.front_image:
		raise BenchError(
			f"Server {ctx.server.name} has no front image for the static files of its benches. "
			"Fix: set the front (nginx) image of the container server."
		)
	return ctx.server.front_image


def ensure_front(ctx: StepContext, names: BenchNames, bench: str, settings: BenchSettings) -> None:
	"""The static-file front with this bench's nginx config; reloaded when it was already running."""
	image = front_image(ctx)
	_ensure_local_image(ctx, image)
	conf = tar_archive(
		{FRONT_CONF_NAME: (FRONT_CONF.format(sites=SITES, backend=names.backend).encode(), 0o644)}
	)
	described = json.dumps([image, HARDENING, NGINX_CAPABILITIES, settings.front_pids, LAYOUT])
	digest = hashlib.sha256(described.encode()).hexdigest()[:16]
	found = _get(ctx.docker.containers, names.front)
	container = unchanged_or_removed(found, digest, ctx.server.name, "bench-front", bench)
	if found is not None and container is None:
		ctx.log(f"container {names.front} replaced (image or hardening changed)")
	if container is None:
		container = ctx.docker.containers.create(
			image,
			name=names.front,
			restart_policy={"Name": "always"},
			labels=_labels(ctx, "bench-front", bench, **{naming.SPEC: digest}),
			volumes={names.sites: {"bind": SITES, "mode": "ro"}},
			network=names.network,
			cap_add=NGINX_CAPABILITIES,
			pids_limit=settings.front_pids,
			**HARDENING,
		)
		# the proxy reaches the front on the cluster network; the backend is only on the bench's
		ctx.docker.networks.get(ctx.server.network).connect(container)
		ctx.log(f"container {names.front} created")
	container.put_archive(FRONT_CONF_PATH, conf)
	if container.status == "running":
		ctx.run(container, ["nginx", "-s", "reload"], _ROOT)
	else:
		container.start()
		ctx.log(f"container {names.front} started")


# The HTTP status of the front's answer to /api/method/ping for host $1: with curl, or Python in an image
# without it. The bench's health check and each site's check ask it.
PING = (
	"if command -v curl >/dev/null; then curl -s -o /dev/null -m 5 -w '%{http_code}' -H \"Host: $1\" "
	'http://127.0.0.1/api/method/ping; else python3 -c "import sys, urllib.request as u, urllib.error as e\n'
	"r = u.Request('http://127.0.0.1/api/method/ping', headers={'Host': sys.argv[1]})\n"
	'try: print(u.urlopen(r, timeout=5).status)\nexcept e.HTTPError as x: print(x.code)" "$1"; fi'
)


def ping_front(front: Container, host: str) -> CommandResult:
	return run(
		front, ["sh", "-c", PING, "sh", host], Exec(user="root", workdir="/", reads_only=True), check=False
	)


def wait_healthy(ctx: StepContext, names: BenchNames, timeout: float) -> None:
	"""Wait until the backend answers through its front (any answer but the front's own 502–504)."""
	deadline = time.monotonic() + timeout
	last = "no answer"
	while True:
		front = ctx.docker.containers.get(names.front)
		if front.status == "running":
			result = ping_front(front, "127.0.0.1")
			code = result.stdout.strip()
			if result.exit_code == 0 and code.isdigit() and int(code) < 502:
				ctx.log(f"bench answers /api/method/ping through {names.front} (HTTP {code})")
				return
			last = f"HTTP {code}" if code else (result.output or f"exit code {result.exit_code}")
		if time.monotonic() >= deadline:
			break
		time.sleep(1)
	backend = _get(ctx.docker.containers, names.backend)
	state = backend.attrs.get("State", {}) if backend else {}
	logs = backend.logs(tail=20).decode(errors="replace") if backend else ""
	raise BenchUnhealthy(
		f"Bench {ctx.job.bench} did not answer its health check (/api/method/ping through {names.front}) "
		f"within {timeout:.0f}s on server {ctx.server.name}: last answer {last}; backend {names.backend} "
		f"is {state.get('Status', 'missing')} (OOM killed: {state.get('OOMKilled', False)}, restarts: "
		f"{backend.attrs.get('RestartCount', 0) if backend else 0}). Fix: check the bench image and the "
		f"bench's memory/CPU limits (bench_config), then run the job again.\n{ctx.redact(logs[-1500:])}"
	)


# --- inventory and removal ------------------------------------------------------------------------


def inventory(ctx: StepContext, names: BenchNames, bench: str, timeout: float) -> tuple[list[str], list[str]]:
	"""(sites, archived entries) in the bench's sites volume; a directory is a site if it has site_config.json."""
	if _get(ctx.docker.volumes, names.sites) is None:
		return [], []
	output = run_scratch(
		ctx,
		names,
		bench,
		front_image(ctx),
		'cd /seed/sites && for d in */; do [ -f "$d/site_config.json" ] && echo "site:${d%/}"; done; '
		"[ -d archived ] && ls -A archived | sed 's/^/archived:/'; true",
		timeout,
	)
	sites = [line[5:] for line in output.splitlines() if line.startswith("site:")]
	archived = [line[9:] for line in output.splitlines() if line.startswith("archived:")]
	return sites, archived


def remove_container(ctx: StepContext, name: str, role: str, bench: str) -> None:
	container = _get(ctx.docker.containers, name)
	if container is not None:
		naming.require_owned(container, "container", ctx.server.name, role, bench)
		container.remove(force=True)
		ctx.log(f"container {name} removed")


def _remove_volume(ctx: StepContext, name: str, role: str) -> None:
	volume = _get(ctx.docker.volumes, name)
	if volume is not None:
		naming.require_owned(volume, "volume", ctx.server.name, role, ctx.job.bench)
		volume.remove(force=True)
		ctx.log(f"volume {name} removed")


# --- handlers -----------------------------------------------------------------------------------


class BenchJobs:
	"""Press's bench jobs on an app server: a bench is its backend and front containers, its own network
	and its sites and logs volumes, all labelled with the server and the bench."""

	def __init__(self, settings: BenchSettings | None = None):
		self.settings = settings or BenchSettings()

	def handlers(self) -> list[Handler]:
		return [
			handler(
				"Rebuild Bench Assets",
				"POST",
				"benches/{bench}/rebuild",
				[("Rebuild Bench Assets", self.rebuild_assets)],
			),
			handler(
				"New Bench",
				"POST",
				"benches",
				[
					("Initialize Bench", self.initialize),
					("Update Bench Configuration", self.update_configuration),
					("Deploy Bench", self.deploy),
					("Bench Setup NGINX", self.setup_front_and_wait),
				],
			),
			handler(
				"Update Bench Configuration",
				"POST",
				"benches/{bench}/config",
				[
					("Update Bench Configuration", self.update_configuration),
					("Bench Setup NGINX", self.setup_front),
					("Generate Docker Compose File", self.compose_file),
					("Update Bench Memory Limits", self.memory_limits),
					("Deploy Bench", self.redeploy),
				],
			),
			handler("Bench Restart", "POST", "benches/{bench}/restart", [("Bench Restart", self.restart)]),
			handler(
				"Archive Bench",
				"POST",
				"benches/{bench}/archive",
				[
					("Bench Disable Production", self.disable_production),
					("Move Bench to Archived Directory", self.archive_volumes),
				],
			),
		]

	def spec(self, ctx: StepContext) -> tuple[BenchNames, BenchSpec]:
		wanted = BenchSpec.from_payload(ctx.job.bench, ctx.payload, self.settings.mount_roots)
		# an environment variable named like a secret (*_KEY, *_PASSWORD) is masked in the store
		environment = {
			key: ctx.unmasked(f"bench_config.environment_variables.{key}", value)
			for key, value in wanted.environment.items()
		}
		return BenchNames.of(ctx.server.container_prefix, ctx.job.bench), dataclasses.replace(
			wanted, environment=environment
		)

	def initialize(self, ctx: StepContext) -> None:
		names, wanted = self.spec(ctx)
		pull_image(ctx, wanted.image)
		ensure_network(ctx)
		ensure_volumes(ctx, names, wanted.name)
		seed_volumes(ctx, names, wanted, self.settings.scratch_timeout)

	def update_configuration(self, ctx: StepContext) -> None:
		names, wanted = self.spec(ctx)
		_ensure_local_image(ctx, wanted.image)
		write_common_site_config(ctx, names, wanted)

	def deploy(self, ctx: StepContext) -> None:
		names, wanted = self.spec(ctx)
		_ensure_local_image(ctx, wanted.image)
		ensure_network(ctx)
		ensure_bench_network(ctx, names, wanted.name)
		ensure_volumes(ctx, names, wanted.name)
		ensure_backend(ctx, names, wanted, self.settings)

	def redeploy(self, ctx: StepContext) -> None:
		names, wanted = self.spec(ctx)
		_ensure_local_image(ctx, wanted.image)
		ensure_bench_network(ctx, names, wanted.name)
		if not ensure_backend(ctx, names, wanted, self.settings):
			# common_site_config changes reach workers and the scheduler only on restart
			ctx.docker.containers.get(names.backend).restart()
			ctx.log(f"container {names.backend} restarted")
		wait_healthy(ctx, names, self.settings.health_timeout)

	def setup_front(self, ctx: StepContext) -> None:
		names = BenchNames.of(ctx.server.container_prefix, ctx.job.bench)
		ensure_network(ctx)
		ensure_bench_network(ctx, names, ctx.job.bench)
		ensure_front(ctx, names, ctx.job.bench, self.settings)

	def setup_front_and_wait(self, ctx: StepContext) -> None:
		self.setup_front(ctx)
		wait_healthy(
			ctx, BenchNames.of(ctx.server.container_prefix, ctx.job.bench), self.settings.health_timeout
		)

	def compose_file(self, ctx: StepContext) -> None:
		ctx.log("no compose file on a container server: containers are managed through the Docker API")

	def memory_limits(self, ctx: StepContext) -> None:
		names, wanted = self.spec(ctx)
		apply_limits(ctx, names, wanted)

	def restart(self, ctx: StepContext) -> None:
		names = BenchNames.of(ctx.server.container_prefix, ctx.job.bench)
		backend = _get(ctx.docker.containers, names.backend)
		if backend is None:
			raise BenchError(
				f"Bench {ctx.job.bench} has no container {names.backend} on server {ctx.server.name}. "
				"Fix: run Update Bench Configuration (it recreates the container) or archive the bench."
			)
		backend.restart()
		ctx.log(f"container {names.backend} restarted")
		wait_healthy(ctx, names, self.settings.health_timeout)

	def disable_production(self, ctx: StepContext) -> None:
		names = BenchNames.of(ctx.server.container_prefix, ctx.job.bench)
		sites, _ = inventory(ctx, names, ctx.job.bench, self.settings.scratch_timeout)
		if sites:
			# Press keeps the Bench Active when the traceback contains exactly this text
			raise BenchHasSites(f"Bench has sites: {', '.join(sites)}")
		remove_container(ctx, names.front, "bench-front", ctx.job.bench)
		remove_container(ctx, names.backend, "bench", ctx.job.bench)

	def archive_volumes(self, ctx: StepContext) -> None:
		names = BenchNames.of(ctx.server.container_prefix, ctx.job.bench)
		sites, archived = inventory(ctx, names, ctx.job.bench, self.settings.scratch_timeout)
		if sites:
			raise BenchHasSites(f"Bench has sites: {', '.join(sites)}")
		if archived:
			ctx.log(f"volume {names.sites} kept: it holds archived sites ({', '.join(archived)})")
		else:
			_remove_volume(ctx, names.sites, "bench-sites")
		_remove_volume(ctx, names.logs, "bench-logs")
		network = _network(ctx.docker, names.network)
		if network is not None:
			naming.require_owned(network, "network", ctx.server.name, "bench-network", ctx.job.bench)
			disconnect_database(ctx, network)
			network.remove()
			ctx.log(f"network {names.network} removed")

	def rebuild_assets(self, ctx: StepContext) -> None:
		# the assets live in the sites volume, which the front serves: nothing to restart
		names = BenchNames.of(ctx.server.container_prefix, ctx.job.bench)
		backend = _get(ctx.docker.containers, names.backend)
		if backend is None or backend.status != "running":
			raise BenchError(
				f"Bench {ctx.job.bench} has no running container {names.backend} on server {ctx.server.name}. "
				"Fix: Bench Restart (or Update Bench Configuration to recreate it), then rebuild again."
			)
		ctx.run(backend, ["bench", "build"])
