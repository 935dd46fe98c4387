"""Crash test: the worker is SIGKILLed while each step of New Bench runs, then the sweep resumes the
job; the end state equals an uninterrupted run's (no duplicate containers, no orphan volumes).

The worker is a real subprocess (``python -m press_selfhosted.engine.agent.worker``) whose executor is
built by :func:`worker_executor` from the environment; its steps linger after doing their work, so
the kill lands while the step is still Running with its effects already made (the hardest case for
idempotency: the rerun repeats a step whose work is done).
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import agent_support as support
import crash_support as crash
import pytest
from fakes import PressRecords, Secrets

from press_selfhosted.engine.agent.executor import Executor, sweep
from press_selfhosted.engine.agent.store import JobStore, StoreConfig
from press_selfhosted.engine.clients.docker_hosts import DockerHost, DockerHosts
from press_selfhosted.engine.clients.servers import ContainerServer
from press_selfhosted.engine.jobs import handlers
from press_selfhosted.engine.jobs.benches import BenchJobs

JOB_TYPES = ["New Bench"]  # the job types crash-tested here (tests/crash/test_job_crash.py checks coverage)
STEPS = ["Initialize Bench", "Update Bench Configuration", "Deploy Bench", "Bench Setup NGINX"]
LINGER = 3.0


def worker_executor() -> Executor:
	"""Factory for the worker subprocess (``--factory test_agent_crash:worker_executor``)."""
	spec = json.loads(os.environ["PSA_CRASH_WORLD"])
	server = ContainerServer(**{**spec["server"], "docker": DockerHost(**spec["server"]["docker"])})
	return Executor(
		JobStore(StoreConfig(**spec["store"])),
		handlers.index(crash.lingering(BenchJobs().handlers(), LINGER)),
		PressRecords([server]),
		Secrets({}),
		DockerHosts(),
		crash.CRASH_SETTINGS,
	)


def state(client, server: str, prefix: str) -> dict:
	containers = support.labelled(client, server)
	return {
		"containers": sorted((c.name.replace(prefix, "P"), c.status) for c in containers),
		"volumes": sorted(v.name.replace(prefix, "P") for v in support.labelled(client, server, "volumes")),
		"networks": sorted(n.name.replace(prefix, "P") for n in support.labelled(client, server, "networks")),
	}


@pytest.fixture
def world(endpoints, docker_client, store_config):
	made = []

	def make():
		prefix = "t" + uuid.uuid4().hex[:8]
		server = support.app_server(endpoints, prefix)
		made.append(server.name)
		return prefix, server, support.make_agent(store_config, server)

	yield make
	for name in made:
		support.remove_server_objects(docker_client, name)


def spawn(server: ContainerServer, config: StoreConfig, job_id: int) -> subprocess.Popen:
	world = {"server": {**vars(server), "docker": vars(server.docker)}, "store": vars(config)}
	return crash.spawn_worker("test_agent_crash:worker_executor", job_id, PSA_CRASH_WORLD=json.dumps(world))


def test_killed_worker_resumed_by_sweep_converges(world, docker_client, registry_images, store_config):
	image = registry_images["plain"]
	# the reference: an uninterrupted run
	prefix, server, agent = world()
	job = agent.poll(agent.post("benches", support.new_bench_payload("bench-crash", image)))
	assert job["status"] == "Success", job["data"]
	expected = state(docker_client, server.name, prefix)

	for idx, name in enumerate(STEPS):
		prefix, server, agent = world()
		agent.inline = False
		job_id = agent.post("benches", support.new_bench_payload("bench-crash", image))
		worker = spawn(server, store_config, job_id)
		crash.kill_at_step(agent.store, job_id, idx, worker)
		assert agent.store.get(job_id).status == "Running"
		# the dead worker's lock and lease are gone: the sweep re-enqueues the job
		resumed = sweep(
			agent.store, lambda job, server=server: spawn(server, store_config, job).wait(), min_age=0
		)
		assert resumed == [job_id], name
		job = agent.poll(job_id, timeout=30)
		assert job["status"] == "Success", (name, job["data"])
		assert [s["status"] for s in job["steps"]] == ["Success"] * 4
		assert state(docker_client, server.name, prefix) == expected, name
