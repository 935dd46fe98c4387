"""Backup Site: ``bench backup`` in the bench's backend, then each file streamed into S3 (MinIO).

The two steps are shared with Archive Site and Uninstall App from Site (same Press step names).
``Backup Site`` records the produced files in the job's ``data["backups"]`` (Press's shape);
``Upload Site Backup to S3`` uploads each one to ``<prefix>/<site>/<YYYY-MM-DD>/<file>`` (read from
the sites volume on this host when the Docker host is provably this machine, else streamed through
Docker: volume_files), checks its size and content, and only then records it under
``data["offsite"]``/``["checksums"]``. The recorded checksum (transfer.Checksum) is made of the
sha256 digests S3 checks each part against, so every byte is hashed once: S3's composite of them
for a file uploaded in parts, the file's sha256 for one PUT. The content check compares it with the
SHA256 checksum S3 keeps for the object (transfer.verify_object), or reads the object back where S3
keeps none: ETags are not content hashes for multipart uploads and differ between S3 servers.

Where the bucket is: Press's ``offsite`` payload (bucket, ``auth.ENDPOINT_URL``, ``auth.REGION``,
``path``) wins, because Press's read side (Remote File) uses that bucket; ``payload["storage"]``
(added by press_selfhosted's glue from the default Storage Configuration, no secrets) supplies the
key prefix, TLS settings, keep-local choice, and the endpoint and bucket when Press sent no ``offsite``.
The keys come from the job's secrets (``offsite_access_key``, ``offsite_secret_key``).
"""

from __future__ import annotations

import datetime
import re
from concurrent.futures import Future
from dataclasses import dataclass

from press_selfhosted.engine.clients import docker_exec, transfer, volume_files
from press_selfhosted.engine.clients.mariadb import MariaDB, identifier, quote
from press_selfhosted.engine.clients.storage import S3Target, open_client
from press_selfhosted.engine.errors import BackupError, EngineError
from press_selfhosted.engine.jobs import site_steps
from press_selfhosted.engine.jobs.handlers import Handler, StepContext, handler
from press_selfhosted.engine.masking import MASK

KINDS = ("database", "site_config", "public", "private")
# `bench backup --verbose` summary lines, e.g. "Database: /home/.../x-database.sql.gz 1.2KiB"
_SUMMARY = re.compile(r"^(Database|Config|Public|Private)\s*:\s*(\S+)", re.MULTILINE)
_SUMMARY_KINDS = {"Database": "database", "Config": "site_config", "Public": "public", "Private": "private"}


@dataclass(frozen=True)
class Storage:
	target: S3Target
	folder: str  # key prefix of this backup's files: <prefix>/<site>/<YYYY-MM-DD>
	keep_local: bool


def _utc_today() -> str:
	return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")


def storage_target(ctx: StepContext) -> S3Target | None:
	"""The S3 target of this job (None when neither Press nor the glue named one)."""
	offsite = ctx.payload.get("offsite") or {}
	storage = ctx.payload.get("storage") or {}
	auth = offsite.get("auth") or {}
	endpoint = auth.get("ENDPOINT_URL") or storage.get("endpoint_url")
	bucket = offsite.get("bucket") or storage.get("bucket")
	if not (endpoint and bucket):
		return None
	access_key = auth.get("ACCESS_KEY")
	if not access_key or access_key == MASK:
		access_key = ctx.secret("offsite_access_key")
	return S3Target(
		endpoint_url=endpoint,
		access_key=access_key,
		secret_key=ctx.secret("offsite_secret_key"),
		region=auth.get("REGION") or storage.get("region") or "us-east-1",
		bucket=bucket,
		verify_tls=bool(storage.get("verify_tls", True)),
		ca_bundle=storage.get("ca_bundle") or None,
		addressing_style=storage.get("addressing_style") or "path",
		prefix=storage.get("prefix") or "",
	)


def _storage(ctx: StepContext) -> Storage | None:
	target = storage_target(ctx)
	if target is None:
		return None
	offsite = ctx.payload.get("offsite") or {}
	folder = target.key(offsite.get("path") or f"{site_steps.site_name(ctx)}/{_utc_today()}")
	keep = ctx.payload.get("keep_files_locally_after_offsite_backup") or (
		ctx.payload.get("storage") or {}
	).get("keep_local_backup_files")
	return Storage(target, folder, bool(keep))


# --- Backup Site ----------------------------------------------------------------------------------------


def _with_files(ctx: StepContext) -> bool:
	# Archive Site and Uninstall App back up the files too, as the Agent does.
	return bool(ctx.payload.get("with_files", ctx.job.job_type != "Backup Site"))


def _sizes(ctx: StepContext, container, paths: list[str]) -> dict[str, int]:
	result = ctx.run(container, ["stat", "-c", "%s %n", *paths], docker_exec.Exec(reads_only=True))
	return {line.split(" ", 1)[1]: int(line.split(" ", 1)[0]) for line in result.stdout.splitlines() if line}


