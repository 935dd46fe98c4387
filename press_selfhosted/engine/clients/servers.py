"""What a container server is, as every layer sees it: a Press server made of containers on a Docker host."""

from __future__ import annotations

from dataclasses import dataclass

from press_selfhosted.engine.clients.docker_hosts import DockerHost


@dataclass(frozen=True)
class ContainerServer:
	"""A Press Server, Proxy Server or Database Server that is a group of containers on a Docker host."""

	name: str
	server_type: str  # "Server" | "Proxy Server" | "Database Server"
	container_prefix: str
	docker: DockerHost
	network: str  # the cluster's Docker network: every container of the cluster joins it
	private_ip: str | None = None
	ip: str | None = None
	front_image: str | None = None  # static-file front (nginx) of each bench on an app server


@dataclass(frozen=True)
class DatabaseEndpoint:
	"""Where the sites of an app server keep their databases (the root password is a secret)."""

	server: str
	host: str  # reachable from the bench containers on the cluster network
	port: int = 3306
	root_user: str = "root"
