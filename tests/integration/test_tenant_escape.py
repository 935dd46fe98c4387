"""A tenant cannot escape its site through what the engine runs for it (issue 10).

Run as a tenant would: code in the bench writes its own ``site_config.json``, reads ``/proc`` of every
process of the bench, connects to MariaDB with its site's login; and as an operator would misuse a
dashboard action (Reinstall, Archive). Everything is checked from outside: grants in ``mysql.*``, the
other site's data, Docker's events, what a process of the bench saw.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid

import pytest
from fakes import PressJobs, Secrets, job_record
from site_cluster import (
	SITES,
	contexts,
	put_file,
	records,
	remove_cluster,
	run_steps,
	sql_as,
	start_bench,
	start_cluster,
)

from press_selfhosted.engine.clients.mariadb import password_hash
from press_selfhosted.engine.errors import ValidationError
from press_selfhosted.engine.jobs import handlers
from press_selfhosted.engine.jobs.restore import RestoreJobs
from press_selfhosted.engine.jobs.site_steps import SiteSettings
from press_selfhosted.engine.jobs.sites import SiteJobs

BENCH = "bench-1"
ADMIN = "adm-Tenant-Secret-91"
USER_PASSWORD = "usr-Tenant-Secret-37"
SETTINGS = SiteSettings(idle_timeout=30, idle_interval=0.2)
HANDLERS = handlers.index([*SiteJobs(SETTINGS).handlers(), *RestoreJobs().handlers()])


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
		"create_user.password": USER_PASSWORD,
		"password": USER_PASSWORD,
	}


def run(docker_client, env, job_type: str, site: str | None, payload: dict, jobs=None) -> list[str]:
	cluster, _ = env
	return run_steps(
		docker_client, cluster, HANDLERS[job_type], BENCH, site, payload, secrets(cluster), press_jobs=jobs
	)


def new_site(docker_client, env, site: str, **more) -> dict:
	payload = {"name": site, "apps": ["frappe"], "config": {}, "admin_password": "********", **more}
	run(docker_client, env, "New Site", None, payload)
	return site_config(env[1], site)


def site_config(backend, site: str) -> dict:
	code, out = backend.exec_run(["cat", f"{SITES}/{site}/site_config.json"])
	assert code == 0, out
	return json.loads(out)


def tenant_writes_config(backend, site: str, **changes) -> None:
	"""What code running in the bench can do: rewrite its own site's site_config.json."""
	config = {**site_config(backend, site), **changes}
	put_file(backend, f"{SITES}/{site}", "site_config.json", json.dumps(config))


def global_privileges(cluster) -> list[tuple[str, str]]:
	"""Accounts holding any privilege on *.* (root@localhost is the only one that may)."""
	rows = cluster.db.sql(
		"SELECT User, Host FROM mysql.user WHERE Select_priv = 'Y' OR Reload_priv = 'Y' "
		"OR Create_user_priv = 'Y' OR Super_priv = 'Y' OR Grant_priv = 'Y' OR Create_priv = 'Y'"
	)
	return sorted((user, host) for user, host in rows if (user, host) != ("root", "localhost"))


def victim_rows(cluster, db_name: str) -> int:
	return int(cluster.db.sql(f"SELECT COUNT(*) FROM `{db_name}`.tabUser WHERE name = 'precious'")[0][0])


@pytest.fixture
def victim(docker_client, env):
	cluster, _ = env
	site = f"victim-{uuid.uuid4().hex[:6]}.example.com"
	config = new_site(docker_client, env, site)
	cluster.db.sql(f"INSERT INTO `{config['db_name']}`.tabUser (name) VALUES ('precious')")
	return site, config["db_name"]


def test_a_backtick_in_db_name_never_reaches_root_sql(docker_client, env, victim):
	"""Reinstall Site (a dashboard action) used to paste site_config's db_name into root's GRANT."""
	cluster, backend = env
	site = f"evil-{uuid.uuid4().hex[:6]}.example.com"
	own = new_site(docker_client, env, site)
	injected = f"x`.* TO 'root'@'localhost'; GRANT ALL PRIVILEGES ON *.* TO '{own['db_name']}'@'%' WITH GRANT OPTION; -- "
	tenant_writes_config(backend, site, db_name=injected)
	# whatever becomes of the job, root must not run what the tenant wrote
	with contextlib.suppress(Exception):
		run(docker_client, env, "Reinstall Site", site, {"admin_password": "********"})
	assert global_privileges(cluster) == []
	assert victim_rows(cluster, victim[1]) == 1


