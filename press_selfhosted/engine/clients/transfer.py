"""Streaming copies between a container's files and S3, checksummed (SHA-256) on the way.

Nothing is staged on this machine's disk and memory stays bounded: a file leaves the container as
the tar stream of Docker's archive endpoint, is cut into parts of ``part_size`` bytes and at most
``parallel_parts`` parts are in flight to S3 at once (multipart upload). The other way, the object
(or a presigned URL) is read in chunks and fed to Docker's archive upload as a generated tar stream.

An upload either completes under its key or leaves nothing there: a failed multipart upload is
aborted, and uploads a crashed run left incomplete under the same key are aborted first.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from press_selfhosted.engine.clients.storage import S3Target, storage_error
from press_selfhosted.engine.errors import (
	ChecksumMismatch,
	EngineError,
	ObjectMissing,
	TransferError,
	UnknownChecksum,
)

MiB = 1024 * 1024
# What S3 requires of every part except the last; also our threshold for a single PUT.
MIN_PART_SIZE = 5 * MiB


@dataclass(frozen=True)
class Tuning:
	# 8 parts of 8 MiB in flight: as fast as larger parts here (benchmarks/backup_upload.py) and at
	# most (8 + 1) x 8 MiB of part buffers whatever the file size.
	part_size: int = 8 * MiB
	parallel_parts: int = 8
	read_chunk: int = 1 * MiB

	def __post_init__(self):
		if self.part_size < MIN_PART_SIZE:
			raise ValueError(f"part_size must be at least {MIN_PART_SIZE} bytes (S3's minimum part size)")


TUNING = Tuning()


def _b64(digest: bytes) -> str:
	return base64.b64encode(digest).decode()


def composite_checksum(part_digests: list[bytes]) -> str:
	"""S3's checksum of a multipart object: the sha256 of the parts' sha256 digests, then the part count."""
	return f"{_b64(hashlib.sha256(b''.join(part_digests)).digest())}-{len(part_digests)}"


COMPOSITE = "composite-sha256"
_HEX = re.compile(r"^[0-9a-fA-F]{64}$")
_COMPOSITE = re.compile(rf"^{COMPOSITE}:([0-9]+):([A-Za-z0-9+/]{{43}}=-[1-9][0-9]*)$")


@dataclass(frozen=True)
class Checksum:
	"""What a backup records of a file's bytes: a SHA-256 checksum in one of two forms.

	- the file's sha256 (``part_size`` 0, written as 64 hex digits): what backups recorded before, and
	  what a file uploaded in one PUT records (S3 keeps the same digest, in base64);
	- S3's composite checksum of a multipart upload (``<base64>-<parts>``: the sha256 of the parts'
	  sha256 digests in order, then the part count) with the part size that cut the file, written
	  ``composite-sha256:<part size>:<base64>-<parts>``. The upload computes it from the digests S3
	  checks each part against, so the bytes are hashed once; given the part size it is computed again
	  from the bytes (:class:`Hasher`), and it binds every byte in its place as the file's sha256 does
	  (two files with the same composite would need a sha256 collision).
	"""

	value: str  # lowercase hex of the file's sha256, or S3's composite value
	part_size: int = 0

	@classmethod
	def parse(cls, text: str) -> Checksum:
		composite = _COMPOSITE.match(text or "")
		if composite and int(composite.group(1)) >= MIN_PART_SIZE:
			return cls(composite.group(2), int(composite.group(1)))
		if _HEX.match(text or ""):
			return cls(text.lower())
		raise UnknownChecksum(
			f"{text!r} is not a backup checksum: 64 hex digits (sha256) or "
			f"{COMPOSITE}:<part size>:<base64>-<parts> were expected."
		)

	def __str__(self) -> str:
		return f"{COMPOSITE}:{self.part_size}:{self.value}" if self.part_size else self.value

	@property
	def s3(self) -> str:
		"""The SHA256 checksum S3 keeps for an object uploaded this way (HeadObject's ChecksumSHA256)."""
		return self.value if self.part_size else _b64(bytes.fromhex(self.value))

	def hasher(self) -> Hasher:
		"""Computes a checksum of this form from bytes."""
		return Hasher(self.part_size)


class Hasher:
	"""One pass over a stream of bytes (``update``), giving the file's sha256 (``part_size`` 0) or the
	composite of its parts of ``part_size`` bytes (``checksum``)."""

	def __init__(self, part_size: int = 0):
		self.part_size = part_size
		self.part = hashlib.sha256()
		self.left = part_size  # bytes still missing from the current part
		self.digests: list[bytes] = []

	def update(self, data: bytes) -> None:
		if not self.part_size:
			self.part.update(data)
			return
		view = memoryview(data)
		while view:
			piece = view[: self.left]
			self.part.update(piece)
			self.left -= len(piece)
			view = view[len(piece) :]
			if not self.left:
				self.digests.append(self.part.digest())
				self.part, self.left = hashlib.sha256(), self.part_size

	def checksum(self) -> Checksum:
		if not self.part_size:
			return Checksum(self.part.hexdigest())
		last = [self.part.digest()] if self.left < self.part_size else []
		return Checksum(composite_checksum(self.digests + last), self.part_size)


@dataclass(frozen=True)
class StoredObject:
	bucket: str
	key: str
	size: int
	checksum: Checksum


def _read_exactly(reader, size: int) -> bytes:
	parts = []
	missing = size
	while missing:
		chunk = reader.read(missing)
		if not chunk:
			break
		parts.append(chunk)
		missing -= len(chunk)
	return parts[0] if len(parts) == 1 else b"".join(parts)


@dataclass(frozen=True)
class ContainerFile:
	"""A regular file in a container, open for reading as a stream; ``close`` ends the Docker request."""

	path: str
	size: int
	reader: _MemberReader
	response: object

	def close(self) -> None:
		self.response.close()


class _MemberReader:
	"""The data of the archive's one member, read straight from the HTTP response.

	tarfile's own member reader copies every block through its stream buffer; reading the response
	directly costs less than half the CPU per byte (benchmarks/backup_upload.py), which matters on
	the small hosts where dockerd and the S3 server share the cores with this process.
	"""

	def __init__(self, raw, size: int):
		self.raw = raw
		self.left = size

	def read(self, size: int) -> bytes:
		data = self.raw.read(min(size, self.left)) if self.left else b""
		self.left -= len(data)
		return data


def _archive_response(container, path: str):
	"""Docker's tar archive of ``path`` as an open streaming response (the caller closes it).

	The request is made on docker-py's API session directly because ``get_archive`` hands out a
	generator that cannot close its response: an abandoned archive stream keeps Docker writing into
	a socket nobody reads, and the next archive request on that container waits behind it.
	"""
	api = container.client.api
	try:
		response = api.get(
			api._url("/containers/{0}/archive", container.id),
			params={"path": path},
			headers={"Accept-Encoding": "identity"},
			stream=True,
		)
	except Exception as error:
		raise TransferError(
			f"Docker did not answer a read of {path} from container {container.name}: {type(error).__name__}: {error}"
		) from error
	if response.status_code != 200:
		detail = response.text.strip()
		response.close()
		if response.status_code == 404:
			raise ObjectMissing(f"{path} does not exist in container {container.name}: {detail}")
		raise TransferError(f"Docker refused to read {path} from container {container.name}: {detail}")
	return response


def open_container_file(container, path: str) -> ContainerFile:
	"""Docker's archive of one regular file: the tar member's bytes, read incrementally."""
	response = _archive_response(container, path)
	try:
		# Headers (and PAX records) are whole 512-byte blocks: with that buffer size tarfile reads
		# nothing past them, so the response is left exactly at the member's first data byte.
		archive = tarfile.open(fileobj=response.raw, mode="r|", bufsize=tarfile.BLOCKSIZE)  # noqa: SIM115 the caller reads it
		member = archive.next()
	except Exception as error:
		response.close()
		raise TransferError(f"Reading {path} from container {container.name} failed: {error}") from error
	if member is None or not member.isfile():
		response.close()
		raise TransferError(f"{path} in container {container.name} is not a regular file")
	return ContainerFile(path, member.size, _MemberReader(response.raw, member.size), response)


def _abort_leftovers(s3, bucket: str, key: str) -> None:
	"""Incomplete uploads of a crashed run hold storage until aborted; only ours (same key) go."""
	listing = s3.list_multipart_uploads(Bucket=bucket, Prefix=key)
	for upload in listing.get("Uploads", []):
		if upload.get("Key") == key:
			s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload["UploadId"])


