"""Site updates end to end as Press drives them: a site moves between two benches of one app server
(Update Site Migrate, Update Site Pull), a failed migration is rolled back (Recover Failed Site
Migrate), and the site's Traefik route follows it.

One cluster on our dockerd (tests/platform_support.py: real Router, JobStore, Executors, MariaDB and
Traefik containers; only Press's records are stand-ins). The tests run in file order and share the
cluster; each continues where the previous one left the site. Every outcome is checked from outside:
files in each bench's sites volume, SQL as root, the route on the proxy, HTTP through Traefik's published port.
"""

from __future__ import annotations

import json
import uuid

import agent_support as support
import pytest
from backup_support import scratch_bucket
from platform_support import (
	create_site,
	remove_platform,
	routed_bench,
	start_platform,
	through_traefik,
	update_payload,
)

from press_selfhosted.engine import naming
from press_selfhosted.engine.clients import transfer
from press_selfhosted.engine.clients.mariadb import database_name

OLD, NEW = "bench-old", "bench-new"
SITES = "/home/frappe/frappe-bench/sites"
NOTES = "tabUpdate Note"


@pytest.fixture(scope="module")
def world(docker_client, endpoints, store_config, registry_images, tmp_path_factory):
	prefix = f"u{uuid.uuid4().hex[:8]}"
	with scratch_bucket(endpoints, f"updates-{prefix}"):
		platform = None
		try:
			contexts = str(tmp_path_factory.mktemp("contexts"))
			platform = start_platform(
				docker_client, endpoints, store_config, prefix, contexts, f"updates-{prefix}"
			)
			app = platform.topology.app
			for bench in (OLD, NEW):
				platform.run(app, "benches", support.new_bench_payload(bench, registry_images["plain"]))
			site = f"s-{prefix}.example.test"
			new_site, upstream_job = create_site(platform, site, OLD)
			assert (new_site["status"], upstream_job["status"]) == ("Success", "Success")
			db_name = database_name(OLD, site)
			platform.mariadb.sql(
				f"CREATE TABLE `{NOTES}` (name VARCHAR(140) PRIMARY KEY); "
				f"INSERT INTO `{NOTES}` VALUES ('one'), ('two')",
				database=db_name,
			)
			yield {"platform": platform, "site": site, "db": db_name}
		finally:
			if platform:
				for worker in platform.workers:
					worker.join(timeout=120)
			remove_platform(docker_client, prefix)


def backend(docker_client, platform, bench: str):
	return docker_client.containers.get(naming.resource_name(platform.prefix, bench))


def front(docker_client, platform, bench: str):
	return docker_client.containers.get(naming.BenchNames.of(platform.prefix, bench).front)


def listing(docker_client, platform, bench: str, path: str) -> list[str] | None:
	code, out = backend(docker_client, platform, bench).exec_run(["ls", "-A", path])
	return out.decode().splitlines() if code == 0 else None


def site_config(docker_client, platform, bench: str, site: str) -> dict | None:
	code, out = backend(docker_client, platform, bench).exec_run(["cat", f"{SITES}/{site}/site_config.json"])
	return json.loads(out) if code == 0 else None


def update(platform, site: str, source: str, kind: str, **data) -> dict:
	app = platform.topology.app
	payload = update_payload(data.pop("target"), **data)
	return platform.poll(app, platform.post(app, f"benches/{source}/sites/{site}/update/{kind}", payload))


def patch_log_count(platform, db: str) -> int:
	return int(platform.mariadb.sql("SELECT COUNT(*) FROM `tabPatch Log`", database=db)[0][0])


def serves_only_from(docker_client, platform, site: str, bench: str, other: str) -> None:
	"""The site answers through Traefik with the other bench's containers stopped."""
	stopped = [backend(docker_client, platform, other), front(docker_client, platform, other)]
	for container in stopped:
		container.stop(timeout=5)
	try:
		status, body = through_traefik(docker_client, platform, site, "/api/method/ping")
		assert status == 200, body
	finally:
		for container in stopped:
			container.start()


