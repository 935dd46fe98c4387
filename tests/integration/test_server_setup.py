"""Setup Container Server against our real dockerd: the role's containers are made, answer, and a second
run changes nothing. The topology and secrets stand for Press's records (tests/fakes.py)."""

from __future__ import annotations

import uuid

import pytest
from fakes import PressRecords, Secrets
from platform_support import proxy_settings
from proxy_helpers import container_server, remove_servers, run_job

from press_selfhosted.engine import naming
from press_selfhosted.engine.clients.mariadb import ROOT_PASSWORD_FILE, MariaDB
from press_selfhosted.engine.jobs.handlers import index
from press_selfhosted.engine.jobs.proxy import ProxyJobs
from press_selfhosted.engine.jobs.servers import ServerJobs


@pytest.fixture
def cluster(endpoints, docker_client):
	prefix = f"s{uuid.uuid4().hex[:8]}"
	network = f"{prefix}-net"
	servers = {
		role: container_server(endpoints, f"{prefix}-{short}.local", role, prefix, network)
		for role, short in (("Server", "app"), ("Database Server", "db"), ("Proxy Server", "proxy"))
	}
	yield servers
	remove_servers(docker_client, [server.name for server in servers.values()], network)


def setup(endpoints, docker_client, server, password="root-secret"):
	jobs = ServerJobs(ProxyJobs(proxy_settings(endpoints)), lambda: endpoints["images"]["mariadb"])
	handler = index(jobs.handlers())["Setup Container Server"]
	secrets = Secrets({"mariadb_root_password": password})
	return run_job(handler, server, docker_client, PressRecords(), {}, secrets=secrets)[1]


def managed(docker_client, server) -> dict[str, str]:
	found = docker_client.containers.list(filters={"label": naming.label_filters(server.name)})
	return {container.name: container.id for container in found}


def test_database_server_gets_a_mariadb_that_answers_its_root_password(endpoints, docker_client, cluster):
	server = cluster["Database Server"]
	log = setup(endpoints, docker_client, server)
	assert "containers and networks can be managed" in log[0]
	assert docker_client.networks.get(server.network).attrs["Labels"][naming.SERVER] == server.name
	containers = managed(docker_client, server)
	assert list(containers) == [f"{server.container_prefix}-mariadb"]
	container = docker_client.containers.get(f"{server.container_prefix}-mariadb")
	assert MariaDB(server.name, container, "root-secret").sql("SELECT 1") == [["1"]]
	# the password reaches MariaDB as a file: not in the environment or the labels
	environment = " ".join(container.attrs["Config"]["Env"])
	assert "root-secret" not in environment and "root-secret" not in str(container.labels)
	assert f"MARIADB_ROOT_PASSWORD_FILE={ROOT_PASSWORD_FILE}" in environment
	assert setup(endpoints, docker_client, server)[-1].startswith("MariaDB ")
	assert managed(docker_client, server) == containers  # the second run made nothing new


def test_proxy_server_gets_traefik_and_the_site_router_that_answer(endpoints, docker_client, cluster):
	server = cluster["Proxy Server"]
	log = setup(endpoints, docker_client, server)
	assert log[-1].startswith("Traefik ") and "answers" in log[-1]
	containers = managed(docker_client, server)
	assert set(containers) == {f"{server.container_prefix}-traefik", f"{server.container_prefix}-router"}
	traefik = docker_client.containers.get(f"{server.container_prefix}-traefik")
	# bind address and ports from the settings (127.0.0.1, Docker-chosen ports here)
	assert {binding[0]["HostIp"] for binding in traefik.ports.values()} == {"127.0.0.1"}
	setup(endpoints, docker_client, server)
	assert managed(docker_client, server) == containers


def test_app_server_gets_its_network_and_no_container(endpoints, docker_client, cluster):
	server = cluster["Server"]
	log = setup(endpoints, docker_client, server)
	assert "nothing to start" in log[-1]
	assert docker_client.networks.list(names=[server.network])
	assert managed(docker_client, server) == {}
	setup(endpoints, docker_client, server)
	assert len(docker_client.networks.list(names=[server.network])) == 1
