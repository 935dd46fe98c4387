"""Backup Site on a real site of a real bench container into the real S3 server, with faults.

Steps run as the executor runs them (backup_support.JobRun: one StepContext per step, secrets from a
dict standing for the Password fields); outcomes are checked in S3 and in the bench container.
"""

from __future__ import annotations

import gzip
import threading
import time
import uuid
from urllib.parse import urlsplit

import pytest
from backup_support import (
	BENCH,
	TABLE,
	FaultyProxy,
	JobRun,
	bench_container,
	checksum_of,
	make_site,
	object_keys,
	offsite_payload,
	s3_target,
	scratch_bucket,
	site_secrets,
)
from site_cluster import remove_cluster, start_bench, start_cluster

from press_selfhosted.engine.clients import docker_exec
from press_selfhosted.engine.clients.storage import open_client
from press_selfhosted.engine.errors import (
	BackupError,
	StorageAuthError,
	StorageBucketMissing,
	StorageUnreachable,
)
from press_selfhosted.engine.jobs import backups
from press_selfhosted.engine.jobs.handlers import index

HANDLER = index(backups.BackupJobs().handlers())["Backup Site"]
SITE = "shop.example.com"


@pytest.fixture(scope="module")
def env(docker_client, endpoints):
	prefix = f"t{uuid.uuid4().hex[:8]}"
	with scratch_bucket(endpoints, f"t-backup-{prefix}") as target:
		try:
			cluster = start_cluster(docker_client, endpoints, prefix)
			start_bench(docker_client, endpoints, cluster, BENCH, front=False)
			make_site(docker_client, cluster, SITE, target, public_mib=20)
			yield cluster, target
		finally:
			remove_cluster(docker_client, prefix)


def job(docker_client, env, date: str, target=None, **payload) -> JobRun:
	cluster, bucket = env
	target = target or bucket
	full = {"with_files": True, **offsite_payload(target, SITE, date), **payload}
	return JobRun(docker_client, cluster, HANDLER, SITE, full, site_secrets(cluster, target))


def backup_files(docker_client, env) -> list[str]:
	cluster, _ = env
	result = docker_exec.run(
		bench_container(docker_client, cluster),
		["ls", f"/home/frappe/frappe-bench/sites/{SITE}/private/backups"],
	)
	return result.stdout.split()


def test_backup_site_streams_every_file_to_s3_verified_with_press_shaped_data(docker_client, env):
	_, bucket = env
	data = job(docker_client, env, "2026-01-04").run()

	assert set(data["backups"]) == {"database", "site_config", "public", "private"}
	folder = f"backups/{SITE}/2026-01-04"
	assert data["bucket"] == bucket.bucket and data["prefix"] == folder
	with open_client(bucket) as s3:
		for kind, entry in data["backups"].items():
			assert set(entry) == {"file", "size", "url", "path"}
			assert entry["url"] == f"https://{SITE}/backups/{entry['file']}"
			key = data["offsite"][entry["file"]]
			assert key == f"{folder}/{entry['file']}"
			body = s3.get_object(Bucket=bucket.bucket, Key=key)["Body"].read()
			assert len(body) == entry["size"]
			assert checksum_of(body, data["checksums"][entry["file"]]) == data["checksums"][entry["file"]]
			if kind == "database":
				assert entry["file"].endswith("-shop_example_com-database.sql.gz")
				assert f"CREATE TABLE `{TABLE}`".encode() in gzip.decompress(body)
		assert data["backups"]["public"]["size"] > 20 * 1024 * 1024  # multipart with the default part size
		assert object_keys(s3, bucket.bucket, folder + "/") == sorted(data["offsite"].values())
	assert backup_files(docker_client, env) == []  # local copies removed after the verified upload


def test_keep_local_copies_when_asked_and_refuse_missing_site(docker_client, env):
	run = job(
		docker_client, env, "2026-01-05", keep_files_locally_after_offsite_backup=True, with_files=False
	)
	data = run.run()
	assert set(data["backups"]) == {"database", "site_config"}
	assert sorted(backup_files(docker_client, env)) == sorted(e["file"] for e in data["backups"].values())
	docker_exec.run(
		bench_container(docker_client, env[0]),
		["sh", "-c", f"rm -f /home/frappe/frappe-bench/sites/{SITE}/private/backups/*"],
	)

	cluster, bucket = env
	missing = JobRun(
		docker_client,
		cluster,
		HANDLER,
		"nowhere.example.com",
		offsite_payload(bucket, "nowhere.example.com"),
		site_secrets(cluster, bucket),
	)
	with pytest.raises(BackupError, match="Site nowhere.example.com does not exist in bench bench-1"):
		missing.run()