def test_naming_another_sites_database_does_not_reach_it(docker_client, env, victim):
	cluster, backend = env
	site = f"greedy-{uuid.uuid4().hex[:6]}.example.com"
	own = new_site(docker_client, env, site)
	tenant_writes_config(backend, site, db_name=victim[1])
	run(docker_client, env, "Reinstall Site", site, {"admin_password": "********"})
	assert victim_rows(cluster, victim[1]) == 1
	# its own database was reinstalled, and its config names it again
	assert site_config(backend, site)["db_name"] == own["db_name"]
	tenant_writes_config(backend, site, db_name=victim[1])
	proxy_done = PressJobs({site: ["Success"]})
	# its backup, made with its own login, cannot read the other database: the archive stops there
	with pytest.raises(Exception, match="Access denied"):
		run(docker_client, env, "Archive Site", site, {"force": False}, jobs=proxy_done)
	assert victim_rows(cluster, victim[1]) == 1
	tenant_writes_config(backend, site, db_name=own["db_name"])
	run(docker_client, env, "Archive Site", site, {"force": False}, jobs=proxy_done)
	assert victim_rows(cluster, victim[1]) == 1
	assert not cluster.db.database_exists(own["db_name"])
	assert cluster.db.users(own["db_name"]) == []


def test_a_site_user_reaches_only_its_own_database_not_a_lookalike(docker_client, env):
	"""Frappe's grant pattern leaves ``_`` a wildcard: the site user could make `Xabc…` databases."""
	cluster, backend = env
	site = f"wild-{uuid.uuid4().hex[:6]}.example.com"
	config = new_site(docker_client, env, site)
	lookalike = "z" + config["db_name"][1:]
	code, out = sql_as(
		cluster, config["db_name"], config["db_password"], f"CREATE DATABASE `{lookalike}`", backend
	)
	assert code != 0 and "denied" in out, out
	assert not cluster.db.database_exists(lookalike)
	grants = cluster.db.grants(config["db_name"])
	assert grants[1:] == [f"GRANT ALL PRIVILEGES ON `\\{config['db_name']}`.* TO `{config['db_name']}`@`%`"]
	code, out = sql_as(
		cluster,
		config["db_name"],
		config["db_password"],
		f"SELECT COUNT(*) FROM `{config['db_name']}`.tabUser",
		backend,
	)
	assert code == 0 and int(out) >= 1, out


class Watch:
	"""What a tenant sees while jobs run: every command line and environment of the bench's processes
	(a process of the bench reads /proc of the others), Docker's events of the bench and MariaDB
	containers (the host's view), and any MariaDB account other than root with global privileges."""

	SNIFF = r"""
import os, sys, time
seen = set()
end = time.time() + float(sys.argv[2])
while time.time() < end and not os.path.exists(sys.argv[1]):
	for pid in os.listdir("/proc"):
		if pid.isdigit():
			for part in ("cmdline", "environ"):
				try:
					seen.add(open(f"/proc/{pid}/{part}", "rb").read().replace(b"\0", b" "))
				except OSError:
					pass
	time.sleep(0.002)
sys.stdout.buffer.write(b"\n".join(seen))
"""

	def __init__(self, docker_client, cluster, backend, seconds: float = 90):
		self.client, self.cluster, self.backend = docker_client, cluster, backend
		self.since = int(time.time()) - 1
		self.stop_file = f"/tmp/stop-sniffing-{uuid.uuid4().hex[:8]}"
		self.seen = b""
		self.privileged: set = set()
		self.stop = threading.Event()
		self.threads = [
			threading.Thread(target=self._sniff, args=(seconds,), daemon=True),
			threading.Thread(target=self._grants, daemon=True),
		]
		for thread in self.threads:
			thread.start()
		time.sleep(0.5)

	def _sniff(self, seconds: float) -> None:
		_, out = self.backend.exec_run(
			["python3", "-c", self.SNIFF, self.stop_file, str(seconds)], user="frappe"
		)
		self.seen = out

	def _grants(self) -> None:
		while not self.stop.is_set():
			self.privileged.update(global_privileges(self.cluster))

	def finish(self) -> tuple[bytes, list[str]]:
		self.stop.set()
		self.backend.exec_run(["touch", self.stop_file], user="frappe")
		for thread in self.threads:
			thread.join(timeout=120)
		events = self.client.events(
			since=self.since,
			until=int(time.time()) + 1,
			filters={"container": [self.backend.id, self.cluster.db.container.id]},
			decode=True,
		)
		return self.seen, [json.dumps(event) for event in events]


def test_secrets_never_reach_command_lines_environments_or_docker_events(docker_client, env):
	cluster, backend = env
	site = f"quiet-{uuid.uuid4().hex[:6]}.example.com"
	watch = Watch(docker_client, cluster, backend)
	user = {"email": "owner@example.com", "first_name": "O", "last_name": "W", "password": "********"}
	new_site(docker_client, env, site, create_user=user)
	run(docker_client, env, "Create User", site, {**user, "email": "second@example.com"})
	run(docker_client, env, "Run After Migrate Steps", site, {"admin_password": "********"})
	run(docker_client, env, "Reinstall Site", site, {"admin_password": "********"})
	config = site_config(backend, site)
	run(docker_client, env, "Archive Site", site, {"force": False}, jobs=PressJobs({site: ["Success"]}))
	seen, events = watch.finish()
	assert seen, "the sniffer saw nothing"
	hidden = {
		"admin password": ADMIN,
		"new user's password": USER_PASSWORD,
		"MariaDB root password": cluster.root_password,
		"site database password": config["db_password"],
		"its MariaDB hash": password_hash(config["db_password"])[1:],
	}
	for what, secret in hidden.items():
		assert secret.encode() not in seen, f"a process of the bench saw the {what}"
		assert not [event for event in events if secret in event], f"Docker's events carry the {what}"
	assert watch.privileged == set(), "a MariaDB account other than root held global privileges"


