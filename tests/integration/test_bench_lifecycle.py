"""The bench lifecycle driven as Press drives it: POST to the agent router, then GET jobs/<id>.

Real dockerd, real local registries (the bench test image is pushed there first), outcomes read back
from Docker. Job JSON is checked against what Press's ``handle_polled_job`` reads.
"""

from __future__ import annotations

import json

import agent_support as support
import pytest

from press_selfhosted.engine import naming

JOB_KEYS = {
	"id",
	"name",
	"status",
	"agent_job_id",
	"data",
	"enqueue",
	"start",
	"end",
	"duration",
	"steps",
	"commands",
}
STEP_KEYS = {"id", "name", "status", "data", "start", "end", "duration", "commands"}


def assert_press_shape(job: dict, steps: list[str]) -> None:
	assert set(job) == JOB_KEYS
	assert job["status"] in ("Pending", "Running", "Success", "Failure")
	assert isinstance(job["data"], dict)
	assert [step["name"] for step in job["steps"]] == steps[: len(job["steps"])]
	for step in job["steps"]:
		assert set(step) == STEP_KEYS
		assert step["status"] in ("Running", "Success", "Failure")
		assert isinstance(step["data"], dict)
	if job["status"] in ("Success", "Failure"):
		for key in ("start", "end"):
			# naive UTC, as the Agent writes it
			assert len(job[key]) == 26 and job[key][10] == " " and job[key][19] == "."
		hours, minutes, seconds = job["duration"].split(":")
		assert int(hours) == 0 and 0 <= int(minutes) < 60 and float(seconds) < 60


REDIS_WITH_PASSWORD = "redis://:r3dis-Pw@redis-cache:13000"
NEW_BENCH = ["Initialize Bench", "Update Bench Configuration", "Deploy Bench", "Bench Setup NGINX"]


@pytest.fixture(scope="module")
def bench_world(endpoints, docker_client, store_config, registry_images):
	"""One bench made through the TLS+auth registry, shared by the lifecycle tests in order."""
	prefix = "t" + __import__("uuid").uuid4().hex[:8]
	server = support.app_server(endpoints, prefix)
	tls = endpoints["registry_tls"]
	# Press's request as the glue reads masked values back from it (FrappeSecrets.from_press_request)
	secrets = {"registry_password": tls["password"], "common_site_config.redis_cache": REDIS_WITH_PASSWORD}
	agent = support.make_agent(store_config, server, secrets)
	yield agent, prefix
	support.remove_server_objects(docker_client, server.name)


def test_new_bench_through_tls_registry(bench_world, docker_client, registry_images, endpoints):
	agent, prefix = bench_world
	tls = endpoints["registry_tls"]
	payload = support.new_bench_payload(
		"bench-0001",
		registry_images["tls"],
		{"url": tls["url"], "username": tls["username"], "password": tls["password"]},
		vcpu=1.5,
		memory_max=512,
		memory_high=256,
		memory_swap=1024,
		environment_variables={"PRESS_TEST": "1"},
	)
	job_id = agent.post("benches", payload)
	job = agent.poll(job_id)
	assert job["status"] == "Success", job["data"]
	assert_press_shape(job, NEW_BENCH)
	assert [step["status"] for step in job["steps"]] == ["Success"] * 4

	server = agent.server.name
	backend = docker_client.containers.get(f"{prefix}-bench-0001")
	front = docker_client.containers.get(f"{prefix}-bench-0001-front")
	assert backend.status == front.status == "running"
	assert backend.labels[naming.SERVER] == server and backend.labels[naming.BENCH] == "bench-0001"
	assert backend.labels[naming.ROLE] == "bench" and front.labels[naming.ROLE] == "bench-front"
	host = backend.attrs["HostConfig"]
	assert backend.attrs["Config"]["User"] == "frappe"
	assert host["RestartPolicy"]["Name"] == "always" and host["Init"] is True
	assert host["Memory"] == 512 * 2**20 and host["MemoryReservation"] == 256 * 2**20
	assert host["MemorySwap"] == 1024 * 2**20 and host["CpuQuota"] == 150_000
	assert not host["PortBindings"] and not front.attrs["HostConfig"]["PortBindings"]
	assert "PRESS_TEST=1" in backend.attrs["Config"]["Env"]
	# the backend is on its bench's own network only; the front also on the cluster network (the proxy)
	networks = backend.attrs["NetworkSettings"]["Networks"]
	bench_net = f"{prefix}-bench-0001-net"
	assert list(networks) == [bench_net] and "bench-0001" in networks[bench_net]["Aliases"]
	assert sorted(front.attrs["NetworkSettings"]["Networks"]) == sorted([bench_net, f"{prefix}-net"])
	assert host["CapDrop"] == ["ALL"] and not host["CapAdd"] and host["SecurityOpt"] == ["no-new-privileges"]
	assert host["PidsLimit"] == 4096
	front_host = front.attrs["HostConfig"]
	assert front_host["CapDrop"] == ["ALL"] and front_host["SecurityOpt"] == ["no-new-privileges"]
	assert "NET_BIND_SERVICE" in front_host["CapAdd"] and front_host["PidsLimit"] == 512
	assert {v.name for v in support.labelled(docker_client, server, "volumes", bench="bench-0001")} == {
		f"{prefix}-bench-0001-sites",
		f"{prefix}-bench-0001-logs",
	}
	assert not support.labelled(docker_client, server, role="scratch")
	# the sites volume was seeded from the image, owned by frappe, with the request's config merged
	listing = backend.exec_run(
		["sh", "-c", "stat -c '%U %n' sites sites/apps.txt && cat sites/common_site_config.json"]
	)
	text = listing.output.decode()
	assert "frappe sites\nfrappe sites/apps.txt" in text
	assert json.loads(text.split("\n", 2)[2])["db_host"] == "10.9.0.2"
	# static files from the volume through the front; the rest proxied to the backend
	probe = front.exec_run(
		[
			"python3",
			"-c",
			"import urllib.request as u;print(u.urlopen('http://127.0.0.1/api/method/ping').read().decode())",
		]
	)
	assert probe.output.decode().strip() == '{"message": "pong"}'
	# the registry password never reaches the job store, its output or the container
	stored = agent.store.get(job_id)
	assert stored.payload["registry"]["password"] == "********"
	assert tls["password"] not in json.dumps(job) + json.dumps(backend.attrs)


