"""Restore Site and New Site from Backup from the real S3 server into a real bench, data compared.

The backup is made by the Backup Site handler; restores get Press's payload shape (presigned URLs;
``private`` arrives masked, as the job store scrubs that key) plus the glue's recorded keys and
checksums under ``storage.backup``. Outcomes are checked with SQL as root and files in the bench.
"""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
from backup_support import (
	TABLE,
	JobRun,
	backed_up_site,
	bench_container,
	replaced_object,
	restore_payload,
	site_db,
	site_secrets,
	table_counts,
	table_fingerprint,
)

from press_selfhosted.engine.clients.storage import open_client
from press_selfhosted.engine.errors import ChecksumMismatch, ObjectMissing
from press_selfhosted.engine.jobs import restore
from press_selfhosted.engine.jobs.handlers import index

HANDLERS = index(restore.RestoreJobs().handlers())
SITE = "source.example.com"
FILES = f"/home/frappe/frappe-bench/sites/{SITE}"
DOWNLOADS = "/home/frappe/frappe-bench/sites/downloads"


@pytest.fixture(scope="module")
def env(docker_client, endpoints):
	"""A site with data, backed up; the fingerprint of its data at backup time. Its 10 MiB of public
	files make the public tar a file uploaded in parts, recorded by their composite checksum."""
	with backed_up_site(docker_client, endpoints, SITE, "restore", public_mib=10) as found:
		yield found


def without_migrate_log(counts: dict[str, int]) -> dict[str, int]:
	"""The restore sequence ends with `bench migrate`, which logs its patches: that table grows on purpose."""
	return {table: count for table, count in counts.items() if table != "tabPatch Log"}


def change_site(docker_client, cluster) -> None:
	db = site_db(SITE)
	cluster.db.sql(
		f"DELETE FROM `{TABLE}` WHERE name LIKE 'row-1%'; INSERT INTO `{TABLE}` VALUES ('new', 'x')",
		database=db,
	)
	backend = bench_container(docker_client, cluster)
	assert (
		backend.exec_run(
			["sh", "-c", f"echo changed > {FILES}/public/files/hello.txt"], user="frappe"
		).exit_code
		== 0
	)


def file_text(docker_client, cluster, path: str) -> str:
	code, output = bench_container(docker_client, cluster).exec_run(["cat", path])
	return output.decode() if code == 0 else f"<missing: {output.decode()}>"


def test_restore_site_brings_back_data_and_files_and_reports_apps(docker_client, env):
	cluster, target, data, source = env
	change_site(docker_client, cluster)
	assert table_fingerprint(cluster, site_db(SITE)) != source[0]

	run = JobRun(
		docker_client,
		cluster,
		HANDLERS["Restore Site"],
		SITE,
		restore_payload(target, data),
		site_secrets(cluster, target),
	)
	result = run.run()
	assert table_fingerprint(cluster, site_db(SITE)) == source[0]
	assert without_migrate_log(table_counts(cluster, site_db(SITE))) == without_migrate_log(source[1])
	assert file_text(docker_client, cluster, f"{FILES}/public/files/hello.txt") == "public\n"
	assert file_text(docker_client, cluster, f"{FILES}/private/files/secret.txt") == "private\n"
	assert [line.split()[0] for line in result["output"].splitlines()] == ["frappe"]
	assert all(entry["checked"] for entry in result["downloads"].values())
	code, _ = bench_container(docker_client, cluster).exec_run(
		["test", "-e", f"/home/frappe/frappe-bench/sites/downloads/restore-{run.job.id}-{SITE}"]
	)
	assert code == 1  # downloads deleted
	assert "admin-Secret-42" not in "\n".join(run.output)