def test_restore_and_new_site_from_backup_need_no_privileged_user(docker_client, env, victim):
	"""The engine makes databases itself (as root, inside the MariaDB container); bench only loads them."""
	cluster, backend = env
	site = f"restored-{uuid.uuid4().hex[:6]}.example.com"
	own = new_site(docker_client, env, site)
	cluster.db.sql(f"INSERT INTO `{own['db_name']}`.tabUser (name) VALUES ('kept-by-backup')")
	out = backend.exec_run(["bench", "--site", site, "backup", "--verbose"], user="frappe").output.decode()
	dump = next(line.split()[1] for line in out.splitlines() if line.startswith("Database"))
	cluster.db.sql(f"DELETE FROM `{own['db_name']}`.tabUser WHERE name = 'kept-by-backup'")
	tenant_writes_config(backend, site, db_name=victim[1])
	watch = Watch(docker_client, cluster, backend)
	downloaded = {"downloads": {"database": {"path": dump, "size": 0, "sha256": "", "checked": False}}}
	record = job_record(
		HANDLERS["Restore Site"], cluster.app_server, {"apps": ["frappe"]}, BENCH, site, downloaded
	)
	step = {s.name: s.run for s in HANDLERS["Restore Site"].steps}["Restore Site"]
	ctx = contexts(docker_client, records(cluster), Secrets(secrets(cluster))).for_job(record)(
		lambda text: None
	)
	step(ctx)
	seen, events = watch.finish()
	assert (
		int(
			cluster.db.sql(f"SELECT COUNT(*) FROM `{own['db_name']}`.tabUser WHERE name = 'kept-by-backup'")[
				0
			][0]
		)
		== 1
	)
	assert victim_rows(cluster, victim[1]) == 1
	assert watch.privileged == set()
	assert ADMIN.encode() not in seen and cluster.root_password.encode() not in seen
	assert not [event for event in events if ADMIN in event or cluster.root_password in event]


def test_a_site_name_that_leaves_the_sites_folder_is_refused_before_anything_is_removed(docker_client, env):
	"""Cleaning a half-created ``../sites`` used to empty the bench's whole sites folder."""
	_, backend = env
	kept = f"kept-{uuid.uuid4().hex[:6]}.example.com"
	new_site(docker_client, env, kept)
	for name in ("../sites", "..", "a/../../sites", "x.example.com/..", "/home/frappe/frappe-bench/sites"):
		with pytest.raises(ValidationError, match="name: .* is not accepted"):
			run(docker_client, env, "New Site", None, {"name": name, "apps": ["frappe"], "config": {}})
	assert backend.exec_run(["test", "-f", f"{SITES}/{kept}/site_config.json"]).exit_code == 0
	assert backend.exec_run(["test", "-f", f"{SITES}/common_site_config.json"]).exit_code == 0


def test_a_restore_refuses_a_file_that_is_no_dump_before_emptying_the_database(docker_client, env):
	"""An encrypted backup (gpg) would be loaded as garbage into the emptied database."""
	cluster, backend = env
	site = f"enc-{uuid.uuid4().hex[:6]}.example.com"
	own = new_site(docker_client, env, site)
	cluster.db.sql(f"INSERT INTO `{own['db_name']}`.tabUser (name) VALUES ('still-here')")
	put_file(backend, f"{SITES}/{site}/private/backups", "x-database.sql.gz", "\x8c\x0d\x04\x09\x03\x02")
	downloaded = {"downloads": {"database": {"path": f"{SITES}/{site}/private/backups/x-database.sql.gz"}}}
	record = job_record(
		HANDLERS["Restore Site"], cluster.app_server, {"apps": ["frappe"]}, BENCH, site, downloaded
	)
	ctx = contexts(docker_client, records(cluster), Secrets(secrets(cluster))).for_job(record)(
		lambda text: None
	)
	step = {s.name: s.run for s in HANDLERS["Restore Site"].steps}["Restore Site"]
	with pytest.raises(Exception, match="x-database.sql.gz of .* is neither gzip nor SQL text"):
		step(ctx)
	rows = cluster.db.sql(f"SELECT COUNT(*) FROM `{own['db_name']}`.tabUser WHERE name = 'still-here'")
	assert rows == [["1"]]