def upload_stream(
	reader,
	size: int,
	s3,
	target: S3Target,
	key: str,
	tuning: Tuning = TUNING,
	source: str = "",
	confirm: Callable[[], None] | None = None,
) -> StoredObject:
	"""Uploads exactly ``size`` bytes from ``reader`` to ``target.bucket``/``key`` and returns their
	:class:`Checksum`: the file's sha256 when it fits in one PUT, else S3's composite of its parts.

	Every request carries the sha256 of its body (``x-amz-checksum-sha256``): S3 refuses a part whose
	bytes do not match it (BadDigest), and keeps the checksum of the whole object that
	:func:`verify_object` compares instead of reading the object back. Those digests are the only
	hashing of the bytes: the recorded checksum is made of them.

	``confirm`` runs before the object is completed (before its one PUT when it is small) and may
	raise to abandon the upload: a check that the source is the right one runs meanwhile.

	Raises a StorageError (S3 refused or unreachable) or TransferError (the source ended early); in
	both cases no object is left under ``key`` by this upload.
	"""
	parts = _Parts(reader, size, source or "the source")
	try:
		_abort_leftovers(s3, target.bucket, key)
		if size <= tuning.part_size:
			body = parts.next(size)
			checksum = Checksum(hashlib.sha256(body).hexdigest())  # the body is the whole file
			if confirm:
				confirm()
			s3.put_object(Bucket=target.bucket, Key=key, Body=body, ChecksumSHA256=checksum.s3)
		else:
			checksum = _multipart(s3, target.bucket, key, size, tuning, parts.next, confirm)
	except EngineError:
		raise
	except Exception as error:
		raise storage_error(error, target, f"upload {key} to") from error
	return StoredObject(target.bucket, key, size, checksum)


