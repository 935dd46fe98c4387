"""Every step of New Bench, Archive Bench, New Site, Backup Site, Archive Site and Restore Site, run twice
in a row on the real services, changes nothing the second time (tests/idempotence.py says what is compared).

Site jobs run on the small cluster of tests/site_cluster.py (a bench started as the bench lifecycle
starts one, the Database Server's MariaDB) with S3 for the backups; bench jobs on an app server of
their own with the bench image from the local registry.
"""

from __future__ import annotations

import uuid

import agent_support as support
import pytest
from backup_support import BENCH, JobRun, offsite_payload, restore_payload, scratch_bucket, site_secrets
from idempotence import assert_idempotent, database, docker_objects, files, s3_objects
from site_cluster import (
	SITES,
	PressJobs,
	Secrets,
	Topology,
	contexts,
	remove_cluster,
	start_bench,
	start_cluster,
)

from press_selfhosted.engine import naming
from press_selfhosted.engine.agent.runner import Contexts
from press_selfhosted.engine.clients.docker_hosts import DockerHosts
from press_selfhosted.engine.clients.mariadb import database_name
from press_selfhosted.engine.clients.storage import open_client
from press_selfhosted.engine.jobs import handlers
from press_selfhosted.engine.jobs.backups import BackupJobs
from press_selfhosted.engine.jobs.benches import BenchJobs, BenchSettings
from press_selfhosted.engine.jobs.handlers import JobRecord
from press_selfhosted.engine.jobs.restore import RestoreJobs
from press_selfhosted.engine.jobs.sites import SiteJobs

SITE_HANDLERS = handlers.index([*SiteJobs().handlers(), *BackupJobs().handlers(), *RestoreJobs().handlers()])


@pytest.fixture(scope="module")
def sites(docker_client, endpoints):
	prefix = f"i{uuid.uuid4().hex[:8]}"
	with scratch_bucket(endpoints, f"idem-{prefix}") as target:
		try:
			cluster = start_cluster(docker_client, endpoints, prefix)
			backend = start_bench(docker_client, endpoints, cluster, BENCH)
			yield cluster, backend, target
		finally:
			remove_cluster(docker_client, prefix)


def site_job(cluster, job_type: str, site: str, payload: dict) -> JobRecord:
	found = SITE_HANDLERS[job_type]
	return JobRecord(
		int(uuid.uuid4().int % 10**9),
		job_type,
		cluster.app_server.name,
		"Server",
		found.method,
		found.path,
		BENCH,
		site,
		payload,
	)


def check_site_job(docker_client, sites, job_type: str, site: str, payload: dict) -> None:
	"""``job_type`` on ``site`` proven idempotent: Docker objects, the bench's sites folder (content
	included), the site's database with its accounts and grants, its backups in S3."""
	cluster, backend, target = sites
	job = site_job(cluster, job_type, site, payload)
	# the proxy's Remove Site from Upstream, as Press records it, has ended: Archive Site goes ahead
	topology = Topology(cluster, PressJobs({site: ["Success"]}))
	context = contexts(docker_client, topology, Secrets(site_secrets(cluster, target))).for_job(job)

	def probe() -> dict:
		with open_client(target) as s3:
			objects = s3_objects(s3, target.bucket, f"{site}/")
		return {
			"docker": docker_objects(docker_client, cluster.app_server.name),
			# the bench's own log grows with every command: not the job's work
			"sites": files(backend, SITES, skip=["./*/logs", "./*/*/logs"]),
			# the stand-in bench's migrate logs a patch on every run (Frappe's, each new patch once)
			"database": database(cluster.db, f"{database_name(BENCH, site)}%", skip_tables=["tabPatch Log"]),
			"objects": objects,
		}

	assert_idempotent(job, SITE_HANDLERS[job_type].steps, context, probe)


def new_site(docker_client, sites, site: str) -> None:
	payload = {
		"name": site,
		"apps": ["frappe"],
		"config": {"host_name": f"https://{site}"},
		"mariadb_root_password": "********",
		"admin_password": "********",
		"managed_database_config": {},
		"create_user": {"email": "owner@example.com", "first_name": "Site", "last_name": "Owner"},
	}
	check_site_job(docker_client, sites, "New Site", site, payload)


