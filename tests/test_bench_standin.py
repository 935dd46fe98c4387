"""The stand-in bench CLI inside a real bench container, against a real MariaDB container.

Other engineers build on what these tests pin down: the arguments the Agent passes, exit codes,
the files under ``sites/`` (site_config.json, Frappe's backup names and tar layout) and what ends up
in MariaDB (databases, the site's own user and its grants).
"""

from __future__ import annotations

import json
import re
import uuid

import pytest
from site_cluster import SITES, remove_cluster, sql_as, start_bench, start_cluster

from press_selfhosted.engine.database import database_name, temporary_user


@pytest.fixture(scope="module")
def env(docker_client, endpoints):
	prefix = f"t{uuid.uuid4().hex[:8]}"
	try:
		cluster = start_cluster(docker_client, endpoints, prefix)
		bench = start_bench(docker_client, endpoints, cluster, "bench-1", front=False)
		yield cluster, bench
	finally:
		remove_cluster(docker_client, prefix)


def bench(container, *argv: str) -> tuple[int, str, str]:
	code, (out, err) = container.exec_run(["bench", *argv], workdir="/home/frappe/frappe-bench", demux=True)
	return code, (out or b"").decode(), (err or b"").decode()


def read(container, path: str) -> str:
	code, out = container.exec_run(["cat", path])
	assert code == 0, out
	return out.decode()


def new_site(cluster, container, site: str, *extra: str) -> str:
	db_name = database_name("bench-1", site)
	with temporary_user(cluster.db, db_name) as login:
		code, out, err = bench(
			container,
			"new-site",
			"--no-mariadb-socket",
			"--mariadb-root-username",
			login.user,
			"--mariadb-root-password",
			login.password,
			"--admin-password",
			"admin-pw",
			"--db-name",
			db_name,
			*extra,
			site,
		)
	assert code == 0, out + err
	return db_name


@pytest.fixture(scope="module")
def site(env):
	cluster, container = env
	db_name = new_site(cluster, container, "one.example.com")
	return "one.example.com", db_name


def test_new_site_creates_database_user_and_files(env, site):
	cluster, container = env
	name, db_name = site
	config = json.loads(read(container, f"{SITES}/{name}/site_config.json"))
	assert config["db_name"] == db_name and len(config["db_password"]) >= 16
	grants = cluster.db.grants(db_name)
	assert any(f"ALL PRIVILEGES ON `{db_name}`.*" in grant for grant in grants)
	assert not any("ON *.*" in grant and "USAGE" not in grant for grant in grants)
	tables = {row[0] for row in cluster.db.sql("SHOW TABLES", database=db_name)}
	assert {"tabDocType", "tabUser", "tabInstalled Application", "__Auth"} <= tables
	admin_hash = cluster.db.sql(
		"SELECT password FROM `__Auth` WHERE name = 'Administrator'", database=db_name
	)
	assert admin_hash[0][0].startswith("$pbkdf2-sha256$") and "admin-pw" not in admin_hash[0][0]
	code, out = container.exec_run(["ls", f"{SITES}/{name}/private/backups", f"{SITES}/{name}/public/files"])
	assert code == 0, out
	code, out, _ = bench(container, "--site", name, "list-apps")
	assert (code, out.split()) == (0, ["frappe", "15.0.0", "main"])


def test_new_site_twice_is_refused(env, site):
	_, container = env
	code, _, err = bench(container, "new-site", "--mariadb-root-password", "x", "--db-name", "x", site[0])
	assert code == 1 and f"Site {site[0]} already exists" in err


def test_new_site_needs_the_root_login(env):
	_, container = env
	code, _, err = bench(
		container, "new-site", "--mariadb-root-password", "wrong", "--db-name", "_x", "x.example.com"
	)
	assert code == 1 and "Access denied" in err
	code, _, _ = bench(container, "--site", "x.example.com", "list-apps")
	assert code == 1


def test_install_list_execute_uninstall(env, site):
	cluster, container = env
	name, db_name = site
	assert bench(container, "--site", name, "install-app", "testapp", "--force")[0] == 0
	code, out, _ = bench(container, "--site", name, "list-apps")
	assert [line.split()[0] for line in out.splitlines()] == ["frappe", "testapp"]
	assert out.splitlines()[1].split()[1] == "0.1.0"
	assert (
		bench(container, "--site", name, "execute", "frappe.get_installed_apps")[1].strip()
		== '["frappe", "testapp"]'
	)
	assert "tabTestapp Record" in {row[0] for row in cluster.db.sql("SHOW TABLES", database=db_name)}
	code, _, err = bench(container, "--site", name, "install-app", "erpnext")
	assert code == 1 and "App erpnext not in apps.txt" in err
	assert (
		bench(container, "--site", name, "uninstall-app", "testapp", "--no-backup", "--yes", "--force")[0]
		== 0
	)
	assert "tabTestapp Record" not in {row[0] for row in cluster.db.sql("SHOW TABLES", database=db_name)}
	assert bench(container, "--site", name, "list-apps")[1].split()[0::3] == ["frappe"]


