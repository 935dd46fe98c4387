"""Restore Site and New Site from Backup: backup files streamed from S3 into the bench, checked, restored.

Each file comes from its object key in the Storage Configuration's bucket when the glue recorded it
(``payload["storage"]["backup"][kind] = {"key", "sha256"}``, ``sha256`` holding the recorded
checksum in either form of transfer.Checksum), else from the presigned URL Press sends
(``payload[kind]``). Its checksum is computed in the recorded form while it streams into
``sites/downloads/restore-<job>-<site>/`` and compared with the recorded one before anything
touches the site: a mismatch or a missing object fails ``Download Backup Files`` naming the file.
Then the Agent's sequence (press-facts §3.5); the job's output is ``bench --site S list-apps``,
from which Press rebuilds the site's apps.

``bench restore`` needs a root login (it always sets the database up again); here the engine empties
the site's recorded database and makes its user again as root inside the MariaDB container, and
bench loads the dump with the site's own login (``bench new-site --force --no-setup-db --source-sql``,
what ``bench restore`` runs after that part); the files' tars are extracted as Frappe's
``extract_files`` does (``tar -xf --strip 2`` in the site folder).
"""

from __future__ import annotations

import json

from press_selfhosted.engine.clients import docker_exec, transfer
from press_selfhosted.engine.clients.storage import open_client
from press_selfhosted.engine.errors import ChecksumMismatch, ObjectMissing, TransferError
from press_selfhosted.engine.jobs import site_steps
from press_selfhosted.engine.jobs.backups import storage_target
from press_selfhosted.engine.jobs.handlers import Handler, StepContext, handler

FILE_KINDS = ("database", "public", "private")


def _download_dir(ctx: StepContext) -> str:
	return f"{site_steps.SITES}/downloads/restore-{ctx.job.id}-{site_steps.site_name(ctx)}"


def _sources(ctx: StepContext) -> dict[str, dict]:
	"""kind -> {"key"|"url", "sha256"} (the recorded checksum, when there is one) for each file this restore uses."""
	recorded = (ctx.payload.get("storage") or {}).get("backup") or {}
	found = {}
	for kind in FILE_KINDS:
		entry = dict(recorded.get(kind) or {})
		url = ctx.payload.get(kind)
		if not entry.get("key") and url:
			# a presigned URL is kept with its signature masked: the real one is in Press's request
			entry["url"] = ctx.unmasked(kind, url)
		if entry.get("key") or entry.get("url"):
			found[kind] = entry
	if "database" not in found:
		raise ObjectMissing(
			f"Restore of {site_steps.site_name(ctx)}: no database backup file was given (neither a recorded object "
			"key nor a URL). Fix: choose a backup with a database file."
		)
	return found


def _file_name(source: dict) -> str:
	where = source.get("key") or source["url"].split("?", 1)[0]
	return where.rstrip("/").rsplit("/", 1)[-1]


def download_backup_files(ctx: StepContext) -> None:
	site = site_steps.site_name(ctx)
	container = site_steps.backend(ctx)
	folder = _download_dir(ctx)
	downloads = ctx.data.setdefault("downloads", {})
	ctx.run(container, ["mkdir", "-p", folder])
	sources = _sources(ctx)
	target = storage_target(ctx) if any("key" in s for s in sources.values()) else None
	for kind, source in sources.items():
		name = _file_name(source)
		path = f"{folder}/{name}"
		if kind in downloads and docker_exec.run(container, ["test", "-f", path], check=False).exit_code == 0:
			ctx.log(f"{kind}: {name} was downloaded by an earlier run")
			continue
		expected = transfer.Checksum.parse(source["sha256"]) if source.get("sha256") else None
		if "key" in source:
			with open_client(target) as s3:
				incoming = transfer.open_object(s3, target, source["key"])
				got = transfer.write_into_container(incoming, container, folder, name, expected)
		else:
			got = transfer.write_into_container(
				transfer.open_url(source["url"]), container, folder, name, expected
			)
		if expected and got.checksum != expected:
			ctx.run(container, ["rm", "-f", path])
			raise ChecksumMismatch(
				f"The {kind} backup file {name} of {site} has the checksum {got.checksum}, but {expected} was "
				"recorded when it was uploaded: the object changed or is damaged, so the site was not touched. "
				"Fix: restore from another backup."
			)
		downloads[kind] = {
			"path": path,
			"size": got.size,
			"sha256": str(got.checksum),
			"checked": bool(expected),
		}
		ctx.log(
			f"{kind}: {name} ({got.size} bytes, checksum {got.checksum}{', as recorded' if expected else ''})"
		)


def _apply_config(ctx: StepContext, key: str) -> None:
	"""The site_config Press sends with a restore (``key``: a dict or JSON text, kept with its secrets,
	e.g. encryption_key, masked: the real one is read back)."""
	config = ctx.unmasked(key, ctx.payload.get(key))
	if isinstance(config, str):
		config = json.loads(config) if config.strip() else None
	if config:
		changes = [
			("set", name, value) for name, value in config.items() if name not in site_steps.ENGINE_KEYS
		]
		site_steps.edit_site_config(ctx, changes)


