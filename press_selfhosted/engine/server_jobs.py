"""Jobs of a whole server: its setup, and what Press sends to every server: ``Ping Job`` and the
periodic ``Cleanup Unused Files`` (every six hours for every Active server; unanswered it would fail
four times a day on every container server).

``Setup Container Server`` is this app's own job type (``press_selfhosted/fixtures``), what Press's
Setup Server (Ansible) is for a VM: the Docker Engine is checked (it answers, its version, that we may
manage containers and networks), the cluster network made, and the containers of the server's role
created or found running: MariaDB for a Database Server, Traefik and the page service for a Proxy
Server; an app server's containers come with its benches. The Frappe layer marks the server Active
when the job succeeds.

On a container server Archive Bench already removes a bench's containers, and benches keep no
temporary files outside their volumes, so the cleanup's work is Docker's: images no container and no
tag refers to any more (old bench images after deploys), which ``docker image prune`` removes, for
the images that carry the app's labels only.
"""

from __future__ import annotations

from collections.abc import Callable

from press_selfhosted.engine import naming
from press_selfhosted.engine.agent.handlers import Handler, StepContext, handler
from press_selfhosted.engine.benches import ensure_network
from press_selfhosted.engine.database import MariaDBSpec, ensure_mariadb
from press_selfhosted.engine.errors import EngineError
from press_selfhosted.engine.proxy import ProxyJobs

MIB = 1024 * 1024
# Docker Engine 20.10: the oldest API this app is tested against (Debian bookworm's docker.io)
MIN_API_VERSION = (1, 41)


class DockerTooOld(EngineError):
	pass


def check_docker(ctx: StepContext) -> None:
	"""The engine answers, is recent enough, and lets us list what we manage (a socket we may open but
	not use fails here, naming the server, rather than halfway through a bench)."""
	version = ctx.docker.version()
	api = tuple(int(part) for part in str(version.get("ApiVersion", "0.0")).split(".")[:2])
	if api < MIN_API_VERSION:
		raise DockerTooOld(
			f"Server {ctx.server.name}: Docker Engine {version.get('Version')} at {ctx.server.docker.socket} "
			f"speaks API {version.get('ApiVersion')}; press_selfhosted needs {'.'.join(map(str, MIN_API_VERSION))} "
			"(Docker 20.10) or newer. Fix: upgrade Docker Engine on that host."
		)
	ctx.docker.containers.list(limit=1, filters={"label": naming.label_filters(ctx.server.name)})
	ctx.docker.networks.list(names=[ctx.server.network])
	ctx.log(
		f"Docker Engine {version.get('Version')} (API {version.get('ApiVersion')}, {version.get('Os')}/"
		f"{version.get('Arch')}) at {ctx.server.docker.socket}: containers and networks can be managed"
	)


def server_setup_handler(proxies: ProxyJobs, mariadb_image: Callable[[], str]) -> Handler:
	"""``mariadb_image`` is asked when a Database Server is set up (the setting may point at the Local Registry)."""

	def start_role_containers(ctx: StepContext) -> None:
		role = ctx.server.server_type
		if role == "Database Server":
			spec = MariaDBSpec(ctx.server, mariadb_image())
			db = ensure_mariadb(ctx.docker, spec, ctx.secret("mariadb_root_password"))
			version = db.sql("SELECT VERSION()")[0][0]
			ctx.log(f"MariaDB {version} answers in {spec.container_name} (root password from a file)")
		elif role == "Proxy Server":
			proxy = proxies.proxy(ctx)
			version = proxy.wait_until_answering()
			ctx.log(f"Traefik {version} answers in {proxy.traefik.name}; pages served by {proxy.pages_url}")
		else:
			ctx.log(f"app server {ctx.server.name}: its containers are made by New Bench; nothing to start")

	return handler(
		"Setup Container Server",
		"POST",
		"server/container-setup",
		[
			("Check Docker", check_docker),
			("Create Cluster Network", ensure_network),
			("Start Role Containers", start_role_containers),
		],
	)


def ping(ctx: StepContext) -> None:
	ctx.log(f"server {ctx.server.name}: Docker answers ({ctx.docker.version().get('Version', '?')})")


def report_archived_benches(ctx: StepContext) -> None:
	"""Archive Bench removed the containers; a sites volume it kept for archived sites' files is named,
	never removed (the operator decides about other people's data)."""
	server = ctx.server.name
	running = {
		container.labels.get(naming.BENCH)
		for container in ctx.docker.containers.list(all=True, filters={"label": naming.label_filters(server)})
	}
	volumes = ctx.docker.volumes.list(filters={"label": naming.label_filters(server, role="bench-sites")})
	kept = sorted(v.name for v in volumes if (v.attrs.get("Labels") or {}).get(naming.BENCH) not in running)
	if kept:
		ctx.log(
			f"sites volumes Archive Bench kept for archived sites' files (not removed): {', '.join(kept)}"
		)
	else:
		ctx.log("Archive Bench removes a bench's containers itself: nothing left to remove")


def no_temporary_files(ctx: StepContext) -> None:
	ctx.log("container benches keep their temporary files inside their containers and volumes")


def prune_images(ctx: StepContext) -> None:
	"""Untagged images this app made (bench images built here or pulled from the Local Registry carry
	the builder's ``press.managed`` label); the operator's other images are not ours to remove."""
	pruned = ctx.docker.images.prune(filters={"dangling": True, "label": [f"{naming.MANAGED}=1"]})
	removed = pruned.get("ImagesDeleted") or []
	reclaimed = (pruned.get("SpaceReclaimed") or 0) / MIB
	ctx.log(f"removed {len(removed)} unused image layer(s), {reclaimed:.1f} MiB reclaimed")


def server_handlers() -> list[Handler]:
	return [
		handler("Ping Job", "POST", "ping_job", [("Ping Step", ping)]),
		handler(
			"Cleanup Unused Files",
			"POST",
			"server/cleanup",
			[
				("Remove Archived Benches", report_archived_benches),
				("Remove Temporary Files", no_temporary_files),
				("Remove Unused Docker Artefacts", prune_images),
			],
		),
	]
