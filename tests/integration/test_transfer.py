"""Streaming container <-> S3 against the real dockerd and the real S3 server, with faults."""

from __future__ import annotations

import base64
import hashlib
import io
import re
import uuid
from urllib.parse import urlsplit

import pytest
from backup_support import (
	FaultyProxy,
	checksum_in,
	checksum_of,
	object_keys,
	open_uploads,
	s3_target,
	scratch_bucket,
	sha256_in,
)

from press_selfhosted.engine.clients import transfer
from press_selfhosted.engine.clients.storage import open_client
from press_selfhosted.engine.errors import (
	ChecksumMismatch,
	ObjectMissing,
	StorageAuthError,
	StorageBucketMissing,
	StorageUnreachable,
	TransferError,
	UnknownChecksum,
)

MiB = 1024 * 1024
SMALL_PARTS = transfer.Tuning(part_size=5 * MiB, parallel_parts=2)
ZEROS = transfer.Checksum("0" * 64)


@pytest.fixture(scope="module")
def bucket(endpoints):
	with scratch_bucket(endpoints, f"t-transfer-{uuid.uuid4().hex[:8]}") as target:
		yield target


@pytest.fixture(scope="module")
def box(idle_container):
	"""A base-image container holding a 23 MiB random file and a small one."""
	idle_container.exec_run(["sh", "-c", "head -c 24117248 /dev/urandom > /tmp/big; echo hello > /tmp/small"])
	return idle_container


def test_upload_streams_multipart_with_its_checksum_and_verifies(box, bucket):
	"""A file in parts records the composite of its parts with the part size; a file of one PUT its sha256."""
	with open_client(bucket) as s3:
		stored = transfer.upload_from_container(box, "/tmp/big", s3, bucket, "p/site/big", SMALL_PARTS)
		assert stored.size == 24117248
		assert str(stored.checksum).startswith(f"composite-sha256:{5 * MiB}:")
		assert str(stored.checksum) == checksum_in(box, "/tmp/big", str(stored.checksum))
		assert s3.head_object(Bucket=bucket.bucket, Key="p/site/big")["ContentLength"] == stored.size
		assert transfer.verify_object(s3, bucket, "p/site/big", stored.size, stored.checksum) == stored
		assert open_uploads(s3, bucket.bucket, "p/site/big") == []

		small = transfer.upload_from_container(box, "/tmp/small", s3, bucket, "p/site/small", SMALL_PARTS)
		assert (small.size, str(small.checksum)) == (6, sha256_in(box, "/tmp/small"))


def test_member_data_is_read_exactly_after_long_name_headers_and_odd_sizes(box, bucket):
	"""The file's bytes are read straight from Docker's archive response once tarfile has parsed the
	headers: a name too long for a plain tar header (extension records first) and a size that is not
	a multiple of the tar block must still come out byte for byte."""
	name = "/tmp/" + "n" * 150
	box.exec_run(["sh", "-c", f"head -c 5243393 /dev/urandom > {name}"])
	with open_client(bucket) as s3:
		stored = transfer.upload_from_container(box, name, s3, bucket, "p/site/long", SMALL_PARTS)
		assert (stored.size, str(stored.checksum)) == (5243393, checksum_in(box, name, str(stored.checksum)))
		transfer.verify_object(s3, bucket, "p/site/long", stored.size, stored.checksum, read_back=True)


def test_a_missing_path_or_a_directory_is_refused_with_the_container_named(box, bucket):
	with open_client(bucket) as s3:
		with pytest.raises(ObjectMissing, match=rf"/tmp/absent does not exist in container {box.name}"):
			transfer.upload_from_container(box, "/tmp/absent", s3, bucket, "p/site/absent", SMALL_PARTS)
		with pytest.raises(TransferError, match=rf"/tmp in container {box.name} is not a regular file"):
			transfer.upload_from_container(box, "/tmp", s3, bucket, "p/site/dir", SMALL_PARTS)
		assert object_keys(s3, bucket.bucket, "p/site/absent") == []
		assert object_keys(s3, bucket.bucket, "p/site/dir") == []


def test_verify_names_the_object_on_size_or_checksum_mismatch(box, bucket):
	with open_client(bucket) as s3:
		s3.put_object(Bucket=bucket.bucket, Key="p/tampered", Body=b"abc")
		with pytest.raises(ChecksumMismatch, match=r"p/tampered .* has 3 bytes, but 4 were recorded"):
			transfer.verify_object(s3, bucket, "p/tampered", 4, ZEROS)
		with pytest.raises(ChecksumMismatch, match=r"p/tampered .* has the checksum [0-9a-f]{64}, but 0{64}"):
			transfer.verify_object(s3, bucket, "p/tampered", 3, ZEROS)
		with pytest.raises(ObjectMissing, match=r"p/nothing-here is not in bucket"):
			transfer.verify_object(s3, bucket, "p/nothing-here", 3, ZEROS)