def _recorded_files_exist(ctx: StepContext, container) -> bool:
	backups = ctx.data.get("backups") or {}
	if "database" not in backups:
		return False
	paths = [entry["path"] for entry in backups.values()]
	every_file = 'for f; do test -f "$f" || exit 1; done'
	return docker_exec.run(container, ["sh", "-c", every_file, "sh", *paths], check=False).exit_code == 0


def _run_marker(ctx: StepContext) -> str:
	"""A file in the site's backup folder older than every file this job's ``bench backup`` makes."""
	return (
		f"{site_steps.SITES}/{site_steps.site_name(ctx)}/private/backups/.press-selfhosted-job-{ctx.job.id}"
	)


def _remove_unrecorded_files(ctx: StepContext, container) -> None:
	"""A run killed after ``bench backup`` but before the step recorded its files leaves them behind:
	nobody would ever upload or remove them, so they go before the next backup is made. The first
	run only leaves its marker (one command either way: each ``docker exec`` costs tens of ms)."""
	script = (
		'if [ -f "$1" ]; then find "$(dirname -- "$1")" -maxdepth 1 -type f -newer "$1" '
		'! -name ".press-selfhosted-*" -print -delete; '
		'else mkdir -p -- "$(dirname -- "$1")" && touch -- "$1"; fi'
	)
	found = ctx.run(container, ["sh", "-c", script, "sh", _run_marker(ctx)]).stdout.split()
	if found:
		ctx.log(f"removed {len(found)} file(s) an interrupted run of this job left unrecorded")


def _forget_run_marker(ctx: StepContext, container) -> None:
	ctx.run(container, ["rm", "-f", _run_marker(ctx)])


def step_backup_site(ctx: StepContext) -> None:
	"""``bench --site S backup [--with-files]``; records Press's ``backups`` data. A rerun whose files
	are still in the container (or already uploaded) keeps them instead of backing up again."""
	site = site_steps.site_name(ctx)
	container = site_steps.backend(ctx)
	if ctx.data.get("checksums") or _recorded_files_exist(ctx, container):
		ctx.log(f"the backup of {site} made by an earlier run of this job is kept")
		return
	_remove_unrecorded_files(ctx, container)
	argv = ["backup", *(["--with-files"] if _with_files(ctx) else []), "--verbose"]
	try:
		result = site_steps.bench(ctx, *argv)
	except EngineError:
		raise
	except Exception as error:  # the container went away under the command (docker / connection errors)
		raise BackupError(
			f"`bench --site {site} backup` did not finish in container {container.name}: "
			f"{type(error).__name__}: {error}. Fix: check that the bench's backend runs (Bench Restart), then "
			"take the backup again."
		) from error
	found = {_SUMMARY_KINDS[label]: path for label, path in _SUMMARY.findall(result.stdout)}
	if "database" not in found:
		raise BackupError(
			f"`bench --site {site} backup` in {container.name} reported no database file:\n{result.output[-2000:]}"
		)
	sizes = _sizes(ctx, container, list(found.values()))
	# What a restore drill compares with; counted right after the dump, so rows written in between
	# (a busy site) show up as differences of those tables.
	db = site_steps.mariadb(ctx)
	ctx.data["tables"] = table_counts(db, site_steps.site_database(ctx, db))
	ctx.data["backups"] = {
		kind: {
			"file": path.rsplit("/", 1)[-1],
			"size": sizes[path],
			"url": f"https://{site}/backups/{path.rsplit('/', 1)[-1]}",
			"path": path,
		}
		for kind, path in sorted(found.items(), key=lambda item: KINDS.index(item[0]))
	}


def table_counts(db: MariaDB, db_name: str) -> dict[str, int]:
	"""Exact row counts of every table (``TABLE_ROWS`` is only an estimate for InnoDB), in one round
	trip: the statement counting every table is built and run inside MariaDB."""
	each_table = (
		f"CONCAT('SELECT ', QUOTE(TABLE_NAME), ', COUNT(*) FROM ', {quote(identifier(db_name) + '.`')}, "
		"REPLACE(TABLE_NAME, '`', '``'), '`')"
	)
	query = (
		"SET SESSION group_concat_max_len = 1073741824; "
		f"SELECT COALESCE(GROUP_CONCAT({each_table} SEPARATOR ' UNION ALL '), 'SELECT NULL, 0 FROM DUAL WHERE 0') "
		f"INTO @press_counts FROM information_schema.TABLES WHERE TABLE_SCHEMA = {quote(db_name)}; "
		"PREPARE press_counts FROM @press_counts; EXECUTE press_counts; DEALLOCATE PREPARE press_counts"
	)
	return {row[0]: int(row[1]) for row in db.sql(query)}


# --- Upload Site Backup to S3 ---------------------------------------------------------------------------


