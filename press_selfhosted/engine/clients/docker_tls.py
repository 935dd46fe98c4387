"""The PEM files docker-py needs for a ``tcp://`` Docker socket with TLS client certificates.

docker-py (and the ``ssl`` module under it) reads certificates and keys from files only, while Press's
records keep them in fields; :func:`materialize` writes them to one folder per server, mode 0600,
rewriting a file only when its content changed (so a rotated certificate takes effect, and an
unchanged one does not touch the disk on every request).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from press_selfhosted.engine.clients.docker_hosts import DockerHost


@dataclass(frozen=True)
class DockerTLS:
	"""PEM texts of a server's Docker TLS: the daemon's CA, the client certificate and its key."""

	ca: str
	cert: str
	key: str


def server_folder(base: Path, server: str) -> Path:
	"""One folder per server under ``base``, named so that no server name can escape it."""
	return base / re.sub(r"[^A-Za-z0-9_.-]", "_", server).lstrip(".")


def _write(path: Path, text: str) -> None:
	data = text.strip().encode() + b"\n"
	if path.exists() and path.read_bytes() == data:
		return
	# written next to the target, then renamed: a reader never sees half a key
	handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
	try:
		os.fchmod(handle, 0o600)
		os.write(handle, data)
	finally:
		os.close(handle)
	os.replace(temporary, path)


def materialize(base: Path, host: DockerHost, tls: DockerTLS) -> DockerHost:
	"""``host`` with its ``tls_*`` files written under ``base`` (one 0700 folder per server)."""
	folder = server_folder(base, host.server)
	folder.mkdir(mode=0o700, parents=True, exist_ok=True)
	os.chmod(folder, 0o700)
	paths = {name: folder / f"{name}.pem" for name in ("ca", "cert", "key")}
	_write(paths["ca"], tls.ca)
	_write(paths["cert"], tls.cert)
	_write(paths["key"], tls.key)
	return DockerHost(
		server=host.server,
		socket=host.socket,
		tls_ca_file=str(paths["ca"]),
		tls_cert_file=str(paths["cert"]),
		tls_key_file=str(paths["key"]),
		timeout=host.timeout,
		tls_fingerprint=hashlib.sha256(f"{tls.ca}\0{tls.cert}\0{tls.key}".encode()).hexdigest(),
	)