def test_download_into_container_from_key_and_presigned_url(box, bucket):
	with open_client(bucket) as s3:
		stored = transfer.upload_from_container(box, "/tmp/big", s3, bucket, "p/down/big", SMALL_PARTS)
		box.exec_run(["mkdir", "-p", "/tmp/in"])
		got = transfer.write_into_container(
			transfer.open_object(s3, bucket, "p/down/big"), box, "/tmp/in", "a", stored.checksum
		)
		assert (got.size, got.checksum) == (stored.size, stored.checksum)
		assert checksum_in(box, "/tmp/in/a", str(stored.checksum)) == str(stored.checksum)

		url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket.bucket, "Key": "p/down/big"})
		got = transfer.write_into_container(transfer.open_url(url), box, "/tmp/in", "b")  # nothing recorded
		assert str(got.checksum) == sha256_in(box, "/tmp/in/b") == sha256_in(box, "/tmp/big")

		missing = s3.generate_presigned_url(
			"get_object", Params={"Bucket": bucket.bucket, "Key": "p/down/none"}
		)
		with pytest.raises(ObjectMissing, match=r"p/down/none answers 404"):
			transfer.open_url(missing)


def test_wrong_keys_and_missing_bucket_fail_with_operator_messages(endpoints, box, bucket):
	wrong = s3_target(endpoints, bucket.bucket, secret_key="not-the-secret-key")
	with open_client(wrong) as s3, pytest.raises(StorageAuthError, match="secret key") as caught:
		transfer.upload_from_container(box, "/tmp/small", s3, wrong, "p/wrong/small", SMALL_PARTS)
	assert "not-the-secret-key" not in str(caught.value)

	absent = s3_target(endpoints, f"t-absent-{uuid.uuid4().hex[:8]}")
	with open_client(absent) as s3, pytest.raises(StorageBucketMissing, match="does not exist"):
		transfer.upload_from_container(box, "/tmp/small", s3, absent, "p/absent/small", SMALL_PARTS)


def test_s3_stopping_mid_upload_leaves_no_object_and_the_next_run_succeeds(endpoints, box, bucket):
	upstream = urlsplit(endpoints["s3"]["endpoint_url"])
	proxy = FaultyProxy(upstream.hostname, upstream.port)
	try:
		target = s3_target(endpoints, bucket.bucket, endpoint_url=proxy.url, read_timeout=5)
		key = "p/fault/big"
		with open_client(target) as s3:
			proxy.go_down_after(12 * MiB)
			with pytest.raises(StorageUnreachable, match=f"Cannot reach the S3 endpoint {proxy.url}"):
				transfer.upload_from_container(box, "/tmp/big", s3, target, key, SMALL_PARTS)
			proxy.come_back()
			assert key not in object_keys(s3, bucket.bucket, "p/fault/")

			stored = transfer.upload_from_container(box, "/tmp/big", s3, target, key, SMALL_PARTS)
			assert str(stored.checksum) == checksum_in(box, "/tmp/big", str(stored.checksum))
			transfer.verify_object(s3, target, key, stored.size, stored.checksum, read_back=True)
			assert open_uploads(s3, bucket.bucket, key) == []  # the first run's incomplete upload is aborted
	finally:
		proxy.close()


def test_source_ending_early_aborts_the_upload(bucket):
	"""A source shorter than announced (a file truncated while it is read) never becomes an object.

	A container cannot stop under a running read: Docker holds stop/kill until the archive stream
	ends, so the container-stopped fault is tested while `bench backup` runs (test_backup)."""
	short = io.BytesIO(b"x" * (12 * MiB))
	with open_client(bucket) as s3:
		with pytest.raises(TransferError, match=r"the dump ended after 12582912 of 20971520 bytes"):
			transfer.upload_stream(short, 20 * MiB, s3, bucket, "p/short/big", SMALL_PARTS, source="the dump")
		assert object_keys(s3, bucket.bucket, "p/short/") == []
		assert open_uploads(s3, bucket.bucket, "p/short/big") == []


