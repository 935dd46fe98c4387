"""Press's site jobs (New Site, Install App on Site, Add Domain, Archive Site, Update Site Pull...), run
in the bench's backend container as the Agent runs them.

Each handler's steps carry Press's step names; each step is idempotent, looking at what exists (the
site directory and its ``site_config.json`` in the sites volume, the database and users in MariaDB,
the apps ``bench list-apps`` reports) before doing what is missing. The steps they share with the other
site job families are in ``site_steps``; Archive Site's ``Reload NGINX`` waits for the proxy to stop
routing the site.
"""

from __future__ import annotations

from press_selfhosted.engine.errors import EngineError, ProxyNotDone, SiteError
from press_selfhosted.engine.jobs import backups
from press_selfhosted.engine.jobs.handlers import Handler, StepContext, StepWaiting, handler
from press_selfhosted.engine.jobs.site_steps import (
	ARCHIVED,
	SITES,
	SiteSettings,
	add_domain,
	backend,
	bench_command,
	check_front,
	create_user,
	create_user_from_payload,
	enable_scheduler,
	install_app,
	install_apps,
	maintenance,
	mariadb,
	migrate,
	new_site,
	nothing_to_reload,
	read_site_config,
	reinstall,
	remove_domain,
	set_admin_password,
	setup_nginx,
	site_database,
	site_name,
	uninstall_app,
	update_config_from_payload,
	wait_for_enqueued_jobs,
)

REMOVE_FROM_UPSTREAM = "Remove Site from Upstream"


# --- Archive Site's backup ----------------------------------------------------------------------------


def _site_is_archived(ctx: StepContext) -> bool:
	"""True when only the archived copy is left (a rerun after Archive Site), or when Archive Site finds
	no site at all (its New Site failed before making it: Press calls it Broken); else a missing site
	is an error."""
	if read_site_config(ctx) is not None:
		return False
	if read_site_config(ctx, ARCHIVED) is not None:
		ctx.log(f"site {site_name(ctx)} is already archived: nothing to back up")
		return True
	if ctx.job.job_type == "Archive Site":
		ctx.log(f"site {site_name(ctx)} was never made in bench {ctx.job.bench}: nothing to back up")
		return True
	raise SiteError(
		f"Site {site_name(ctx)} does not exist in bench {ctx.job.bench} on server {ctx.server.name}."
	)


def backup_site(ctx: StepContext) -> None:
	if _site_is_archived(ctx):
		return
	try:
		backups.step_backup_site(ctx)
	except EngineError:
		db = mariadb(ctx)
		db_name = site_database(ctx, db, missing_ok=True)
		if db_name and db.database_exists(db_name):
			raise
		if not ctx.payload.get("force"):
			raise SiteError(
				f"The database {db_name} of site {site_name(ctx)} is gone (an earlier archive was interrupted "
				"after dropping it), so there is nothing left to back up. Fix: archive the site again with force."
			) from None
		ctx.log(f"database {db_name or '(none recorded)'} is already dropped: no backup (forced archive)")


def upload_backup(ctx: StepContext) -> None:
	if not _site_is_archived(ctx):
		backups.step_upload_site_backup(ctx)


# --- archive ---------------------------------------------------------------------------------------------


# Frappe's drop-site move: sites/archived/<site>, or <site>1, <site>2... when that exists.
_MOVE_TO_ARCHIVE = (
	'n=""; while [ -e "$2/$3$n" ]; do n=$(( ${n:-0} + 1 )); done; '
	'mkdir -p -- "$2" && mv -- "$1" "$2/$3$n" && echo "$2/$3$n"'
)


def archive_site(ctx: StepContext) -> None:
	"""Drops the site once Press has recorded that the proxy no longer routes it: Frappe's drop-site
	done by the engine, the recorded database and its user dropped as root, the site folder moved into
	``sites/archived`` (the backup steps before have uploaded and checked it).

	Press decides a site is Archived, and records the archive backup, from the *steps* of both jobs as
	it has recorded them (``get_new_status_for_archive_attempted_site``): it must see this step succeed
	only after the proxy's, else it processes the proxy's job last, archives the site from it and never
	records the backup (findings, pitfall 7). So the step waits first, without holding a worker."""
	wait_for_proxy_removal(ctx)
	site = site_name(ctx)
	db = mariadb(ctx)
	db_name = site_database(ctx, db, missing_ok=True)
	if db_name:
		db.drop_site_database(db_name)
		ctx.log(f"database {db_name} of {site} and its user dropped")
	if read_site_config(ctx) is not None:
		ctx.run(
			backend(ctx), ["sh", "-c", _MOVE_TO_ARCHIVE, "sh", f"{SITES}/{site}", f"{SITES}/{ARCHIVED}", site]
		)
	elif db_name is None:
		archived = read_site_config(ctx, ARCHIVED) is not None
		where = f"already archived (sites/{ARCHIVED})" if archived else "never made in this bench"
		ctx.log(f"site {site} is {where}; no database of it is left")
	if db_name:
		db.forget_database(site)