def step_upload_site_backup(ctx: StepContext, tuning: transfer.Tuning = transfer.TUNING) -> None:
	"""Streams each backup file to S3 and verifies it; removes the local copies once all are verified."""
	storage = _storage(ctx)
	backups = ctx.data.get("backups") or {}
	if storage is None:
		if ctx.job.job_type == "Backup Site":
			raise BackupError(
				f"No S3 storage for the backup of {site_steps.site_name(ctx)}: Press sent no offsite bucket and no "
				"Storage Configuration is set. Fix: create a Storage Configuration, tick Default, and take the "
				"backup again."
			)
		ctx.log("no offsite backup asked: the backup stays in the site's private/backups")
		_forget_run_marker(ctx, site_steps.backend(ctx))
		return
	if "database" not in backups:
		raise BackupError(
			f"The job has no database backup of {site_steps.site_name(ctx)} to upload (step Backup Site)."
		)
	target = storage.target
	ctx.data.update(bucket=target.bucket, prefix=storage.folder)
	offsite = ctx.data.setdefault("offsite", {})
	checksums = ctx.data.setdefault("checksums", {})
	missing = [entry["path"] for entry in backups.values() if not checksums.get(entry["file"])]
	# before the S3 client: the container's stat of the files runs meanwhile (volume_files)
	source = _source(ctx, missing) if missing else None
	with open_client(target, checksummed_bodies=True) as s3:
		for kind, entry in backups.items():
			name, key = entry["file"], f"{storage.folder}/{entry['file']}"
			if checksums.get(name):
				recorded = transfer.Checksum.parse(checksums[name])
				transfer.verify_object(s3, target, key, entry["size"], recorded, tuning)
				ctx.log(f"{name}: already in s3://{target.bucket}/{key}, checked")
				continue
			stored, route = _upload_file(ctx, source, entry["path"], s3, target, key, tuning)
			if stored.size != entry["size"]:
				raise BackupError(
					f"{entry['path']} changed while it was uploaded ({entry['size']} bytes at backup, {stored.size} "
					"read). Fix: take the backup again."
				)
			transfer.verify_object(s3, target, key, stored.size, stored.checksum, tuning)
			offsite[name] = key
			checksums[name] = str(stored.checksum)
			ctx.log(
				f"{kind}: {name} -> s3://{target.bucket}/{key} ({stored.size} bytes, checksum {stored.checksum}, "
				f"{route})"
			)
	container = source.container if source else site_steps.backend(ctx)
	local_copies = [entry["path"] for entry in backups.values()]
	if storage.keep_local:
		ctx.log("local copies kept (keep files locally after offsite backup)")
		local_copies = []
	ctx.run(container, ["rm", "-f", *local_copies, _run_marker(ctx)])


@dataclass(frozen=True)
class _Source:
	"""Where the files to upload are read: the backend, and its sites volume when it is on this host."""

	container: object
	volume: volume_files.HostVolume | None
	identities: Future | None  # what the container's stat says of each file (volume_files)


def _source(ctx: StepContext, paths: list[str]) -> _Source:
	container = site_steps.backend(ctx)
	volume = volume_files.host_volume(container, paths[0])
	identities = volume_files.identities_meanwhile(container, paths) if volume else None
	return _Source(container, volume, identities)


def _upload_file(
	ctx: StepContext, source: _Source, path: str, s3, target: S3Target, key: str, tuning: transfer.Tuning
) -> tuple[transfer.StoredObject, str]:
	"""Reads the file from the sites volume on this host's disk when it is provably the file the
	container sees (volume_files: same device, inode and size, no link on the way), as the Agent
	reads it from its disk; otherwise streams it through Docker's archive API."""
	volume = source.volume
	if volume is not None and volume.holds(path):
		stored = volume_files.upload_from_host(volume, path, source.identities, s3, target, key, tuning)
		if stored is not None:
			return stored, f"read from volume {volume.name} on this host"
		ctx.log(f"{path}: not the same file under {volume.mountpoint} on this host; streamed through Docker")
	stored = transfer.upload_from_container(source.container, path, s3, target, key, tuning)
	return stored, "streamed through Docker"


def _refuse_missing_site(step):
	"""Backup Site on a site that is not there fails naming it (Archive Site handles archived sites itself)."""

	def run(ctx: StepContext) -> None:
		if site_steps.read_site_config(ctx) is None:
			raise BackupError(
				f"Site {site_steps.site_name(ctx)} does not exist in bench {ctx.job.bench} on server {ctx.server.name}: "
				"nothing to back up."
			)
		step(ctx)

	return run


class BackupJobs:
	"""Press's Backup Site: bench's backup files, uploaded to the offsite bucket when Press asks."""

	def handlers(self) -> list[Handler]:
		return [
			handler(
				"Backup Site",
				"POST",
				"benches/{bench}/sites/{site}/backup",
				[
					("Backup Site", _refuse_missing_site(step_backup_site)),
					("Upload Site Backup to S3", step_upload_site_backup),
				],
			)
		]
