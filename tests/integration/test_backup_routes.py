"""Which way Backup Site reads its files: from the sites volume on this host, or through Docker.

The Docker host of these tests is this machine (a unix socket here, volumes under its data root,
readable by the test process), so the backup step reads the files from the volume's mountpoint. The
same dockerd reached as a ``tcp://`` host (a relay on loopback, as a Docker host on another machine
is reached) is a host whose volumes are not on our disk: the files stream through Docker's archive
API. Outcomes are checked in S3 (content, S3's own SHA256 checksum) and in the bench container.
"""

from __future__ import annotations

import base64
import uuid
from concurrent.futures import Future

import docker
import pytest
from backup_support import (
	BENCH,
	JobRun,
	UnixRelay,
	bench_container,
	checksum_in,
	checksum_of,
	make_site,
	object_keys,
	offsite_payload,
	scratch_bucket,
	site_secrets,
)
from site_cluster import remove_cluster, start_bench, start_cluster

from press_selfhosted.engine.clients import transfer, volume_files
from press_selfhosted.engine.clients.storage import open_client
from press_selfhosted.engine.errors import TransferError, UnsafeVolumePath
from press_selfhosted.engine.jobs import backups
from press_selfhosted.engine.jobs.handlers import index

HANDLER = index(backups.BackupJobs().handlers())["Backup Site"]
SITE = "routes.example.com"
UPLOAD = "Upload Site Backup to S3"
BACKUPS = f"/home/frappe/frappe-bench/sites/{SITE}/private/backups"


@pytest.fixture(scope="module")
def env(docker_client, endpoints):
	prefix = f"t{uuid.uuid4().hex[:8]}"
	with scratch_bucket(endpoints, f"t-routes-{prefix}") as target:
		try:
			cluster = start_cluster(docker_client, endpoints, prefix)
			start_bench(docker_client, endpoints, cluster, BENCH, front=False)
			make_site(docker_client, cluster, SITE, target, public_mib=20)
			yield cluster, target
		finally:
			remove_cluster(docker_client, prefix)


@pytest.fixture
def tcp_docker(endpoints):
	"""The same dockerd as a tcp:// Docker host."""
	relay = UnixRelay(endpoints["docker"]["base_url"].removeprefix("unix://"))
	client = docker.DockerClient(base_url=relay.docker_url, timeout=120)
	try:
		yield client
	finally:
		client.close()
		relay.close()


def job(client, env, date: str) -> JobRun:
	cluster, target = env
	payload = {"with_files": True, "keep_files_locally_after_offsite_backup": True}
	payload.update(offsite_payload(target, SITE, date))
	return JobRun(client, cluster, HANDLER, SITE, payload, site_secrets(cluster, target))


def backed_up_only(run: JobRun) -> JobRun:
	"""Runs the Backup Site step alone (the files are made and recorded, nothing is uploaded yet)."""
	run.done.add(UPLOAD)
	run.run()
	run.done.discard(UPLOAD)
	return run


def in_bench(client, env, script: str) -> None:
	result = bench_container(client, env[0]).exec_run(["sh", "-c", script], user="frappe")
	assert result.exit_code == 0, result.output


def uploaded_lines(run: JobRun) -> list[str]:
	return [line for line in run.output if " -> s3://" in line]


def assert_stored_as_in_the_bench(docker_client, env, data: dict) -> None:
	"""Every object holds the bench's file byte for byte, and S3 keeps the SHA256 checksum of what it got:
	the recorded one (a file of one PUT: its sha256; in parts: the composite of the parts)."""
	cluster, target = env
	container = bench_container(docker_client, cluster)
	with open_client(target) as s3:
		for entry in data["backups"].values():
			recorded = data["checksums"][entry["file"]]
			assert checksum_in(container, entry["path"], recorded) == recorded
			key = data["offsite"][entry["file"]]
			assert (
				checksum_of(s3.get_object(Bucket=target.bucket, Key=key)["Body"].read(), recorded) == recorded
			)
			kept = s3.head_object(Bucket=target.bucket, Key=key, ChecksumMode="ENABLED")["ChecksumSHA256"]
			if entry["size"] > transfer.TUNING.part_size:
				# 20 MiB and more in 8 MiB parts: S3's composite of the parts, recorded with the part size
				assert kept.endswith("-3")
				assert recorded == f"composite-sha256:{transfer.TUNING.part_size}:{kept}"
			else:
				assert bytes.fromhex(recorded) == base64.b64decode(kept)


