"""Router and job store against the real MariaDB: answers in Press's shapes, never raises, no secrets kept."""

from __future__ import annotations

import dataclasses
import uuid

import agent_support as support
from fakes import PressRecords

from press_selfhosted.engine.agent.router import Router
from press_selfhosted.engine.agent.store import JobStore, StoreConfig
from press_selfhosted.engine.clients.docker_hosts import DockerHosts
from press_selfhosted.engine.jobs.benches import BenchJobs
from press_selfhosted.engine.jobs.proxy import ProxyJobs
from press_selfhosted.engine.jobs.sites import SiteJobs


def make(store_config, queued):
	server = support.app_server(
		{"docker": {"base_url": "unix:///nonexistent"}, "images": {"front": "x"}}, "r" + uuid.uuid4().hex[:6]
	)
	return server, Router(
		BenchJobs().handlers(), JobStore(store_config), queued.append, PressRecords(), DockerHosts()
	)


def test_jobs_are_recorded_without_secrets_and_polled_without_advancing(store_config):
	queued = []
	server, router = make(store_config, queued)
	body = {
		"name": "b1",
		"registry": {"url": "r", "username": "u", "password": "s3cret"},
		"auth": {"SECRET_KEY": "k"},
	}
	first = router.handle(server.name, "POST", "benches", body, agent_job_id="AJ-1").json["job"]
	second = router.handle(server.name, "POST", "/benches/b1/restart", {}, agent_job_id="AJ-2").json["job"]
	assert queued == [first, second] and 0 < first < second
	stored = JobStore(store_config).get(first)
	assert (stored.bench, stored.agent_job_id, stored.status) == ("b1", "AJ-1", "Pending")
	assert "s3cret" not in str(stored.payload) and stored.payload["auth"]["SECRET_KEY"] == "********"
	one = router.handle(server.name, "GET", f"jobs/{first}").json
	assert one["status"] == "Pending" and one["steps"] == [] and one["data"] == {} and one["end"] is None
	both = router.handle(server.name, "GET", f"jobs/{first},{second}").json
	assert [job["id"] for job in both] == [first, second]
	assert [job["id"] for job in router.handle(server.name, "GET", "agent-jobs/AJ-2,AJ-9").json] == [second]
	assert JobStore(store_config).get(first).status == "Pending"  # polling never advances a job
	assert router.handle("other.server", "GET", f"jobs/{first}").status_code == 404


def test_a_json_array_body_is_kept_as_items_without_its_secrets(store_config):
	"""Press sends Add Wildcard Hosts to Proxy's body as a JSON array."""
	queued = []
	server, _ = make(store_config, queued)
	router = Router(
		ProxyJobs(lambda: None).handlers(),
		JobStore(store_config),
		queued.append,
		PressRecords(),
		DockerHosts(),
	)
	body = [
		{"domain": "platform.example.com", "certificate": {"privkey.pem": "KEY-s3cret", "chain.pem": "C"}}
	]
	answer = router.handle(server.name, "POST", "proxy/wildcards", body, agent_job_id="AJ-w")
	assert answer.status_code == 200, answer.json
	stored = JobStore(store_config).get(answer.json["job"])
	assert stored.job_type == "Add Wildcard Hosts to Proxy"
	assert stored.payload["items"][0]["domain"] == "platform.example.com"
	assert "KEY-s3cret" not in str(stored.payload)


def test_ping_unknown_and_failures_never_raise(store_config):
	queued = []
	server, router = make(store_config, queued)
	assert router.handle(server.name, "GET", "ping").json == {"message": "pong"}
	info = router.handle(server.name, "POST", "benches/b1/monitor")
	assert info.status_code == 501 and "does not implement" in info.json["output"]
	job = router.handle(server.name, "POST", "benches/b1/sites/s1/migrate", {}, agent_job_id="AJ-3")
	assert job.status_code == 404 and queued == []  # a 4xx fails Press's job at once
	broken = Router(
		BenchJobs().handlers(),
		JobStore(StoreConfig("127.0.0.1", 1, "x", "y", "z")),
		queued.append,
		PressRecords(),
		DockerHosts(),
	)
	down = broken.handle(server.name, "POST", "benches", {"name": "b"}, agent_job_id="AJ-4")
	assert down.status_code == 503 and "could not be reached" in down.json["output"]  # 5xx: Press retries
	apps = router.handle(server.name, "GET", "benches/b1/sites/s1/apps")
	assert apps.status_code >= 500 and isinstance(apps.json["output"], str)


