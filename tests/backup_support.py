"""Helpers shared by the backup, transfer, restore and verification tests.

``FaultyProxy`` sits between the engine and the real S3 server on loopback so a test can make S3
"stop" in the middle of an upload (cut the open connections, refuse new ones) and come back.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

from press_selfhosted.engine.storage import S3Target, open_client


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
			upstream = socket.create_connection(self.upstream)
			with self._lock:
				self._sockets += [client, upstream]
			threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
			threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

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


def sha256_in(container, path: str) -> str:
	code, output = container.exec_run(["sha256sum", path])
	assert code == 0, output
	return output.decode().split()[0]
