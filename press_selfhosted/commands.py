"""Bench commands: ``bench --site S press-selfhosted sweep | run-job ID | retention [--dry-run] |
registry-cleanup [--dry-run] | verify-backups | restore-drill SITE | jobs SERVER``.

They apply the transport swap explicitly: bench commands run neither ``before_request`` nor ``before_job``.
"""

from __future__ import annotations

import click


@click.group("press-selfhosted")
def press_selfhosted():
	"""press_selfhosted's in-process agent."""


def _connect(context):
	import frappe

	frappe.init(site=context.sites[0])
	frappe.connect()
	from press_selfhosted.agent.runtime import apply_swap

	apply_swap()


@press_selfhosted.command("sweep")
@click.pass_obj
def sweep_command(context):
	"""Re-enqueue agent jobs whose worker died."""
	from press_selfhosted.agent.runtime import sweep_jobs

	_connect(context)
	click.echo(f"re-enqueued: {sweep_jobs()}")


@press_selfhosted.command("run-job")
@click.argument("job_id", type=int)
@click.pass_obj
def run_job_command(context, job_id):
	"""Run (or resume) one agent job in this process."""
	from press_selfhosted.agent.runtime import run_job

	_connect(context)
	click.echo(run_job(job_id) or "held by another worker")


@press_selfhosted.command("retention")
@click.option("--dry-run", is_flag=True, help="List the objects that would be deleted; delete nothing.")
@click.pass_obj
def retention_command(context, dry_run):
	"""Apply the backup retention policy to the backups in MinIO."""
	from press_selfhosted.agent.backups import apply_retention

	_connect(context)
	keys = apply_retention(dry_run=dry_run)
	for key in keys:
		click.echo(key)
	click.echo(f"{'would delete' if dry_run else 'deleted'}: {len(keys)} object(s)")
	_commit(dry_run)


@press_selfhosted.command("registry-cleanup")
@click.option("--dry-run", is_flag=True, help="Report the unused tags; delete nothing.")
@click.pass_obj
def registry_cleanup_command(context, dry_run):
	"""Delete tags of the default Local Registry that no Bench but an Archived one uses."""
	from press_selfhosted.api import registry_cleanup, registry_cleanup_plan

	_connect(context)
	summary = registry_cleanup_plan() if dry_run else registry_cleanup()
	_commit(dry_run)
	for repository in summary["repositories"]:
		click.echo(repository["message"])


@press_selfhosted.command("verify-backups")
@click.option("--days", type=int, default=2, show_default=True, help="Backups of the last DAYS days.")
@click.pass_obj
def verify_backups_command(context, days):
	"""Re-read recent backups from MinIO and check sizes and checksums."""
	from press_selfhosted.agent.backups import recheck_backups

	_connect(context)
	report = recheck_backups(days=days)
	for row in report:
		click.echo(f"{row['backup']}: {'ok' if row['ok'] else 'FAILED ' + '; '.join(row['failed'])}")
	_commit(False)
	if not all(row["ok"] for row in report):
		raise SystemExit(1)


@press_selfhosted.command("restore-drill")
@click.argument("site")
@click.pass_obj
def restore_drill_command(context, site):
	"""Restore SITE's latest backup into a throw-away site and compare it (runs here, now)."""
	import frappe

	from press_selfhosted.agent.backups import run_restore_drills

	_connect(context)
	run_restore_drills(site_name=site)
	click.echo(
		frappe.db.get_value("Site", site, "last_restore_drill_result") or "no backup with files to drill"
	)


@press_selfhosted.command("jobs")
@click.argument("server")
@click.option("--limit", type=int, default=20, show_default=True)
@click.pass_obj
def jobs_command(context, server, limit):
	"""The latest agent jobs of a container SERVER."""
	from press_selfhosted.api import agent_jobs

	_connect(context)
	for job in agent_jobs(server, limit=limit):
		click.echo(f"{job['id']:>6}  {job['status']:<8}  {job['job_type']}  {job.get('start') or ''}")


def _commit(dry_run: bool) -> None:
	import frappe

	if not dry_run:
		frappe.db.commit()


commands = [press_selfhosted]