def test_update_site_migrate_moves_the_site_and_its_route(world, docker_client):
	platform, site, db = world["platform"], world["site"], world["db"]
	before = patch_log_count(platform, db)
	marker = f"{SITES}/{site}/before-migrate.txt"
	script = f"open({marker!r}, 'w').write('ran on ' + site)"
	job = update(platform, site, OLD, "migrate", target=NEW, before_migrate_scripts={"testapp": script})
	assert job["status"] == "Success", json.dumps(job, indent=1)[-3000:]
	assert [s["status"] for s in job["steps"]] == ["Success"] * 13

	assert site_config(docker_client, platform, OLD, site) is None
	config = site_config(docker_client, platform, NEW, site)
	assert config["db_name"] == db and config["maintenance_mode"] == 0
	dumps = listing(docker_client, platform, NEW, f"{SITES}/{site}/.migrate")
	assert f"{NOTES}.sql.gz" in dumps and "tabPatch Log.sql.gz" in dumps
	assert not any(name.startswith(".moving-") for name in listing(docker_client, platform, NEW, SITES))
	code, out = backend(docker_client, platform, NEW).exec_run(["cat", marker])
	assert (code, out.decode()) == (0, f"ran on {site}")
	assert patch_log_count(platform, db) == before + 1  # migrated on the new bench
	assert platform.mariadb.sql(f"SELECT COUNT(*) FROM `{NOTES}`", database=db) == [["2"]]

	assert routed_bench(docker_client, platform, site) == NEW
	serves_only_from(docker_client, platform, site, NEW, OLD)


def test_failed_migration_is_recovered_on_the_bench_it_came_from(world, docker_client):
	platform, site, db = world["platform"], world["site"], world["db"]
	before = patch_log_count(platform, db)
	backend(docker_client, platform, NEW).exec_run(["touch", f"{SITES}/{site}/locks/migrate-fails"])
	job = update(platform, site, NEW, "migrate", target=OLD)
	assert job["status"] == "Failure"
	steps = {s["name"]: s["status"] for s in job["steps"]}
	assert (steps["Move Site"], steps["Migrate Site"]) == ("Success", "Failure")
	assert "Patch failed" in job["data"]["output"]
	assert patch_log_count(platform, db) == before + 1
	assert platform.mariadb.sql("SHOW TABLES LIKE 'tabHalf Migrated'", database=db) == [["tabHalf Migrated"]]
	assert site_config(docker_client, platform, OLD, site)["maintenance_mode"] == 1

	# Press: the Move Site step succeeded, so the site is on OLD now and goes back to NEW
	platform.topology.site_benches[site] = OLD
	recovery = update(
		platform,
		site,
		OLD,
		"migrate/recover",
		target=NEW,
		rollback_scripts={},
		restore_touched_tables=True,
	)
	assert recovery["status"] == "Success", json.dumps(recovery, indent=1)[-3000:]
	assert [s["name"] for s in recovery["steps"]][4] == "Restore Touched Tables"
	assert site_config(docker_client, platform, OLD, site) is None
	assert site_config(docker_client, platform, NEW, site)["maintenance_mode"] == 0
	assert patch_log_count(platform, db) == before  # the failed migration's write is rolled back
	assert platform.mariadb.sql("SHOW TABLES LIKE 'tabHalf Migrated'", database=db) == []
	assert platform.mariadb.sql(f"SELECT COUNT(*) FROM `{NOTES}`", database=db) == [["2"]]
	assert routed_bench(docker_client, platform, site) == NEW
	backend(docker_client, platform, NEW).exec_run(["rm", f"{SITES}/{site}/locks/migrate-fails"])


