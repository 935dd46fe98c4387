"""Verification of stored backups: checksums re-checked in S3, and restore drills.

``recheck`` reads every object of a backup back and compares its size and checksum with the recorded
ones (either form of transfer.Checksum: the file's sha256 older backups recorded, or the composite of
its parts), reporting each file (it does not stop at the first bad one). Only a missing or changed object
is a bad file: when S3 cannot be asked (unreachable, keys refused, a server error) it raises, so a
temporary outage never marks good backups Unavailable. ``restore_drill`` restores a
backup into a throw-away site on the source site's bench with the New Site from Backup steps,
checks that the site answers and that its tables and row counts equal the expected ones (the
source's at backup time), and drops the throw-away site and its database whatever happened.
"""

from __future__ import annotations

import datetime
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field

from press_selfhosted.engine.agent.runner import Contexts, Journal, Log, run_steps
from press_selfhosted.engine.clients import transfer
from press_selfhosted.engine.clients.storage import S3Target
from press_selfhosted.engine.errors import ChecksumMismatch, EngineError, ObjectMissing, UnknownChecksum
from press_selfhosted.engine.jobs import site_steps
from press_selfhosted.engine.jobs.backups import table_counts
from press_selfhosted.engine.jobs.handlers import JobRecord, StepContext
from press_selfhosted.engine.jobs.restore import RestoreJobs


@dataclass(frozen=True)
class FileCheck:
	key: str
	ok: bool
	message: str


def recheck(
	s3, target: S3Target, recorded: Mapping[str, tuple[int, str]], tuning: transfer.Tuning = transfer.TUNING
) -> list[FileCheck]:
	"""``recorded`` maps object key -> (size, checksum as recorded). Raises a StorageError (or
	TransferError) when the answer says nothing about the backup itself."""
	found = []
	for key, (size, checksum) in recorded.items():
		try:
			# read back: the checksum S3 computed at upload says nothing of what its disks hold now
			transfer.verify_object(
				s3, target, key, size, transfer.Checksum.parse(checksum), tuning, read_back=True
			)
		except (ObjectMissing, ChecksumMismatch, UnknownChecksum) as error:
			found.append(FileCheck(key, False, str(error)))
		else:
			found.append(FileCheck(key, True, f"{key}: {size} bytes, checksum as recorded"))
	return found


@dataclass
class DrillResult:
	site: str
	drill_site: str
	ok: bool = False
	message: str = ""
	tables: dict[str, int] = field(default_factory=dict)
	finished: str = ""

	def as_dict(self) -> dict:
		return dict(self.__dict__)


# `bench migrate` at the end of the restore sequence logs its patches: that table grows on purpose.
IGNORED_TABLES = ("tabPatch Log",)
# The drill's copy never runs its scheduler: the restore leaves it disabled, and this step is not run.
SKIPPED_STEPS = ("Enable Scheduler",)


def _differences(expected: Mapping[str, int], found: Mapping[str, int]) -> list[str]:
	names = sorted((set(expected) | set(found)) - set(IGNORED_TABLES))
	return [
		f"{name}: {expected.get(name, 'missing')} at backup, {found.get(name, 'missing')} restored"
		for name in names
		if expected.get(name) != found.get(name)
	]


def restore_drill(
	source: JobRecord,
	backup: Mapping[str, Mapping[str, str]],
	expected_tables: Mapping[str, int],
	contexts: Contexts,
	storage: Mapping | None = None,
	echo: Log | None = None,
) -> DrillResult:
	"""Restores ``backup`` (kind -> {"key", "sha256": the recorded checksum}) of ``source.site`` into a throw-away site of the
	same bench and compares it with ``expected_tables``. ``contexts`` gives the drill's secrets
	(``admin_password`` and the database and S3 keys); ``echo`` sees the steps' output. The caller holds
	the bench's lock (:class:`~press_selfhosted.engine.agent.locks.BenchLocks`): no job runs on the bench
	meanwhile."""
	drill_site = f"drill-{secrets.token_hex(4)}.{source.site}"
	if len(drill_site) > 253:  # a site name near the limit: the drill's own name stays a valid one
		drill_site = f"drill-{secrets.token_hex(4)}.{source.site.split('.', 1)[-1]}"
	result = DrillResult(site=source.site, drill_site=drill_site)
	job = JobRecord(
		id=source.id,
		job_type="New Site from Backup",
		server=source.server,
		server_type=source.server_type,
		method="POST",
		path="benches/{bench}/sites/restore",
		bench=source.bench,
		site=drill_site,
		payload={
			"name": drill_site,
			"apps": list(source.payload.get("apps") or []),
			# a copy of a production site in the production bench: its scheduled jobs and emails stay off
			"config": {"pause_scheduler": 1, "mute_emails": 1},
			"storage": {**(storage or {}), "backup": {k: dict(v) for k, v in backup.items()}},
		},
	)
	handler = next(h for h in RestoreJobs().handlers() if h.job_type == "New Site from Backup")
	context = contexts.for_job(job)
	ctx = context(echo or _ignore)  # the drill's own commands: counting tables, dropping the copy
	try:
		steps = [step for step in handler.steps if step.name not in SKIPPED_STEPS]
		run_steps(job, steps, context, Journal(echo)).check()
		db = site_steps.mariadb(ctx)
		found = table_counts(db, site_steps.site_database(ctx, db))
		result.tables = found
		differences = _differences(expected_tables, found)
		result.ok = not differences
		result.message = (
			f"{drill_site} answers and holds the {len(found)} tables with the row counts of {source.site} at backup time"
			if result.ok
			else "Restored data differs from the backup: " + "; ".join(differences)
		)
	except EngineError as error:
		result.message = f"The restore drill of {source.site} failed: {error}"
	finally:
		cleanup = _drop(ctx, drill_site)
		if cleanup:
			result.ok = False
			result.message += f" Removing the drill site failed: {cleanup}"
		result.finished = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
	return result


def _ignore(text: str) -> None:
	"""The drill's output nobody asked to see."""


def _drop(ctx: StepContext, drill_site: str) -> str:
	"""Drops the drill site's database, user, record and directory (also when it was only half created)."""
	try:
		db = site_steps.mariadb(ctx)
		db_name = db.recorded_database(drill_site)
		if db_name:
			db.drop_site_database(db_name)
			db.forget_database(drill_site)
		container = site_steps.backend(ctx)
		ctx.run(
			container,
			[
				"rm",
				"-rf",
				"--",
				f"{site_steps.SITES}/{drill_site}",
				f"{site_steps.SITES}/downloads/restore-{ctx.job.id}-{drill_site}",
			],
		)
	except EngineError as error:
		return str(error)
	return ""
