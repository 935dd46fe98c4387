"""Helpers shared by the backup, transfer, restore and verification tests.

``FaultyProxy`` sits between the engine and the real S3 server on loopback so a test can make S3
"stop" in the middle of an upload (cut the open connections, refuse new ones) and come back.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import socket
import threading
import time
import uuid
from collections.abc import Iterator

from press_selfhosted.engine.clients.storage import S3Target, open_client


def s3_target(endpoints: dict, bucket: str, **changes) -> S3Target:
	s3 = endpoints["s3"]
	values = {
		"endpoint_url": s3["endpoint_url"],
		"access_key": s3["access_key"],
		"secret_key": s3["secret_key"],
		"region": s3["region"],
		"bucket": bucket,
	}
	values.update(changes)
	return S3Target(**values)


@contextlib.contextmanager
def scratch_bucket(endpoints: dict, name: str) -> Iterator[S3Target]:
	"""A bucket of its own for a test module, emptied and removed afterwards."""
	target = s3_target(endpoints, name)
	with open_client(target) as s3:
		s3.create_bucket(Bucket=name)
		try:
			yield target
		finally:
			empty_bucket(s3, name)
			s3.delete_bucket(Bucket=name)


def empty_bucket(s3, bucket: str) -> None:
	for upload in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
		s3.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
	for key in object_keys(s3, bucket):
		s3.delete_object(Bucket=bucket, Key=key)


def object_keys(s3, bucket: str, prefix: str = "") -> list[str]:
	keys = []
	for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
		keys += [item["Key"] for item in page.get("Contents", [])]
	return sorted(keys)


def open_uploads(s3, bucket: str, key: str) -> list[str]:
	return [
		u["UploadId"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) if u["Key"] == key
	]


class FaultyProxy:
	"""A TCP relay to ``upstream`` that can be cut after some bytes, and refuse connections while down."""

	def __init__(self, upstream_host: str, upstream_port: int):
		self.upstream = (upstream_host, upstream_port)
		self.listener = socket.create_server(("127.0.0.1", 0))
		self.port = self.listener.getsockname()[1]
		self.down = False
		self.cut_after: int | None = None
		self.sent = 0
		self._lock = threading.Lock()
		self._sockets: list[socket.socket] = []
		self._closed = False
		threading.Thread(target=self._accept, daemon=True).start()

	@property
	def url(self) -> str:
		return f"http://127.0.0.1:{self.port}"

	def go_down_after(self, byte_count: int) -> None:
		"""S3 "stops" once ``byte_count`` more request bytes went through: all connections drop."""
		with self._lock:
			self.sent = 0
			self.cut_after = byte_count

	def come_back(self) -> None:
		with self._lock:
			self.down = False
			self.cut_after = None

	def close(self) -> None:
		self._closed = True
		self.listener.close()
		self._drop_all()

	def _drop_all(self) -> None:
		with self._lock:
			sockets, self._sockets = self._sockets, []
		for item in sockets:
			with contextlib.suppress(OSError):
				item.shutdown(socket.SHUT_RDWR)
			item.close()

	def _accept(self) -> None:
		while not self._closed:
			try:
				client, _ = self.listener.accept()
			except OSError:
				return
			if self.down:
				client.close()
				continue
			upstream = self._connect_upstream()
			with self._lock:
				self._sockets += [client, upstream]
			threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
			threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

	def _connect_upstream(self) -> socket.socket:
		return socket.create_connection(self.upstream)

	def _pipe(self, source: socket.socket, sink: socket.socket, counts: bool) -> None:
		try:
			while True:
				data = source.recv(65536)
				if not data:
					break
				if counts:
					with self._lock:
						self.sent += len(data)
						tripped = self.cut_after is not None and self.sent >= self.cut_after
						if tripped:
							self.down = True
							self.cut_after = None
					if tripped or self.down:
						self._drop_all()
						return
				sink.sendall(data)
		except OSError:
			pass
		finally:
			with contextlib.suppress(OSError):
				sink.shutdown(socket.SHUT_WR)


class UnixRelay(FaultyProxy):
	"""A TCP port on loopback relaying to a unix socket: the same dockerd seen as a ``tcp://`` host,
	which is how a Docker host on another machine is reached."""

	def __init__(self, socket_path: str):
		self.socket_path = socket_path
		super().__init__("", 0)

	@property
	def docker_url(self) -> str:
		return f"tcp://127.0.0.1:{self.port}"

	def _connect_upstream(self) -> socket.socket:
		upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
		upstream.connect(self.socket_path)
		return upstream

	def _pipe(self, source: socket.socket, sink: socket.socket, counts: bool) -> None:
		if counts:
			super()._pipe(source, sink, counts)
			return
		pending = b""  # the headers of a "101 UPGRADED" answer, until they are whole
		try:
			while data := source.recv(65536):
				if pending or data.startswith(b"HTTP/1.1 101"):
					head, mark, rest = (pending + data).partition(b"\r\n\r\n")
					if not mark:
						pending = head
						continue
					# An exec's output right behind Docker's "101 UPGRADED" headers: over a real
					# network it comes later than the headers, and docker-py reads it from the socket
					# once its HTTP reader has taken them; arriving at once on loopback, the output
					# would be swallowed by the reader's buffer.
					sink.sendall(head + mark)
					time.sleep(0.25)
					pending, data = b"", rest
				if data:
					sink.sendall(data)
		except OSError:
			pass
		finally:
			with contextlib.suppress(OSError):
				sink.shutdown(socket.SHUT_WR)


def sha256_in(container, path: str) -> str:
	code, output = container.exec_run(["sha256sum", path])
	assert code == 0, output
	return output.decode().split()[0]


# What a backup records, computed here apart from the engine's own code (transfer.Hasher), so that a
# test compares two independent computations: the file's sha256, or the composite of its parts.
COMPOSITE = "composite-sha256:"


def part_size_of(recorded: str) -> int:
	"""The part size a recorded checksum names (0: the file's sha256)."""
	return int(recorded.split(":")[1]) if recorded.startswith(COMPOSITE) else 0


def composite_of(part_digests: list[bytes], part_size: int) -> str:
	combined = base64.b64encode(hashlib.sha256(b"".join(part_digests)).digest()).decode()
	return f"{COMPOSITE}{part_size}:{combined}-{len(part_digests)}"


def checksum_of(body: bytes, like: str) -> str:
	"""The checksum of ``body`` in the form of the recorded ``like``."""
	size = part_size_of(like)
	if not size:
		return hashlib.sha256(body).hexdigest()
	return composite_of(
		[hashlib.sha256(body[i : i + size]).digest() for i in range(0, len(body), size)], size
	)


@contextlib.contextmanager
def replaced_object(s3, target: S3Target, key: str, body: bytes) -> Iterator[None]:
	"""``key`` holds ``body`` for the block, uploaded as a backup is (same parts, S3 checksums), then
	its original bytes again."""
	from press_selfhosted.engine.clients import transfer

	original = s3.get_object(Bucket=target.bucket, Key=key)["Body"].read()
	transfer.upload_stream(io.BytesIO(body), len(body), s3, target, key)
	try:
		yield
	finally:
		transfer.upload_stream(io.BytesIO(original), len(original), s3, target, key)


def checksum_in(container, path: str, like: str) -> str:
	"""The checksum of the container's file in the form of ``like``, computed in the container by
	coreutils (``split`` cutting the parts, ``sha256sum`` hashing each)."""
	size = part_size_of(like)
	if not size:
		return sha256_in(container, path)
	code, output = container.exec_run(["split", "-b", str(size), "--filter=sha256sum", path])
	assert code == 0, output
	return composite_of([bytes.fromhex(line.split()[0]) for line in output.decode().splitlines()], size)


# --- a real site with data and files on a real bench ----------------------------------------------

BENCH = "bench-1"
ADMIN = "admin-Secret-42"
TABLE = "tabBackup Probe"


def site_secrets(cluster, target: S3Target) -> dict:
	return {
		"mariadb_root_password": cluster.root_password,
		"admin_password": ADMIN,
		"offsite_access_key": target.access_key,
		"offsite_secret_key": target.secret_key,
	}


def offsite_payload(target: S3Target, site: str, date: str = "2026-01-04", prefix: str = "backups") -> dict:
	"""What Press sends (its secrets already masked by the job store) plus the glue's storage keys."""
	return {
		"offsite": {
			"bucket": target.bucket,
			"path": f"{site}/{date}",
			"auth": {
				"ACCESS_KEY": "********",
				"SECRET_KEY": "********",
				"REGION": target.region,
				"PROVIDER": "MinIO",
				"ENDPOINT_URL": target.endpoint_url,
			},
		},
		"storage": {"prefix": prefix},
	}


def make_site(docker_client, cluster, site: str, target: S3Target, public_mib: int = 0) -> None:
	"""A site made by the New Site handler, with rows in a table of its own and public/private files."""
	from site_cluster import run_steps

	from press_selfhosted.engine.jobs.handlers import index
	from press_selfhosted.engine.jobs.sites import SiteJobs

	payload = {"name": site, "apps": ["frappe"], "config": {}, "managed_database_config": {}}
	run_steps(
		docker_client,
		cluster,
		index(SiteJobs().handlers())["New Site"],
		BENCH,
		site,
		payload,
		site_secrets(cluster, target),
		steps=4,
	)
	db = site_db(site)
	cluster.db.sql(
		f"CREATE TABLE `{TABLE}` (name VARCHAR(140) PRIMARY KEY, value TEXT); "
		f"INSERT INTO `{TABLE}` VALUES " + ", ".join(f"('row-{i}', 'value {i}')" for i in range(50)),
		database=db,
	)
	backend = bench_container(docker_client, cluster)
	files = f"/home/frappe/frappe-bench/sites/{site}"
	script = f"echo public > {files}/public/files/hello.txt; echo private > {files}/private/files/secret.txt"
	if public_mib:
		script += f"; head -c {public_mib * 1048576} /dev/urandom > {files}/public/files/big.bin"
	assert backend.exec_run(["sh", "-c", script], user="frappe").exit_code == 0


def site_db(site: str) -> str:
	from press_selfhosted.engine.clients.mariadb import database_name

	return database_name(BENCH, site)


def bench_container(docker_client, cluster):
	return docker_client.containers.get(f"{cluster.prefix}-{BENCH}")


def table_fingerprint(cluster, db_name: str) -> tuple[int, str]:
	"""Row count and a checksum of the probe table's content."""
	rows = cluster.db.sql(
		"SET SESSION group_concat_max_len = 16777216; "
		f"SELECT COUNT(*), COALESCE(SHA2(GROUP_CONCAT(name, '=', value ORDER BY name SEPARATOR ';'), 256), '') "
		f"FROM `{TABLE}`",
		database=db_name,
	)
	return int(rows[0][0]), rows[0][1]


def table_counts(cluster, db_name: str) -> dict[str, int]:
	tables = [row[0] for row in cluster.db.sql("SHOW TABLES", database=db_name)]
	return {t: int(cluster.db.sql(f"SELECT COUNT(*) FROM `{t}`", database=db_name)[0][0]) for t in tables}


def restore_payload(target, data: dict, use_keys: tuple[str, ...] = (), **changes) -> dict:
	"""Press's restore payload: presigned URLs per file; the recorded key and sha256 of each file (as
	the glue adds them; keys of ``use_keys`` and of the private file, whose URL the job store masks)."""
	from press_selfhosted.engine.jobs import restore

	recorded, urls = {}, {}
	with open_client(target) as s3:
		for kind in restore.FILE_KINDS:
			name = data["backups"][kind]["file"]
			key = data["offsite"][name]
			recorded[kind] = {"sha256": data["checksums"][name], **({"key": key} if kind in use_keys else {})}
			urls[kind] = s3.generate_presigned_url("get_object", Params={"Bucket": target.bucket, "Key": key})
	urls["private"] = "********"  # scrubbed by the job store: the recorded key is used instead
	recorded["private"]["key"] = data["offsite"][data["backups"]["private"]["file"]]
	storage = {
		"endpoint_url": target.endpoint_url,
		"bucket": target.bucket,
		"region": target.region,
		"backup": recorded,
	}
	payload = {
		"apps": ["frappe"],
		"mariadb_root_password": "********",
		"admin_password": "********",
		"sanitized_config_content": {"maintenance_mode": 0},
		"skip_failing_patches": False,
		**urls,
		"storage": storage,
	}
	payload.update(changes)
	return payload


class JobRun:
	"""One job run step by step as the executor does it: data persists between runs, output per run."""

	def __init__(self, docker_client, cluster, handler, site: str, payload: dict, secrets: dict):
		from fakes import job_record

		self.client = docker_client
		self.cluster = cluster
		self.handler = handler
		self.secrets = secrets
		self.job = job_record(handler, cluster.app_server, payload, BENCH, site)
		self.done: set[str] = set()
		self.output: list[str] = []

	@property
	def data(self) -> dict:
		return self.job.data

	def run(self) -> dict:
		"""Runs the steps not yet done (a retry resumes where the failure was, like the executor)."""
		from fakes import Secrets
		from site_cluster import contexts, records

		from press_selfhosted.engine.agent import jobs, runner

		steps = self.handler.steps
		context = contexts(self.client, records(self.cluster), Secrets(self.secrets)).for_job(self.job)
		done = {idx for idx, step in enumerate(steps) if step.name in self.done}
		run = runner.run_steps(self.job, steps, context, runner.Journal(self.output.append), done)
		self.done |= {step.name for step in run.steps if step.status == jobs.SUCCESS}
		run.check()
		return self.job.data


@contextlib.contextmanager
def backed_up_site(docker_client, endpoints, site: str, bucket_purpose: str, public_mib: int = 0):
	"""A cluster whose bench (with its front) holds ``site`` with data (and ``public_mib`` of random
	public files), backed up by Backup Site.

	Yields (cluster, target, backup job data, (fingerprint, table counts) at backup time)."""
	from site_cluster import remove_cluster, start_bench, start_cluster

	from press_selfhosted.engine.jobs.backups import BackupJobs
	from press_selfhosted.engine.jobs.handlers import index

	prefix = f"t{uuid.uuid4().hex[:8]}"
	with scratch_bucket(endpoints, f"t-{bucket_purpose}-{prefix}") as target:
		try:
			cluster = start_cluster(docker_client, endpoints, prefix)
			start_bench(docker_client, endpoints, cluster, BENCH)
			make_site(docker_client, cluster, site, target, public_mib=public_mib)
			payload = {"with_files": True, **offsite_payload(target, site)}
			handler = index(BackupJobs().handlers())["Backup Site"]
			data = JobRun(docker_client, cluster, handler, site, payload, site_secrets(cluster, target)).run()
			source = (table_fingerprint(cluster, site_db(site)), table_counts(cluster, site_db(site)))
			yield cluster, target, data, source
		finally:
			remove_cluster(docker_client, prefix)