def test_a_local_docker_host_uploads_from_the_sites_volume_and_a_rerun_uploads_only_what_is_missing(
	docker_client, env
):
	cluster, target = env
	run = job(docker_client, env, "2026-02-01")
	data = run.run()
	volume = f"{cluster.prefix}-{BENCH}-sites"
	assert len(uploaded_lines(run)) == 4
	assert all(f"read from volume {volume} on this host" in line for line in uploaded_lines(run))
	assert_stored_as_in_the_bench(docker_client, env, data)

	# the run died after recording three of the four files: the rerun uploads the fourth only
	database = data["backups"]["database"]["file"]
	with open_client(target) as s3:
		etags = {
			key: s3.head_object(Bucket=target.bucket, Key=key)["ETag"] for key in data["offsite"].values()
		}
		s3.delete_object(Bucket=target.bucket, Key=data["offsite"].pop(database))
	del data["checksums"][database]
	run.done.discard(UPLOAD)
	run.output.clear()
	run.run()
	assert [line.split(":")[0] for line in uploaded_lines(run)] == ["database"]
	assert sum("already in s3://" in line for line in run.output) == 3
	with open_client(target) as s3:
		for key, etag in etags.items():
			assert s3.head_object(Bucket=target.bucket, Key=key)["ETag"] == etag
		assert object_keys(s3, target.bucket, f"backups/{SITE}/2026-02-01/") == sorted(etags)
	assert_stored_as_in_the_bench(docker_client, env, data)

	run.done.discard(UPLOAD)  # and once more: everything is there, nothing is uploaded
	run.output.clear()
	run.run()
	assert uploaded_lines(run) == []
	in_bench(docker_client, env, f"rm -f {BACKUPS}/*")


def test_a_link_in_the_backup_path_is_refused_and_nothing_is_uploaded(docker_client, env):
	_, target = env
	run = backed_up_only(job(docker_client, env, "2026-02-02"))
	database = run.data["backups"]["database"]["path"]
	# the site's code swaps its database backup for a link to a host file
	in_bench(docker_client, env, f"mv {database} {database}.real && ln -s /etc/hostname {database}")
	with pytest.raises(UnsafeVolumePath, match=r"leads through a symbolic link") as caught:
		run.run()
	assert f"{SITE}/private/backups/{run.data['backups']['database']['file']} in volume" in str(caught.value)
	in_bench(docker_client, env, f"rm {database} && mv {database}.real {database}")

	# or makes the backups folder a link (to a copy of itself: anything is refused, not only ways out)
	in_bench(
		docker_client,
		env,
		f"cd {BACKUPS}/.. && mv backups backups.real && ln -s backups.real backups",
	)
	with pytest.raises(UnsafeVolumePath, match=rf"\({SITE}/private/backups in volume"):
		run.run()
	with open_client(target) as s3:
		assert object_keys(s3, target.bucket, f"backups/{SITE}/2026-02-02/") == []
		assert s3.list_multipart_uploads(Bucket=target.bucket).get("Uploads", []) == []
	assert UPLOAD not in run.done and not run.data.get("checksums")

	in_bench(docker_client, env, f"cd {BACKUPS}/.. && rm backups && mv backups.real backups")
	data = run.run()  # the operator removed the links: the retry succeeds
	assert_stored_as_in_the_bench(docker_client, env, data)
	in_bench(docker_client, env, f"rm -f {BACKUPS}/*")


def test_a_remote_docker_host_streams_through_docker(docker_client, tcp_docker, env):
	cluster, _ = env
	remote = bench_container(tcp_docker, cluster)
	assert volume_files.unix_socket_here(tcp_docker) is None
	assert volume_files.host_volume(remote, f"{BACKUPS}/x") is None
	assert volume_files.host_volume(bench_container(docker_client, cluster), f"{BACKUPS}/x") is not None

	run = job(tcp_docker, env, "2026-02-03")
	data = run.run()
	assert len(uploaded_lines(run)) == 4
	assert all("streamed through Docker" in line for line in uploaded_lines(run))
	assert_stored_as_in_the_bench(docker_client, env, data)
	in_bench(docker_client, env, f"rm -f {BACKUPS}/*")

	# a link is not followed on this route either: Docker's archive holds the link, not a file
	run = backed_up_only(job(tcp_docker, env, "2026-02-04"))
	database = run.data["backups"]["database"]["path"]
	in_bench(docker_client, env, f"rm {database} && ln -s /etc/hostname {database}")
	with pytest.raises(TransferError, match="is not a regular file"):
		run.run()
	in_bench(docker_client, env, f"rm -f {BACKUPS}/*")


def test_an_upload_from_the_host_is_abandoned_unless_the_container_sees_that_very_file(docker_client, env):
	"""The container's stat runs while the file uploads: the object is completed only when it names the
	file opened on this host (device, inode, size); otherwise nothing stays in S3 and the caller streams."""
	cluster, target = env
	container = bench_container(docker_client, cluster)
	path, other = f"{BACKUPS}/probe.bin", f"{BACKUPS}/other.bin"
	in_bench(
		docker_client, env, f"head -c 12582912 /dev/urandom > {path}; head -c 12582912 /dev/urandom > {other}"
	)
	volume = volume_files.host_volume(container, path)
	seen_elsewhere: Future = Future()  # what a container on another machine would answer for the path
	seen_elsewhere.set_result({path: volume_files.container_identities(container, [other])[other]})
	with open_client(target, checksummed_bodies=True) as s3:
		assert volume_files.upload_from_host(volume, path, seen_elsewhere, s3, target, "p/abandoned") is None
		assert object_keys(s3, target.bucket, "p/abandoned") == []
		assert s3.list_multipart_uploads(Bucket=target.bucket).get("Uploads", []) == []

		seen = volume_files.identities_meanwhile(container, [path])
		stored = volume_files.upload_from_host(volume, path, seen, s3, target, "p/confirmed")
		assert str(stored.checksum) == checksum_in(container, path, str(stored.checksum))
		assert object_keys(s3, target.bucket, "p/confirmed") == ["p/confirmed"]
	in_bench(docker_client, env, f"rm -f {BACKUPS}/*")
