"""Shared helpers of the agent and bench tests (their fixtures, the job store and the registry images, are
in conftest.py). The Docker side uses the real dockerd and the real local registries. Press's records and secrets are
the stand-ins of tests/fakes.py.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

import docker
from fakes import PressRecords, Secrets

from press_selfhosted.engine import naming
from press_selfhosted.engine.agent.executor import Executor, ExecutorSettings
from press_selfhosted.engine.agent.jobs import FINISHED
from press_selfhosted.engine.agent.router import Router
from press_selfhosted.engine.agent.store import JobStore
from press_selfhosted.engine.clients.docker_hosts import DockerHost, DockerHosts
from press_selfhosted.engine.clients.servers import ContainerServer
from press_selfhosted.engine.jobs import handlers
from press_selfhosted.engine.jobs.benches import BenchJobs, BenchSettings


def app_server(endpoints, prefix: str, socket: str | None = None) -> ContainerServer:
	return ContainerServer(
		name=f"{prefix}.example.test",
		server_type="Server",
		container_prefix=prefix,
		docker=DockerHost(server=f"{prefix}.example.test", socket=socket or endpoints["docker"]["base_url"]),
		network=f"{prefix}-net",
		private_ip="10.9.0.1",
		front_image=endpoints["images"]["front"],
	)


@dataclass
class Agent:
	"""Router + executor as the Frappe layer wires them, with an enqueue that runs inline or defers."""

	router: Router
	executor: Executor
	server: ContainerServer
	store: JobStore
	topology: PressRecords
	secrets: Secrets
	queued: list[int] = field(default_factory=list)
	inline: bool = True

	def enqueue(self, job_id: int) -> None:
		self.queued.append(job_id)
		if self.inline:
			self.executor.run(job_id)

	def post(self, path: str, data: dict) -> int:
		response = self.router.handle(
			self.server.name, "POST", path, data, agent_job_id=f"AJ-{uuid.uuid4().hex[:6]}"
		)
		assert response.status_code == 200, response.json
		return response.json["job"]

	def poll(self, job_id: int, timeout: float = 300) -> dict:
		deadline = time.monotonic() + timeout
		while True:
			response = self.router.handle(self.server.name, "GET", f"jobs/{job_id}")
			assert response.status_code == 200, response.json
			if response.json["status"] in FINISHED or time.monotonic() > deadline:
				return response.json
			time.sleep(0.5)


def executor_for(
	store_config,
	found: list,
	topology,
	settings: ExecutorSettings | None = None,
	kind: type[Executor] = Executor,
	enqueue=None,
	secrets: Secrets | None = None,
) -> Executor:
	"""A worker's executor of the ``found`` handlers, with a job store connection of its own."""
	return kind(
		JobStore(store_config),
		handlers.index(found),
		topology,
		secrets or Secrets(),
		DockerHosts(),
		settings or ExecutorSettings(),
		enqueue=enqueue,
	)


def make_agent(
	store_config, server: ContainerServer, secrets: dict | None = None, health_timeout=60
) -> Agent:
	topology = PressRecords([server])
	secret_source = Secrets(dict(secrets or {}))
	hosts = DockerHosts()
	found = BenchJobs(BenchSettings(health_timeout=health_timeout)).handlers()
	store = JobStore(store_config)
	executor = executor_for(store_config, found, topology, secrets=secret_source)
	agent = Agent(None, executor, server, store, topology, secret_source)  # type: ignore[arg-type]
	agent.router = Router(found, store, agent.enqueue, topology, hosts)
	return agent


def new_bench_payload(bench: str, image: str, registry: dict | None = None, **bench_config) -> dict:
	"""Press's New Bench body (press.agent.Agent.new_bench; Bench.validate's bench_config keys)."""
	config = {
		"docker_image": image,
		"web_port": 18000,
		"socketio_port": 19000,
		"private_ip": "10.9.0.1",
		"ssh_port": 22000,
		"codeserver_port": 16000,
		"rq_port": 11000,
		"rq_cache_port": 13000,
		"is_ssh_enabled": False,
		"gunicorn_workers": 2,
		"background_workers": 1,
		"http_timeout": 120,
		"statsd_host": "10.9.0.1:9125",
		"merge_all_rq_queues": True,
		"merge_default_and_short_rq_queues": False,
		"environment_variables": {},
		"single_container": True,
		"gunicorn_threads_per_worker": 0,
		"is_code_server_enabled": False,
		"use_rq_workerpool": False,
		"memory_high": 0,
		"memory_max": 0,
		"memory_swap": 0,
		"vcpu": 0,
	}
	config.update(bench_config)
	return {
		"name": bench,
		"bench_config": config,
		"common_site_config": {
			"frappe_cloud": True,
			"monitor": True,
			"redis_cache": "redis://localhost:13000",
			"redis_queue": "redis://localhost:11000",
			"redis_socketio": "redis://localhost:13000",
			"socketio_port": 9000,
			"webserver_port": 8000,
			"restart_supervisor_on_update": True,
			"db_host": "10.9.0.2",
			"db_port": 3306,
		},
		"registry": registry or {"url": image.split("/")[0], "username": "", "password": ""},
	}


def remove_server_objects(client: docker.DockerClient, server: str) -> None:
	"""Everything labelled for ``server``: containers, then volumes and networks."""
	filters = {"label": naming.label_filters(server)}
	for container in client.containers.list(all=True, filters=filters):
		container.remove(force=True, v=True)
	for volume in client.volumes.list(filters=filters):
		volume.remove(force=True)
	for network in client.networks.list(filters=filters):
		network.remove()


def labelled(client: docker.DockerClient, server: str, kind: str = "containers", **match) -> list:
	collection = getattr(client, kind)
	args = {"all": True} if kind == "containers" else {}
	return collection.list(filters={"label": naming.label_filters(server, **match)}, **args)
