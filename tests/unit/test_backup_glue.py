"""The Frappe glue of backups through its pure mapping functions. Only Frappe itself is missing here:
these functions never import it (the module imports Frappe inside the functions that use documents)."""

from __future__ import annotations

import datetime
import json

from press_selfhosted.engine.policies import retention
from press_selfhosted.glue import backups as glue

CONFIG = {
	"endpoint_url": "https://minio.example.com",
	"default_bucket": "press-backups",
	"region": "",
	"minio_prefix": "backups",
	"verify_tls": 1,
	"ca_bundle": "",
	"addressing_style": "path",
	"keep_local_backup_files": 0,
}


def test_backup_bucket_follows_the_default_storage_configuration():
	assert glue.backup_bucket_values(CONFIG, "Default") == {
		"doctype": "Backup Bucket",
		"name": "press-backups",
		"bucket_name": "press-backups",
		"cluster": "Default",
		"endpoint_url": "https://minio.example.com",
		"region": "us-east-1",
	}


def test_storage_fields_carry_no_secret():
	fields = glue.storage_fields({**CONFIG, "access_key": "AK", "secret_key": "SK"})
	assert fields["prefix"] == "backups" and fields["bucket"] == "press-backups"
	assert "AK" not in json.dumps(fields) and "SK" not in json.dumps(fields)


def test_site_backup_fields_only_for_verified_uploads():
	data = {"bucket": "b", "prefix": "backups/s/2026-01-04", "checksums": {"x-database.sql.gz": "ab" * 32}}
	assert glue.site_backup_fields(data) == {
		"minio_bucket": "b",
		"minio_prefix": "backups/s/2026-01-04",
		"minio_checksums": json.dumps(data["checksums"], indent=1, sort_keys=True),
	}
	assert glue.site_backup_fields({"backups": {}}) == {}


def test_key_of_presigned_urls_path_and_virtual_host_style():
	url = "https://minio.example.com/press-backups/backups/s/2026-01-04/x%20y.sql.gz?X-Amz-Signature=abc"
	assert glue.key_of_url(url, "press-backups") == "backups/s/2026-01-04/x y.sql.gz"
	assert glue.key_of_url("https://press-backups.s3.example.com/k/f.tar?sig=1", "press-backups") == "k/f.tar"
	assert glue.key_of_url("********", "press-backups") is None


def test_recorded_backup_gives_keys_and_checksums_of_the_asked_files():
	backup = {
		"minio_prefix": "backups/s/2026-01-04",
		"minio_checksums": json.dumps({"d.sql.gz": "1" * 64, "p.tar": "2" * 64, "q.tar": "3" * 64}),
		"database_file": "d.sql.gz",
		"public_file": "p.tar",
		"private_file": "q.tar",
	}
	assert glue.recorded_backup(backup, {"database": "url", "public": "url", "private": None}) == {
		"database": {"key": "backups/s/2026-01-04/d.sql.gz", "sha256": "1" * 64},
		"public": {"key": "backups/s/2026-01-04/p.tar", "sha256": "2" * 64},
	}


def test_retention_rows_and_policy_mapping():
	rows = [
		{
			"name": "SB-1",
			"site": "s",
			"creation": datetime.datetime(2026, 1, 4, 3),
			"minio_prefix": "backups/s/2026-01-04",
			"minio_checksums": json.dumps({"d.sql.gz": "1" * 64}),
		}
	]
	assert glue.retention_backups(rows, {"s"}) == [
		retention.Backup(
			"SB-1", "s", datetime.datetime(2026, 1, 4, 3), ("backups/s/2026-01-04/d.sql.gz",), True
		)
	]
	# an archived site's backups carry it, and every backup the bucket it was stored in
	moved = [{**rows[0], "minio_bucket": "old-bucket"}]
	assert glue.retention_backups(moved, set(), {"s"}) == [
		retention.Backup(
			"SB-1",
			"s",
			datetime.datetime(2026, 1, 4, 3),
			("backups/s/2026-01-04/d.sql.gz",),
			False,
			site_archived=True,
			bucket="old-bucket",
		)
	]
	assert glue.retention_policy({"backup_rotation_scheme": "Grandfather-father-son"}).scheme == retention.GFS
	assert glue.retention_policy({"offsite_backups_count": 5}) == retention.Policy(
		retention.FIFO, keep_count=5
	)