def test_pull_finishes_a_move_an_earlier_run_left_half_done(world, docker_client):
	"""A crashed Move Site can leave a complete copy on both benches, or a partial one on the target:
	the next run keeps exactly one complete site, on the target, and sets the partial one aside."""
	platform, site, db = world["platform"], world["site"], world["db"]
	platform.topology.site_benches[site] = NEW
	source, target = backend(docker_client, platform, NEW), backend(docker_client, platform, OLD)
	target.exec_run(["mkdir", "-p", f"{SITES}/{site}/private/files"])  # partial: no site_config.json
	job = update(platform, site, NEW, "pull", target=OLD, activate=False)
	assert job["status"] == "Success", json.dumps(job, indent=1)[-3000:]
	assert [s["name"] for s in job["steps"]] == [
		"Enable Maintenance Mode",
		"Wait for Enqueued Jobs",
		"Move Site",
		"Bench Setup NGINX",
		"Bench Setup NGINX Target",
		"Reload NGINX",
		"Disable Maintenance Mode",
	]
	archived = listing(docker_client, platform, OLD, f"{SITES}/archived")
	assert any(name.startswith(f"{site}-incomplete-") for name in archived), archived
	assert site_config(docker_client, platform, NEW, site) is None
	assert site_config(docker_client, platform, OLD, site)["maintenance_mode"] == 1  # activate was off
	assert routed_bench(docker_client, platform, site) == OLD

	# both benches hold a complete copy (a run that crashed before removing its source): the next
	# update keeps the target's and removes the source's
	transfer.copy_between_containers(target, f"{SITES}/{site}", source, SITES)
	platform.topology.site_benches[site] = OLD
	job = update(platform, site, OLD, "pull", target=NEW)
	assert job["status"] == "Success", json.dumps(job, indent=1)[-3000:]
	move = next(s for s in job["steps"] if s["name"] == "Move Site")
	assert "by an earlier run; removing the source copy" in move["data"]["output"]
	assert site_config(docker_client, platform, OLD, site) is None
	assert site_config(docker_client, platform, NEW, site)["maintenance_mode"] == 0
	assert routed_bench(docker_client, platform, site) == NEW
	assert platform.mariadb.sql(f"SELECT COUNT(*) FROM `{NOTES}`", database=db) == [["2"]]
	serves_only_from(docker_client, platform, site, NEW, OLD)


def test_move_site_to_bench_migrates_it_there(world, docker_client):
	platform, site, db = world["platform"], world["site"], world["db"]
	platform.topology.site_benches[site] = NEW
	before = patch_log_count(platform, db)
	payload = {"target": OLD, "deactivate": True, "activate": True, "skip_failing_patches": False}
	app = platform.topology.app
	job = platform.run(app, f"benches/{NEW}/sites/{site}/move_to_bench", payload)
	assert [s["name"] for s in job["steps"]][-2:] == ["Migrate Site", "Disable Maintenance Mode"]
	assert site_config(docker_client, platform, NEW, site) is None
	assert site_config(docker_client, platform, OLD, site)["maintenance_mode"] == 0
	assert patch_log_count(platform, db) == before + 1
	assert routed_bench(docker_client, platform, site) == OLD
	serves_only_from(docker_client, platform, site, OLD, NEW)


