"""Site jobs end to end through the agent router and executor, as Press drives them.

Press POSTs the job, the router records it in the real job store (MariaDB service) and the executor
runs it (inline here); Press polls ``jobs/<id>``. Also: every site handler's steps are Press's.
"""

from __future__ import annotations

import uuid

import pytest
from fakes import PressJobs, Secrets
from site_cluster import records, remove_cluster, start_bench, start_cluster

from press_selfhosted.engine.agent import job_types
from press_selfhosted.engine.agent.executor import Executor, ExecutorSettings
from press_selfhosted.engine.agent.router import Router
from press_selfhosted.engine.agent.store import JobStore
from press_selfhosted.engine.clients.docker_hosts import DockerHosts
from press_selfhosted.engine.clients.mariadb import database_name
from press_selfhosted.engine.jobs.handlers import index
from press_selfhosted.engine.jobs.site_steps import SiteSettings
from press_selfhosted.engine.jobs.sites import SiteJobs

HANDLERS = SiteJobs(SiteSettings()).handlers()
# Press calls these two with the app or nothing after the site (press.agent.Agent.uninstall_app_site /
# archive_site); its Agent Job Type records leave the app out or carry no path.
PATHS_BEYOND_THE_FIXTURE = {"Uninstall App from Site", "Archive Site"}


def test_site_handlers_have_press_step_names_methods_and_paths():
	press = job_types.load()
	for handler in HANDLERS:
		expected = press[handler.job_type]
		assert handler.step_names == list(expected.steps), handler.job_type
		if handler.job_type not in PATHS_BEYOND_THE_FIXTURE:
			assert (handler.method, handler.path) == (expected.method, expected.path), handler.job_type


@pytest.fixture(scope="module")
def agent(docker_client, endpoints, store_config):
	prefix = f"t{uuid.uuid4().hex[:8]}"
	try:
		cluster = start_cluster(docker_client, endpoints, prefix)
		start_bench(docker_client, endpoints, cluster, "bench-1")
		secrets = Secrets({"mariadb_root_password": cluster.root_password, "admin_password": "adm-Pw-9"})
		hosts = DockerHosts()
		press = PressJobs()
		executor = Executor(
			JobStore(store_config),
			index(HANDLERS),
			records(cluster, press),
			secrets,
			hosts,
			ExecutorSettings(),
		)
		router = Router(HANDLERS, JobStore(store_config), executor.run, records(cluster), hosts)
		yield cluster, router, JobStore(store_config), executor, press
	finally:
		remove_cluster(docker_client, prefix)


def post(router, cluster, path: str, data: dict, method: str = "POST") -> dict:
	response = router.handle(
		cluster.app_server.name, method, path, data, agent_job_id=f"AJ-{uuid.uuid4().hex[:6]}"
	)
	assert response.status_code == 200, response.json
	job = router.handle(cluster.app_server.name, "GET", f"jobs/{response.json['job']}").json
	assert job["status"] in ("Success", "Failure")
	return job


def test_new_site_then_archive_through_the_router(agent):
	cluster, router, store, executor, press = agent
	site = "e2e.example.com"
	job = post(
		router,
		cluster,
		"benches/bench-1/sites",
		{
			"name": site,
			"apps": ["frappe", "testapp"],
			"config": {},
			"mariadb_root_password": "rootpw",
			"admin_password": "adm-Pw-9",
			"managed_database_config": {},
		},
	)
	assert job["status"] == "Success", job["data"]
	assert [step["name"] for step in job["steps"]] == HANDLERS[0].step_names
	assert {step["status"] for step in job["steps"]} == {"Success"}
	assert "adm-Pw-9" not in str(job) and cluster.root_password not in str(job)
	apps = router.handle(cluster.app_server.name, "GET", f"benches/bench-1/sites/{site}/apps").json
	assert [line.split()[0] for line in apps["data"].splitlines()] == ["frappe", "testapp"]
	assert cluster.db.database_exists(database_name("bench-1", site))

	# Press has not recorded the proxy's removal yet: Archive Site waits, Running, without a worker.
	archive = {"mariadb_root_password": "rootpw", "force": False}
	response = router.handle(
		cluster.app_server.name, "POST", f"benches/bench-1/sites/{site}/archive", archive, agent_job_id="AJ-a"
	)
	job_id = response.json["job"]
	job = router.handle(cluster.app_server.name, "GET", f"jobs/{job_id}").json
	assert job["status"] == "Running"
	# the Archive Site step waits: Press decides "Archived" from it, and must see the proxy's first
	assert [step["status"] for step in job["steps"]] == ["Success"] * 2 + ["Running"]
	assert (
		"waiting for Press to record the proxy's Remove Site from Upstream"
		in job["steps"][-1]["data"]["output"]
	)
	assert store.get(job_id).resume_after is not None  # the sweep's cue

	press.statuses[site] = ["Success"]
	assert executor.run(job_id) == "Success"  # what the sweep's enqueue runs
	job = router.handle(cluster.app_server.name, "GET", f"jobs/{job_id}").json
	assert [step["status"] for step in job["steps"]] == ["Success"] * 5
	assert not cluster.db.database_exists(database_name("bench-1", site))
	assert cluster.db.users("%\\_limited") == []
