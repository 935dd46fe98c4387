"""engine.clients.mariadb against a real MariaDB container on our dockerd."""

from __future__ import annotations

import pytest
from site_cluster import remove_cluster, start_cluster

from press_selfhosted.engine import naming
from press_selfhosted.engine.clients.mariadb import (
	CAPABILITIES,
	PIDS_LIMIT,
	ROOT_PASSWORD_FILE,
	MariaDB,
	MariaDBSpec,
	database_name,
	ensure_mariadb,
	find_mariadb,
	grant_pattern,
	identifier,
	password_hash,
	quote,
)
from press_selfhosted.engine.errors import (
	DatabaseContainerMissing,
	DatabaseError,
	DatabaseNotReady,
	SQLFailed,
	UnsafeName,
)


@pytest.fixture(scope="module")
def cluster(docker_client, endpoints):
	import uuid

	prefix = f"t{uuid.uuid4().hex[:8]}"
	try:
		yield start_cluster(docker_client, endpoints, prefix)
	finally:
		remove_cluster(docker_client, prefix)


def test_container_is_labelled_with_volumes_and_no_password_in_env_or_labels(cluster, docker_client):
	container = docker_client.containers.get(f"{cluster.prefix}-mariadb")
	attrs = container.attrs
	assert {k: v for k, v in container.labels.items() if k != "press.spec"} == naming.labels(
		cluster.db_server.name, "mariadb"
	)
	host = attrs["HostConfig"]
	assert (host["CapDrop"], sorted(host["CapAdd"])) == (["ALL"], sorted(CAPABILITIES))
	assert host["SecurityOpt"] == ["no-new-privileges"] and host["PidsLimit"] == PIDS_LIMIT
	mounts = {mount["Destination"]: mount["Name"] for mount in attrs["Mounts"]}
	assert mounts["/var/lib/mysql"] == f"{cluster.prefix}-mariadb-data"
	assert cluster.network in attrs["NetworkSettings"]["Networks"]
	assert cluster.root_password not in str(attrs["Config"]["Env"]) + str(attrs["Config"]["Labels"])
	assert f"MARIADB_ROOT_PASSWORD_FILE={ROOT_PASSWORD_FILE}" in attrs["Config"]["Env"]
	assert cluster.db.sql("SELECT 1") == [["1"]]


def test_ensure_is_idempotent_and_restarts_a_stopped_container(cluster, docker_client, endpoints):
	spec = MariaDBSpec(cluster.db_server, endpoints["images"]["mariadb"])
	container = docker_client.containers.get(spec.container_name)
	container.stop(timeout=10)
	again = ensure_mariadb(docker_client, spec, cluster.root_password)
	assert again.container.id == container.id
	assert again.sql("SELECT 1") == [["1"]]
	names = [c.name for c in docker_client.containers.list(all=True, filters={"name": spec.container_name})]
	assert names == [spec.container_name]


def test_adopting_a_missing_container_names_the_fix(cluster, docker_client, endpoints):
	spec = MariaDBSpec(
		cluster.db_server, endpoints["images"]["mariadb"], adopt=f"{cluster.prefix}-operators-db"
	)
	with pytest.raises(DatabaseContainerMissing, match="no container named .*operators-db.*Fix: start"):
		ensure_mariadb(docker_client, spec, cluster.root_password)


def test_adopting_with_a_wrong_root_password_fails_with_the_fix(cluster, docker_client, endpoints):
	spec = MariaDBSpec(
		cluster.db_server, endpoints["images"]["mariadb"], adopt=f"{cluster.prefix}-mariadb", ready_timeout=5
	)
	with pytest.raises(
		DatabaseNotReady, match="Access denied.*Fix: set the Database Server's MariaDB root password"
	):
		ensure_mariadb(docker_client, spec, "not-the-password")


def test_find_falls_back_to_the_adopted_name(cluster, docker_client):
	found = find_mariadb(docker_client, cluster.db_server, "ignored", cluster.root_password)
	assert found.container.name == f"{cluster.prefix}-mariadb"
	other = cluster.db_server.__class__(**{**cluster.db_server.__dict__, "name": "someone-else"})
	with pytest.raises(DatabaseContainerMissing, match="no MariaDB container labelled"):
		find_mariadb(docker_client, other, "no-such-host", cluster.root_password)


