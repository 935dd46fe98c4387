"""Which backups to keep (Press's FIFO and grandfather-father-son schemes) and deleting the rest in S3.

``plan`` is pure: backups in, the kept and the expired out, per site. ``delete_expired`` removes the
objects of the expired backups in one bucket (or, with ``dry_run``, only lists them); each backup
names the bucket it was stored in (``Plan.buckets``).

Whatever the scheme says, the newest verified backup of every site is kept, whatever the site's
status (an Inactive or Broken site's last backup may be all that is left of it), and an archived
site's backups are not rotated at all, as Press's own rotation skips archived sites: its archive
backup is the copy a restore of the site would need.
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from press_selfhosted.engine.clients.storage import S3Target, storage_error

FIFO = "FIFO"
GFS = "Grandfather-father-son"


@dataclass(frozen=True)
class Backup:
	name: str  # the Site Backup record
	site: str
	created: datetime.datetime
	keys: tuple[str, ...] = ()  # its objects in the bucket
	site_active: bool = True  # informational: the newest backup is kept whatever the site's status
	site_archived: bool = False  # an archived site's backups are never rotated
	bucket: str = ""  # where its objects are ("": the default Storage Configuration's bucket)


@dataclass(frozen=True)
class Policy:
	scheme: str = FIFO
	keep_count: int = 30  # FIFO: Press Settings offsite_backups_count
	daily: int = 7
	weekly: int = 4  # Sundays
	monthly: int = 12  # 1st of the month
	yearly: int = 10  # 1st of January


@dataclass
class Plan:
	keep: list[Backup] = field(default_factory=list)
	expire: list[Backup] = field(default_factory=list)

	@property
	def expired_keys(self) -> list[str]:
		return [key for backup in self.expire for key in backup.keys]

	@property
	def buckets(self) -> list[str]:
		"""The buckets holding expired objects ("" for the default one)."""
		return sorted({backup.bucket for backup in self.expire})


def _months_between(newer: datetime.date, older: datetime.date) -> int:
	return (newer.year - older.year) * 12 + newer.month - older.month


def _gfs_keeps(day: datetime.date, today: datetime.date, policy: Policy) -> bool:
	age = (today - day).days
	return (
		age < policy.daily
		or (day.weekday() == 6 and age < policy.weekly * 7)
		or (day.day == 1 and _months_between(today, day) < policy.monthly)
		or (day.day == 1 and day.month == 1 and today.year - day.year < policy.yearly)
	)


def _site_plan(backups: list[Backup], policy: Policy, today: datetime.date) -> Plan:
	newest_first = sorted(backups, key=lambda b: b.created, reverse=True)
	if policy.scheme not in (FIFO, GFS):
		raise ValueError(f"unknown retention scheme {policy.scheme!r}; use {FIFO!r} or {GFS!r}")
	if any(backup.site_archived for backup in newest_first):
		return Plan(keep=newest_first)
	if policy.scheme == FIFO:
		keep = newest_first[: policy.keep_count]
	else:
		# one backup per kept day: the newest of that day
		seen: set[datetime.date] = set()
		keep = []
		for backup in newest_first:
			day = backup.created.date()
			if day not in seen and _gfs_keeps(day, today, policy):
				keep.append(backup)
			seen.add(day)
	if newest_first and newest_first[0] not in keep:
		keep.insert(0, newest_first[0])
	return Plan(keep=keep, expire=[b for b in newest_first if b not in keep])


def plan(backups: Iterable[Backup], policy: Policy, today: datetime.date) -> Plan:
	"""Successful offsite backups in, what each site keeps and what expires out (newest first per site)."""
	by_site: dict[str, list[Backup]] = defaultdict(list)
	for backup in backups:
		by_site[backup.site].append(backup)
	result = Plan()
	for site in sorted(by_site):
		site_plan = _site_plan(by_site[site], policy, today)
		result.keep += site_plan.keep
		result.expire += site_plan.expire
	return result


def delete_expired(s3, target: S3Target, expired: Plan, dry_run: bool = False) -> list[str]:
	"""Deletes the expired backups' objects in ``target.bucket`` (1000 per request): those recorded in
	that bucket, or in none (the default's); returns the keys (only lists them on a dry run).

	Keys already gone count as deleted, so a rerun after a partial failure converges."""
	keys = [key for backup in expired.expire if backup.bucket in ("", target.bucket) for key in backup.keys]
	if dry_run:
		return keys
	for start in range(0, len(keys), 1000):
		batch = keys[start : start + 1000]
		try:
			answer = s3.delete_objects(
				Bucket=target.bucket, Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True}
			)
		except Exception as error:
			raise storage_error(error, target, "delete expired backups from") from error
		errors = [e for e in answer.get("Errors", []) if e.get("Code") != "NoSuchKey"]
		if errors:
			first = errors[0]
			raise storage_error(
				_client_error(first.get("Code", "Unknown"), first.get("Message", "")),
				target,
				"delete expired backups from",
			)
	return keys


def _client_error(code: str, message: str):
	from botocore.exceptions import ClientError

	return ClientError({"Error": {"Code": code, "Message": message}}, "DeleteObjects")