class _Parts:
	"""Cuts a stream into parts of exact sizes."""

	def __init__(self, reader, size: int, source: str):
		self.reader = reader
		self.size = size
		self.source = source
		self.read = 0

	def next(self, expected: int) -> bytes:
		try:
			part = _read_exactly(self.reader, expected)
		except EngineError:
			raise
		except Exception as error:  # tar, docker-py and urllib3 errors when the container goes away
			raise TransferError(
				f"Reading {self.source} failed after {self.read} of {self.size} bytes: "
				f"{type(error).__name__}: {error}"
			) from error
		if len(part) != expected:
			raise TransferError(
				f"{self.source} ended after {self.read + len(part)} of {self.size} bytes "
				"(was the container stopped or the file changed?)"
			)
		self.read += len(part)
		return part


def _multipart(
	s3,
	bucket: str,
	key: str,
	size: int,
	tuning: Tuning,
	next_part: Callable[[int], bytes],
	confirm: Callable[[], None] | None = None,
) -> Checksum:
	"""The upload's parts in parallel; returns the composite checksum S3 computes for the object."""
	upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm="SHA256")["UploadId"]
	slots = threading.BoundedSemaphore(tuning.parallel_parts)
	futures: list[Future] = []

	def send(number: int, body: bytes) -> tuple[dict, bytes]:
		try:
			# hashed here, in the part's thread (hashlib lets go of the GIL), not in the reading loop:
			# the only pass over these bytes (the recorded checksum is made of these digests)
			digest = hashlib.sha256(body).digest()
			answer = s3.upload_part(
				Bucket=bucket,
				Key=key,
				UploadId=upload_id,
				PartNumber=number,
				Body=body,
				ChecksumSHA256=_b64(digest),
			)
			return {"PartNumber": number, "ETag": answer["ETag"], "ChecksumSHA256": _b64(digest)}, digest
		finally:
			slots.release()

	try:
		with ThreadPoolExecutor(max_workers=tuning.parallel_parts, thread_name_prefix="s3-part") as pool:
			offset = 0
			number = 0
			while offset < size:
				body = next_part(min(tuning.part_size, size - offset))
				offset += len(body)
				number += 1
				slots.acquire()
				failed = [f for f in futures if f.done() and f.exception()]
				if failed:
					slots.release()
					failed[0].result()
				futures.append(pool.submit(send, number, body))
				del body
			sent = [f.result() for f in futures]
		if confirm:
			confirm()
		s3.complete_multipart_upload(
			Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": [part for part, _ in sent]}
		)
		return Checksum(composite_checksum([digest for _, digest in sent]), tuning.part_size)
	except BaseException:
		for future in futures:
			future.cancel()
		# When S3 is gone the abort fails too: the next upload to this key aborts the leftover first.
		with contextlib.suppress(Exception):
			s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
		raise


