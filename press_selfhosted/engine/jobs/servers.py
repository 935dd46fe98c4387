"""Jobs of a whole server: its setup, and what Press sends to every server: ``Ping Job`` and the
periodic ``Cleanup Unused Files`` (every six hours for every Active server; unanswered it would fail
four times a day on every container server).

``Setup Container Server`` is this app's own job type (``press_selfhosted/fixtures``), what Press's
Setup Server (Ansible) is for a VM: the Docker Engine is checked (it answers, its version, that we may
manage containers and networks), the cluster network made, and the containers of the server's role
created or found running: MariaDB for a Database Server, Traefik and the site router for a Proxy
Server; an app server's containers come with its benches. The Frappe layer marks the server Active
when the job succeeds.

On a container server Archive Bench already removes a bench's containers, and benches keep no
temporary files outside their volumes, so the cleanup's work is Docker's: images no container and no
tag refers to any more (old bench images after deploys), which ``docker image prune`` removes, for
the images that carry the app's labels only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import docker

from press_selfhosted.engine import naming
from press_selfhosted.engine.clients.mariadb import MariaDB, MariaDBSpec, ensure_mariadb, find_mariadb
from press_selfhosted.engine.clients.servers import ContainerServer
from press_selfhosted.engine.errors import DockerTooOld
from press_selfhosted.engine.jobs.benches import ensure_network
from press_selfhosted.engine.jobs.handlers import Handler, StepContext, handler
from press_selfhosted.engine.jobs.proxy import ProxyJobs

MIB = 1024 * 1024
# Docker Engine 20.10: the oldest API this app is tested against (Debian bookworm's docker.io)
MIN_API_VERSION = (1, 41)


@dataclass(frozen=True)
class DockerReport:
	version: str
	api_version: str
	platform: str  # os/arch
	containers: int  # of this server's, running or not


def docker_report(client: docker.DockerClient, server: ContainerServer) -> DockerReport:
	"""The engine answers, is recent enough, and lets us list what we manage (a socket we may open but
	not use fails here, naming the server, rather than halfway through a bench)."""
	version = client.version()
	api = tuple(int(part) for part in str(version.get("ApiVersion", "0.0")).split(".")[:2])
	if api < MIN_API_VERSION:
		raise DockerTooOld(
			f"Server {server.name}: Docker Engine {version.get('Version')} at {server.docker.socket} "
			f"speaks API {version.get('ApiVersion')}; press_selfhosted needs {'.'.join(map(str, MIN_API_VERSION))} "
			"(Docker 20.10) or newer. Fix: upgrade Docker Engine on that host."
		)
	ours = client.containers.list(all=True, filters={"label": naming.label_filters(server.name)})
	client.networks.list(names=[server.network])
	return DockerReport(
		version=str(version.get("Version")),
		api_version=str(version.get("ApiVersion")),
		platform=f"{version.get('Os')}/{version.get('Arch')}",
		containers=len(ours),
	)


def check_docker(ctx: StepContext) -> None:
	report = docker_report(ctx.docker, ctx.server)
	ctx.log(
		f"Docker Engine {report.version} (API {report.api_version}, {report.platform}) at "
		f"{ctx.server.docker.socket}: containers and networks can be managed"
	)


@dataclass(frozen=True)
class ContainerState:
	name: str
	role: str
	bench: str | None
	image: str
	state: str  # running, exited, ...
	health: str | None  # healthy, unhealthy, starting; None without a health check
	started_at: str | None


def server_containers(client: docker.DockerClient, server: ContainerServer) -> list[ContainerState]:
	"""Every container this app runs for ``server``, with its state and health, by name."""
	found = client.containers.list(all=True, filters={"label": naming.label_filters(server.name)})
	states = []
	for container in found:
		state = container.attrs.get("State") or {}
		states.append(
			ContainerState(
				name=container.name,
				role=container.labels.get(naming.ROLE, ""),
				bench=container.labels.get(naming.BENCH),
				image=(container.attrs.get("Config") or {}).get("Image", ""),
				state=state.get("Status", container.status),
				health=(state.get("Health") or {}).get("Status"),
				started_at=state.get("StartedAt"),
			)
		)
	return sorted(states, key=lambda item: item.name)


# --- what Press sends to every server, which a container server answers plainly ---------------------


def no_ssh_proxy(ctx: StepContext) -> None:
	"""Press's SSH access to benches through the proxy (an SSH jump host with certificates) does not
	exist on a container proxy: benches are reached with ``docker exec`` on their host."""
	ctx.log(
		f"proxy {ctx.server.name} is a container proxy (Traefik): it has no SSH jump host, so no SSH user "
		f"or certificate is kept for bench {ctx.payload.get('name') or ctx.payload.get('path_args', {}).get('user')}. "
		"Reach a bench's shell with `docker exec` on its host."
	)


def schema_sizes_are_read_live(ctx: StepContext) -> None:
	ctx.log(
		"press_selfhosted keeps no metadata table: each site's database size is read from "
		"information_schema whenever Press asks for the site's info"
	)


def report_schema_sizes(ctx: StepContext) -> None:
	"""The size of every database on the server, from information_schema (what the Agent's table holds)."""
	db = server_mariadb(ctx)
	rows = db.sql(
		"SELECT TABLE_SCHEMA, COALESCE(SUM(DATA_LENGTH + INDEX_LENGTH), 0) FROM information_schema.TABLES "
		"WHERE TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys') "
		"GROUP BY TABLE_SCHEMA ORDER BY TABLE_SCHEMA"
	)
	ctx.log("\n".join(f"{schema}: {int(size) / MIB:.1f} MiB" for schema, size in rows) or "no site databases")


def server_mariadb(ctx: StepContext) -> MariaDB:
	host = naming.mariadb_container(ctx.server.container_prefix)
	return find_mariadb(ctx.docker, ctx.server, host, ctx.secret("mariadb_root_password"))


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


class ServerJobs:
	"""Press's server jobs on a container server: its setup (Docker checked, the cluster network, the role's
	containers), Ping, the proxy's SSH users (none: no SSH proxy), schema sizes and cleanup.

	``mariadb_image`` is asked when a Database Server is set up (the setting may point at the Local Registry)."""

	def __init__(self, proxies: ProxyJobs, mariadb_image: Callable[[], str]):
		self.proxies = proxies
		self.mariadb_image = mariadb_image

	def handlers(self) -> list[Handler]:
		return [
			handler(
				"Setup Container Server",
				"POST",
				"server/container-setup",
				[
					("Check Docker", check_docker),
					("Create Cluster Network", ensure_network),
					("Start Role Containers", self.start_role_containers),
				],
			),
			handler("Ping Job", "POST", "ping_job", [("Ping Step", ping)]),
			handler(
				"Add User to Proxy",
				"POST",
				"ssh/users",
				[
					("Add User to Proxy", no_ssh_proxy),
					("Add Certificate to User", no_ssh_proxy),
					("Add Principal to User", no_ssh_proxy),
				],
			),
			handler(
				"Remove User from Proxy",
				"DELETE",
				"ssh/users/{user}",
				[("Remove User from Proxy", no_ssh_proxy), ("Remove Principal from User", no_ssh_proxy)],
			),
			handler(
				"Update Database Schema Sizes",
				"POST",
				"database/update-schema-sizes",
				[
					("Setup Metadata Table", schema_sizes_are_read_live),
					("Update Database Schema Size in Metadata Table", report_schema_sizes),
				],
			),
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

	def start_role_containers(self, ctx: StepContext) -> None:
		role = ctx.server.server_type
		if role == "Database Server":
			spec = MariaDBSpec(ctx.server, self.mariadb_image())
			db = ensure_mariadb(ctx.docker, spec, ctx.secret("mariadb_root_password"))
			version = db.sql("SELECT VERSION()")[0][0]
			ctx.log(f"MariaDB {version} answers in {spec.container_name} (root password from a file)")
		elif role == "Proxy Server":
			proxy = self.proxies.proxy(ctx)
			version = proxy.wait_until_answering()
			ctx.log(f"Traefik {version} answers in {proxy.traefik.name}; sites routed by {proxy.router.name}")
		else:
			ctx.log(f"app server {ctx.server.name}: its containers are made by New Bench; nothing to start")
