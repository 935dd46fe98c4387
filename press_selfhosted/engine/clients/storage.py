"""S3 (MinIO) connection: the target dataclass, a bounded boto3 client, and the connection test.

Everything here speaks plain S3 (what MinIO and other S3 servers share). Timeouts are bounded and
retries are off, so an operator pressing "Test Connection" gets an answer within seconds. Errors are
:class:`~press_selfhosted.engine.errors.StorageError` subclasses whose messages say what to fix and
never contain the access or secret key.
"""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace

from press_selfhosted.engine import validation
from press_selfhosted.engine.clients.cabundle import ca_bundle_path, speaks_plain_http, tls_failure_fix
from press_selfhosted.engine.errors import (
	StorageAuthError,
	StorageBucketMissing,
	StorageError,
	StorageTLSError,
	StorageUnreachable,
)

__all__ = [
	"ConnectionReport",
	"S3Target",
	"open_client",
	"storage_error",
	"test_connection",
]

PROBE_FOLDER = ".press-selfhosted-connection-test"


@dataclass(frozen=True)
class S3Target:
	"""Where and how to reach an S3 bucket. ``ca_bundle`` is PEM text or a path to a PEM file."""

	endpoint_url: str
	access_key: str = field(repr=False)
	secret_key: str = field(repr=False)
	region: str = "us-east-1"
	bucket: str = ""
	verify_tls: bool = True
	ca_bundle: str | None = field(default=None, repr=False)
	addressing_style: str = "path"
	connect_timeout: float = 5
	read_timeout: float = 20
	prefix: str = ""

	def validated(self) -> S3Target:
		"""A copy with every field checked and normalised; raises ``ValidationError``."""
		return replace(
			self,
			endpoint_url=validation.validate_endpoint_url(self.endpoint_url),
			access_key=validation.validate_access_key(self.access_key),
			secret_key=validation.validate_secret_key(self.secret_key),
			region=validation.validate_region(self.region),
			bucket=validation.validate_bucket_name(self.bucket) if self.bucket else "",
			ca_bundle=_checked_ca_bundle(self.ca_bundle),
			addressing_style=validation.validate_addressing_style(self.addressing_style),
			connect_timeout=validation.validate_connect_timeout(self.connect_timeout),
			prefix=validation.validate_object_prefix(self.prefix),
		)

	def key(self, *parts: str) -> str:
		"""An object key below ``prefix``."""
		return "/".join(p.strip("/") for p in (self.prefix, *parts) if p and p.strip("/"))


def _checked_ca_bundle(value: str | None) -> str | None:
	if not value or not value.strip():
		return None
	if "-----BEGIN " in value:
		return validation.validate_ca_bundle(value)
	return value.strip()


@dataclass
class ConnectionReport:
	"""What a successful connection test found."""

	endpoint_url: str
	bucket: str
	bucket_created: bool = False
	can_write: bool | None = None
	server: str | None = None
	elapsed_ms: int = 0
	message: str = ""

	def as_dict(self) -> dict:
		return asdict(self)


@contextlib.contextmanager
def open_client(target: S3Target, checksummed_bodies: bool = False) -> Iterator:
	"""A boto3 S3 client for ``target`` with bounded timeouts and no retries; a CA bundle given as
	PEM text lives in a temporary file for the duration of the block.

	``checksummed_bodies``: every request body the caller sends carries its ``x-amz-checksum-sha256``
	(transfer.upload_stream), which the signature covers and S3 checks. Then the signature does not
	hash the body again (SigV4 payload signing, which botocore does on every plain-http request): one
	sha256 pass over every byte less, with the same protection of the content."""
	import boto3
	from botocore.config import Config

	s3_options = {"addressing_style": target.addressing_style}
	if checksummed_bodies:
		s3_options["payload_signing_enabled"] = False
	options = {
		"connect_timeout": target.connect_timeout,
		"read_timeout": target.read_timeout,
		"retries": {"mode": "standard", "total_max_attempts": 1},
		"s3": s3_options,
		"signature_version": "s3v4",
		# S3-compatible servers do not all accept the CRC checksums newer boto3 adds by default.
		"request_checksum_calculation": "when_required",
		"response_checksum_validation": "when_required",
	}
	try:
		config = Config(**options)
	except TypeError:  # botocore older than 1.36
		options.pop("request_checksum_calculation")
		options.pop("response_checksum_validation")
		config = Config(**options)

	with ca_bundle_path(target.ca_bundle) as ca_path:
		# None lets botocore use AWS_CA_BUNDLE / the system configuration when no CA is given.
		verify = (ca_path or None) if target.verify_tls else False
		session = boto3.session.Session()
		client = session.client(
			"s3",
			endpoint_url=target.endpoint_url,
			aws_access_key_id=target.access_key,
			aws_secret_access_key=target.secret_key,
			region_name=target.region,
			verify=verify,
			config=config,
		)
		try:
			yield client
		finally:
			client.close()