def test_latest_jobs_of_a_server_newest_first(store_config):
	queued = []
	server, router = make(store_config, queued)
	for bench in ("b1", "b2", "b3"):
		router.handle(server.name, "POST", f"benches/{bench}/restart", {}, agent_job_id=f"AJ-{bench}")
	latest = JobStore(store_config).latest(server.name, 2)
	assert [job.id for job in latest] == queued[:0:-1]
	assert [job.bench for job in latest] == ["b3", "b2"]
	assert JobStore(store_config).latest("nobody.example.test", 5) == []


def test_malformed_requests_are_refused_with_the_field_named(store_config):
	"""Press retries a 5xx forever: what can never work is a 400 (Press fails the job at once)."""
	queued = []
	server, _ = make(store_config, queued)
	found = [*BenchJobs().handlers(), *SiteJobs().handlers(), *ProxyJobs(lambda: None).handlers()]
	router = Router(found, JobStore(store_config), queued.append, PressRecords(), DockerHosts())
	site = "s1.example.com"
	bad = {
		("benches/b1/sites", "name"): {"name": ["x.example.com"]},
		("benches/b1/sites", "name "): {"name": {"a": 1}},
		("benches/b1/sites", "name: 'aaa"): {"name": "a" * 290 + ".example.com"},
		("benches/b1/sites", "name: '../sites'"): {"name": "../sites"},
		("benches", "name"): {"name": ["b1"]},
		("benches/B_1/sites", "bench: 'B_1'"): {"name": site},
		(f"benches/b1/sites/{site}/domains/x%20y", "domain"): {},
		("proxy/upstreams/not-an-ip/sites", "upstream: 'not-an-ip'"): {"name": site},
		(f"benches/b1/sites/{site}/apps/Bad-App", "app: 'Bad-App'"): {},
	}
	for (path, field), body in bad.items():
		method = "DELETE" if "/apps/" in path or "/domains/" in path else "POST"
		answer = router.handle(server.name, method, path, body, agent_job_id="AJ-bad")
		assert answer.status_code == 400, (path, answer.json)
		assert (
			answer.json["output"].startswith(field.split(":")[0].strip()) and field in answer.json["output"]
		), (
			path,
			answer.json["output"],
		)
	assert queued == []
	assert router.handle(server.name, "POST", "benches", ["b1"], agent_job_id="AJ-list").status_code == 400
	assert router.handle(server.name, "POST", "benches", {"name": "b1"}, agent_job_id=7).status_code == 400


def test_only_a_store_outage_answers_503(store_config):
	queued = []
	server, _ = make(store_config, queued)

	def unreachable():
		return JobStore(StoreConfig("127.0.0.1", 1, "x", "y", "z")).ensure_schema()

	lazy = Router(BenchJobs().handlers(), unreachable, queued.append, PressRecords(), DockerHosts())
	down = lazy.handle(server.name, "POST", "benches", {"name": "b1"}, agent_job_id="AJ-5")
	assert down.status_code == 503 and "could not be reached" in down.json["output"]
	# a store that answers but refuses the statement (no tables): no outage, so no endless retries
	name = f"psa_empty_{uuid.uuid4().hex[:8]}"
	empty = StoreConfig(store_config.host, store_config.port, store_config.user, store_config.password, name)
	root = JobStore(dataclasses.replace(empty, database="mysql"))
	root._query(f"CREATE DATABASE `{name}`")
	try:
		refused = Router(
			BenchJobs().handlers(), JobStore(empty), queued.append, PressRecords(), DockerHosts()
		)
		answer = refused.handle(server.name, "POST", "benches", {"name": "b1"}, agent_job_id="AJ-6")
		assert answer.status_code == 500 and "refused a statement" in answer.json["output"]
	finally:
		root._query(f"DROP DATABASE `{name}`")
	assert queued == []
