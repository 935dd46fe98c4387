"""Frappe glue of backups: Press's read side kept on MinIO, backup records completed, retention and
verification on a schedule.

Pure functions (documents or dicts in, values out) carry the mappings and are tested without
Frappe; the functions below them read and write documents and call the engine.

- ``sync_backup_bucket`` (doc event: Storage Configuration on_update): a Backup Bucket per cluster
  named after the default bucket, with MinIO's endpoint_url and region, and Press Settings' offsite
  keys, so Press's download links, Remote File checks, deletion and restore payloads reach MinIO.
- ``storage_payload`` (called by the agent router when it records a backup or restore job): the
  non-secret Storage Configuration fields the engine needs (prefix, TLS, keep-local), and for
  restores the object keys and sha256 recorded with the Site Backup being restored.
- ``complete_site_backup`` (doc event: Site Backup on_update): fills ``minio_bucket``,
  ``minio_prefix`` and ``minio_checksums`` from the Backup Site job's data once it is Success.
- ``apply_retention`` (daily), ``recheck_backups`` (daily), ``run_restore_drills`` (weekly).
"""

from __future__ import annotations

import datetime
import json
from urllib.parse import unquote, urlsplit

from press_selfhosted.engine.agent import verification
from press_selfhosted.engine.agent.locks import BenchLocks
from press_selfhosted.engine.agent.runner import Contexts
from press_selfhosted.engine.agent.store import JobStore
from press_selfhosted.engine.clients.storage import open_client
from press_selfhosted.engine.errors import BenchBusy
from press_selfhosted.engine.jobs.handlers import JobRecord, JobRequest
from press_selfhosted.engine.policies import retention
from press_selfhosted.engine.policies.retention import FIFO, GFS, Backup, Policy

BACKUP_JOB_TYPES = ("Backup Site", "Archive Site", "Uninstall App from Site")
RESTORE_JOB_TYPES = ("Restore Site", "New Site from Backup")
FILE_FIELDS = {
	"database": "database_file",
	"public": "public_file",
	"private": "private_file",
	"site_config": "config_file",
}


# --- pure mappings ------------------------------------------------------------------------------------


def backup_bucket_values(config, cluster: str) -> dict:
	"""The Backup Bucket Press should use for ``cluster`` given the default Storage Configuration."""
	return {
		"doctype": "Backup Bucket",
		"name": config.get("default_bucket"),
		"bucket_name": config.get("default_bucket"),
		"cluster": cluster,
		"endpoint_url": config.get("endpoint_url"),
		"region": config.get("region") or "us-east-1",
	}


def press_settings_values(config, access_key: str | None, secret: str | None) -> dict:
	"""Press Settings' offsite fields for the default Storage Configuration (the secret itself is
	stored encrypted apart; the field only holds a mask, as a saved Password field does)."""
	return {
		"aws_s3_bucket": config.get("default_bucket"),
		"backup_region": config.get("region") or "us-east-1",
		"offsite_backups_access_key_id": access_key or "",
		"offsite_backups_secret_access_key": "*" * len(secret or ""),
	}


def storage_fields(config) -> dict:
	"""Non-secret fields of the Storage Configuration the engine reads from ``payload["storage"]``."""
	return {
		"endpoint_url": config.get("endpoint_url"),
		"bucket": config.get("default_bucket"),
		"region": config.get("region") or "us-east-1",
		"prefix": config.get("minio_prefix") or "",
		"verify_tls": bool(config.get("verify_tls", 1)),
		"ca_bundle": config.get("ca_bundle") or None,
		"addressing_style": config.get("addressing_style") or "path",
		"keep_local_backup_files": bool(config.get("keep_local_backup_files")),
	}


def site_backup_fields(data: dict) -> dict:
	"""Site Backup custom fields from a successful Backup Site job's data."""
	if not data.get("checksums"):
		return {}
	return {
		"minio_bucket": data.get("bucket"),
		"minio_prefix": data.get("prefix"),
		"minio_checksums": json.dumps(data["checksums"], indent=1, sort_keys=True),
	}


def key_of_url(url: str | None, bucket: str) -> str | None:
	"""The object key in a presigned URL (path-style ``/<bucket>/<key>`` or virtual-host ``/<key>``)."""
	if not url or "://" not in url:
		return None
	path = unquote(urlsplit(url).path).lstrip("/")
	return path[len(bucket) + 1 :] if path.startswith(f"{bucket}/") else path


