"""Containers made from a spec, and files put into containers: what every client that runs containers shares."""

from __future__ import annotations

import io
import tarfile
import time
from collections.abc import Mapping

from docker.models.containers import Container

from press_selfhosted.engine import naming


def unchanged_or_removed(
	container: Container | None,
	digest: str,
	server: str,
	role: str,
	bench: str | None = None,
) -> Container | None:
	"""``container`` (the one of the wanted name, if any) when it was made from the spec whose digest is
	``digest`` (label ``naming.SPEC``); None when there is none, or when it was made from another spec:
	then it is removed, for the caller to make it again (its data lives in volumes). A container of that
	name that press_selfhosted did not make for this server is refused, never removed."""
	if container is None:
		return None
	naming.require_owned(container, "container", server, role, bench)
	if container.labels.get(naming.SPEC) == digest:
		return container
	container.remove(force=True)
	return None


def tar_archive(files: Mapping[str, tuple[bytes | None, int]], owner: int = 0) -> bytes:
	"""A tar for ``put_archive``: ``name -> (content, mode)`` owned by uid and gid ``owner``; content None
	makes a directory. Dated now: a file's time tells when it was written (the certificate report reads it)."""
	buffer = io.BytesIO()
	with tarfile.open(fileobj=buffer, mode="w") as archive:
		for name, (content, mode) in files.items():
			info = tarfile.TarInfo(name)
			info.mode, info.uid, info.gid, info.mtime = mode, owner, owner, int(time.time())
			if content is None:
				info.type = tarfile.DIRTYPE
				archive.addfile(info)
			else:
				info.size = len(content)
				archive.addfile(info, io.BytesIO(content))
	return buffer.getvalue()