def test_rename_site_renames_its_folder_and_route_together(world, docker_client):
	"""Press sends Rename Site to the app server and Rename Site on Upstream to the proxy at once."""
	platform, site, db = world["platform"], world["site"], world["db"]
	platform.topology.site_benches[site] = OLD
	new = f"renamed-{site}"
	app, proxy = platform.topology.app, platform.topology.proxy
	owner = {"email": "owner@renamed.test", "first_name": "Re", "last_name": "Named"}
	renamed = platform.post(
		app,
		f"benches/{OLD}/sites/{site}/rename",
		{"new_name": new, "config": {"host_name": f"https://{new}"}, "create_user": owner},
	)
	upstream = f"proxy/upstreams/{app.private_ip}/sites/{site}/rename"
	route = platform.post(proxy, upstream, {"new_name": new, "domains": [site]})
	for server, job_id in ((app, renamed), (proxy, route)):
		job = platform.poll(server, job_id)
		assert job["status"] == "Success", json.dumps(job, indent=1)[-3000:]

	assert site_config(docker_client, platform, OLD, site) is None
	config = site_config(docker_client, platform, OLD, new)
	assert (config["db_name"], config["host_name"], config["maintenance_mode"]) == (db, f"https://{new}", 0)
	# the engine's record of the site's database follows its name
	assert (platform.mariadb.recorded_database(new), platform.mariadb.recorded_database(site)) == (db, None)
	enabled = (
		"SELECT value FROM `tabSingles` WHERE doctype = 'System Settings' AND field = 'enable_scheduler'"
	)
	assert platform.mariadb.sql(enabled, database=db) == [["1"]]
	assert platform.mariadb.sql(
		f"SELECT COUNT(*) FROM `tabUser` WHERE name = '{owner['email']}'", database=db
	) == [["1"]]
	platform.topology.site_benches[new] = OLD
	assert routed_bench(docker_client, platform, new) == OLD
	status, body = through_traefik(docker_client, platform, new)
	assert (status, json.loads(body)) == (200, {"site": new})
	assert through_traefik(docker_client, platform, site)[0] == 404


def test_table_restore_optimize_user_and_after_migrate_steps(world, docker_client):
	"""The smaller site jobs Press sends around updates, on the renamed site."""
	platform, db = world["platform"], world["db"]
	site = f"renamed-{world['site']}"
	app = platform.topology.app
	platform.mariadb.sql(f"INSERT INTO `{NOTES}` VALUES ('three')", database=db)
	job = platform.run(app, f"benches/{OLD}/sites/{site}/update/migrate/restore", {"activate": True})
	assert [s["name"] for s in job["steps"]] == ["Restore Site Tables", "Disable Maintenance Mode"]
	assert platform.mariadb.sql(f"SELECT COUNT(*) FROM `{NOTES}`", database=db) == [["2"]]  # the dump's rows

	job = platform.run(app, f"benches/{OLD}/sites/{site}/optimize", {"tables": [NOTES]})
	assert f"optimized {NOTES}" in job["steps"][0]["data"]["output"]
	refused = platform.poll(app, platform.post(app, f"benches/{OLD}/sites/{site}/optimize", {"tables": "x"}))
	assert refused["status"] == "Failure" and "tables" in refused["data"]["output"]

	user = {
		"email": "clerk@renamed.test",
		"first_name": "Clerk",
		"last_name": "One",
		"password": "Pw-9-clerk",
	}
	platform.secrets.values["password"] = user["password"]  # what Press's own Agent Job request holds
	job = platform.run(app, f"benches/{OLD}/sites/{site}/create-user", user)
	assert "Pw-9-clerk" not in json.dumps(job)
	again = platform.run(app, f"benches/{OLD}/sites/{site}/create-user", user)  # Press retrying
	assert "user clerk@renamed.test exists on" in again["steps"][0]["data"]["output"]
	assert platform.mariadb.sql(
		"SELECT COUNT(*) FROM `__Auth` WHERE name = 'clerk@renamed.test'", database=db
	) == [["1"]]

	before = platform.mariadb.sql("SELECT password FROM `__Auth` WHERE name = 'Administrator'", database=db)
	backend(docker_client, platform, OLD).exec_run(["bench", "--site", site, "set-maintenance-mode", "on"])
	job = platform.run(
		app, f"benches/{OLD}/sites/{site}/run_after_migrate_steps", {"admin_password": "********"}
	)
	after = platform.mariadb.sql("SELECT password FROM `__Auth` WHERE name = 'Administrator'", database=db)
	assert after != before  # set again from the Site's admin password (a new salt)
	assert platform.secrets.values["admin_password"] not in json.dumps(job)
	assert site_config(docker_client, platform, OLD, site)["maintenance_mode"] == 0
