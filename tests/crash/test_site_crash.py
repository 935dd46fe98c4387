"""Crash test of New Site, Archive Site, Update Site Migrate, Restore Site, Rename Site and Backup Site:
the worker is SIGKILLed while each step runs, then the sweep resumes the job; the end state equals an
uninterrupted run's.

As in tests/crash/test_agent_crash.py the worker is a real subprocess (``python -m
press_selfhosted.engine.agent.worker --factory platform_support:crash_executor``) whose steps linger
after doing their work, so the kill lands while the step is Running with its effects made and the
rerun repeats finished work. The cluster (bench made by New Bench, the Database Server's MariaDB, S3
for the backups) is shared by the module; every run uses a site of its own on the bench (Restore Site's
runs all restore one backed-up site, spoiled again before each).
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import uuid

import agent_support as support
import crash_support as crash
import pytest
from backup_support import object_keys, restore_payload, scratch_bucket
from platform_support import (
	crash_world,
	create_site,
	remove_platform,
	routed_bench,
	start_platform,
	update_payload,
)

from press_selfhosted.engine import naming
from press_selfhosted.engine.agent.router import Router
from press_selfhosted.engine.agent.store import JobStore
from press_selfhosted.engine.clients.docker_hosts import DockerHosts
from press_selfhosted.engine.clients.mariadb import database_name
from press_selfhosted.engine.clients.storage import open_client
from press_selfhosted.engine.jobs.backups import BackupJobs
from press_selfhosted.engine.jobs.handlers import JobRequest, index
from press_selfhosted.engine.jobs.restore import RestoreJobs
from press_selfhosted.engine.jobs.site_rename import SiteRenameJobs

# the job types crash-tested here (tests/crash/test_job_crash.py checks coverage)
JOB_TYPES = ["New Site", "Archive Site", "Update Site Migrate", "Restore Site", "Rename Site", "Backup Site"]
BENCH = "bench-crash"
TARGET = "bench-crash-next"  # the bench sites are updated to
SITES = "/home/frappe/frappe-bench/sites"
NEW_SITE_STEPS = 7
ARCHIVE_STEPS = 5
UPDATE_STEPS = 13
RESTORE_STEPS = len(index(RestoreJobs().handlers())["Restore Site"].steps)
RENAME_STEPS = len(index(SiteRenameJobs().handlers())["Rename Site"].steps)
BACKUP_STEPS = len(index(BackupJobs().handlers())["Backup Site"].steps)
LINGER = "0.5"
APPS = ["frappe", "testapp"]  # every site's


@pytest.fixture(scope="module")
def cluster(docker_client, endpoints, store_config, registry_images, tmp_path_factory):
	prefix = f"c{uuid.uuid4().hex[:8]}"
	with scratch_bucket(endpoints, f"crash-{prefix}") as target:
		platform = None
		try:
			contexts = str(tmp_path_factory.mktemp("contexts"))
			platform = start_platform(docker_client, endpoints, store_config, prefix, contexts, target.bucket)
			for bench in (BENCH, TARGET):
				payload = support.new_bench_payload(bench, registry_images["plain"])
				platform.run(platform.topology.app, "benches", payload)
			# Press's POST without the enqueue: each test hands its job to the worker it kills
			quiet = Router(
				platform.found,
				JobStore(store_config),
				lambda job: None,
				platform.topology,
				DockerHosts(),
				platform.enrich,
			)
			yield platform, quiet, target
		finally:
			if platform:
				for worker in platform.workers:
					worker.join(timeout=120)
			remove_platform(docker_client, prefix)


def spawn(platform, job_id: int, linger: str) -> subprocess.Popen:
	world = json.dumps(crash_world(platform))
	return crash.spawn_worker(
		"platform_support:crash_executor", job_id, PSA_PLATFORM_WORLD=world, PSA_LINGER=linger
	)


def kill_at_step_then_sweep(platform, store: JobStore, job_id: int, idx: int) -> dict:
	"""SIGKILL the worker once step ``idx`` is Running, then let the sweep resume the job; its final poll."""
	worker = spawn(platform, job_id, LINGER)
	crash.kill_at_step(store, job_id, idx, worker)
	crash.resume(store, job_id, lambda job: spawn(platform, job, "0")).wait()
	return platform.poll(platform.topology.app, job_id, timeout=120)


def crash_and_resume(
	platform, quiet, store: JobStore, path: str, payload: dict, idx: int, steps: int
) -> dict:
	"""Press's POST of ``path``, its worker killed at step ``idx`` and the sweep's rerun: the job must end
	Success with every one of its ``steps`` steps Success. Returns its final poll."""
	response = quiet.handle(platform.topology.app.name, "POST", path, payload, "AJ-crash")
	job = kill_at_step_then_sweep(platform, store, response.json["job"], idx)
	assert job["status"] == "Success", (idx, job["data"])
	assert [s["status"] for s in job["steps"]] == ["Success"] * steps
	return job


def new_site_payload(platform, site: str) -> dict:
	return {
		"name": site,
		"config": {"plan": "starter"},
		"apps": APPS,
		"mariadb_root_password": "press-sends-this-in-clear",
		"admin_password": platform.secrets.values["admin_password"],
		"managed_database_config": {},
		"create_user": {"email": "owner@example.com", "first_name": "Site", "last_name": "Owner"},
	}


def listing(docker_client, platform, site: str, folder: str) -> list[str]:
	"""Files under ``folder`` (relative to sites/) with the site's name and timestamps made generic."""
	backend = docker_client.containers.get(naming.resource_name(platform.prefix, BENCH))
	code, out = backend.exec_run(["sh", "-c", f"cd {SITES} && find {folder} | sort"])
	assert code == 0, out
	generic = out.decode().replace(site, "SITE").replace(site.replace(".", "_"), "SITE")
	return [re.sub(r"\d", "#", line) for line in generic.splitlines()]


