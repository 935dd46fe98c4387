"""The stand-in bench CLI inside a real bench container, against a real MariaDB container.

Other engineers build on what these tests pin down: the arguments the Agent passes, exit codes,
the files under ``sites/`` (site_config.json, Frappe's backup names and tar layout) and what ends up
in MariaDB (databases, the site's own user and its grants).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.machinery
import json
import re
import types
import uuid

import pytest
from references import ROOT, frappe_cli_commands
from site_cluster import SITES, put_file, remove_cluster, sql_as, start_bench, start_cluster

from press_selfhosted.engine.clients import docker_exec
from press_selfhosted.engine.clients.mariadb import database_name

# A login with root's rights for the stand-in's own setup-db paths (new-site without --no-setup-db,
# restore, reinstall, drop-site: real Frappe's root-only parts, which the engine no longer drives).
ADMIN_LOGIN = ("standin_admin", "standin-admin-pw")
STANDIN = ROOT / "tests" / "images" / "bench" / "bench"


@pytest.fixture(scope="module")
def env(docker_client, endpoints):
	prefix = f"t{uuid.uuid4().hex[:8]}"
	try:
		cluster = start_cluster(docker_client, endpoints, prefix)
		user, password = ADMIN_LOGIN
		cluster.db.sql(
			f"CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'; "
			f"GRANT ALL PRIVILEGES ON *.* TO '{user}'@'%' WITH GRANT OPTION"
		)
		bench = start_bench(docker_client, endpoints, cluster, "bench-1", front=False)
		yield cluster, bench
	finally:
		remove_cluster(docker_client, prefix)


def bench(container, *argv: str, stdin: str | None = None) -> tuple[int, str, str]:
	how = docker_exec.Exec(stdin=stdin.encode() if stdin is not None else None)
	result = docker_exec.run(container, ["bench", *argv], how, check=False)
	return result.exit_code, result.stdout, result.stderr


def root_login() -> tuple[str, ...]:
	return ("--mariadb-root-username", ADMIN_LOGIN[0], "--mariadb-root-password", ADMIN_LOGIN[1])


def read(container, path: str) -> str:
	code, out = container.exec_run(["cat", path])
	assert code == 0, out
	return out.decode()


def new_site(cluster, container, site: str, *extra: str) -> str:
	"""As the engine makes a site: database and user made as root, site_config.json written, then
	``bench new-site --force --no-setup-db`` with the admin password on the prompt."""
	db_name = database_name("bench-1", site)
	cluster.db.create_site_database(db_name, f"pw-{db_name}")
	container.exec_run(["mkdir", "-p", f"{SITES}/{site}"], user="frappe")
	config = {"db_name": db_name, "db_password": f"pw-{db_name}", "db_type": "mariadb", "db_user": db_name}
	put_file(container, f"{SITES}/{site}", "site_config.json", json.dumps(config))
	code, out, err = bench(
		container,
		"new-site",
		site,
		"--force",
		"--no-setup-db",
		"--db-name",
		db_name,
		*extra,
		stdin="admin-pw\n",
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
	assert any(f"ALL PRIVILEGES ON `\\{db_name}`.*" in grant for grant in grants)
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


def test_new_site_needs_the_root_login_to_set_the_database_up(env):
	cluster, container = env
	code, _, err = bench(
		container, "new-site", "--mariadb-root-password", "wrong", "--db-name", "_x", "x.example.com"
	)
	assert code == 1 and "Access denied" in err
	code, _, _ = bench(container, "--site", "x.example.com", "list-apps")
	assert code == 1
	# with one, Frappe's own path: it makes the database and its user, then bootstraps
	db_name = database_name("bench-1", "setup.example.com")
	code, out, err = bench(
		container,
		"new-site",
		*root_login(),
		"--admin-password",
		"a",
		"--db-name",
		db_name,
		"setup.example.com",
	)
	assert code == 0, out + err
	assert cluster.db.database_exists(db_name) and cluster.db.users(db_name) == [db_name]


def test_new_site_without_setup_keeps_the_config_and_reads_the_password_prompt(env, site):
	"""Frappe's make_site_config keeps an existing site_config.json; with --no-setup-db no root login is
	needed; the Administrator password comes from getpass (standard input without a terminal)."""
	cluster, container = env
	name, db_name = site
	config = json.loads(read(container, f"{SITES}/{name}/site_config.json"))
	assert config == {
		"db_name": db_name,
		"db_password": f"pw-{db_name}",
		"db_type": "mariadb",
		"db_user": db_name,
	}
	stored = cluster.db.sql("SELECT password FROM `__Auth` WHERE name = 'Administrator'", database=db_name)
	salt, digest = stored[0][0].split("$")[3:5]
	assert hashlib.pbkdf2_hmac("sha256", b"admin-pw", salt.encode(), 29000).hex() == digest
	# no site_config.json and no root login: nothing to connect with
	code, _, err = bench(container, "new-site", "--no-setup-db", "noconf.example.com", stdin="x\n")
	assert code == 1 and "Access denied" in err


def test_passwords_are_read_from_the_prompt(env, site):
	cluster, container = env
	name, db_name = site
	assert (
		bench(container, "--site", name, "add-system-manager", "p@example.com", "--first-name", "P")[0] == 0
	)
	code, out, err = bench(container, "--site", name, "set-password", "p@example.com", stdin="user-pw\n")
	assert code == 0, out + err
	code, out, err = bench(container, "--site", name, "set-admin-password", stdin="admin-pw-2\n")
	assert code == 0, out + err
	for user, password in (("p@example.com", "user-pw"), ("Administrator", "admin-pw-2")):
		stored = cluster.db.sql(f"SELECT password FROM `__Auth` WHERE name = '{user}'", database=db_name)
		salt, digest = stored[0][0].split("$")[3:5]
		assert hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), 29000).hex() == digest
	code, _, err = bench(container, "--site", name, "set-password", "nobody@example.com", "x")
	assert code == 1 and "User nobody@example.com does not exist" in err


def test_every_option_of_the_stand_in_exists_in_frappe():
	"""The stand-in accepts only what real Frappe accepts (shared/frappe-cli/docker_exec.json)."""
	frappe_commands = json.loads(frappe_cli_commands().read_text())
	loader = importlib.machinery.SourceFileLoader("standin_bench", str(STANDIN))
	module = types.ModuleType("standin_bench")
	loader.exec_module(module)
	subparsers = next(a for a in module.parser()._actions if isinstance(a, argparse._SubParsersAction))
	checked = ("new-site", "set-password", "set-admin-password", "add-system-manager", "restore", "reinstall")
	for name in checked:
		real = {
			opt for param in frappe_commands[name]["params"] for opt in param["opts"] if opt.startswith("-")
		}
		ours = {opt for action in subparsers.choices[name]._actions for opt in action.option_strings}
		assert ours - {"-h", "--help"} <= real, (name, sorted(ours - real))


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
	code, out, err = bench(
		container,
		"--site",
		name,
		"--force",
		"restore",
		*root_login(),
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
	code, out, err = bench(
		container,
		"drop-site",
		"--no-backup",
		"--force",
		"--root-login",
		ADMIN_LOGIN[0],
		"--root-password",
		ADMIN_LOGIN[1],
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
	new_site(cluster, container, "re.example.com", "--install-app", "testapp")
	code, out, err = bench(
		container, "--site", "re.example.com", "reinstall", "--yes", "--admin-password", "a", *root_login()
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