def recorded_backup(site_backup, payload: dict) -> dict:
	"""kind -> {"key", "sha256"} for the files of ``site_backup`` a restore payload asks for."""
	checksums = json.loads(site_backup.get("minio_checksums") or "{}")
	prefix = site_backup.get("minio_prefix") or ""
	found = {}
	for kind in ("database", "public", "private"):
		name = site_backup.get(FILE_FIELDS[kind])
		if name and (payload.get(kind) or kind == "database") and name in checksums:
			found[kind] = {"key": f"{prefix}/{name}" if prefix else name, "sha256": checksums[name]}
	return found


def retention_backups(
	rows: list[dict], active_sites: set[str], archived_sites: set[str] = frozenset()
) -> list[Backup]:
	"""Site Backup rows (name, site, creation, minio_bucket, minio_prefix, minio_checksums) as the
	engine's Backups; an archived site's are never rotated."""
	found = []
	for row in rows:
		names = sorted(json.loads(row.get("minio_checksums") or "{}"))
		prefix = row.get("minio_prefix") or ""
		found.append(
			Backup(
				name=row["name"],
				site=row["site"],
				created=row["creation"],
				keys=tuple(f"{prefix}/{name}" for name in names),
				site_active=row["site"] in active_sites,
				site_archived=row["site"] in archived_sites,
				bucket=row.get("minio_bucket") or "",
			)
		)
	return found


def retention_policy(settings) -> Policy:
	"""Press Settings' rotation: ``backup_rotation_scheme`` FIFO (keep ``offsite_backups_count``) or GFS."""
	scheme = GFS if (settings.get("backup_rotation_scheme") or FIFO) != FIFO else FIFO
	return Policy(scheme=scheme, keep_count=int(settings.get("offsite_backups_count") or 30))


# --- Frappe side ---------------------------------------------------------------------------------------


def _default_config():
	from press_selfhosted.press_selfhosted.doctype.storage_configuration.storage_configuration import (
		find_default,
	)

	return find_default()


def sync_backup_bucket(doc, method=None) -> None:
	"""Press's read side of offsite backups follows the default Storage Configuration.

	A Backup Bucket is named by its (unique) bucket name, so one record can serve one cluster only:
	it keeps the cluster it has, else takes the first one. Press falls back to Press Settings'
	``aws_s3_bucket`` for the other clusters and finds endpoints by bucket name, so that record plus the
	fallback serve every cluster. Press Settings is written field by field: its ``save()`` would ask for
	fields unrelated to backups (``certbot_directory``…) that a fresh Press does not have."""
	import frappe
	from frappe.utils.password import set_encrypted_password

	if not doc.get("is_default") or not doc.get("default_bucket"):
		return
	clusters = frappe.get_all("Cluster", order_by="creation asc", pluck="name")
	current = frappe.db.get_value("Backup Bucket", doc.default_bucket, "cluster")
	values = backup_bucket_values(doc, current or (clusters[0] if clusters else None))
	if frappe.db.exists("Backup Bucket", values["name"]):
		frappe.db.set_value(
			"Backup Bucket", values["name"], {k: v for k, v in values.items() if k not in ("doctype", "name")}
		)
	elif values["cluster"]:
		frappe.get_doc(values).insert(ignore_permissions=True)
	access_key = doc.get_password("access_key", raise_exception=False)
	secret = doc.get_password("secret_key", raise_exception=False)
	frappe.db.set_single_value("Press Settings", press_settings_values(doc, access_key, secret))
	if secret:
		set_encrypted_password(
			"Press Settings", "Press Settings", secret, "offsite_backups_secret_access_key"
		)


def sync_default_backup_bucket(doc=None, method=None) -> None:
	"""doc_events hook (Cluster ``after_insert``): a first cluster gets the default bucket's record."""
	config = _default_config()
	if config:
		sync_backup_bucket(config)