def wait_for_proxy_removal(ctx: StepContext) -> None:
	site = site_name(ctx)
	status = ctx.topology.press_job_status(REMOVE_FROM_UPSTREAM, site)
	if status == "Success":
		ctx.log(f"Press has recorded that the proxy no longer routes {site}")
		return
	if status in ("Failure", "Delivery Failure"):
		raise ProxyNotDone(
			f"The proxy's {REMOVE_FROM_UPSTREAM} job for {site} ended {status}, so the site may still be "
			"routed. Fix: look at that job's output on the proxy server, retry it, then retry Archive Site."
		)
	raise StepWaiting(
		f"waiting for Press to record the proxy's {REMOVE_FROM_UPSTREAM} job for {site} "
		f"({status or 'not sent yet'}): Press records the archive backup only after it"
	)


# --- handlers --------------------------------------------------------------------------------------------

NGINX = (("Bench Setup NGINX", setup_nginx), ("Reload NGINX", check_front))
SITE = "benches/{bench}/sites/{site}"


class SiteJobs:
	"""Press's site jobs: a site's lifecycle in its bench (made, apps, config, domains, archived)."""

	def __init__(self, settings: SiteSettings | None = None):
		self.settings = settings or SiteSettings()

	def handlers(self) -> list[Handler]:
		return [
			handler(
				"New Site",
				"POST",
				"benches/{bench}/sites",
				[
					("New Site", new_site),
					("Install Apps", install_apps),
					("Update Site Configuration", update_config_from_payload),
					("Enable Scheduler", enable_scheduler),
					("Create User", create_user),
					*NGINX,
				],
			),
			handler("Install App on Site", "POST", f"{SITE}/apps", [("Install App on Site", install_app)]),
			handler(
				"Uninstall App from Site",
				"DELETE",
				f"{SITE}/apps/{{app}}",
				[
					("Backup Site", backup_site),
					("Upload Site Backup to S3", upload_backup),
					("Uninstall App from Site", uninstall_app),
				],
			),
			handler("Migrate Site", "POST", f"{SITE}/migrate", [("Migrate Site", migrate)]),
			handler(
				"Create User", "POST", f"{SITE}/create-user", [("Create User", create_user_from_payload)]
			),
			handler(
				"Run After Migrate Steps",
				"POST",
				f"{SITE}/run_after_migrate_steps",
				[
					("Set Administrator Password", set_admin_password),
					("Bench Setup NGINX", setup_nginx),
					("Reload NGINX", nothing_to_reload),
					("Disable Maintenance Mode", maintenance("off")),
					("Enable Scheduler", enable_scheduler),
				],
			),
			handler(
				"Clear Cache",
				"DELETE",
				f"{SITE}/cache",
				[
					("Clear Cache", bench_command("clear-cache")),
					("Clear Website Cache", bench_command("clear-website-cache")),
				],
			),
			handler("Reinstall Site", "POST", f"{SITE}/reinstall", [("Reinstall Site", reinstall)]),
			handler(
				"Update Site Configuration",
				"POST",
				f"{SITE}/config",
				[("Update Site Configuration", update_config_from_payload)],
			),
			handler(
				"Activate Site",
				"POST",
				f"{SITE}/activate",
				[("Disable Maintenance Mode", maintenance("off"))],
			),
			handler(
				"Deactivate Site",
				"POST",
				f"{SITE}/deactivate",
				[
					("Enable Maintenance Mode", maintenance("on")),
					("Wait for Enqueued Jobs", wait_for_enqueued_jobs(self.settings)),
				],
			),
			handler(
				"Add Domain", "POST", f"{SITE}/domains", [("Update Site Configuration", add_domain), *NGINX]
			),
			handler(
				"Remove Domain",
				"DELETE",
				f"{SITE}/domains/{{domain}}",
				[("Update Site Configuration", remove_domain), *NGINX],
			),
			handler(
				"Archive Site",
				"POST",
				f"{SITE}/archive",
				[
					("Backup Site", backup_site),
					("Upload Site Backup to S3", upload_backup),
					("Archive Site", archive_site),
					("Bench Setup NGINX", setup_nginx),
					("Reload NGINX", nothing_to_reload),
				],
			),
		]
