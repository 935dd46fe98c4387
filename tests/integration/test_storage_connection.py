"""engine/clients/storage.py against the real S3 service (SeaweedFS S3 gateway on loopback)."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from dataclasses import replace

import pytest

from press_selfhosted.engine.clients import storage
from press_selfhosted.engine.clients.cabundle import ca_bundle_path
from press_selfhosted.engine.errors import (
	StorageAuthError,
	StorageBucketMissing,
	StorageError,
	StorageTLSError,
	StorageUnreachable,
	ValidationError,
)


def closed_port() -> int:
	with socket.socket() as sock:
		sock.bind(("127.0.0.1", 0))
		return sock.getsockname()[1]


@pytest.fixture
def s3(endpoints) -> dict:
	return endpoints["s3"]


@pytest.fixture
def target(s3) -> storage.S3Target:
	return storage.S3Target(
		endpoint_url=s3["endpoint_url"],
		access_key=s3["access_key"],
		secret_key=s3["secret_key"],
		region=s3.get("region", "us-east-1"),
		bucket=f"test-{uuid.uuid4().hex[:12]}",
		connect_timeout=3,
		read_timeout=10,
		prefix="backups",
	)


@pytest.fixture
def bucket_cleanup(target):
	yield
	with storage.open_client(target) as client:
		names = [b["Name"] for b in client.list_buckets().get("Buckets", [])]
		if target.bucket in names:
			for item in client.list_objects_v2(Bucket=target.bucket).get("Contents", []):
				client.delete_object(Bucket=target.bucket, Key=item["Key"])
			client.delete_bucket(Bucket=target.bucket)


def test_missing_bucket_is_reported(target):
	with pytest.raises(StorageBucketMissing) as info:
		storage.test_connection(target)
	message = str(info.value)
	assert target.bucket in message
	assert "does not exist" in message
	assert "Fix:" in message


def test_create_bucket_then_success(target, bucket_cleanup):
	report = storage.test_connection(target, create_bucket=True)
	assert report.bucket_created is True
	assert report.can_write is True
	assert "created" in report.message

	again = storage.test_connection(target)
	assert again.bucket_created is False
	assert again.can_write is True
	assert f"bucket {target.bucket!r} found" in again.message

	with storage.open_client(target) as client:
		names = [b["Name"] for b in client.list_buckets()["Buckets"]]
		assert target.bucket in names
		# the write probe cleaned up after itself
		assert client.list_objects_v2(Bucket=target.bucket).get("KeyCount", 0) == 0


def test_keys_checked_without_a_bucket(target):
	report = storage.test_connection(replace(target, bucket=""))
	assert report.bucket == ""
	assert report.message.startswith("Connected to")


def test_wrong_access_key(target):
	with pytest.raises(StorageAuthError) as info:
		storage.test_connection(replace(target, access_key="nosuchaccesskey"))
	assert "does not know the access key" in str(info.value)
	assert "nosuchaccesskey" not in str(info.value)


def test_wrong_secret_key(target):
	wrong = "wrong-secret-" + uuid.uuid4().hex
	with pytest.raises(StorageAuthError) as info:
		storage.test_connection(replace(target, secret_key=wrong))
	message = str(info.value)
	assert "refused the secret key" in message
	assert wrong not in message
	assert target.secret_key not in message


def test_unreachable_endpoint_is_refused_fast(target):
	started = time.monotonic()
	with pytest.raises(StorageUnreachable) as info:
		storage.test_connection(replace(target, endpoint_url=f"http://127.0.0.1:{closed_port()}"))
	assert time.monotonic() - started < 5
	assert "Cannot reach the S3 endpoint" in str(info.value)
	assert "Fix: check the host and port" in str(info.value)


def test_silent_endpoint_is_bounded_by_the_read_timeout(target):
	"""A port that accepts connections and never answers: the test gives up after read_timeout."""
	server = socket.socket()
	server.bind(("127.0.0.1", 0))
	server.listen(8)
	held = []
	stop = threading.Event()

	def accept():
		server.settimeout(0.2)
		while not stop.is_set():
			try:
				held.append(server.accept()[0])
			except OSError:
				continue

	thread = threading.Thread(target=accept, daemon=True)
	thread.start()
	try:
		started = time.monotonic()
		with pytest.raises(StorageUnreachable) as info:
			storage.test_connection(
				replace(target, endpoint_url=f"http://127.0.0.1:{server.getsockname()[1]}", read_timeout=1)
			)
		assert time.monotonic() - started < 6
		assert "no answer within 1 s" in str(info.value)
	finally:
		stop.set()
		thread.join()
		for conn in held:
			conn.close()
		server.close()


def test_tls_failure_without_the_private_ca(target, endpoints):
	"""Any TLS server signed by the private CA will do: the TLS registry port."""
	tls_url = f"https://{endpoints['registry_tls']['url']}"
	with pytest.raises(StorageTLSError) as info:
		storage.test_connection(replace(target, endpoint_url=tls_url))
	message = str(info.value)
	assert "certificate verify failed" in message.lower() or "CERTIFICATE_VERIFY_FAILED" in message
	assert "CA Bundle" in message


def test_tls_passes_with_the_private_ca(target, endpoints):
	"""With the CA bundle the handshake succeeds; the registry then answers, not as S3."""
	tls_url = f"https://{endpoints['registry_tls']['url']}"
	with open(endpoints["ca"]["cert_file"]) as handle:
		pem = handle.read()
	with pytest.raises(StorageError) as info:
		storage.test_connection(replace(target, endpoint_url=tls_url, ca_bundle=pem))
	assert not isinstance(info.value, StorageTLSError | StorageUnreachable)


def test_https_against_a_plain_http_port_says_to_use_http(target):
	with pytest.raises(StorageTLSError) as info:
		storage.test_connection(
			replace(target, endpoint_url=target.endpoint_url.replace("http://", "https://"))
		)
	assert "use http://" in str(info.value)


def test_invalid_target_is_refused_before_any_request(target):
	with pytest.raises(ValidationError) as info:
		storage.test_connection(replace(target, bucket="Bad_Bucket"))
	assert info.value.field == "default_bucket"


def test_repr_hides_the_keys(target):
	assert target.secret_key not in repr(target)
	assert target.access_key not in repr(target)


def test_pem_ca_bundle_lives_in_a_temporary_file_only_inside_the_block(endpoints):
	with open(endpoints["ca"]["cert_file"]) as handle:
		pem = handle.read()
	with ca_bundle_path(pem) as path:
		assert path and os.path.isfile(path)
		with open(path) as handle:
			assert handle.read().strip() == pem.strip()
	assert not os.path.exists(path)
	with ca_bundle_path(endpoints["ca"]["cert_file"]) as given:
		assert given == endpoints["ca"]["cert_file"]
	with ca_bundle_path(None) as nothing:
		assert nothing is None
	with pytest.raises(ValidationError), ca_bundle_path("/no/such/ca.pem"):
		pass
