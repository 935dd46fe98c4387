"""Agent overhead: (1) the router's and executor's own cost per New Bench job, i.e. everything but
Docker calls and bench commands: New Bench's four steps replaced by no-ops, the rest real (job
store on the MariaDB service, named locks, step rows, polls); (2) rediscovering a server's state with
10/100/1,000 labelled containers: one filtered Docker query vs one inspect call per container.

Run: python3 benchmarks/agent_overhead.py  (needs scripts/services up)
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path

import docker
import pymysql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from press_selfhosted.engine import naming
from press_selfhosted.engine.agent.executor import Executor
from press_selfhosted.engine.agent.router import Router
from press_selfhosted.engine.agent.store import JobStore, StoreConfig
from press_selfhosted.engine.clients.docker_hosts import DockerHost, DockerHosts
from press_selfhosted.engine.jobs import handlers
from press_selfhosted.engine.jobs.benches import BenchJobs


class Topology:
	def __init__(self, server):
		self._server = server

	def server(self, server_type, name):
		return self._server


def store_config(db: dict, name: str) -> StoreConfig:
	root = pymysql.connect(host=db["host"], port=db["port"], user=db["user"], password=db["password"])
	with root.cursor() as cursor:
		cursor.execute(f"CREATE DATABASE IF NOT EXISTS `{name}`")
	return StoreConfig(db["host"], db["port"], db["user"], db["password"], name)


def job_overhead(endpoints: dict, jobs: int = 50) -> None:
	from press_selfhosted.engine.clients.servers import ContainerServer

	name = f"psa_bench_{uuid.uuid4().hex[:6]}"
	config = store_config(endpoints["mariadb"], name)
	store = JobStore(config)
	store.ensure_schema()
	server = ContainerServer(
		"bench.test", "Server", "b", DockerHost("bench.test", endpoints["docker"]["base_url"]), "b-net"
	)
	noop = [
		replace(h, steps=tuple(replace(s, run=lambda ctx: None) for s in h.steps))
		for h in BenchJobs().handlers()
	]
	executor = Executor(JobStore(config), handlers.index(noop), Topology(server), None, DockerHosts())
	router = Router(noop, store, lambda job: None, Topology(server), DockerHosts())
	timings = {"router POST": [], "executor run": [], "router poll": []}
	for index in range(jobs):
		started = time.perf_counter()
		job = router.handle(
			server.name, "POST", "benches", {"name": f"b{index}", "bench_config": {}}, "AJ"
		).json["job"]
		timings["router POST"].append(time.perf_counter() - started)
		started = time.perf_counter()
		executor.run(job)
		timings["executor run"].append(time.perf_counter() - started)
		started = time.perf_counter()
		assert router.handle(server.name, "GET", f"jobs/{job}").json["status"] == "Success"
		timings["router poll"].append(time.perf_counter() - started)
	print(f"New Bench, router + executor own overhead ({jobs} jobs, 4 steps each, no Docker):")
	for label, values in timings.items():
		values.sort()
		print(
			f"  {label:14s} median {values[len(values) // 2] * 1000:7.2f} ms   max {values[-1] * 1000:7.2f} ms"
		)
	total = sum(sum(v) for v in timings.values()) / jobs
	print(
		f"  total per job  {total * 1000:7.2f} ms (a real New Bench takes seconds: pull, seed, start, health)"
	)
	store._query(f"DROP DATABASE `{name}`")


def rediscovery(endpoints: dict) -> None:
	client = docker.DockerClient(base_url=endpoints["docker"]["base_url"], timeout=300)
	image = endpoints["images"]["base"]
	server = f"rediscover-{uuid.uuid4().hex[:6]}.test"
	print("Rediscovering a server's containers: one filtered query vs one inspect per container")
	made = []
	try:
		for target in (10, 100, 1000):
			while len(made) < target:
				made.append(
					client.api.create_container(
						image,
						["true"],
						name=f"{server}-{len(made)}",
						labels=naming.labels(server, "bench", bench=f"b{len(made)}"),
					)["Id"]
				)
			started = time.perf_counter()
			found = client.containers.list(
				all=True, filters={"label": naming.label_filters(server)}, sparse=True
			)
			one_query = time.perf_counter() - started
			assert len(found) == target
			started = time.perf_counter()
			for container_id in made:
				client.api.inspect_container(container_id)
			per_container = time.perf_counter() - started
			print(
				f"  {target:5d} containers: one filtered query {one_query * 1000:8.1f} ms   "
				f"one call each {per_container * 1000:8.1f} ms   ratio {per_container / one_query:5.1f}x"
			)
	finally:
		for container_id in made:
			client.api.remove_container(container_id, force=True)


if __name__ == "__main__":
	endpoints = json.loads((ROOT / ".services" / "endpoints.json").read_text())
	job_overhead(endpoints)
	rediscovery(endpoints)