def site_state(docker_client, platform, site: str) -> dict:
	db, db_name = platform.mariadb, database_name(BENCH, site)
	backend = docker_client.containers.get(naming.resource_name(platform.prefix, BENCH))
	code, out = backend.exec_run(["ls", "-A", SITES])
	top = sorted(name.replace(site, "SITE") for name in out.decode().split() if site in name)
	code, config = backend.exec_run(["cat", f"{SITES}/{site}/site_config.json"])
	return {
		"databases": [row[0] for row in db.sql(f"SHOW DATABASES LIKE '{db_name}'")],
		"users": db.users(f"{db_name}%"),
		"limited": db.users("%\\_limited"),
		"sites": top,
		"files": listing(docker_client, platform, site, site) if top == ["SITE"] else [],
		"archived": listing(docker_client, platform, site, f"archived/{site}") if code != 0 else [],
		"config": sorted(json.loads(config)) if code == 0 else None,
		"containers": sorted(c.name for c in support.labelled(docker_client, platform.topology.app.name)),
		"apps": platform.router.handle(
			platform.topology.app.name, "GET", f"benches/{BENCH}/sites/{site}/apps"
		).json,
	}


def generic_state(state: dict, site: str) -> dict:
	db_name = database_name(BENCH, site)
	return json.loads(json.dumps(state).replace(db_name, "DB"))


def test_new_site_killed_at_each_step_converges(cluster, docker_client, store_config):
	platform, quiet, _ = cluster
	store = JobStore(store_config)
	tag = uuid.uuid4().hex[:6]
	reference = f"ref-{tag}.example.test"
	job = platform.run(platform.topology.app, f"benches/{BENCH}/sites", new_site_payload(platform, reference))
	expected = generic_state(site_state(docker_client, platform, reference), reference)
	assert expected["databases"] == ["DB"] and expected["users"] == ["DB"] and expected["limited"] == []
	assert len(job["steps"]) == NEW_SITE_STEPS

	for idx in range(NEW_SITE_STEPS):
		site = f"s{idx}-{tag}.example.test"
		payload = new_site_payload(platform, site)
		job = crash_and_resume(platform, quiet, store, f"benches/{BENCH}/sites", payload, idx, NEW_SITE_STEPS)
		assert generic_state(site_state(docker_client, platform, site), site) == expected, job["steps"][idx][
			"name"
		]


def archive_payload(target, site: str) -> dict:
	return {
		"mariadb_root_password": "press-sends-this-in-clear",
		"force": False,
		"offsite": {
			"bucket": target.bucket,
			"auth": {
				"ACCESS_KEY": target.access_key,
				"SECRET_KEY": target.secret_key,
				"REGION": target.region,
				"ENDPOINT_URL": target.endpoint_url,
			},
			"path": f"{site}/archive",
		},
	}


