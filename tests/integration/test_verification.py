"""Checksum re-checks in the real S3 server and restore drills on a real bench.

The drill gets its StepContexts from the executor's Contexts (the Frappe glue does the same);
outcomes are checked with SQL as root and in the bench container.
"""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
from backup_support import (
	BENCH,
	backed_up_site,
	bench_container,
	replaced_object,
	site_db,
	site_secrets,
)
from fakes import Secrets
from site_cluster import contexts, records

from press_selfhosted.engine.agent import verification
from press_selfhosted.engine.clients.storage import open_client
from press_selfhosted.engine.errors import StorageError
from press_selfhosted.engine.jobs.handlers import JobRecord, JobRequest

SITE = "checked.example.com"


@pytest.fixture(scope="module")
def env(docker_client, endpoints):
	# 10 MiB of public files: that tar is uploaded in parts and recorded by their composite checksum
	with backed_up_site(docker_client, endpoints, SITE, "verify", public_mib=10) as found:
		yield found


def recorded(data: dict) -> dict[str, tuple[int, str]]:
	return {
		data["offsite"][entry["file"]]: (entry["size"], data["checksums"][entry["file"]])
		for entry in data["backups"].values()
	}


def test_recheck_reports_each_file_and_finds_a_changed_object(env):
	_, target, data, _ = env
	files = recorded(data)
	with open_client(target) as s3:
		assert all(check.ok for check in verification.recheck(s3, target, files))
		damaged = data["offsite"][data["backups"]["site_config"]["file"]]
		original = s3.get_object(Bucket=target.bucket, Key=damaged)["Body"].read()
		s3.put_object(Bucket=target.bucket, Key=damaged, Body=original.replace(b"{", b"[", 1))
		try:
			checks = {check.key: check for check in verification.recheck(s3, target, files)}
		finally:
			s3.put_object(Bucket=target.bucket, Key=damaged, Body=original)
	assert [key for key, check in checks.items() if not check.ok] == [damaged]
	assert f"The object {damaged} in bucket {target.bucket!r} has the checksum" in checks[damaged].message


def test_recheck_finds_other_bytes_under_a_checksum_of_parts_and_verifies_older_sha256s(env):
	"""The public tar is recorded by the composite of its parts. Other bytes of the same size uploaded
	in the same parts (so S3 keeps a composite of the same kind) are found by the daily read-back. A
	backup recorded with each file's sha256, as backups were before, still verifies."""
	_, target, data, _ = env
	files = recorded(data)
	public = data["offsite"][data["backups"]["public"]["file"]]
	assert files[public][1].startswith("composite-sha256:8388608:")
	with open_client(target) as s3:
		original = s3.get_object(Bucket=target.bucket, Key=public)["Body"].read()
		with replaced_object(s3, target, public, original[:-1] + bytes([original[-1] ^ 1])):
			checks = {check.key: check for check in verification.recheck(s3, target, files)}
		assert [key for key, check in checks.items() if not check.ok] == [public]
		assert f"but {files[public][1]} was recorded" in checks[public].message

		older = {}
		for key, (size, _) in files.items():
			body = s3.get_object(Bucket=target.bucket, Key=key)["Body"].read()
			older[key] = (size, hashlib.sha256(body).hexdigest())
		assert all(check.ok for check in verification.recheck(s3, target, older))

		unknown = verification.recheck(s3, target, {public: (files[public][0], "md5:0123")})
		assert not unknown[0].ok and "is not a backup checksum" in unknown[0].message


def test_an_s3_outage_is_no_verdict_on_the_backups(env):
	"""A re-check that cannot reach S3 raises: the daily re-check must not mark good backups Unavailable."""
	_, target, data, _ = env
	down = dataclasses.replace(target, endpoint_url="http://127.0.0.1:9", connect_timeout=1)
	with open_client(down) as s3, pytest.raises(StorageError):
		verification.recheck(s3, down, recorded(data))
	wrong_keys = dataclasses.replace(target, secret_key="not-the-key")
	with open_client(wrong_keys) as s3, pytest.raises(StorageError):
		verification.recheck(s3, wrong_keys, recorded(data))


def drill_source(cluster) -> JobRecord:
	"""What the glue hands the drill for the site: a job record of no job of Press's (as run_restore_drills)."""
	request = JobRequest(
		"Restore Drill", cluster.app_server.name, "Server", "POST", "", BENCH, SITE, {"apps": ["frappe"]}
	)
	return JobRecord.of(request, 0)


def drill(docker_client, env, expected: dict[str, int], output: list[str] | None = None):
	cluster, target, data, _ = env
	source = drill_source(cluster)
	backup = {
		kind: {
			"key": data["offsite"][data["backups"][kind]["file"]],
			"sha256": data["checksums"][data["backups"][kind]["file"]],
		}
		for kind in ("database", "public", "private")
	}
	storage = {"endpoint_url": target.endpoint_url, "bucket": target.bucket, "region": target.region}
	found = contexts(docker_client, records(cluster), Secrets(site_secrets(cluster, target)))
	echo = None if output is None else output.append
	return verification.restore_drill(source, backup, expected, found, storage, echo)


def assert_drill_site_gone(docker_client, env, result) -> None:
	cluster = env[0]
	assert not cluster.db.database_exists(site_db(result.drill_site))
	assert cluster.db.users(site_db(result.drill_site)) == []
	sites = (
		bench_container(docker_client, cluster)
		.exec_run(["ls", "/home/frappe/frappe-bench/sites"])
		.output.decode()
	)
	assert result.drill_site not in sites and "restore-" not in sites


def test_restore_drill_passes_and_removes_the_throwaway_site(docker_client, env):
	_, _, _, (_, counts) = env
	output: list[str] = []
	result = drill(docker_client, env, counts, output)
	assert result.ok, result.message
	# a copy of a production site in its production bench: no scheduler, no email
	log = "\n".join(output)
	assert "scheduler enable" not in log
	assert "site_config.json: set pause_scheduler, set mute_emails" in log
	assert result.drill_site.startswith("drill-") and result.drill_site.endswith(f".{SITE}")
	assert {t: c for t, c in result.tables.items() if t != "tabPatch Log"} == {
		t: c for t, c in counts.items() if t != "tabPatch Log"
	}
	assert_drill_site_gone(docker_client, env, result)


def test_restore_drill_reports_differences_and_still_cleans_up(docker_client, env):
	_, _, _, (_, counts) = env
	expected = {**counts, "tabBackup Probe": counts["tabBackup Probe"] + 1}
	result = drill(docker_client, env, expected)
	assert not result.ok
	assert "tabBackup Probe: 51 at backup, 50 restored" in result.message
	assert_drill_site_gone(docker_client, env, result)


def test_failed_restore_drill_is_reported_and_cleaned_up(docker_client, env):
	cluster, target, data, (_, counts) = env
	source = drill_source(cluster)
	broken = {"database": {"key": data["offsite"][data["backups"]["database"]["file"]], "sha256": "0" * 64}}
	storage = {"endpoint_url": target.endpoint_url, "bucket": target.bucket, "region": target.region}
	found = contexts(docker_client, records(cluster), Secrets(site_secrets(cluster, target)))
	result = verification.restore_drill(source, broken, counts, found, storage)
	assert not result.ok
	assert f"The restore drill of {SITE} failed: The database backup file" in result.message
	assert_drill_site_gone(docker_client, env, result)
