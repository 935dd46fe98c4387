"""Press's direct status/info queries answered through the router from a real bench: the stand-in bench
image with its front, two sites made by its ``bench new-site`` on the cluster's MariaDB container."""

from __future__ import annotations

import json
import uuid
from datetime import datetime

import pytest
from site_cluster import SITES, put_file, records, remove_cluster, run_steps, start_bench, start_cluster

from press_selfhosted.engine.agent.queries import SiteFacts, bench_status, sites_info
from press_selfhosted.engine.agent.router import Router
from press_selfhosted.engine.agent.store import JobStore
from press_selfhosted.engine.clients.docker_hosts import DockerHosts
from press_selfhosted.engine.jobs.sites import SiteJobs

BENCH = "bench-q"
LIVE = "live.example.com"
PAUSED = "paused.example.com"


@pytest.fixture(scope="module")
def env(endpoints, docker_client, store_config):
	prefix = f"t{uuid.uuid4().hex[:8]}"
	try:
		cluster = start_cluster(docker_client, endpoints, prefix)
		backend = start_bench(docker_client, endpoints, cluster, BENCH)
		new_site = next(h for h in SiteJobs().handlers() if h.job_type == "New Site")
		secrets = {"mariadb_root_password": cluster.root_password, "admin_password": "admin"}
		for site in (LIVE, PAUSED):
			# the engine's New Site step: database and user as root, then bench new-site --no-setup-db
			run_steps(docker_client, cluster, new_site, BENCH, None, {"name": site}, secrets, steps=1)
		backend.exec_run(["bench", "--site", LIVE, "scheduler", "enable"], user="frappe")
		db_name = json.loads(backend.exec_run(["cat", f"{SITES}/{LIVE}/site_config.json"]).output.decode())[
			"db_name"
		]
		cluster.db.sql(
			"REPLACE INTO `tabSingles` VALUES ('System Settings', 'time_zone', 'Asia/Kolkata')",
			database=db_name,
		)
		cluster.db.sql(
			"CREATE TABLE `tabNote` (name VARCHAR(140) PRIMARY KEY, content LONGTEXT); "
			"INSERT INTO `tabNote` SELECT CONCAT('n', seq), REPEAT('x', 4000) FROM seq_1_to_1000; "
			"ANALYZE TABLE `tabNote`",
			database=db_name,
		)
		put_file(backend, SITES, f"{LIVE}/public/files/a.bin", "a" * 3 * 1024 * 1024)
		put_file(backend, SITES, f"{LIVE}/private/backups/b.sql.gz", "b" * 2 * 1024 * 1024)
		backend.exec_run(["bench", "--site", PAUSED, "set-maintenance-mode", "on"], user="frappe")
		router = Router([], JobStore(store_config), lambda job: None, records(cluster), DockerHosts())
		yield cluster, backend, router, db_name
	finally:
		remove_cluster(docker_client, prefix)


def ask(env, method, path, data=None):
	cluster, _backend, router, _db = env
	return router.handle(cluster.app_server.name, method, path, data)


def test_bench_status_reports_scheduler_and_web_per_site(env):
	answer = ask(env, "GET", f"benches/{BENCH}/status")
	assert answer.status_code == 200, answer.json
	assert answer.json["sites"] == {
		LIVE: {"scheduler": True, "web": True},
		PAUSED: {"scheduler": False, "web": True},  # never enabled, and in maintenance
	}
	datetime.strptime(answer.json["timestamp"], "%Y-%m-%d %H:%M:%S.%f")


def test_sites_info_has_config_usage_and_timezone_without_the_db_password(env):
	cluster, _backend, _router, db_name = env
	answer = ask(env, "POST", f"benches/{BENCH}/info", {"since": 1700000000})
	assert answer.status_code == 200, answer.json
	live = answer.json[LIVE]
	assert live["config"]["db_name"] == db_name and "db_password" not in live["config"]
	assert "db_password" not in json.dumps(answer.json)
	assert live["timezone"] == "Asia/Kolkata" and answer.json[PAUSED]["timezone"] is None
	[usage] = live["usage"]
	database = int(
		cluster.db.sql(
			"SELECT SUM(DATA_LENGTH + INDEX_LENGTH) FROM information_schema.TABLES "
			f"WHERE TABLE_SCHEMA = '{db_name}'"
		)[0][0]
	)
	assert usage["database"] == round(database / 1024 / 1024, 2) > 3  # the 4 MB of notes are counted
	assert usage["public"] == 3.0 and usage["backups"] == 2.0 and usage["private"] == 0.0
	datetime.strptime(usage["timestamp"], "%Y-%m-%d %H:%M:%S.%f")