def test_config_maintenance_scheduler_users(env, site):
	cluster, container = env
	name, db_name = site
	for argv in (
		("set-maintenance-mode", "on"),
		("set-config", "-p", "limits", '{"users": 5}'),
		("set-config", "host_name", "https://one.example.com"),
		("scheduler", "enable"),
		("scheduler", "pause"),
		(
			"add-system-manager",
			"ops@example.com",
			"--first-name",
			"Op",
			"--last-name",
			"S",
			"--password",
			"pw1",
		),
		("set-admin-password", "new-admin"),
		("clear-cache",),
		("ready-for-migration",),
	):
		code, out, err = bench(container, "--site", name, *argv)
		assert code == 0, (argv, out, err)
	config = json.loads(read(container, f"{SITES}/{name}/site_config.json"))
	assert (
		config["maintenance_mode"] == 1
		and config["limits"] == {"users": 5}
		and config["pause_scheduler"] == 1
	)
	assert config["host_name"] == "https://one.example.com"
	assert cluster.db.sql(
		"SELECT value FROM tabSingles WHERE field = 'enable_scheduler'", database=db_name
	) == [["1"]]
	assert cluster.db.sql(
		"SELECT role FROM `tabHas Role` WHERE parent = 'ops@example.com'", database=db_name
	) == [["System Manager"]]
	assert bench(container, "--site", name, "set-maintenance-mode", "off")[0] == 0


def test_site_users_are_isolated(env, site):
	cluster, container = env
	other_db = new_site(cluster, container, "two.example.com")
	mine = json.loads(read(container, f"{SITES}/{site[0]}/site_config.json"))
	code, out = sql_as(
		cluster,
		mine["db_name"],
		mine["db_password"],
		f"SELECT COUNT(*) FROM `{mine['db_name']}`.tabUser",
		container,
	)
	assert code == 0, out
	code, out = sql_as(
		cluster, mine["db_name"], mine["db_password"], f"SELECT * FROM `{other_db}`.tabUser", container
	)
	assert code != 0 and "denied" in out


def test_backup_names_layout_and_restore(env, site):
	cluster, container = env
	name, db_name = site
	container.exec_run(["sh", "-c", f"echo hello > {SITES}/{name}/public/files/a.txt"])
	container.exec_run(["sh", "-c", f"echo secret > {SITES}/{name}/private/files/b.txt"])
	code, out, err = bench(container, "--site", name, "backup", "--with-files", "--verbose")
	assert code == 0, err
	listing = container.exec_run(["ls", f"{SITES}/{name}/private/backups"]).output.decode().split()
	stem = name.replace(".", "_")
	kinds = sorted(re.sub(r"^\d{8}_\d{6}-", "", entry) for entry in listing)
	assert kinds == sorted(
		f"{stem}-{kind}"
		for kind in ("database.sql.gz", "site_config_backup.json", "files.tar", "private-files.tar")
	)
	database = next(entry for entry in listing if entry.endswith("-database.sql.gz"))
	public = next(entry for entry in listing if entry.endswith("-files.tar") and "private" not in entry)
	private = next(entry for entry in listing if entry.endswith("-private-files.tar"))
	members = container.exec_run(["tar", "-tf", f"{SITES}/{name}/private/backups/{public}"]).output.decode()
	assert f"./{name}/public/files/a.txt" in members.split()
	# Change the site, then restore: the data and the files come back.
	cluster.db.sql("DELETE FROM tabUser WHERE name = 'Guest'", database=db_name)
	container.exec_run(["rm", f"{SITES}/{name}/public/files/a.txt", f"{SITES}/{name}/private/files/b.txt"])
	backups = f"{SITES}/{name}/private/backups"
	with temporary_user(cluster.db, db_name) as login:
		code, out, err = bench(
			container,
			"--site",
			name,
			"--force",
			"restore",
			"--mariadb-root-username",
			login.user,
			"--mariadb-root-password",
			login.password,
			"--with-public-files",
			f"{backups}/{public}",
			"--with-private-files",
			f"{backups}/{private}",
			f"{backups}/{database}",
		)
	assert code == 0, out + err
	assert cluster.db.sql("SELECT name FROM tabUser WHERE name = 'Guest'", database=db_name) == [["Guest"]]
	assert read(container, f"{SITES}/{name}/public/files/a.txt") == "hello\n"
	assert read(container, f"{SITES}/{name}/private/files/b.txt") == "secret\n"


def test_drop_site_moves_to_archived_and_drops_database_and_user(env):
	cluster, container = env
	db_name = new_site(cluster, container, "gone.example.com")
	with temporary_user(cluster.db, db_name) as login:
		code, out, err = bench(
			container,
			"drop-site",
			"--no-backup",
			"--force",
			"--root-login",
			login.user,
			"--root-password",
			login.password,
			"--archived-sites-path",
			"archived",
			"gone.example.com",
		)
	assert code == 0, out + err
	assert not cluster.db.database_exists(db_name)
	assert cluster.db.users(db_name) == []
	assert "db_name" in read(container, f"{SITES}/archived/gone.example.com/site_config.json")
	assert container.exec_run(["test", "-e", f"{SITES}/gone.example.com"]).exit_code == 1


def test_reinstall_wipes_to_frappe(env):
	cluster, container = env
	db_name = new_site(cluster, container, "re.example.com", "--install-app", "testapp")
	with temporary_user(cluster.db, db_name) as login:
		code, out, err = bench(
			container,
			"--site",
			"re.example.com",
			"reinstall",
			"--yes",
			"--admin-password",
			"a",
			"--mariadb-root-username",
			login.user,
			"--mariadb-root-password",
			login.password,
		)
	assert code == 0, out + err
	assert bench(container, "--site", "re.example.com", "list-apps")[1].split()[0::3] == ["frappe"]


def test_unknown_commands_and_missing_sites_fail_with_a_message(env):
	_, container = env
	code, _, err = bench(container, "frobnicate")
	assert code != 0 and "invalid choice: 'frobnicate'" in err
	code, _, err = bench(container, "--site", "nope.example.com", "migrate")
	assert code == 1 and "Site nope.example.com does not exist" in err
	code, _, err = bench(container, "--site", "nope.example.com", "execute", "frappe.other")
	assert code == 1
