"""Retention schemes over a synthetic calendar, and deleting expired objects in the real S3 server."""

from __future__ import annotations

import datetime
import uuid

import pytest
from backup_support import object_keys, scratch_bucket

from press_selfhosted.engine.clients.storage import open_client
from press_selfhosted.engine.policies import retention

TODAY = datetime.date(2026, 3, 15)  # a Sunday


def daily_backups(
	site: str, first: datetime.date, last: datetime.date, active: bool = True, **more
) -> list[retention.Backup]:
	days = (last - first).days + 1
	return [
		retention.Backup(
			name=f"{site}-{day:%Y%m%d}",
			site=site,
			created=datetime.datetime.combine(day, datetime.time(3, 0)),
			keys=(f"p/{site}/{day:%Y-%m-%d}/db.sql.gz", f"p/{site}/{day:%Y-%m-%d}/config.json"),
			site_active=active,
			**more,
		)
		for day in (first + datetime.timedelta(days=n) for n in range(days))
	]


def kept_days(result: retention.Plan) -> list[str]:
	return sorted(b.created.strftime("%Y-%m-%d") for b in result.keep)


def test_fifo_keeps_the_newest_n_per_site():
	backups = daily_backups("a", datetime.date(2026, 3, 1), TODAY) + daily_backups(
		"b", datetime.date(2026, 3, 10), TODAY
	)
	result = retention.plan(backups, retention.Policy(retention.FIFO, keep_count=3), TODAY)
	assert kept_days(result) == [
		"2026-03-13",
		"2026-03-13",
		"2026-03-14",
		"2026-03-14",
		"2026-03-15",
		"2026-03-15",
	]
	assert len(result.expire) == 12 + 3
	assert "p/a/2026-03-01/db.sql.gz" in result.expired_keys
	assert not any("2026-03-15" in key for key in result.expired_keys)


def test_gfs_keeps_7_daily_4_sundays_12_firsts_of_month_10_new_years():
	backups = daily_backups("a", datetime.date(2013, 1, 1), TODAY)
	result = retention.plan(backups, retention.Policy(retention.GFS), TODAY)
	daily = [f"2026-03-{d:02d}" for d in range(9, 16)]
	sundays = ["2026-02-22", "2026-03-01", "2026-03-08"]  # 2026-03-15 is also the newest daily
	monthly = [f"2025-{m:02d}-01" for m in range(4, 13)] + ["2026-01-01", "2026-02-01"]  # + 2026-03-01 above
	yearly = [f"{y}-01-01" for y in range(2017, 2026)]  # ten years with 2026-01-01 above; 2016 expires
	expected = sorted(set(daily + sundays + monthly + yearly))
	assert kept_days(result) == expected
	assert len(result.keep) + len(result.expire) == len(backups)


def test_gfs_keeps_one_backup_per_day_the_newest():
	day = datetime.datetime(2026, 3, 14)
	backups = [
		retention.Backup("early", "a", day.replace(hour=1)),
		retention.Backup("late", "a", day.replace(hour=23)),
	]
	result = retention.plan(backups, retention.Policy(retention.GFS), TODAY)
	assert [b.name for b in result.keep] == ["late"]
	assert [b.name for b in result.expire] == ["early"]


def test_newest_backup_of_every_site_is_never_expired():
	old = daily_backups("a", datetime.date(2025, 6, 10), datetime.date(2025, 6, 12))
	result = retention.plan(old, retention.Policy(retention.GFS), TODAY)
	assert [b.name for b in result.keep] == ["a-20250612"]
	fifo = retention.plan(old, retention.Policy(retention.FIFO, keep_count=0), TODAY)
	assert [b.name for b in fifo.keep] == ["a-20250612"]
	# an Inactive or Broken site's last backup may be all that is left of it
	inactive = daily_backups("z", datetime.date(2025, 6, 10), datetime.date(2025, 6, 12), active=False)
	assert [b.name for b in retention.plan(inactive, retention.Policy(retention.GFS), TODAY).keep] == [
		"z-20250612"
	]


def test_an_archived_sites_backups_are_not_rotated():
	"""As Press's own rotation: the archive backup (here 14 days old, no Sunday) is the site's only copy."""
	only = daily_backups("gone", datetime.date(2026, 3, 1), datetime.date(2026, 3, 1), site_archived=True)
	assert retention.plan(only, retention.Policy(retention.GFS), TODAY).expire == []
	many = daily_backups("gone", datetime.date(2026, 1, 2), datetime.date(2026, 3, 1), site_archived=True)
	for policy in (retention.Policy(retention.GFS), retention.Policy(retention.FIFO, keep_count=3)):
		assert retention.plan(many, policy, TODAY).expire == []


def test_each_backup_is_deleted_in_the_bucket_it_recorded(endpoints):
	other = f"t-retention-other-{uuid.uuid4().hex[:8]}"
	backups = daily_backups("a", datetime.date(2026, 3, 1), datetime.date(2026, 3, 3)) + daily_backups(
		"b", datetime.date(2026, 3, 1), datetime.date(2026, 3, 3), bucket=other
	)
	result = retention.plan(backups, retention.Policy(retention.FIFO, keep_count=1), TODAY)
	assert result.buckets == ["", other]
	with (
		scratch_bucket(endpoints, f"t-retention-{uuid.uuid4().hex[:8]}") as default,
		scratch_bucket(endpoints, other) as elsewhere,
		open_client(default) as s3,
	):
		for backup in backups:
			for key in backup.keys:
				s3.put_object(Bucket=backup.bucket or default.bucket, Key=key, Body=b"x")
		retention.delete_expired(s3, default, result)
		assert object_keys(s3, default.bucket) == sorted(
			k for b in result.keep if b.site == "a" for k in b.keys
		)
		assert len(object_keys(s3, other)) == 6  # not this bucket's: untouched
		retention.delete_expired(s3, elsewhere, result)
		assert object_keys(s3, other) == sorted(k for b in result.keep if b.site == "b" for k in b.keys)


def test_unknown_scheme_is_refused():
	with pytest.raises(ValueError, match="unknown retention scheme 'LIFO'"):
		retention.plan(daily_backups("a", TODAY, TODAY), retention.Policy("LIFO"), TODAY)


def test_dry_run_lists_and_delete_removes_exactly_the_expired_objects(endpoints):
	backups = daily_backups("a", datetime.date(2026, 3, 1), TODAY)
	result = retention.plan(backups, retention.Policy(retention.FIFO, keep_count=5), TODAY)
	with (
		scratch_bucket(endpoints, f"t-retention-{uuid.uuid4().hex[:8]}") as target,
		open_client(target) as s3,
	):
		for backup in backups:
			for key in backup.keys:
				s3.put_object(Bucket=target.bucket, Key=key, Body=b"x")
		listed = retention.delete_expired(s3, target, result, dry_run=True)
		assert sorted(listed) == sorted(result.expired_keys)
		assert len(object_keys(s3, target.bucket)) == 30

		s3.delete_object(Bucket=target.bucket, Key=listed[0])  # already gone: still converges
		assert retention.delete_expired(s3, target, result) == listed
		assert object_keys(s3, target.bucket) == sorted(k for b in result.keep for k in b.keys)