def test_site_database_and_user_hold_rights_on_that_database_only(cluster):
	db = cluster.db
	name = database_name("bench-a", "own.example.com")
	db.create_site_database(name, "pw-1")
	assert db.database_exists(name)
	assert db.grants(name) == [
		f"GRANT USAGE ON *.* TO `{name}`@`%` IDENTIFIED BY PASSWORD '{password_hash('pw-1')}'",
		f"GRANT ALL PRIVILEGES ON `\\{name}`.* TO `{name}`@`%`",
	]
	db.sql(f"CREATE TABLE {identifier(name)}.t (a INT)")
	db.create_site_database(name, "pw-2")  # made again: empty, the old password gone
	assert db.sql(f"SHOW TABLES FROM {identifier(name)}") == []
	assert password_hash("pw-2") in db.grants(name)[0]
	db.drop_site_database(name)
	assert not db.database_exists(name) and db.users(name) == []


def test_names_that_are_not_the_engines_never_reach_sql(cluster):
	for bad in (
		"x`; DROP DATABASE mysql; -- ",
		"_0123",
		"mysql",
		"_0123456789ABCDEF",
		"_0123456789abcdef ",
		None,
	):
		with pytest.raises(UnsafeName, match="not a database name this platform makes"):
			identifier(bad)
		with pytest.raises(UnsafeName):
			cluster.db.create_site_database(bad, "pw")
	assert grant_pattern("_0123456789abcdef") == "`\\_0123456789abcdef`"


def test_the_record_of_site_databases(cluster):
	db = cluster.db
	a, b = database_name("bench-a", "a.example.com"), database_name("bench-a", "b.example.com")
	assert db.recorded_database("a.example.com") is None
	db.record_database("a.example.com", a, "app", "bench-a")
	db.record_database("a.example.com", a, "app", "bench-a")  # again: the same
	with pytest.raises(DatabaseError, match="is recorded for a.example.com"):
		db.record_database("b.example.com", a, "app", "bench-a")
	with pytest.raises(DatabaseError, match="a.example.com has _"):
		db.record_database("a.example.com", b, "app", "bench-a")
	db.move_record("a.example.com", "c.example.com", bench="bench-b")
	assert (db.recorded_database("a.example.com"), db.recorded_database("c.example.com")) == (None, a)
	assert db.recorded_site(a) == "c.example.com"
	# a site made before the record: its database is the one named for its bench and site
	db.create_site_database(b, "pw")
	assert db.database_of("b.example.com", "bench-a", "app") == b
	assert db.recorded_database("b.example.com") == b
	assert db.database_of("moved.example.com", "bench-a", "app") is None
	db.forget_database("c.example.com")
	assert db.recorded_database("c.example.com") is None
	# a site user cannot read the record
	assert "press_selfhosted" not in " ".join(db.grants(b))


def test_root_logs_in_from_inside_its_container_only(cluster):
	hosts = [row[0] for row in cluster.db.sql("SELECT Host FROM mysql.user WHERE User = 'root'")]
	assert hosts == ["localhost"]


def test_sql_and_the_root_login_travel_in_root_only_files_removed_after_use(cluster, docker_client):
	secret = "a \" quote ' back\\slash # and more"
	container = docker_client.containers.get(f"{cluster.prefix}-mariadb")
	db = MariaDB(cluster.db_server.name, container, cluster.root_password)
	db.sql(f"CREATE USER IF NOT EXISTS 'odd'@'localhost' IDENTIFIED BY {quote(secret)}")
	odd = MariaDB(cluster.db_server.name, container, secret, root_user="odd")
	assert odd.sql("SELECT CURRENT_USER()") == [["odd@localhost"]]
	db.sql("DROP USER 'odd'@'localhost'")
	code, out = container.exec_run(["sh", "-c", "ls -A /tmp"])
	assert code == 0 and ".press-" not in out.decode()


def test_sql_errors_name_the_server_and_hide_the_root_password(cluster):
	with pytest.raises(SQLFailed) as failure:
		cluster.db.sql("SELECT * FROM no_such_db.no_such_table")
	assert cluster.db_server.name in str(failure.value)
	assert "no_such_db" in str(failure.value)
	assert cluster.root_password not in str(failure.value)


def test_root_password_file_is_only_readable_by_root(cluster, docker_client):
	container = docker_client.containers.get(f"{cluster.prefix}-mariadb")
	code, out = container.exec_run(["stat", "-c", "%a %U", ROOT_PASSWORD_FILE])
	assert (code, out.decode().strip()) == (0, "400 root")
