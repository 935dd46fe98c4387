"""Site usage measured from real containers: a bench container holding the site's files and the
Database Server's MariaDB container holding its database (made here with real tables and rows)."""

from __future__ import annotations

import json
import uuid

import pytest
from proxy_helpers import remove_servers
from site_cluster import SITES, put_file, start_bench, start_cluster

from press_selfhosted.engine.clients.mariadb import database_name
from press_selfhosted.engine.errors import SiteNotInBench
from press_selfhosted.engine.policies.usage import measure

SITE = "usage.example.com"
DB_NAME = database_name("bench-1", SITE)


@pytest.fixture(scope="module")
def setup(endpoints, docker_client):
	prefix = f"t{uuid.uuid4().hex[:8]}"
	try:
		cluster = start_cluster(docker_client, endpoints, prefix)
		bench = start_bench(docker_client, endpoints, cluster, "bench-1", front=False)
		cluster.db.record_database(SITE, DB_NAME, cluster.app_server.name, "bench-1")
		cluster.db.sql(
			f"CREATE DATABASE `{DB_NAME}`; "
			f"CREATE TABLE `{DB_NAME}`.`tabUser` (name VARCHAR(140) PRIMARY KEY, enabled INT, user_type VARCHAR(20)); "
			f"CREATE TABLE `{DB_NAME}`.`tabNote` (name VARCHAR(140) PRIMARY KEY, content LONGTEXT) ENGINE=InnoDB"
		)
		users = [
			("Administrator", 1, "System User"),
			("Guest", 1, "System User"),
			("a@example.com", 1, "System User"),
			("b@example.com", 1, "System User"),
			("c@example.com", 0, "System User"),
			("web@example.com", 1, "Website User"),
		]
		values = ", ".join(f"('{name}', {enabled}, '{kind}')" for name, enabled, kind in users)
		cluster.db.sql(f"INSERT INTO `tabUser` VALUES {values}", database=DB_NAME)
		cluster.db.sql(
			"INSERT INTO `tabNote` SELECT CONCAT('n', seq), REPEAT('x', 4000) FROM seq_1_to_2000",
			database=DB_NAME,
		)
		# InnoDB refreshes the sizes information_schema shows in the background; settle them now
		cluster.db.sql("ANALYZE TABLE `tabNote`, `tabUser`", database=DB_NAME)
		put_file(bench, SITES, f"{SITE}/site_config.json", json.dumps({"db_name": DB_NAME}))
		put_file(bench, SITES, f"{SITE}/public/files/a.txt", "a" * 3000)
		put_file(bench, SITES, f"{SITE}/private/files/b.bin", "b" * 5000)
		put_file(bench, SITES, f"{SITE}/private/backups/c.sql.gz", "c" * 7000)
		yield cluster, bench
	finally:
		# by the exact server labels of this test: other tests' containers come and go meanwhile
		remove_servers(docker_client, [f"{prefix}-app.local", f"{prefix}-db.local"], f"{prefix}-net")


def test_usage_is_measured_from_the_database_and_the_bench(setup):
	cluster, bench = setup
	usage = measure(bench, cluster.db, SITE)
	expected_database = int(
		cluster.db.sql(
			"SELECT SUM(DATA_LENGTH + INDEX_LENGTH) FROM information_schema.TABLES "
			f"WHERE TABLE_SCHEMA = '{DB_NAME}'"
		)[0][0]
	)
	assert usage.database == expected_database > 2000 * 4000  # the rows are really counted
	assert usage.users == 2  # enabled system users, not Administrator, Guest, disabled or website users
	# du counts the directories themselves too: at least the file bytes, at most a few blocks more
	assert 3000 <= usage.public < 3000 + 5 * 4096
	assert 5000 <= usage.private < 5000 + 5 * 4096
	assert 7000 <= usage.backups < 7000 + 5 * 4096
	assert usage.storage == usage.public + usage.private


def test_a_site_without_private_files_counts_zero(setup):
	cluster, bench = setup
	site = "nofiles.example.com"
	db_name = database_name("bench-1", site)
	cluster.db.create_site_database(db_name, "pw")
	cluster.db.sql(
		f"CREATE TABLE `{db_name}`.`tabUser` (name VARCHAR(140), enabled INT, user_type VARCHAR(20))"
	)
	put_file(bench, SITES, f"{site}/site_config.json", json.dumps({"db_name": db_name}))
	usage = measure(bench, cluster.db, site)  # recorded now: the database named for its bench and site
	assert (usage.private, usage.backups, usage.users) == (0, 0, 0)
	assert cluster.db.recorded_database(site) == db_name


def test_the_database_measured_is_the_recorded_one_not_the_configs(setup):
	"""A tenant naming another site's database in its site_config.json measures its own."""
	cluster, bench = setup
	site = "claims.example.com"
	db_name = database_name("bench-1", site)
	cluster.db.create_site_database(db_name, "pw")
	cluster.db.sql(
		f"CREATE TABLE `{db_name}`.`tabUser` (name VARCHAR(140), enabled INT, user_type VARCHAR(20))"
	)
	put_file(bench, SITES, f"{site}/site_config.json", json.dumps({"db_name": DB_NAME}))
	usage = measure(bench, cluster.db, site)
	assert usage.users == 0 and usage.database < 2000 * 4000


def test_a_site_not_in_the_bench_is_named(setup):
	cluster, bench = setup
	with pytest.raises(
		SiteNotInBench, match="missing.example.com has no site_config.json in bench container"
	):
		measure(bench, cluster.db, "missing.example.com")


def test_a_site_without_a_recorded_database_is_named(setup):
	cluster, bench = setup
	site = "nodb.example.com"
	put_file(bench, SITES, f"{site}/site_config.json", json.dumps({"db_name": "_absent_db"}))
	with pytest.raises(SiteNotInBench, match="No database is recorded for site nodb.example.com"):
		measure(bench, cluster.db, site)
