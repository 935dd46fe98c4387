"""Rename Site on a container bench: the site's folder takes the new name in the bench's sites volume;
its database keeps its name, and the engine's record of it (on the database server) follows the new
name. Press renames the route on the proxy with its own job (``Rename Site on Upstream``, engine/proxy.py).

Steps after ``Rename Site`` work on the new name. A rerun after a crash finds the folder under one of
the two names and goes on from there; both names holding a site is refused rather than guessed at.
"""

from __future__ import annotations

from collections.abc import Callable

from press_selfhosted.engine.errors import SiteError
from press_selfhosted.engine.jobs.handlers import Handler, StepContext, handler
from press_selfhosted.engine.jobs.site_steps import (
	SITES,
	SiteSettings,
	backend,
	create_user,
	enable_scheduler,
	has_site_config,
	maintenance,
	mariadb,
	nothing_to_reload,
	set_aside_incomplete,
	setup_nginx,
	site_name,
	update_config_from_payload,
	wait_for_enqueued_jobs,
	with_job,
)
from press_selfhosted.engine.validation import validate_fqdn


def new_name(ctx: StepContext) -> str:
	name = validate_fqdn(ctx.payload.get("new_name"), "new_name")
	if name == ctx.job.site:
		raise SiteError(f"The new name of {ctx.job.site} is its name already.")
	return name


def renamed(step: Callable[[StepContext], None]) -> Callable[[StepContext], None]:
	def run(ctx: StepContext) -> None:
		step(with_job(ctx, site=new_name(ctx)))

	return run


def rename_site(ctx: StepContext) -> None:
	old, new = site_name(ctx), new_name(ctx)
	container = backend(ctx)
	has_old, has_new = has_site_config(container, old), has_site_config(container, new)
	if has_new:
		if has_old:
			raise SiteError(
				f"Bench {ctx.job.bench} holds a site named {old} and one named {new}: renaming one onto the "
				"other would lose a site. Fix: archive or move the site that should not be there, then retry."
			)
		ctx.log(f"{old} is named {new} already")
	elif not has_old:
		raise SiteError(f"Bench {ctx.job.bench} has no site {old} (no site_config.json) to rename.")
	else:
		_database_of(ctx, old)  # recorded before the folder moves (a site from before the records)
		set_aside_incomplete(ctx, container, new)
		ctx.run(container, ["mv", "--", f"{SITES}/{old}", f"{SITES}/{new}"])
	_rename_record(ctx, old, new)


def _database_of(ctx: StepContext, site: str) -> str | None:
	return mariadb(ctx).database_of(site, ctx.job.bench, ctx.server.name)


def _rename_record(ctx: StepContext, old: str, new: str) -> None:
	db = mariadb(ctx)
	if db.recorded_database(new):
		return
	if _database_of(ctx, old) is None:
		raise SiteError(
			f"No database is recorded for {old} on database server {db.server}: the renamed site {new} "
			"cannot be given one. Fix: record its database (README, Security model), then retry."
		)
	db.move_record(old, new)
	ctx.log(f"the database record of {old} now names {new}")


class SiteRenameJobs:
	"""Press's Rename Site: the site's folder, database record and users under its new name."""

	def __init__(self, settings: SiteSettings | None = None):
		self.settings = settings or SiteSettings()

	def handlers(self) -> list[Handler]:
		return [
			handler(
				"Rename Site",
				"POST",
				"benches/{bench}/sites/{site}/rename",
				[
					("Enable Maintenance Mode", maintenance("on")),
					("Wait for Enqueued Jobs", wait_for_enqueued_jobs(self.settings)),
					("Update Site Configuration", update_config_from_payload),
					("Rename Site", rename_site),
					("Bench Setup NGINX", setup_nginx),
					("Reload NGINX", nothing_to_reload),
					("Disable Maintenance Mode", renamed(maintenance("off"))),
					("Enable Scheduler", renamed(enable_scheduler)),
					("Create User", renamed(create_user)),
				],
			)
		]