def storage_payload(job_type: str, site: str | None, payload: dict) -> dict:
	"""What the router merges into a job's payload as ``storage`` (never secrets)."""
	import frappe

	if job_type not in BACKUP_JOB_TYPES + RESTORE_JOB_TYPES:
		return {}
	config = _default_config()
	if config is None:
		return {}
	storage = storage_fields(config)
	if job_type in RESTORE_JOB_TYPES:
		bucket = (payload.get("offsite") or {}).get("bucket") or storage["bucket"]
		database_key = key_of_url(payload.get("database"), bucket)
		remote = frappe.db.get_value("Remote File", {"file_path": database_key}) if database_key else None
		backup = frappe.db.get_value("Site Backup", {"remote_database_file": remote}) if remote else None
		if backup:
			storage["backup"] = recorded_backup(frappe.get_doc("Site Backup", backup), payload)
	return {"storage": storage}


def complete_site_backup(doc, method=None) -> None:
	"""doc_events hook (Site Backup ``on_update``): a backup record Press inserts after the job ended
	(the archive backup of Archive Site, Uninstall App's) gets its objects from the job's data."""
	import frappe

	if doc.status != "Success" or doc.get("minio_checksums") or not doc.job:
		return
	data = json.loads(frappe.db.get_value("Agent Job", doc.job, "data") or "{}")
	fields = site_backup_fields(data)
	if fields:
		frappe.db.set_value("Site Backup", doc.name, fields)


def record_backup_objects(agent_job: str | None, data: dict) -> None:
	"""A finished backup job: its objects on the Site Backup Press made for it before the job ran.

	Press marks that record Success with ``frappe.db.set_value`` (no document event), so the result is
	recorded here, where the job ends; Press's own fields on it are left to Press."""
	import frappe

	fields = site_backup_fields(data)
	backup = frappe.db.get_value("Site Backup", {"job": agent_job}) if agent_job else None
	if fields and backup:
		frappe.db.set_value("Site Backup", backup, fields)


def apply_retention(dry_run: bool = False) -> list[str]:
	"""Expires Site Backups of container sites with objects in MinIO; returns the deleted keys."""
	import frappe

	config = _default_config()
	if config is None:
		return []
	rows = frappe.get_all(
		"Site Backup",
		filters={"status": "Success", "files_availability": "Available", "minio_checksums": ("is", "set")},
		fields=["name", "site", "creation", "minio_prefix", "minio_checksums", "minio_bucket"],
	)
	active = set(frappe.get_all("Site", filters={"status": ("in", ("Active", "Suspended"))}, pluck="name"))
	sites = sorted({row["site"] for row in rows})
	archived = set(
		frappe.get_all("Site", filters={"status": "Archived", "name": ("in", sites)}, pluck="name")
	)
	plan = retention.plan(
		retention_backups(rows, active, archived),
		retention_policy(frappe.get_single("Press Settings")),
		datetime.date.today(),
	)
	keys = []
	for bucket in plan.buckets:  # each backup's objects are deleted in the bucket it recorded
		target = config.s3_target(bucket or None)
		with open_client(target) as s3:
			keys += retention.delete_expired(s3, target, plan, dry_run=dry_run)
	if not dry_run:
		for backup in plan.expire:
			frappe.db.set_value("Site Backup", backup.name, "files_availability", "Unavailable")
			for field in (
				"remote_database_file",
				"remote_public_file",
				"remote_private_file",
				"remote_config_file",
			):
				remote = frappe.db.get_value("Site Backup", backup.name, field)
				if remote:
					frappe.db.set_value("Remote File", remote, "status", "Unavailable")
	return keys


def recheck_backups(days: int = 2, names: list[str] | None = None) -> list[dict]:
	"""Re-reads the objects of recent successful backups (or of the Site Backups ``names``); a backup
	whose objects fail is marked Unavailable."""
	import frappe

	config = _default_config()
	if config is None:
		return []
	since = datetime.datetime.now() - datetime.timedelta(days=days)
	rows = frappe.get_all(
		"Site Backup",
		filters={
			"status": "Success",
			# a backup whose files were deleted (retention, or Press on archive) has nothing to verify
			"files_availability": "Available",
			"minio_checksums": ("is", "set"),
			**({"name": ("in", names)} if names else {"creation": (">", since)}),
		},
		fields=[
			"name",
			"minio_bucket",
			"minio_prefix",
			"minio_checksums",
			*FILE_FIELDS.values(),
			"database_size",
			"public_size",
			"private_size",
			"config_file_size",
		],
	)
	report = []
	for row in rows:
		recorded = _recorded_sizes(row)
		target = config.s3_target(row["minio_bucket"])
		with open_client(target) as s3:
			checks = verification.recheck(s3, target, recorded)
		failed = [c.message for c in checks if not c.ok]
		if failed:
			frappe.db.set_value("Site Backup", row["name"], "files_availability", "Unavailable")
			frappe.log_error("Backup verification failed", "\n".join(failed))
		report.append({"backup": row["name"], "ok": not failed, "failed": failed})
	return report