def _put_archive(target, directory: str, chunks: Iterator[bytes], what: str) -> None:
	"""Streams a tar archive into ``directory`` of the target container; ``what`` names it in errors."""
	import docker.errors

	try:
		target.put_archive(directory, chunks)
	except docker.errors.APIError as error:
		raise TransferError(
			f"Docker refused to write {what} into {directory} of container {target.name}: "
			f"{error.explanation or error}"
		) from error
	except EngineError:
		raise
	except Exception as error:
		raise TransferError(
			f"Copying {what} into container {target.name} failed: {type(error).__name__}: {error}"
		) from error


def copy_between_containers(
	source, source_path: str, target, target_directory: str, tuning: Tuning = TUNING
) -> None:
	"""Copies ``source_path`` (a file or a whole directory, owners and modes kept) from one container
	into ``target_directory`` of another: Docker's archive streams from one straight into the other."""
	response = _archive_response(source, source_path)
	try:
		_put_archive(
			target,
			target_directory,
			response.iter_content(tuning.read_chunk),
			f"{source_path} of container {source.name}",
		)
	finally:
		response.close()


def upload_from_container(
	container, path: str, s3, target: S3Target, key: str, tuning: Tuning = TUNING
) -> StoredObject:
	opened = open_container_file(container, path)
	try:
		return upload_stream(
			opened.reader,
			opened.size,
			s3,
			target,
			key,
			tuning,
			source=f"{path} in container {container.name}",
		)
	finally:
		opened.close()


def hash_object(s3, target: S3Target, key: str, like: Checksum, tuning: Tuning = TUNING) -> StoredObject:
	"""Reads the object back and computes its checksum in the form of ``like`` (what a verification
	trusts, unlike ETags that differ per server)."""
	hasher = like.hasher()
	size = 0
	try:
		body = s3.get_object(Bucket=target.bucket, Key=key)["Body"]
		for chunk in body.iter_chunks(tuning.read_chunk):
			hasher.update(chunk)
			size += len(chunk)
	except Exception as error:
		raise _missing_or(error, target, key) from error
	return StoredObject(target.bucket, key, size, hasher.checksum())


def _missing_or(error: Exception, target: S3Target, key: str) -> EngineError:
	from botocore.exceptions import ClientError

	if isinstance(error, ClientError):
		code = str((error.response.get("Error") or {}).get("Code", ""))
		if code in ("NoSuchKey", "404", "NotFound"):
			return ObjectMissing(
				f"The object {key} is not in bucket {target.bucket!r} at {target.endpoint_url}."
			)
	return storage_error(error, target, f"read {key} from")


def verify_object(
	s3,
	target: S3Target,
	key: str,
	size: int,
	checksum: Checksum,
	tuning: Tuning = TUNING,
	read_back: bool = False,
) -> StoredObject:
	"""Checks that the object has ``size`` bytes (HEAD) and the recorded ``checksum``.

	Unless ``read_back``, ``checksum`` is compared with the SHA256 checksum S3 keeps for the object
	(HeadObject), when it keeps one of the same kind: S3 checked every part against the sha256 sent
	with it (BadDigest otherwise), and its checksum of a multipart object is the composite of those
	parts' checksums in order, so the object holds exactly the bytes the upload hashed; no byte is
	read again. That proves what S3 received, not what its disks hold later: ``read_back`` (the
	daily verification) reads the object and computes its checksum in the recorded form, and so does
	a check on a server that keeps no checksum, or another kind (a backup recorded with its file's
	sha256 before, uploaded in parts)."""
	try:
		head = s3.head_object(Bucket=target.bucket, Key=key, ChecksumMode="ENABLED")
	except Exception as error:
		raise _missing_or(error, target, key) from error
	if head["ContentLength"] != size:
		raise ChecksumMismatch(
			f"The object {key} in bucket {target.bucket!r} has {head['ContentLength']} bytes, "
			f"but {size} were recorded for it."
		)
	kept = head.get("ChecksumSHA256") or ""
	if not read_back and _comparable(kept, checksum.s3):
		if kept != checksum.s3:
			raise ChecksumMismatch(
				f"The object {key} in bucket {target.bucket!r} has the S3 checksum {kept}, but the bytes "
				f"uploaded had {checksum.s3} (recorded as {checksum})."
			)
		return StoredObject(target.bucket, key, size, checksum)
	found = hash_object(s3, target, key, checksum, tuning)
	if found.checksum != checksum:
		raise ChecksumMismatch(
			f"The object {key} in bucket {target.bucket!r} has the checksum {found.checksum}, "
			f"but {checksum} was recorded for it."
		)
	return found