def assert_failed_cleanly(docker_client, env, run: JobRun, folder_date: str) -> None:
	_, bucket = env
	assert "Upload Site Backup to S3" not in run.done
	assert "checksums" not in run.data or "database" not in str(run.data.get("offsite", {}))
	with open_client(bucket) as s3:
		assert object_keys(s3, bucket.bucket, f"backups/{SITE}/{folder_date}/") == []
		assert s3.list_multipart_uploads(Bucket=bucket.bucket).get("Uploads", []) == []


def test_wrong_keys_fail_naming_the_fix_and_the_retry_succeeds(docker_client, env):
	cluster, bucket = env
	wrong = s3_target(
		{"s3": {**bucket.__dict__, "endpoint_url": bucket.endpoint_url}},
		bucket.bucket,
		secret_key="bad-secret-1",
	)
	run = job(docker_client, env, "2026-01-06", target=wrong)
	with pytest.raises(StorageAuthError, match="refused the secret key") as caught:
		run.run()
	assert "bad-secret-1" not in str(caught.value)
	assert_failed_cleanly(docker_client, env, run, "2026-01-06")

	run.secrets = site_secrets(cluster, bucket)  # the operator fixed the Storage Configuration
	data = run.run()
	assert len(data["checksums"]) == 4


def test_missing_bucket_fails_and_the_retry_succeeds_once_it_exists(docker_client, env):
	_, bucket = env
	name = f"t-late-{uuid.uuid4().hex[:8]}"
	run = job(docker_client, env, "2026-01-07")
	run.job.payload["offsite"]["bucket"] = name
	with pytest.raises(StorageBucketMissing, match=f"The bucket '{name}' does not exist"):
		run.run()
	with open_client(bucket) as s3:
		s3.create_bucket(Bucket=name)
		try:
			data = run.run()
			assert sorted(object_keys(s3, name)) == sorted(data["offsite"].values())
		finally:
			for key in object_keys(s3, name):
				s3.delete_object(Bucket=name, Key=key)
			s3.delete_bucket(Bucket=name)


def test_s3_stopping_mid_upload_fails_without_partial_objects_and_the_retry_succeeds(
	docker_client, env, endpoints
):
	_, bucket = env
	upstream = urlsplit(bucket.endpoint_url)
	proxy = FaultyProxy(upstream.hostname, upstream.port)
	try:
		through = s3_target(endpoints, bucket.bucket, endpoint_url=proxy.url)
		run = job(docker_client, env, "2026-01-08", target=through)
		proxy.go_down_after(8 * 1024 * 1024)  # inside the 20 MiB public files
		with pytest.raises(StorageUnreachable, match=f"Cannot reach the S3 endpoint {proxy.url}"):
			run.run()
		proxy.come_back()
		with open_client(bucket) as s3:
			public = run.data["backups"]["public"]["file"]
			assert f"backups/{SITE}/2026-01-08/{public}" not in object_keys(s3, bucket.bucket)
		data = run.run()
		assert len(data["checksums"]) == 4
		with open_client(bucket) as s3:
			assert s3.list_multipart_uploads(Bucket=bucket.bucket).get("Uploads", []) == []
	finally:
		proxy.close()


def stop_during_backup(container, run: JobRun) -> list[BaseException]:
	"""Runs the job and stops the container while `bench backup` dumps or tars; the job's failure (if caught)."""
	failure: list[BaseException] = []

	def backup() -> None:
		try:
			run.run()
		except BaseException as error:  # noqa: BLE001 - examined by the test
			failure.append(error)

	worker = threading.Thread(target=backup)
	worker.start()
	while worker.is_alive():
		processes = " ".join(" ".join(p) for p in container.top(ps_args="-eo pid,args")["Processes"] or [])
		if "tar -cf" in processes or "mariadb-dump" in processes:
			container.stop(timeout=0)
			break
		time.sleep(0.02)
	worker.join(120)
	return failure


def test_bench_container_stopped_mid_backup_fails_and_the_retry_succeeds(docker_client, env):
	cluster, _ = env
	container = bench_container(docker_client, cluster)
	for attempt in range(5):  # the window is short: a backup that finished before the stop is tried again
		run = job(docker_client, env, f"2026-01-1{attempt}")
		failure = stop_during_backup(container, run)
		if failure:
			break
	assert failure, "the container was never stopped while `bench backup` ran"
	assert "Backup Site" not in run.done
	assert "backups" not in run.data
	assert f"container {container.name}" in str(failure[0])

	container.start()  # the sites volume kept the site and common_site_config.json
	data = run.run()
	assert len(data["checksums"]) == 4
