"""Reading a container's file straight from its volume on this machine's disk, when that is provably it.

Docker's archive endpoint makes dockerd read the file and write a tar stream that this process
parses: on a small host dockerd takes a core from the S3 server and the upload runs at 0.44-0.82x
of a plain boto3 upload of the same file (benchmarks/backup_upload.py). When the Docker host is
this machine, the file is also on this machine's disk, under the volume's mountpoint.

Whether to read it there is decided by checks, never by a setting alone, because a wrong answer
uploads the wrong bytes under a verified checksum:
- the Docker client speaks to a unix socket that exists on this machine (a tcp:// or ssh:// host
  is another machine as far as we can know: its volumes are not on our disk);
- the path lies in a ``local`` volume mounted in the container, whose mountpoint this process can
  open (a worker without the rights, or in a container of its own, cannot: it streams);
- the file opened on disk is the one the container sees: same device, inode and size as ``stat``
  run inside the container (a socket forwarded from another machine, or a mountpoint path that
  names another directory here, fails this). That ``stat`` is a ``docker exec`` (tens of ms), so it
  runs while the file uploads, and the upload is completed only once it agrees (else aborted, and
  the file streamed through Docker).

The site's code (a tenant) controls every file in its site folder: it can make any part of a
backup's path a symbolic link, and a link followed on this machine would lead anywhere on the host
(``/etc/shadow``, another bench's volume). So the path is walked one component at a time from the
mountpoint with ``O_NOFOLLOW`` (no check-then-open race), and a link anywhere on it is refused.
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import stat
import threading
from concurrent.futures import Future
from dataclasses import dataclass

from press_selfhosted.engine.clients import docker_exec, transfer
from press_selfhosted.engine.clients.storage import S3Target
from press_selfhosted.engine.errors import NotTheSameFile, TransferError, UnsafeVolumePath

_UNIX_BASE_URL = "http+docker://localhost"  # docker-py's base URL for a unix socket


@dataclass(frozen=True)
class HostVolume:
	"""A container's volume whose data this process can read on its own disk."""

	name: str
	destination: str  # where the container sees it
	mountpoint: str  # where this machine sees it
	container: str

	def holds(self, path: str) -> bool:
		return posixpath.normpath(path).startswith(self.destination.rstrip("/") + "/")


@dataclass(frozen=True)
class Identity:
	"""What tells two views of a file apart: device, inode and size."""

	device: int
	inode: int
	size: int


@dataclass
class HostFile:
	"""A file of a volume open on this machine (read with ``read``; ``close`` when done)."""

	path: str  # the container's path, for messages
	identity: Identity
	reader: object

	@property
	def size(self) -> int:
		return self.identity.size

	def close(self) -> None:
		self.reader.close()


def unix_socket_here(client) -> str | None:
	"""The path of the unix socket ``client`` talks to, when it is one on this machine."""
	api = client.api
	path = getattr(api.adapters.get("http+docker://"), "socket_path", None)
	if api.base_url != _UNIX_BASE_URL or not path:
		return None
	try:
		return path if stat.S_ISSOCK(os.stat(path).st_mode) else None
	except OSError:
		return None