def proxy_removed(store: JobStore, site: str) -> None:
	"""The proxy's half of Press's Site.archive, already done (its own job is tested elsewhere)."""
	job = store.create(
		JobRequest(
			job_type="Remove Site from Upstream",
			server="proxy.local",
			server_type="Proxy Server",
			method="DELETE",
			path=f"proxy/upstreams/10.9.0.1/sites/{site}",
			bench=None,
			site=site,
			payload={},
			agent_job_id="AJ-proxy",
		)
	)
	store.finish(job, "Success", {})


def archive_state(docker_client, platform, target, site: str) -> dict:
	state = site_state(docker_client, platform, site)
	del state["apps"]
	with open_client(target) as s3:
		objects = object_keys(s3, target.bucket, f"{site}/")
	state["objects"] = sorted(
		re.sub(r"\d", "#", key.replace(site, "SITE").replace(site.replace(".", "_"), "SITE"))
		for key in objects
	)
	return generic_state(state, site)


def test_archive_site_killed_at_each_step_converges(cluster, docker_client, store_config):
	platform, quiet, target = cluster
	store = JobStore(store_config)
	tag = uuid.uuid4().hex[:6]
	names = [f"a{idx}-{tag}.example.test" for idx in range(-1, ARCHIVE_STEPS)]
	for site in names:
		platform.run(platform.topology.app, f"benches/{BENCH}/sites", new_site_payload(platform, site))
		proxy_removed(store, site)

	reference, *crashed = names
	platform.run(
		platform.topology.app,
		f"benches/{BENCH}/sites/{reference}/archive",
		archive_payload(target, reference),
	)
	expected = archive_state(docker_client, platform, target, reference)
	assert expected["databases"] == expected["users"] == expected["limited"] == expected["sites"] == []
	assert expected["archived"] and len(expected["objects"]) == 4, expected

	for idx, site in enumerate(crashed):
		path = f"benches/{BENCH}/sites/{site}/archive"
		job = crash_and_resume(
			platform, quiet, store, path, archive_payload(target, site), idx, ARCHIVE_STEPS
		)
		assert archive_state(docker_client, platform, target, site) == expected, job["steps"][idx]["name"]


def update_state(docker_client, platform, site: str) -> dict:
	"""Where the site's folder is (both benches), its backup of tables, its config and its route."""

	def entries(bench: str, folder: str = "") -> list[str]:
		backend = docker_client.containers.get(naming.resource_name(platform.prefix, bench))
		_, out = backend.exec_run(["ls", "-A", "-1", f"{SITES}/{folder}"])
		return sorted(
			name.replace(site, "SITE") for name in out.decode().splitlines() if site in name or folder
		)

	config = json.loads(
		docker_client.containers.get(naming.resource_name(platform.prefix, TARGET))
		.exec_run(["cat", f"{SITES}/{site}/site_config.json"])
		.output
	)
	return {
		"source": entries(BENCH),
		"target": entries(TARGET),
		"tables": entries(TARGET, f"{site}/.migrate"),
		"config": {key: value for key, value in config.items() if not key.startswith("db_")},
		"route": routed_bench(docker_client, platform, site),
		"limited": platform.mariadb.users("%\\_limited"),
	}


def test_update_site_migrate_killed_at_each_step_converges(cluster, docker_client, store_config):
	platform, quiet, _ = cluster
	store = JobStore(store_config)
	app = platform.topology.app
	tag = uuid.uuid4().hex[:6]
	names = [f"m{idx}-{tag}.example.test" for idx in range(-1, UPDATE_STEPS)]
	for site in names:
		for job in create_site(platform, site, BENCH):
			assert job["status"] == "Success", job["data"]

	reference, *crashed = names
	path = f"benches/{BENCH}/sites/{{}}/update/migrate"
	platform.run(app, path.format(reference), update_payload(TARGET))
	expected = json.loads(
		json.dumps(update_state(docker_client, platform, reference)).replace(reference, "SITE")
	)
	assert expected["source"] == [] and expected["target"] == ["SITE"] and expected["route"] == TARGET
	assert "tabPatch Log.sql.gz" in expected["tables"] and expected["config"]["maintenance_mode"] == 0

	for idx, site in enumerate(crashed):
		payload = update_payload(TARGET)
		job = crash_and_resume(platform, quiet, store, path.format(site), payload, idx, UPDATE_STEPS)
		state = json.loads(json.dumps(update_state(docker_client, platform, site)).replace(site, "SITE"))
		assert state == expected, job["steps"][idx]["name"]