def restore_database(with_files: bool):
	"""The dump loaded into the site's emptied database (and the file tars, for New Site from Backup)."""

	def step(ctx: StepContext) -> None:
		downloads = ctx.data["downloads"]
		_check_dump(ctx, downloads["database"]["path"])
		# the backup's site_config (e.g. backup_encryption_key) is needed before the restore
		_apply_config(ctx, "sanitized_config_content")
		db = site_steps.mariadb(ctx)
		db_name = site_steps.site_database(ctx, db)
		site_steps.make_site_database(ctx, db, db_name)
		site_steps.bootstrap(ctx, db_name, "--source-sql", downloads["database"]["path"])
		if with_files:
			extract_files(ctx, downloads)
		_apply_config(ctx, "site_config")

	return step


# A dump is gzip'd SQL or plain SQL text; anything else (a backup Frappe encrypted with gpg) would be
# loaded as garbage after the site's database was emptied: refused before.
_DUMP_KIND = (
	"import sys; head = open(sys.argv[1], 'rb').read(512); "
	"print('gzip' if head[:2] == b'\\x1f\\x8b' else 'text' if head.strip() == b'' or all("
	"32 <= c < 127 or c in (9, 10, 13) for c in head[:64]) else 'other')"
)


def _check_dump(ctx: StepContext, path: str) -> None:
	kind = docker_exec.run(
		site_steps.backend(ctx), ["python3", "-c", _DUMP_KIND, path], docker_exec.Exec(reads_only=True)
	).stdout.strip()
	if kind not in ("gzip", "text"):
		raise TransferError(
			f"The database backup file {path.rsplit('/', 1)[-1]} of {site_steps.site_name(ctx)} is neither gzip nor SQL "
			"text (an encrypted backup?): it was not loaded and the site was not touched. Fix: restore from an "
			"unencrypted backup, or decrypt the file with the site's backup_encryption_key first."
		)


def extract_files(ctx: StepContext, downloads: dict) -> None:
	"""Frappe's extract_files: the tars' ``./<site>/<folder>/files`` with 2 components stripped."""
	site_dir = f"{site_steps.SITES}/{site_steps.site_name(ctx)}"
	for kind in ("public", "private"):
		if kind in downloads:
			ctx.run(
				site_steps.backend(ctx),
				["tar", "-xf", downloads[kind]["path"], "--strip", "2"],
				docker_exec.Exec(workdir=site_dir),
			)


def restore_files(ctx: StepContext) -> None:
	"""Files-only restore as the Agent does it."""
	extract_files(ctx, ctx.data["downloads"])


def log_checksums(ctx: StepContext) -> None:
	for kind, entry in ctx.data.get("downloads", {}).items():
		state = "matched the recorded checksum" if entry["checked"] else "no checksum was recorded"
		ctx.log(f"{kind}: {entry['path']} checksum {entry['sha256']} ({state}, checked before the restore)")


def delete_downloads(ctx: StepContext) -> None:
	ctx.run(site_steps.backend(ctx), ["rm", "-rf", _download_dir(ctx)])


def uninstall_unavailable_apps(ctx: StepContext) -> None:
	wanted = set(ctx.payload.get("apps") or [])
	extra = [app for app in site_steps.installed_apps(ctx) if wanted and app not in wanted]
	for app in extra:
		site_steps.bench(ctx, "remove-from-installed-apps", app)
	if extra:
		site_steps.bench(ctx, "clear-cache")


def check_and_report_apps(ctx: StepContext) -> None:
	"""Reload NGINX (the front answers) and the apps list as the job's output, one app per line."""
	site_steps.check_front(ctx)
	ctx.data["output"] = site_steps.bench(ctx, "list-apps", reads_only=True).stdout.strip()


_AFTER_RESTORE = (
	("Delete Downloaded Backup Files", delete_downloads),
	("Uninstall Unavailable Apps", uninstall_unavailable_apps),
	("Migrate Site", site_steps.migrate),
	("Set Administrator Password", site_steps.set_admin_password),
	("Enable Scheduler", site_steps.enable_scheduler),
	("Bench Setup NGINX", site_steps.setup_nginx),
	("Reload NGINX", check_and_report_apps),
)


class RestoreJobs:
	"""Press's Restore Site and New Site from Backup: a site's database and files from backup files."""

	def handlers(self) -> list[Handler]:
		return [
			handler(
				"Restore Site",
				"POST",
				"benches/{bench}/sites/{site}/restore",
				[
					("Download Backup Files", download_backup_files),
					("Restore Site", restore_database(with_files=False)),
					("Restore Files", restore_files),
					("Checksum of Downloaded Backup Files", log_checksums),
					*_AFTER_RESTORE,
				],
			),
			handler(
				"New Site from Backup",
				"POST",
				"benches/{bench}/sites/restore",
				[
					("Download Backup Files", download_backup_files),
					("New Site", site_steps.new_site),
					("Update Site Configuration", site_steps.update_config_from_payload),
					("Restore Site", restore_database(with_files=True)),
					*_AFTER_RESTORE,
				],
			),
		]
