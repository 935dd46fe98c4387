"""engine.database against a real MariaDB container on our dockerd."""

from __future__ import annotations

import pytest
from site_cluster import remove_cluster, start_cluster

from press_selfhosted.engine import naming
from press_selfhosted.engine.database import (
	ROOT_PASSWORD_FILE,
	DatabaseContainerMissing,
	DatabaseNotReady,
	MariaDBSpec,
	SQLFailed,
	database_name,
	ensure_mariadb,
	find_mariadb,
	temporary_user,
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
	assert container.labels == naming.labels(cluster.db_server.name, "mariadb")
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


def test_temporary_user_grants_and_is_dropped_on_success_and_failure(cluster):
	db = cluster.db
	name = database_name("bench-a", "tmp.example.com")
	with temporary_user(db, name) as login:
		assert login.user == f"{name}_limited"
		grants = " ".join(db.grants(login.user))
		assert "RELOAD, CREATE USER ON *.*" in grants
		assert f"ALL PRIVILEGES ON `{name}`.* TO `{name}_limited`@`%` WITH GRANT OPTION" in grants
	assert db.users(f"{name}_limited") == []
	with pytest.raises(RuntimeError), temporary_user(db, name):
		raise RuntimeError("bench crashed")
	assert db.users("%\\_limited") == []


def test_leftover_temporary_user_is_replaced(cluster):
	db = cluster.db
	name = database_name("bench-a", "leftover.example.com")
	db.sql(f"CREATE USER '{name}_limited'@'%' IDENTIFIED BY 'old'")
	with temporary_user(db, name):
		assert db.users(f"{name}_limited") == [f"{name}_limited"]
	assert db.users(f"{name}_limited") == []


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