NOTES = "tabCrash Note"


def spoil(docker_client, platform, site: str) -> None:
	"""What a restore must undo: rows deleted and added, a file changed."""
	platform.mariadb.sql(
		f"DELETE FROM `{NOTES}` WHERE name LIKE 'n1%'; INSERT INTO `{NOTES}` VALUES ('late')",
		database=database_name(BENCH, site),
	)
	backend = docker_client.containers.get(naming.resource_name(platform.prefix, BENCH))
	script = f"echo changed > {SITES}/{site}/public/files/hello.txt"
	assert backend.exec_run(["sh", "-c", script], user="frappe").exit_code == 0


def restored_state(docker_client, platform, site: str) -> dict:
	state = site_state(docker_client, platform, site)
	backend = docker_client.containers.get(naming.resource_name(platform.prefix, BENCH))
	state["notes"] = platform.mariadb.sql(
		f"SELECT name FROM `{NOTES}` ORDER BY name", database=database_name(BENCH, site)
	)
	state["hello"] = backend.exec_run(["cat", f"{SITES}/{site}/public/files/hello.txt"]).output.decode()
	# the downloaded backup files are gone once the restore ended
	state["downloads"] = backend.exec_run(["sh", "-c", f"ls -A {SITES}/downloads || true"]).output.decode()
	return generic_state(state, site)


def test_restore_site_killed_at_each_step_converges(cluster, docker_client, store_config):
	platform, quiet, target = cluster
	store = JobStore(store_config)
	app = platform.topology.app
	site = f"r-{uuid.uuid4().hex[:6]}.example.test"
	platform.run(app, f"benches/{BENCH}/sites", new_site_payload(platform, site))
	platform.mariadb.sql(
		f"CREATE TABLE `{NOTES}` (name VARCHAR(140) PRIMARY KEY); "
		+ "".join(f"INSERT INTO `{NOTES}` VALUES ('n{i}'); " for i in range(20)),
		database=database_name(BENCH, site),
	)
	backend = docker_client.containers.get(naming.resource_name(platform.prefix, BENCH))
	script = f"echo kept > {SITES}/{site}/public/files/hello.txt"
	assert backend.exec_run(["sh", "-c", script], user="frappe").exit_code == 0
	offsite = {**archive_payload(target, site)["offsite"], "path": f"{site}/backup"}
	payload = {"with_files": True, "offsite": offsite, "keep_files_locally_after_offsite_backup": False}
	backup = platform.run(app, f"benches/{BENCH}/sites/{site}/backup", payload)
	platform.record_backup(backup["data"])  # the glue's Site Backup: the restore reads its recorded keys
	path = f"benches/{BENCH}/sites/{site}/restore"

	spoil(docker_client, platform, site)
	platform.run(app, path, restore_payload(target, backup["data"], apps=APPS))
	expected = restored_state(docker_client, platform, site)
	assert expected["notes"] == [[f"n{i}"] for i in sorted(range(20), key=str)]
	assert expected["hello"] == "kept\n" and expected["downloads"] == ""

	for idx in range(RESTORE_STEPS):
		spoil(docker_client, platform, site)
		payload = restore_payload(target, backup["data"], apps=APPS)
		job = crash_and_resume(platform, quiet, store, path, payload, idx, RESTORE_STEPS)
		assert restored_state(docker_client, platform, site) == expected, job["steps"][idx]["name"]