def _comparable(kept: str, expected: str) -> bool:
	"""Both are S3 SHA256 checksums of the same kind (whole object, or composite ``-<parts>``; base64
	has no "-"). A server computing another kind is not wrong: the caller reads the object back."""
	return bool(kept) and ("-" in kept) == ("-" in expected)


# --- S3 (or a presigned URL) -> container ---------------------------------------------------------


@dataclass(frozen=True)
class Incoming:
	"""A stream of bytes to write into a container, with its size known up front (the tar header needs it)."""

	name: str  # what messages call it: the object key or the URL without its query string
	size: int
	chunks: Iterator[bytes]


def open_object(s3, target: S3Target, key: str, tuning: Tuning = TUNING) -> Incoming:
	try:
		response = s3.get_object(Bucket=target.bucket, Key=key)
	except Exception as error:
		raise _missing_or(error, target, key) from error
	return Incoming(key, response["ContentLength"], response["Body"].iter_chunks(tuning.read_chunk))


def open_url(url: str, tuning: Tuning = TUNING, timeout: float = 30) -> Incoming:
	"""A presigned GET URL as Press sends it for restores."""
	import requests

	shown = url.split("?", 1)[0]
	try:
		response = requests.get(url, stream=True, timeout=timeout)
	except requests.RequestException as error:
		raise TransferError(f"Cannot download {shown}: {type(error).__name__}: {error}") from error
	if response.status_code == 404:
		response.close()
		raise ObjectMissing(f"{shown} answers 404 Not Found: the backup file is not in the bucket.")
	if response.status_code != 200:
		response.close()
		raise TransferError(
			f"Downloading {shown} failed with HTTP {response.status_code}: {response.text[:300]}. "
			"Fix: presigned URLs expire; ask Press for the restore again."
		)
	length = response.headers.get("Content-Length")
	if length is None:
		response.close()
		raise TransferError(f"{shown} gave no Content-Length; a backup file must come with its size.")
	return Incoming(shown, int(length), response.iter_content(tuning.read_chunk))


def _tar_stream(incoming: Incoming, name: str, hasher: Hasher, uid: int, gid: int) -> Iterator[bytes]:
	info = tarfile.TarInfo(name)
	info.size = incoming.size
	info.mode = 0o640
	info.mtime = int(time.time())
	info.uid, info.gid = uid, gid
	yield info.tobuf(format=tarfile.PAX_FORMAT)
	written = 0
	for chunk in incoming.chunks:
		if written + len(chunk) > incoming.size:
			raise TransferError(f"{incoming.name} sent more than its {incoming.size} bytes")
		hasher.update(chunk)
		written += len(chunk)
		yield chunk
	if written != incoming.size:
		raise TransferError(f"{incoming.name} ended after {written} of {incoming.size} bytes")
	padding = -incoming.size % tarfile.BLOCKSIZE
	yield b"\0" * (padding + 2 * tarfile.BLOCKSIZE)


def write_into_container(
	incoming: Incoming,
	container,
	directory: str,
	file_name: str,
	like: Checksum | None = None,
	uid: int = 1000,
	gid: int = 1000,
) -> StoredObject:
	"""Writes the stream as ``directory/file_name`` in the container (``directory`` must exist) and
	returns its size and checksum, in the form of ``like`` (the recorded one, which the caller
	compares it with) or else the file's sha256."""
	hasher = like.hasher() if like else Hasher()
	chunks = _tar_stream(incoming, file_name, hasher, uid, gid)
	_put_archive(container, directory, chunks, f"{file_name} ({incoming.name})")
	return StoredObject("", f"{directory}/{file_name}", incoming.size, hasher.checksum())