def test_new_site_from_backup_equals_the_source_at_backup_time(docker_client, env):
	cluster, target, data, source = env
	new = "copy.example.com"
	payload = restore_payload(
		target,
		data,
		use_keys=restore.FILE_KINDS,
		name=new,
		config={},
		managed_database_config={},
		site_config="{}",
	)
	result = JobRun(
		docker_client, cluster, HANDLERS["New Site from Backup"], new, payload, site_secrets(cluster, target)
	).run()
	assert site_db(new) != site_db(SITE)
	assert table_fingerprint(cluster, site_db(new)) == source[0]
	assert without_migrate_log(table_counts(cluster, site_db(new))) == without_migrate_log(source[1])
	assert (
		file_text(docker_client, cluster, f"/home/frappe/frappe-bench/sites/{new}/public/files/hello.txt")
		== "public\n"
	)
	assert result["output"].split()[0] == "frappe"


def test_checksum_mismatch_fails_before_touching_the_site_naming_the_file(docker_client, env):
	cluster, target, data, _ = env
	change_site(docker_client, cluster)
	before = table_fingerprint(cluster, site_db(SITE))
	payload = restore_payload(target, data)
	payload["storage"]["backup"]["database"]["sha256"] = "0" * 64
	run = JobRun(
		docker_client, cluster, HANDLERS["Restore Site"], SITE, payload, site_secrets(cluster, target)
	)
	name = data["backups"]["database"]["file"]
	with pytest.raises(
		ChecksumMismatch, match=rf"The database backup file {name} of {SITE} has the checksum"
	):
		run.run()
	assert run.done == set()
	assert table_fingerprint(cluster, site_db(SITE)) == before
	folder = f"/home/frappe/frappe-bench/sites/downloads/restore-{run.job.id}-{SITE}"
	assert bench_container(docker_client, cluster).exec_run(["test", "-e", f"{folder}/{name}"]).exit_code == 1


def test_missing_object_fails_before_touching_the_site_naming_it(docker_client, env):
	cluster, target, data, _ = env
	before = table_fingerprint(cluster, site_db(SITE))
	payload = restore_payload(target, data, use_keys=("database",))
	payload["storage"]["backup"]["database"]["key"] = "backups/none/2026-01-01/gone-database.sql.gz"
	run = JobRun(
		docker_client, cluster, HANDLERS["Restore Site"], SITE, payload, site_secrets(cluster, target)
	)
	with pytest.raises(ObjectMissing, match="backups/none/2026-01-01/gone-database.sql.gz is not in bucket"):
		run.run()
	assert table_fingerprint(cluster, site_db(SITE)) == before


def test_download_checks_either_form_of_the_recorded_checksum(docker_client, env):
	"""The public tar, recorded by the composite of its parts: a stored object with other bytes fails
	the download naming it; recorded by the file's sha256 (a backup made before), it is checked too."""
	cluster, target, data, _ = env
	download = dataclasses.replace(HANDLERS["Restore Site"], steps=HANDLERS["Restore Site"].steps[:1])
	name = data["backups"]["public"]["file"]
	key = data["offsite"][name]
	recorded = data["checksums"][name]
	assert recorded.startswith("composite-sha256:")

	def downloaded(payload: dict) -> dict:
		run = JobRun(docker_client, cluster, download, SITE, payload, site_secrets(cluster, target))
		try:
			run.run()
			return run.data["downloads"]["public"]
		finally:
			bench_container(docker_client, cluster).exec_run(
				["rm", "-rf", f"{DOWNLOADS}/restore-{run.job.id}-{SITE}"]
			)

	payload = restore_payload(target, data, use_keys=("public",))
	assert downloaded(payload)["sha256"] == recorded
	with open_client(target) as s3:
		original = s3.get_object(Bucket=target.bucket, Key=key)["Body"].read()
		changed = original[:-1] + bytes([original[-1] ^ 1])
		mismatch = rf"The public backup file {name} of {SITE} has the checksum"
		with (
			replaced_object(s3, target, key, changed),
			pytest.raises(ChecksumMismatch, match=mismatch),
		):
			downloaded(payload)

	whole = hashlib.sha256(original).hexdigest()
	payload["storage"]["backup"]["public"]["sha256"] = whole
	found = downloaded(payload)
	assert (found["sha256"], found["checked"]) == (whole, True)