def _redact(text: str, target: S3Target) -> str:
	for secret in (target.secret_key, target.access_key):
		if secret and len(secret) >= 3:
			text = text.replace(secret, "(hidden)")
	return text


def storage_error(exc: Exception, target: S3Target, action: str = "use the bucket") -> StorageError:
	"""Translates a boto3 / botocore exception into a typed, operator-facing StorageError."""
	from botocore import exceptions as bx

	url = target.endpoint_url
	bucket = target.bucket
	reason = _redact(str(exc), target)
	short = re.search(r"\[SSL: [A-Z_]+\] [^'\")(]+", reason)
	if short:
		reason = short.group(0).strip()
	if isinstance(exc, StorageError):
		return exc
	if isinstance(exc, bx.SSLError):
		fix = tls_failure_fix(
			reason,
			plain_http=speaks_plain_http(reason),
			plain_http_fix="the endpoint does not speak TLS on this port: use http:// instead of https:// in "
			"Endpoint URL, or the HTTPS port",
			server="the S3 server",
			url_field="Endpoint URL",
		)
		return StorageTLSError(f"TLS with the S3 endpoint {url} failed: {reason}. Fix: {fix}.")
	if isinstance(exc, bx.ConnectTimeoutError):
		return StorageUnreachable(
			f"The S3 endpoint {url} did not answer within {target.connect_timeout:g} s. Fix: check the host and port "
			"in Endpoint URL, that the S3 server (MinIO) runs, and that no firewall blocks the port from this server."
		)
	if isinstance(exc, bx.ReadTimeoutError):
		return StorageUnreachable(
			f"The S3 endpoint {url} accepted the connection but sent no answer within {target.read_timeout:g} s. "
			"Fix: check that Endpoint URL points at the S3 API port (not the console) and that the server is healthy."
		)
	if isinstance(
		exc,
		bx.EndpointConnectionError | bx.ConnectionClosedError | bx.ProxyConnectionError | bx.ConnectionError,
	):
		return StorageUnreachable(
			f"Cannot reach the S3 endpoint {url}: {reason}. Fix: check the host and port in Endpoint URL, that the "
			"S3 server (MinIO) runs, and that no firewall blocks the port from this server."
		)
	if isinstance(exc, bx.ClientError):
		error = exc.response.get("Error", {}) or {}
		code = str(error.get("Code", "")) or "Unknown"
		status = (exc.response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
		detail = _redact(str(error.get("Message", "")), target)
		if code == "InvalidAccessKeyId":
			return StorageAuthError(
				f"The S3 server at {url} does not know the access key. Fix: check Access Key; it must belong to a "
				"user or service account on that server."
			)
		if code == "SignatureDoesNotMatch":
			return StorageAuthError(
				f"The S3 server at {url} refused the secret key (the signature does not match). Fix: enter the "
				"Secret Key again; it must be the one issued with the access key."
			)
		if code in ("NoSuchBucket",) or (status == 404 and code in ("404", "NotFound")):
			return StorageBucketMissing(
				f"The bucket {bucket!r} does not exist on {url}. Fix: create it (Test Connection with "
				"'create bucket'), or correct Default Bucket."
			)
		if code in ("AccessDenied", "AllAccessDisabled", "403", "Forbidden") or status == 403:
			return StorageAuthError(
				f"The S3 server at {url} denied the keys permission to {action} {bucket!r} ({code}). Fix: give "
				"the user a policy allowing s3:ListBucket, s3:GetObject, s3:PutObject and s3:DeleteObject on the "
				"bucket (and s3:CreateBucket to create it), or use keys that have it."
			)
		if (
			code
			in (
				"AuthorizationHeaderMalformed",
				"IllegalLocationConstraintException",
				"PermanentRedirect",
				"InvalidRegion",
			)
			or status == 301
		):
			return StorageError(
				f"The S3 server at {url} expects another region ({code}: {detail}). Fix: set Region to the "
				"server's region (MinIO's default is us-east-1)."
			)
		if code == "RequestTimeTooSkewed":
			return StorageAuthError(
				f"The S3 server at {url} refused the request because the clocks differ too much. Fix: synchronise "
				"the clock of this server and of the S3 server (NTP)."
			)
		if code == "BucketAlreadyExists":
			return StorageError(
				f"The bucket name {bucket!r} is taken by another account on {url}. Fix: choose another Default Bucket."
			)
		if status == 400 and code in ("400", "BadRequest") and url.startswith("http://"):
			return StorageError(
				f"The S3 endpoint {url} answered 400 Bad Request to plain HTTP. Fix: if the server speaks TLS on "
				"this port, use https:// in Endpoint URL."
			)
		return StorageError(
			f"The S3 server at {url} refused to {action} {bucket!r}: {code} {detail}".rstrip() + "."
		)
	if isinstance(exc, bx.BotoCoreError):
		return StorageError(f"S3 request to {url} failed: {reason}.")
	return StorageError(f"S3 request to {url} failed: {type(exc).__name__}: {reason}.")


def _server_header(response: dict) -> str | None:
	headers = (response.get("ResponseMetadata") or {}).get("HTTPHeaders") or {}
	return headers.get("server")


def test_connection(
	target: S3Target, create_bucket: bool = False, check_write: bool = True
) -> ConnectionReport:
	"""Reaches the endpoint with the keys and checks the bucket: it exists (or is created when
	``create_bucket``), the keys may list it and, when ``check_write``, write and delete a small probe
	object below ``prefix``. Raises a StorageError subclass (or ValidationError) on failure."""
	from botocore import exceptions as bx

	target = target.validated()
	started = time.monotonic()
	report = ConnectionReport(endpoint_url=target.endpoint_url, bucket=target.bucket)
	action = "list"
	with open_client(target) as s3:
		try:
			if not target.bucket:
				response = s3.list_buckets()
				report.server = _server_header(response)
			else:
				try:
					response = s3.list_objects_v2(Bucket=target.bucket, MaxKeys=1)
					report.server = _server_header(response)
				except bx.ClientError as exc:
					missing = storage_error(exc, target, action)
					if not isinstance(missing, StorageBucketMissing) or not create_bucket:
						raise missing from None
					action = "create"
					_create_bucket(s3, target)
					report.bucket_created = True
					action = "list"
					s3.list_objects_v2(Bucket=target.bucket, MaxKeys=1)
				if check_write:
					action = "write to"
					key = target.key(PROBE_FOLDER, uuid.uuid4().hex)
					s3.put_object(Bucket=target.bucket, Key=key, Body=b"press_selfhosted connection test\n")
					action = "delete from"
					s3.delete_object(Bucket=target.bucket, Key=key)
					report.can_write = True
		except StorageError:
			raise
		except (bx.BotoCoreError, bx.ClientError) as exc:
			raise storage_error(exc, target, action) from None
	report.elapsed_ms = int((time.monotonic() - started) * 1000)
	parts = [f"Connected to {target.endpoint_url}"]
	if target.bucket:
		parts.append(f"bucket {target.bucket!r} {'created' if report.bucket_created else 'found'}")
	if report.can_write:
		parts.append("write and delete allowed")
	report.message = ", ".join(parts) + f" ({report.elapsed_ms} ms)."
	return report


def _create_bucket(s3, target: S3Target) -> None:
	from botocore import exceptions as bx

	kwargs = {"Bucket": target.bucket}
	if target.region and target.region != "us-east-1":
		kwargs["CreateBucketConfiguration"] = {"LocationConstraint": target.region}
	try:
		s3.create_bucket(**kwargs)
	except bx.ClientError as exc:
		if (exc.response.get("Error") or {}).get("Code") == "BucketAlreadyOwnedByYou":
			return
		raise


test_connection.__test__ = False  # not a pytest test, whatever imports it