def host_volume(container, path: str) -> HostVolume | None:
	"""The local volume holding ``path`` in ``container``, when this process can read it on its disk."""
	if unix_socket_here(container.client) is None:
		return None
	mount = _volume_mount(container, path)
	if mount is None:
		return None
	volume = container.client.volumes.get(mount["Name"])
	mountpoint = volume.attrs.get("Mountpoint") or ""
	if volume.attrs.get("Driver") != "local" or not os.path.isabs(mountpoint):
		return None
	try:
		os.close(os.open(mountpoint, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
	except OSError:  # not here, or not ours to read (dockerd keeps /var/lib/docker for root)
		return None
	return HostVolume(mount["Name"], mount["Destination"], mountpoint, container.name)


def _volume_mount(container, path: str) -> dict | None:
	"""The container's volume mount with the longest destination that holds ``path``."""
	path = posixpath.normpath(path)
	found = None
	for mount in container.attrs.get("Mounts") or []:
		destination = posixpath.normpath(mount.get("Destination") or "/")
		if mount.get("Type") != "volume" or not path.startswith(destination.rstrip("/") + "/"):
			continue
		if found is None or len(destination) > len(found["Destination"]):
			found = {**mount, "Destination": destination}
	return found


def container_identities(container, paths: list[str]) -> dict[str, Identity]:
	"""Device, inode and size of each path as the container sees it (one ``stat`` in the container;
	a path it cannot stat is left out)."""
	# as root: stat reads no content, and a folder the site's code made unreadable still answers
	how = docker_exec.Exec(user="root", workdir="/", reads_only=True)
	result = docker_exec.run(container, ["stat", "-c", "%d %i %s %n", "--", *paths], how, check=False)
	found = {}
	for line in result.stdout.splitlines():
		fields = line.split(" ", 3)
		if len(fields) == 4:
			found[fields[3]] = Identity(int(fields[0]), int(fields[1]), int(fields[2]))
	return found


def identities_meanwhile(container, paths: list[str]) -> Future:
	"""``container_identities`` in a thread of its own, for the upload to go on meanwhile."""
	future: Future = Future()

	def run() -> None:
		found: dict[str, Identity] = {}
		try:
			# a container that cannot answer proves nothing: its files stream through Docker,
			# which names the problem if there is one
			with contextlib.suppress(Exception):
				found = container_identities(container, paths)
		finally:  # always answered: the upload waits for it
			future.set_result(found)

	threading.Thread(target=run, name="container-stat", daemon=True).start()
	return future


def upload_from_host(
	volume: HostVolume,
	path: str,
	identities: Future,
	s3,
	target: S3Target,
	key: str,
	tuning: transfer.Tuning = transfer.TUNING,
) -> transfer.StoredObject | None:
	"""Uploads the container's ``path`` from the volume on this machine's disk; None when the file
	there is missing or is not the container's (the caller streams it through Docker)."""
	opened = open_on_host(volume, path)
	if opened is None:
		return None

	def confirm() -> None:
		if identities.result().get(path) != opened.identity:
			raise NotTheSameFile(
				f"{path} under {volume.mountpoint} is not the file container {volume.container} sees"
			)

	try:
		where = f"{path} in volume {volume.name} on this host"
		return transfer.upload_stream(opened.reader, opened.size, s3, target, key, tuning, where, confirm)
	except NotTheSameFile:
		return None
	finally:
		opened.close()


def open_on_host(volume: HostVolume, path: str) -> HostFile | None:
	"""Opens ``path`` (the container's path) under the volume's mountpoint without following any link.

	None when it is not there (the caller streams through Docker, which gives the canonical error);
	UnsafeVolumePath when a part of the path is a link or the file is not a regular file."""
	parts = _parts_below(volume, path)
	directory = os.open(volume.mountpoint, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
	try:
		for depth, name in enumerate(parts[:-1]):
			flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
			inner = _open_part(volume, path, parts[: depth + 1], directory, flags)
			os.close(directory)
			directory = inner
			if directory is None:
				return None
		flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
		descriptor = _open_part(volume, path, parts, directory, flags)
	finally:
		if directory is not None:
			os.close(directory)
	if descriptor is None:
		return None
	return _regular_file(volume, path, descriptor)


def _parts_below(volume: HostVolume, path: str) -> list[str]:
	normal = posixpath.normpath(path)
	prefix = volume.destination.rstrip("/") + "/"
	if not volume.holds(path):
		raise UnsafeVolumePath(
			f"{path} is not a file inside volume {volume.name} (mounted at {volume.destination} in "
			f"container {volume.container})."
		)
	return normal[len(prefix) :].split("/")


def _open_part(volume: HostVolume, path: str, parts: list[str], directory: int, flags: int) -> int | None:
	try:
		return os.open(parts[-1], flags, dir_fd=directory)
	except FileNotFoundError:
		return None
	except OSError as error:
		if error.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK) and _is_link(parts[-1], directory):
			raise UnsafeVolumePath(
				f"{path} in container {volume.container} leads through a symbolic link "
				f"({'/'.join(parts)} in volume {volume.name}): a backup file is read only when no part of "
				"its path is a link, because a link the site's code made could point anywhere on this host. "
				f"Nothing was uploaded from it. Fix: remove the link {volume.destination}/{'/'.join(parts)} "
				"(bench backup never makes one) and take the backup again."
			) from error
		raise TransferError(f"Cannot open {path} in volume {volume.name} on this host: {error}") from error


def _is_link(name: str, directory: int) -> bool:
	try:
		return stat.S_ISLNK(os.lstat(name, dir_fd=directory).st_mode)
	except OSError:
		return False


def _regular_file(volume: HostVolume, path: str, descriptor: int) -> HostFile:
	info = os.fstat(descriptor)
	if not stat.S_ISREG(info.st_mode):
		os.close(descriptor)
		raise UnsafeVolumePath(
			f"{path} in container {volume.container} is not a regular file (volume {volume.name}). "
			"Fix: remove it and take the backup again."
		)
	identity = Identity(info.st_dev, info.st_ino, info.st_size)
	return HostFile(path, identity, os.fdopen(descriptor, "rb", buffering=0))