def test_site_info_and_status_are_wrapped_in_data(env):
	info = ask(env, "GET", f"benches/{BENCH}/sites/{LIVE}/info")
	assert info.status_code == 200, info.json
	assert info.json["data"]["timezone"] == "Asia/Kolkata" and info.json["data"]["usage"]["public"] == 3.0
	status = ask(env, "GET", f"benches/{BENCH}/sites/{PAUSED}/status").json["data"]
	assert (status["scheduler"], status["web"]) == (False, True)


def test_unknown_site_bench_and_a_stopped_bench_get_clear_errors(env, docker_client):
	cluster, backend, _router, _db = env
	missing = ask(env, "GET", f"benches/{BENCH}/sites/nope.example.com/info")
	assert missing.status_code == 404 and "nope.example.com has no site_config.json" in missing.json["output"]
	no_bench = ask(env, "GET", "benches/bench-none/status")
	assert no_bench.status_code == 404
	assert (
		f"{cluster.prefix}-bench-none" in no_bench.json["output"]
		and cluster.app_server.name in no_bench.json["output"]
	)
	# still 501: the Agent's monitor data come from its own log files
	assert ask(env, "POST", f"benches/{BENCH}/monitor").status_code == 501
	backend.stop(timeout=1)
	try:
		stopped = ask(env, "GET", f"benches/{BENCH}/status")
		assert stopped.status_code == 503 and "is exited" in stopped.json["output"]
		assert "Bench Restart" in stopped.json["output"]
	finally:
		backend.start()


def test_a_site_whose_database_refuses_its_login_gets_no_usage(env):
	_cluster, backend, _router, _db = env
	site = "broken.example.com"
	config = {"db_name": "_nosuchdb", "db_password": "wrong-password"}
	put_file(backend, SITES, f"{site}/site_config.json", json.dumps(config))
	try:
		info = ask(env, "POST", f"benches/{BENCH}/info", {"since": None}).json
		assert info[site]["usage"] == [] and info[site]["config"] == {"db_name": "_nosuchdb"}
		one = ask(env, "GET", f"benches/{BENCH}/sites/{site}/info")
		assert one.status_code == 503 and "did not answer its own login" in one.json["output"]
		assert "wrong-password" not in one.json["output"]
		status = ask(env, "GET", f"benches/{BENCH}/status").json["sites"][site]
		assert status["scheduler"] is False
	finally:
		backend.exec_run(["rm", "-rf", f"{SITES}/{site}"], user="root")


def test_shapes_are_built_from_facts_without_docker():
	now = datetime(2024, 5, 1, 12, 0, 0)
	fact = SiteFacts.of(
		"s.example.com",
		{
			"config": {"db_name": "d", "pause_scheduler": 1},
			"common": {},
			"public": 1048576,
			"private": 0,
			"backups": 0,
			"ping": 200,
			"database": {"size": 524288, "settings": {"enable_scheduler": "1"}},
		},
	)
	assert bench_status([fact], now)["sites"] == {"s.example.com": {"scheduler": False, "web": True}}
	info = sites_info([fact], now)["s.example.com"]
	assert info["usage"] == [
		{
			"database": 0.5,
			"public": 1.0,
			"private": 0.0,
			"backups": 0.0,
			"timestamp": "2024-05-01 12:00:00.000000",
		}
	]


def test_running_benches_come_from_docker(env):
	cluster, _backend, router, _db = env
	answer = router.handle(cluster.app_server.name, "GET", "server/running-benches")
	assert answer.status_code == 200 and answer.json == {"benches": [BENCH]}


def test_database_ping_asks_mariadb_with_the_password_press_sends(env):
	cluster, _backend, router, _db = env
	db = cluster.db_server

	def ping(password):
		data = {"private_ip": "10.0.0.2", "mariadb_root_password": password}
		return router.handle(db.name, "POST", "database/ping", data, server_type="Database Server")

	assert ping(cluster.root_password).json == {"reachable": True}
	assert ping("not-the-password").json == {"reachable": False}
	assert ping("").status_code == 400


def test_analytics_answer_that_there_is_nothing_to_record(env):
	answer = ask(env, "GET", f"benches/{BENCH}/analytics")
	assert answer.status_code == 200 and answer.json == {}