def test_new_site_is_idempotent(docker_client, sites):
	new_site(docker_client, sites, f"new-{uuid.uuid4().hex[:6]}.example.com")


def test_backup_site_is_idempotent(docker_client, sites):
	site = f"backup-{uuid.uuid4().hex[:6]}.example.com"
	new_site(docker_client, sites, site)
	payload = {"with_files": True, **offsite_payload(sites[2], site)}
	check_site_job(docker_client, sites, "Backup Site", site, payload)


def test_archive_site_is_idempotent(docker_client, sites):
	site = f"archive-{uuid.uuid4().hex[:6]}.example.com"
	new_site(docker_client, sites, site)
	payload = {"mariadb_root_password": "********", "force": False, **offsite_payload(sites[2], site)}
	check_site_job(docker_client, sites, "Archive Site", site, payload)


def test_restore_site_is_idempotent(docker_client, sites):
	cluster, _, target = sites
	site = f"restore-{uuid.uuid4().hex[:6]}.example.com"
	new_site(docker_client, sites, site)
	payload = {"with_files": True, **offsite_payload(target, site)}
	backup = JobRun(
		docker_client, cluster, SITE_HANDLERS["Backup Site"], site, payload, site_secrets(cluster, target)
	)
	check_site_job(docker_client, sites, "Restore Site", site, restore_payload(target, backup.run()))


@pytest.fixture
def app_server(endpoints, docker_client):
	server = support.app_server(endpoints, "i" + uuid.uuid4().hex[:8])
	yield server
	support.remove_server_objects(docker_client, server.name)


def test_new_bench_and_archive_bench_are_idempotent(docker_client, app_server, registry_images):
	bench = "bench-idem"
	found = handlers.index(BenchJobs(BenchSettings(health_timeout=120)).handlers())
	topology = support.Topology({(app_server.server_type, app_server.name): app_server})
	made = Contexts(topology, support.Secrets({}), DockerHosts(lambda host: docker_client))
	backend = naming.resource_name(app_server.container_prefix, bench)

	def probe() -> dict:
		state = {"docker": docker_objects(docker_client, app_server.name)}
		running = [c for c in docker_client.containers.list(filters={"name": backend}) if c.name == backend]
		if running:  # the bench's configuration as its backend reads it
			state["config"] = files(running[0], "/home/frappe/frappe-bench/sites", skip=["./*/logs"])
		return state

	for job_type, payload in (
		("New Bench", support.new_bench_payload(bench, registry_images["plain"])),
		("Archive Bench", {}),
	):
		handler = found[job_type]
		job = JobRecord(
			int(uuid.uuid4().int % 10**9),
			job_type,
			app_server.name,
			app_server.server_type,
			handler.method,
			handler.path,
			bench,
			None,
			payload,
		)
		assert_idempotent(job, handler.steps, made.for_job(job), probe)
	assert [c.name for c in docker_client.containers.list(filters={"name": backend})] == []


def test_the_check_catches_a_step_that_repeats_its_work(docker_client, sites):
	"""A step that appends instead of looking first: its second run shows in the probe."""
	cluster, backend, _ = sites
	note = f"{SITES}/idempotence-{uuid.uuid4().hex[:6]}.txt"

	def appends(ctx):
		ctx.run(backend, ["sh", "-c", f"echo again >> {note}"])

	found = handlers.handler("Bench Restart", "POST", "benches/{bench}/restart", [("Append", appends)])
	job = JobRecord(1, found.job_type, cluster.app_server.name, "Server", "POST", "", BENCH, None, {})
	context = contexts(docker_client, Topology(cluster), Secrets({})).for_job(job)
	with pytest.raises(AssertionError, match=r"running step 'Append' again changed:(.|\n)*idempotence-"):
		assert_idempotent(job, found.steps, context, lambda: files(backend, SITES, skip=["./*/logs"]))