def test_update_bench_configuration_changes_limits_and_config(bench_world, docker_client, registry_images):
	agent, prefix = bench_world
	payload = support.new_bench_payload(
		"bench-0001",
		registry_images["tls"],
		vcpu=1,
		memory_max=768,
		memory_high=384,
		memory_swap=1536,
		environment_variables={"PRESS_TEST": "1"},
	)
	payload["common_site_config"]["db_port"] = 3307
	payload["common_site_config"]["redis_cache"] = REDIS_WITH_PASSWORD
	del payload["registry"]
	before = docker_client.containers.get(f"{prefix}-bench-0001").id
	job = agent.poll(agent.post("benches/bench-0001/config", payload))
	assert job["status"] == "Success", job["data"]
	assert_press_shape(
		job,
		[
			"Update Bench Configuration",
			"Bench Setup NGINX",
			"Generate Docker Compose File",
			"Update Bench Memory Limits",
			"Deploy Bench",
		],
	)
	backend = docker_client.containers.get(f"{prefix}-bench-0001")
	assert backend.id == before  # same image and environment: updated in place, restarted
	assert (
		backend.attrs["HostConfig"]["Memory"] == 768 * 2**20
		and backend.attrs["HostConfig"]["CpuQuota"] == 100_000
	)
	config = backend.exec_run(["cat", "sites/common_site_config.json"]).output
	assert json.loads(config)["db_port"] == 3307 and json.loads(config)["frappe_cloud"] is True
	# the store kept the Redis password masked; the bench got the real one
	assert json.loads(config)["redis_cache"] == REDIS_WITH_PASSWORD
	assert "r3dis-Pw" not in json.dumps(agent.store.get(job["id"]).payload)


def test_bench_restart(bench_world, docker_client):
	agent, prefix = bench_world
	started = docker_client.containers.get(f"{prefix}-bench-0001").attrs["State"]["StartedAt"]
	job = agent.poll(agent.post("benches/bench-0001/restart", {"web_only": False}))
	assert job["status"] == "Success", job["data"]
	assert_press_shape(job, ["Bench Restart"])
	assert docker_client.containers.get(f"{prefix}-bench-0001").attrs["State"]["StartedAt"] != started


def test_rebuild_bench_assets_writes_them_where_the_front_serves_them(bench_world, docker_client):
	agent, prefix = bench_world
	job = agent.poll(agent.post("benches/bench-0001/rebuild", {}))
	assert job["status"] == "Success", job["data"]
	assert_press_shape(job, ["Rebuild Bench Assets"])
	front = docker_client.containers.get(f"{prefix}-bench-0001-front")
	code, bundle = front.exec_run(["wget", "-q", "-O", "-", "http://127.0.0.1/assets/frappe/bundle.js"])
	assert code == 0 and b"frappe built" in bundle, bundle


def test_archive_bench_refuses_while_sites_remain_then_archives(bench_world, docker_client):
	agent, prefix = bench_world
	backend = docker_client.containers.get(f"{prefix}-bench-0001")
	backend.exec_run(
		[
			"sh",
			"-c",
			"mkdir -p sites/a.test sites/b.test && echo {} > sites/a.test/site_config.json && echo {} > sites/b.test/site_config.json",
		]
	)
	job = agent.poll(agent.post("benches/bench-0001/archive", {}))
	assert job["status"] == "Failure"
	assert "Bench has sites: a.test, b.test" in job["data"]["traceback"]
	assert job["steps"][0]["status"] == "Failure" and len(job["steps"]) == 1
	assert docker_client.containers.get(f"{prefix}-bench-0001").status == "running"

	# an archived site's data stays: the sites volume is kept, the rest goes
	backend.exec_run(
		["sh", "-c", "mkdir -p sites/archived && mv sites/a.test sites/archived/ && rm -r sites/b.test"]
	)
	job = agent.poll(agent.post("benches/bench-0001/archive", {}))
	assert job["status"] == "Success", job["data"]
	assert_press_shape(job, ["Bench Disable Production", "Move Bench to Archived Directory"])
	server = agent.server.name
	assert not support.labelled(docker_client, server, bench="bench-0001")
	assert [v.name for v in support.labelled(docker_client, server, "volumes", bench="bench-0001")] == [
		f"{prefix}-bench-0001-sites"
	]