def _recorded_sizes(row: dict) -> dict[str, tuple[int, str]]:
	checksums = json.loads(row["minio_checksums"])
	sizes = {
		"database_file": "database_size",
		"public_file": "public_size",
		"private_file": "private_size",
		"config_file": "config_file_size",
	}
	found = {}
	for field, size_field in sizes.items():
		name = row.get(field)
		if name in checksums:
			found[f"{row['minio_prefix']}/{name}"] = (int(row.get(size_field) or 0), checksums[name])
	return found


class DrillSecrets:
	"""The job's secrets, except the throw-away site's admin password (it has no Site record)."""

	def __init__(self, secrets):
		import secrets as tokens

		self.secrets = secrets
		self.admin_password = tokens.token_hex(
			16
		)  # never starts with "-", which a command line would read as an option

	def secret(self, job, key: str) -> str:
		return self.admin_password if key == "admin_password" else self.secrets.secret(job, key)


def run_restore_drills(site_name: str | None = None) -> None:
	"""Drills the latest successful backup with files of each active container site (weekly), or of
	``site_name`` alone; records the result on the Site (``last_verified_restore``, ``last_restore_drill_result``)."""
	import frappe

	from press_selfhosted.glue import settings, topology

	config = _default_config()
	if config is None:
		return
	press, secrets = topology.FrappeTopology(), DrillSecrets(topology.FrappeSecrets())
	contexts = Contexts(press, secrets, topology.docker_hosts)
	store = JobStore(settings.store_config())  # of its own: the bench lock belongs to its connection
	locks = BenchLocks(store)
	try:
		for site in _drilled_sites(site_name):
			backup = frappe.get_doc("Site Backup", site.backup)
			apps = [row.app for row in frappe.get_doc("Site", site.name).apps]
			drill = JobRequest(
				"Restore Drill", site.server, "Server", "POST", "", site.bench, site.name, {"apps": apps}
			)
			source = JobRecord.of(drill, 0)
			data = frappe.db.get_value("Agent Job", backup.job, "data") or "{}"
			tables = json.loads(data).get("tables") or {}
			# the executor's lock of the bench: no job of the bench runs while its copy is restored
			try:
				with locks.hold(site.server, site.bench, f"The restore drill of {site.name}"):
					result = verification.restore_drill(
						source,
						recorded_backup(backup, {"public": 1, "private": 1}),
						tables,
						contexts,
						storage_fields(config),
					)
				# the date of the last restore that passed survives a failing drill; the result says what happened
				recorded = {"last_restore_drill_result": result.message}
				if result.ok:
					recorded["last_verified_restore"] = result.finished
			except BenchBusy as busy:
				recorded = {"last_restore_drill_result": str(busy)}
			frappe.db.set_value("Site", site.name, recorded)
			frappe.db.commit()
	finally:
		store.close()


def _drilled_sites(site_name: str | None) -> list:
	"""Active container sites (or ``site_name``) with a successful backup with files: name, bench, server
	and ``backup``, the latest such Site Backup."""
	import frappe

	found = []
	filters = {"status": "Active", **({"name": site_name} if site_name else {})}
	for site in frappe.get_all("Site", filters=filters, fields=["name", "bench", "server"]):
		if not frappe.db.get_value("Server", site.server, "container_prefix"):
			continue
		latest = frappe.get_all(
			"Site Backup",
			filters={
				"site": site.name,
				"status": "Success",
				"minio_checksums": ("is", "set"),
				"with_files": 1,
			},
			pluck="name",
			order_by="creation desc",
			limit=1,
		)
		if latest:
			site.backup = latest[0]
			found.append(site)
	return found
