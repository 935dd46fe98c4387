"""CA bundles for TLS clients (boto3, requests) that want a file path, and what to do when TLS fails.

Operators paste a private CA as PEM text into a Code field; the HTTP libraries want a path.
:func:`ca_bundle_path` writes the text to a private temporary file for the duration of a ``with``
block and removes it afterwards. A value that is not PEM text is taken as a path to an existing file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator

from press_selfhosted.engine.errors import ValidationError

PEM_MARKER = "-----BEGIN "


def is_pem_text(value: str | None) -> bool:
	return bool(value) and PEM_MARKER in value


@contextlib.contextmanager
def ca_bundle_path(ca_bundle: str | None, field: str = "ca_bundle") -> Iterator[str | None]:
	"""Yields a file path holding the CA bundle, or ``None`` when there is none."""
	if not ca_bundle or not ca_bundle.strip():
		yield None
		return
	if not is_pem_text(ca_bundle):
		path = ca_bundle.strip()
		if not os.path.isfile(path):
			raise ValidationError(
				field,
				path,
				"neither PEM text nor the path of an existing file",
				"paste the CA certificate (-----BEGIN CERTIFICATE----- ...) or give the path of a PEM file",
			)
		yield path
		return
	fd, path = tempfile.mkstemp(prefix="press-selfhosted-ca-", suffix=".pem")
	try:
		with os.fdopen(fd, "w") as handle:
			handle.write(ca_bundle if ca_bundle.endswith("\n") else ca_bundle + "\n")
		yield path
	finally:
		with contextlib.suppress(FileNotFoundError):
			os.unlink(path)


# what OpenSSL says when the other side answered a TLS handshake in plain HTTP
_PLAIN_HTTP_MARKERS = (
	"wrong version number",
	"wrong_version_number",
	"record layer failure",
	"unknown protocol",
	"packet length too long",
)


def speaks_plain_http(error: object) -> bool:
	"""Whether a TLS failure came from a port that speaks plain HTTP."""
	text = str(error).lower()
	return any(marker in text for marker in _PLAIN_HTTP_MARKERS)


def tls_failure_fix(
	reason: str, *, plain_http: bool, plain_http_fix: str, server: str, url_field: str
) -> str:
	"""What the operator changes when the TLS handshake with ``server`` (e.g. "the S3 server") failed."""
	lowered = reason.lower()
	if plain_http:
		return plain_http_fix
	if "certificate verify failed" in lowered or "self-signed" in lowered or "self signed" in lowered:
		return (
			f"paste the certificate of the CA that signed {server}'s certificate into CA Bundle "
			"(or, for a test setup only, untick Verify TLS)"
		)
	if "hostname" in lowered or "doesn't match" in lowered or "not valid for" in lowered:
		return f"use the host name {server}'s certificate was issued for in {url_field}"
	return f"check the TLS setup of {server} and the CA Bundle"