def renamed_state(docker_client, platform, old: str) -> dict:
	"""The renamed site's folder, config and database record; nothing left under the old name."""
	new = f"renamed-{old}"
	state = site_state(docker_client, platform, new)
	backend = docker_client.containers.get(naming.resource_name(platform.prefix, BENCH))
	config = json.loads(backend.exec_run(["cat", f"{SITES}/{new}/site_config.json"]).output)
	state["values"] = {key: config.get(key) for key in ("host_name", "maintenance_mode", "db_name")}
	state["recorded"] = [platform.mariadb.recorded_database(name) for name in (new, old)]
	state["left"] = backend.exec_run(["ls", "-A", SITES]).output.decode().split().count(old)
	state["owner"] = platform.mariadb.sql(
		"SELECT name FROM `tabUser` WHERE name = 'owner@renamed.test'", database=database_name(BENCH, old)
	)
	text = json.dumps(state).replace(new, "NEW").replace(database_name(BENCH, old), "DB")
	return json.loads(text.replace(old, "OLD"))


def test_rename_site_killed_at_each_step_converges(cluster, docker_client, store_config):
	platform, quiet, _ = cluster
	store = JobStore(store_config)
	app = platform.topology.app
	tag = uuid.uuid4().hex[:6]
	names = [f"n{idx}-{tag}.example.test" for idx in range(-1, RENAME_STEPS)]
	for site in names:
		platform.run(app, f"benches/{BENCH}/sites", new_site_payload(platform, site))

	def rename(site: str) -> dict:
		owner = {"email": "owner@renamed.test", "first_name": "Re", "last_name": "Named"}
		new = f"renamed-{site}"
		return {"new_name": new, "config": {"host_name": f"https://{new}"}, "create_user": owner}

	reference, *crashed = names
	path = f"benches/{BENCH}/sites/{{}}/rename"
	platform.run(app, path.format(reference), rename(reference))
	expected = renamed_state(docker_client, platform, reference)
	assert expected["sites"] == ["SITE"] and expected["left"] == 0, expected  # site_state's name for it
	assert expected["recorded"] == ["DB", None], expected
	assert expected["values"] == {"host_name": "https://NEW", "maintenance_mode": 0, "db_name": "DB"}
	assert expected["owner"] == [["owner@renamed.test"]]

	for idx, site in enumerate(crashed):
		job = crash_and_resume(platform, quiet, store, path.format(site), rename(site), idx, RENAME_STEPS)
		assert renamed_state(docker_client, platform, site) == expected, job["steps"][idx]["name"]


def backup_state(docker_client, platform, target, site: str, job: dict, prefix: str) -> dict:
	"""The backup's objects under ``prefix`` (names made generic), each holding what the job recorded for
	it; the site's local backups folder."""
	data = job["data"]
	with open_client(target) as s3:
		for name, key in data["offsite"].items():
			body = s3.get_object(Bucket=target.bucket, Key=key)["Body"].read()
			assert hashlib.sha256(body).hexdigest() == data["checksums"][name], name
		objects = object_keys(s3, target.bucket, f"{prefix}/")
	generic = [
		re.sub(r"\d", "#", key.rsplit("/", 1)[-1].replace(site.replace(".", "_"), "SITE")) for key in objects
	]
	return {
		"objects": sorted(generic),
		"recorded": sorted(data["offsite"]) == sorted(key.rsplit("/", 1)[-1] for key in objects),
		"local": listing(docker_client, platform, site, f"{site}/private/backups"),
	}


def test_backup_site_killed_at_each_step_converges(cluster, docker_client, store_config):
	platform, quiet, target = cluster
	store = JobStore(store_config)
	app = platform.topology.app
	site = f"b-{uuid.uuid4().hex[:6]}.example.test"
	platform.run(app, f"benches/{BENCH}/sites", new_site_payload(platform, site))
	path = f"benches/{BENCH}/sites/{site}/backup"

	def payload(run: str) -> dict:
		offsite = {**archive_payload(target, site)["offsite"], "path": f"{site}/{run}"}
		return {"with_files": True, "offsite": offsite, "keep_files_locally_after_offsite_backup": False}

	def state(job: dict, run: str) -> dict:
		return backup_state(docker_client, platform, target, site, job, f"{site}/{run}")

	expected = state(platform.run(app, path, payload("reference")), "reference")
	assert (
		len(expected["objects"]) == 4
		and expected["recorded"]
		and expected["local"] == ["SITE/private/backups"]
	)
	for idx in range(BACKUP_STEPS):
		job = crash_and_resume(platform, quiet, store, path, payload(f"crash{idx}"), idx, BACKUP_STEPS)
		assert state(job, f"crash{idx}") == expected, job["steps"][idx]["name"]
