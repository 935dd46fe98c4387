"""Site job handlers on a real bench container against the real MariaDB container.

Steps run as the executor runs them (a StepContext per step, see site_cluster.run_steps); outcomes
are checked from outside: SQL as root in the MariaDB container, files in the bench container.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import replace

import pytest
from site_cluster import (
	SITES,
	PressJobs,
	new_site_payload,
	put_file,
	remove_cluster,
	run_steps,
	sql_as,
	start_bench,
	start_cluster,
)

from press_selfhosted.engine.clients import docker_exec
from press_selfhosted.engine.clients.mariadb import database_name
from press_selfhosted.engine.errors import CommandFailed, ProxyNotDone, SiteBusy, SiteError
from press_selfhosted.engine.jobs import handlers
from press_selfhosted.engine.jobs.handlers import StepWaiting
from press_selfhosted.engine.jobs.site_steps import SiteSettings
from press_selfhosted.engine.jobs.sites import SiteJobs

BENCH = "bench-1"
ADMIN = "admin-Secret-42"
SETTINGS = SiteSettings(idle_timeout=60, idle_interval=0.2)
HANDLERS = handlers.index(SiteJobs(SETTINGS).handlers())
# gives up on a busy site quickly (a loaded host must not make the patient tests give up early)
IMPATIENT = handlers.index(SiteJobs(replace(SETTINGS, idle_timeout=3)).handlers())


@pytest.fixture(scope="module")
def env(docker_client, endpoints):
	prefix = f"t{uuid.uuid4().hex[:8]}"
	try:
		cluster = start_cluster(docker_client, endpoints, prefix)
		backend = start_bench(docker_client, endpoints, cluster, BENCH)
		yield cluster, backend
	finally:
		remove_cluster(docker_client, prefix)


def secrets(cluster) -> dict:
	return {
		"mariadb_root_password": cluster.root_password,
		"admin_password": ADMIN,
		"create_user.password": "u-Pw-7",
	}


def run(
	docker_client,
	env,
	job_type: str,
	site: str | None,
	payload: dict,
	steps=None,
	press=None,
	found=HANDLERS,
	waits=10,
) -> list[str]:
	cluster, _ = env
	return run_steps(
		docker_client,
		cluster,
		found[job_type],
		BENCH,
		site,
		payload,
		secrets(cluster),
		steps=steps,
		press_jobs=press,
		waits=waits,
	)


def site_config(backend, site: str, folder: str = "") -> dict:
	code, out = backend.exec_run(["cat", "/".join(p for p in (SITES, folder, site, "site_config.json") if p)])
	assert code == 0, out
	return json.loads(out)


def apps_of(backend, site: str) -> list[str]:
	result = docker_exec.run(backend, ["bench", "--site", site, "list-apps"])
	return [line.split()[0] for line in result.stdout.splitlines()]


def privileged_users(cluster) -> list[str]:
	"""Accounts other than root@localhost with a global privilege (a temporary user had RELOAD and
	CREATE USER on *.*; none may exist)."""
	rows = cluster.db.sql(
		"SELECT User, Host FROM mysql.user WHERE Reload_priv = 'Y' OR Create_user_priv = 'Y' OR Grant_priv = 'Y'"
	)
	return [f"{user}@{host}" for user, host in rows if (user, host) != ("root", "localhost")]


def assert_site_database(cluster, site: str) -> str:
	db_name = database_name(BENCH, site)
	assert cluster.db.database_exists(db_name)
	assert cluster.db.recorded_database(site) == db_name
	grants = cluster.db.grants(db_name)
	assert grants[1:] == [f"GRANT ALL PRIVILEGES ON `\\{db_name}`.* TO `{db_name}`@`%`"], grants
	assert "USAGE ON *.*" in grants[0]
	return db_name


def assert_site_gone(cluster, backend, site: str) -> None:
	db_name = database_name(BENCH, site)
	assert not cluster.db.database_exists(db_name)
	assert cluster.db.users(db_name) == []
	assert cluster.db.recorded_database(site) is None
	assert backend.exec_run(["test", "-e", f"{SITES}/{site}"]).exit_code == 1
	assert site_config(backend, site, "archived")["db_name"] == db_name


def test_new_site_creates_everything_and_keeps_secrets_out_of_the_output(docker_client, env):
	cluster, backend = env
	site = "new.example.com"
	payload = new_site_payload(
		site,
		apps=("frappe", "testapp"),
		create_user={
			"email": "owner@example.com",
			"first_name": "O",
			"last_name": "W",
			"password": "********",
		},
	)
	output = "\n".join(run(docker_client, env, "New Site", None, payload))
	db_name = assert_site_database(cluster, site)
	assert apps_of(backend, site) == ["frappe", "testapp"]
	assert site_config(backend, site)["host_name"] == f"https://{site}"
	assert cluster.db.sql(
		"SELECT value FROM tabSingles WHERE field = 'enable_scheduler'", database=db_name
	) == [["1"]]
	assert cluster.db.sql(
		"SELECT parent FROM `tabHas Role` WHERE role = 'System Manager'", database=db_name
	) == [["owner@example.com"]]
	assert f"front {cluster.prefix}-{BENCH}-front answers for {site} (HTTP 200)" in output
	assert "bench --site new.example.com install-app testapp" in output
	for secret in (ADMIN, cluster.root_password, "u-Pw-7"):
		assert secret not in output
	assert privileged_users(cluster) == []
	# Press's step names, in order.
	assert HANDLERS["New Site"].step_names == [
		"New Site",
		"Install Apps",
		"Update Site Configuration",
		"Enable Scheduler",
		"Create User",
		"Bench Setup NGINX",
		"Reload NGINX",
	]


def test_site_lifecycle(docker_client, env):
	cluster, backend = env
	site = "life.example.com"
	run(docker_client, env, "New Site", None, new_site_payload(site))
	db_name = assert_site_database(cluster, site)

	run(docker_client, env, "Install App on Site", site, {"name": "testapp"})
	run(docker_client, env, "Install App on Site", site, {"name": "testapp"})  # again: nothing twice
	assert apps_of(backend, site) == ["frappe", "testapp"]

	# Deactivate: maintenance on, then wait while the site still has two queued jobs.
	put_file(backend, f"{SITES}/{site}/locks", "pending-jobs", "2")
	output = run(docker_client, env, "Deactivate Site", site, {})
	assert site_config(backend, site)["maintenance_mode"] == 1
	assert sum("NOT READY" in line for line in output) == 2
	run(docker_client, env, "Activate Site", site, {})
	assert site_config(backend, site)["maintenance_mode"] == 0

	run(
		docker_client,
		env,
		"Update Site Configuration",
		site,
		{"config": {"a": 1, "b": {"c": 2}}, "remove": []},
	)
	run(
		docker_client,
		env,
		"Update Site Configuration",
		site,
		{"config": {"d": "x"}, "remove": ["a", "missing"]},
	)
	config = site_config(backend, site)
	assert (
		"a" not in config and config["b"] == {"c": 2} and config["d"] == "x" and config["db_name"] == db_name
	)

	output = "\n".join(run(docker_client, env, "Clear Cache", site, {}))
	assert (
		f"bench --site {site} clear-cache" in output and f"bench --site {site} clear-website-cache" in output
	)

	for _ in range(2):
		run(docker_client, env, "Add Domain", site, {"domain": "www.life.example.org"})
	run(docker_client, env, "Add Domain", site, {"domain": "shop.life.example.org"})
	assert site_config(backend, site)["domains"] == ["www.life.example.org", "shop.life.example.org"]
	run(docker_client, env, "Remove Domain", site, {"path_args": {"domain": "www.life.example.org"}})
	assert site_config(backend, site)["domains"] == ["shop.life.example.org"]

	backend.exec_run(["bench", "--site", site, "set-maintenance-mode", "on"])
	run(docker_client, env, "Migrate Site", site, {"skip_failing_patches": True, "activate": True})
	assert site_config(backend, site)["maintenance_mode"] == 0
	assert cluster.db.sql("SELECT COUNT(*) FROM `tabPatch Log`", database=db_name) == [["1"]]

	run(docker_client, env, "Uninstall App from Site", site, {"path_args": {"app": "testapp"}})
	assert apps_of(backend, site) == ["frappe"]
	backups = backend.exec_run(["ls", f"{SITES}/{site}/private/backups"]).output.decode().split()
	assert any(name.endswith("-database.sql.gz") for name in backups)

	cluster.db.sql("INSERT INTO tabUser (name) VALUES ('someone')", database=db_name)
	run(docker_client, env, "Reinstall Site", site, {"admin_password": "********"})
	assert cluster.db.sql("SELECT COUNT(*) FROM tabUser WHERE name = 'someone'", database=db_name) == [["0"]]
	assert_site_database(cluster, site)
	assert privileged_users(cluster) == []


def test_deactivate_gives_up_on_a_busy_site_with_the_reason(docker_client, env):
	_, backend = env
	site = "busy.example.com"
	run(docker_client, env, "New Site", None, new_site_payload(site))
	put_file(backend, f"{SITES}/{site}/locks", "pending-jobs", "1000")
	with pytest.raises(SiteBusy, match="busy.example.com still has queued background jobs after 3s"):
		run(docker_client, env, "Deactivate Site", site, {}, found=IMPATIENT)


def test_two_sites_cannot_read_each_others_database(docker_client, env):
	cluster, backend = env
	for site in ("iso-a.example.com", "iso-b.example.com"):
		run(docker_client, env, "New Site", None, new_site_payload(site))
	mine = site_config(backend, "iso-a.example.com")
	theirs = database_name(BENCH, "iso-b.example.com")
	code, out = sql_as(
		cluster,
		mine["db_name"],
		mine["db_password"],
		f"SELECT COUNT(*) FROM `{mine['db_name']}`.tabUser",
		backend,
	)
	assert code == 0 and int(out) >= 1
	code, out = sql_as(
		cluster, mine["db_name"], mine["db_password"], f"SELECT * FROM `{theirs}`.tabUser", backend
	)
	assert code != 0 and "denied" in out


def test_new_site_resumes_after_a_crash_at_every_step(docker_client, env):
	cluster, backend = env
	steps = len(HANDLERS["New Site"].steps)
	for done in range(1, steps):
		site = f"crash{done}.example.com"
		payload = new_site_payload(site, apps=("frappe", "testapp"))
		run(docker_client, env, "New Site", None, payload, steps=done)
		run(docker_client, env, "New Site", None, payload)
		assert_site_database(cluster, site)
		assert apps_of(backend, site) == ["frappe", "testapp"]
		assert site_config(backend, site)["host_name"] == f"https://{site}"
	assert privileged_users(cluster) == []


def test_new_site_repairs_half_created_sites(docker_client, env):
	cluster, backend = env
	# A database without a site directory (crash inside bench new-site).
	site = "half-db.example.com"
	db_name = database_name(BENCH, site)
	cluster.db.sql(f"CREATE DATABASE `{db_name}`")
	output = run(docker_client, env, "New Site", None, new_site_payload(site))
	assert any("half created" in line for line in output)
	assert_site_database(cluster, site)
	# A site directory without its database.
	site = "half-dir.example.com"
	backend.exec_run(["mkdir", "-p", f"{SITES}/{site}"])
	put_file(
		backend, f"{SITES}/{site}", "site_config.json", json.dumps({"db_name": database_name(BENCH, site)})
	)
	run(docker_client, env, "New Site", None, new_site_payload(site))
	assert_site_database(cluster, site)
	assert apps_of(backend, site) == ["frappe"]
	assert privileged_users(cluster) == []


def test_failed_new_site_leaves_no_privileged_user_and_a_rerun_repairs(docker_client, env):
	cluster, backend = env
	site = "dbdown.example.com"
	common = json.loads(backend.exec_run(["cat", f"{SITES}/common_site_config.json"]).output)
	put_file(backend, SITES, "common_site_config.json", json.dumps({**common, "db_port": 3999}))
	try:
		with pytest.raises(CommandFailed, match="(?s)exited with code 1.*Can.t connect") as failure:
			run(docker_client, env, "New Site", None, new_site_payload(site))
		assert ADMIN not in str(failure.value)
		assert privileged_users(cluster) == []
	finally:
		put_file(backend, SITES, "common_site_config.json", json.dumps(common))
	run(docker_client, env, "New Site", None, new_site_payload(site))
	assert_site_database(cluster, site)


def archive_payload(**more) -> dict:
	return {"mariadb_root_password": "********", "force": False, **more}


def test_archive_site_waits_for_the_proxy_then_drops_everything(docker_client, env):
	cluster, backend = env
	site = "arch.example.com"
	run(docker_client, env, "New Site", None, new_site_payload(site))
	press = PressJobs({site: ["Pending", "Running", "Success"]})
	output = run(docker_client, env, "Archive Site", site, archive_payload(), press=press)
	assert press.looks == 3  # the step waited twice (without a worker: StepWaiting) before Press had it
	assert f"Press has recorded that the proxy no longer routes {site}" in output
	assert_site_gone(cluster, backend, site)
	backups = backend.exec_run(["ls", f"{SITES}/archived/{site}/private/backups"]).output.decode()
	assert "-database.sql.gz" in backups
	assert privileged_users(cluster) == []


def test_archive_site_failures_name_the_cause(docker_client, env):
	cluster, backend = env
	site = "arch-fail.example.com"
	run(docker_client, env, "New Site", None, new_site_payload(site))
	with pytest.raises(
		ProxyNotDone, match="Remove Site from Upstream job for arch-fail.example.com ended Failure"
	):
		run(docker_client, env, "Archive Site", site, archive_payload(), press=PressJobs({site: ["Failure"]}))
	with pytest.raises(StepWaiting, match="arch-fail.example.com \\(not sent yet\\)"):
		run(docker_client, env, "Archive Site", site, archive_payload(), press=PressJobs(), waits=0)
	# a site the proxy may still route is not dropped
	assert_site_database(cluster, site)
	run(docker_client, env, "Archive Site", site, archive_payload(), press=PressJobs({site: ["Success"]}))
	assert_site_gone(cluster, backend, site)


def test_a_site_whose_new_site_failed_before_making_it_can_be_archived(docker_client, env):
	"""Press calls such a site Broken; archiving it (Press then archives its bench) finds nothing to lose."""
	site = "never.example.com"
	press = PressJobs({site: ["Success"]})
	output = run(docker_client, env, "Archive Site", site, archive_payload(force=True), press=press)
	assert f"site {site} was never made in bench {BENCH}: nothing to back up" in output
	assert any("never made in this bench" in line for line in output)
	with pytest.raises(SiteError, match="Site never.example.com does not exist in bench bench-1"):
		run(docker_client, env, "Uninstall App from Site", site, {"path_args": {"app": "testapp"}})


def test_archive_site_resumes_after_a_crash_at_every_step(docker_client, env):
	cluster, backend = env
	steps = len(HANDLERS["Archive Site"].steps)
	for done in range(1, steps):
		site = f"arch-crash{done}.example.com"
		run(docker_client, env, "New Site", None, new_site_payload(site))
		run(
			docker_client,
			env,
			"Archive Site",
			site,
			archive_payload(),
			steps=done,
			press=PressJobs({site: ["Success"]}),
		)
		run(docker_client, env, "Archive Site", site, archive_payload(), press=PressJobs({site: ["Success"]}))
		assert_site_gone(cluster, backend, site)
		archived = backend.exec_run(["ls", f"{SITES}/archived"]).output.decode().split()
		assert [entry for entry in archived if entry.startswith(site)] == [site]
	# Crash inside the archive: database dropped, directory not yet moved.
	site = "arch-mid.example.com"
	run(docker_client, env, "New Site", None, new_site_payload(site))
	db_name = database_name(BENCH, site)
	cluster.db.drop_site_database(db_name)
	proxy_done = PressJobs({site: ["Success"]})
	with pytest.raises(
		SiteError, match=f"(?s)database {db_name} of site {site} is gone.*Fix: archive the site again"
	):
		run(docker_client, env, "Archive Site", site, archive_payload(), press=proxy_done)
	run(docker_client, env, "Archive Site", site, archive_payload(force=True), press=proxy_done)
	assert_site_gone(cluster, backend, site)
	assert privileged_users(cluster) == []