def test_an_upload_is_verified_by_s3s_own_checksum_without_reading_it_back(box, bucket):
	"""S3 checks each part against the sha256 sent with it and keeps the composite of those: equal to
	the recorded checksum, it proves the object without a GET; a read-back recomputes it from the bytes."""
	reads = []
	with open_client(bucket, checksummed_bodies=True) as s3:
		s3.meta.events.register("before-call.s3.GetObject", lambda **_: reads.append(1))
		stored = transfer.upload_from_container(box, "/tmp/big", s3, bucket, "p/ck/big", SMALL_PARTS)
		body = s3.get_object(Bucket=bucket.bucket, Key="p/ck/big")["Body"].read()
		parts = [hashlib.sha256(body[i : i + 5 * MiB]).digest() for i in range(0, len(body), 5 * MiB)]
		assert stored.checksum == transfer.Checksum(transfer.composite_checksum(parts), 5 * MiB)
		kept = s3.head_object(Bucket=bucket.bucket, Key="p/ck/big", ChecksumMode="ENABLED")["ChecksumSHA256"]
		assert kept == stored.checksum.s3 and kept.endswith("-5")
		reads.clear()
		args = (s3, bucket, "p/ck/big", stored.size)
		assert transfer.verify_object(*args, stored.checksum) == stored
		assert reads == []

		wrong = transfer.Checksum(transfer.composite_checksum(parts[::-1]), 5 * MiB)  # the parts reordered
		with pytest.raises(ChecksumMismatch, match=r"p/ck/big .* has the S3 checksum .*-5, but"):
			transfer.verify_object(*args, wrong)
		assert transfer.verify_object(*args, stored.checksum, read_back=True) == stored  # the daily check
		assert reads == [1]

		small = transfer.upload_from_container(box, "/tmp/small", s3, bucket, "p/ck/small", SMALL_PARTS)
		assert base64.b64decode(small.checksum.s3) == bytes.fromhex(str(small.checksum))
		reads.clear()
		transfer.verify_object(s3, bucket, "p/ck/small", 6, small.checksum)
		assert reads == []


def test_a_stored_object_whose_bytes_differ_is_found_in_either_form(box, bucket):
	"""An object replaced by other bytes of the same size, uploaded in the same parts (so S3 keeps a
	composite of the same kind): the check against S3's checksum and the read-back both find it,
	whether the backup recorded the composite or, as older backups did, the file's sha256."""
	with open_client(bucket, checksummed_bodies=True) as s3:
		key = "p/swap/big"
		stored = transfer.upload_from_container(box, "/tmp/big", s3, bucket, key, SMALL_PARTS)
		original = s3.get_object(Bucket=bucket.bucket, Key=key)["Body"].read()
		whole = transfer.Checksum(hashlib.sha256(original).hexdigest())  # what an older backup recorded
		assert transfer.verify_object(s3, bucket, key, stored.size, whole).checksum == whole  # read back
		assert transfer.verify_object(s3, bucket, key, stored.size, whole, read_back=True).checksum == whole

		changed = original[:-1] + bytes([original[-1] ^ 1])  # one bit of the last part
		transfer.upload_stream(io.BytesIO(changed), len(changed), s3, bucket, key, SMALL_PARTS)
		assert checksum_of(changed, str(stored.checksum)) != str(stored.checksum)
		for recorded in (stored.checksum, whole):
			for read_back in (False, True):
				with pytest.raises(ChecksumMismatch, match=rf"{key} in bucket .*{re.escape(str(recorded))}"):
					transfer.verify_object(s3, bucket, key, stored.size, recorded, read_back=read_back)


def test_a_recorded_checksum_is_either_form_or_refused():
	digest = hashlib.sha256(b"x").hexdigest()
	assert transfer.Checksum.parse(digest.upper()) == transfer.Checksum(digest)
	composite = f"composite-sha256:{8 * MiB}:{base64.b64encode(bytes(32)).decode()}-3"
	assert str(transfer.Checksum.parse(composite)) == composite
	for wrong in (
		"",
		"abc",
		f"composite-sha256:1024:{base64.b64encode(bytes(32)).decode()}-3",
		digest + "-2",
	):
		with pytest.raises(UnknownChecksum, match="is not a backup checksum"):
			transfer.Checksum.parse(wrong)


def test_a_part_whose_bytes_do_not_match_its_checksum_is_refused_by_s3(bucket):
	"""What the S3 checksum proves rests on this: the server refuses a body that is not the one hashed."""
	with open_client(bucket, checksummed_bodies=True) as s3:
		upload = s3.create_multipart_upload(
			Bucket=bucket.bucket, Key="p/bad/part", ChecksumAlgorithm="SHA256"
		)
		try:
			with pytest.raises(Exception, match="BadDigest"):
				s3.upload_part(
					Bucket=bucket.bucket,
					Key="p/bad/part",
					UploadId=upload["UploadId"],
					PartNumber=1,
					Body=b"x" * MiB,
					ChecksumSHA256=base64.b64encode(hashlib.sha256(b"y" * MiB).digest()).decode(),
				)
		finally:
			s3.abort_multipart_upload(Bucket=bucket.bucket, Key="p/bad/part", UploadId=upload["UploadId"])
