"""Site updates: Press moves a site to another bench of the same app server (a new deploy of its
Release Group), with or without a migration, and moves it back when the update failed.

On an Agent server a site moves with one directory rename between two bench folders. Here each bench
has its own ``sites`` volume, so ``Move Site`` copies the site directory from the source bench's
backend container into the target's (Docker's archive, streamed), renames it into place, and only
then removes the source copy: a crash at any point leaves a complete copy somewhere, and the next
run finishes the move from what it finds. When both benches hold a complete copy, the source copy is
removed only if the two are the same (every file's path, size and time); otherwise the copy with the
newest change is the site (e.g. a file uploaded after an earlier move failed and the site went on
serving from the source), and the other one is set aside in its bench's ``sites/archived``, never
deleted.

A container Proxy Server routes each site straight to its bench's front container, so the steps
Press names after nginx re-point the site's route in the proxy's site router at the target bench
(``Bench Setup NGINX Target``) and wait until the proxy serves the new route (``Reload NGINX``).

Press sends the job to the bench the site is on (``benches/<source>/sites/<site>/update/...``) with
the other bench as ``target``; a recovery job moves the site from where the failed update left it
back to the bench in ``target``. Steps after ``Move Site`` work on the target bench.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from press_selfhosted.engine import naming
from press_selfhosted.engine.clients import docker_exec, site_router, transfer
from press_selfhosted.engine.clients.proxy import FRONT_PORT
from press_selfhosted.engine.errors import SiteError, TransferError
from press_selfhosted.engine.jobs.handlers import Handler, StepContext, handler
from press_selfhosted.engine.jobs.proxy import ProxyJobs
from press_selfhosted.engine.jobs.site_steps import (
	SITES,
	SiteSettings,
	backend,
	bench,
	has_site_config,
	if_activate,
	maintenance,
	mariadb,
	set_aside_incomplete,
	setup_nginx,
	site_name,
	wait_for_enqueued_jobs,
	when,
	with_job,
)
from press_selfhosted.engine.jobs.site_tables import (
	backup_site_tables,
	clear_backup_directory,
	log_touched_tables,
	restore_touched_tables,
)
from press_selfhosted.engine.validation import validate_fqdn

READ = docker_exec.Exec(reads_only=True)
STAGING_PREFIX = ".moving-"  # sites/.moving-<site>: a copy lands here before it is renamed into place


def target_bench(ctx: StepContext) -> str:
	target = ctx.payload.get("target")
	if not isinstance(target, str) or not target or "/" in target:
		raise SiteError(f"Press sent no valid target bench for {site_name(ctx)} (target={target!r}).")
	if target == ctx.job.bench:
		raise SiteError(f"The target bench {target} is the bench the site is on already.")
	return target


def on_target(ctx: StepContext) -> StepContext:
	return with_job(ctx, bench=target_bench(ctx))


def at_target(step: Callable[[StepContext], None]) -> Callable[[StepContext], None]:
	def run(ctx: StepContext) -> None:
		step(on_target(ctx))

	return run


# Move Site to Bench quiesces the site only when asked (a bench whose Python is broken cannot).
if_deactivate = when("deactivate", "deactivate is off: {site} is moved as it is")


# --- Move Site -----------------------------------------------------------------------------------------


def move_site(ctx: StepContext) -> None:
	site = validate_fqdn(site_name(ctx), "site")
	source_bench, destination_bench = ctx.job.bench, target_bench(ctx)
	source, target = backend(ctx), backend(on_target(ctx))
	_record_bench(ctx, destination_bench)
	directory = f"{SITES}/{site}"
	in_source = has_site_config(source, site)
	if has_site_config(target, site):
		# A copy is renamed into place only once complete, so a site_config.json there means a whole site.
		if not in_source:
			ctx.log(f"{site} is on bench {destination_bench} already")
			return
		newest = _newest_copy(ctx, source, target, directory)
		if newest is None:
			ctx.log(
				f"{site} was copied to bench {destination_bench} by an earlier run; removing the source copy"
			)
			ctx.run(source, ["rm", "-rf", "--", directory])
			return
		if newest is target:
			ctx.log(f"the copy of {site} on bench {destination_bench} has the newest changes: it is kept")
			set_aside_incomplete(ctx, source, site, "superseded")
			return
		ctx.log(
			f"the copy of {site} an earlier run left on bench {destination_bench} is older than the site on "
			f"bench {source_bench}: it is set aside and the site is copied again"
		)
		set_aside_incomplete(ctx, target, site, "superseded")
	if not in_source:
		raise SiteError(
			f"Site {site} has no site_config.json in bench {source_bench} nor in bench {destination_bench} on "
			f"server {ctx.server.name}. Fix: find where the site's directory went before retrying."
		)
	set_aside_incomplete(ctx, target, site)
	staging = f"{SITES}/{STAGING_PREFIX}{site}"
	ctx.run(target, ["sh", "-c", 'rm -rf -- "$1" && mkdir -p -- "$1"', "sh", staging])
	try:
		transfer.copy_between_containers(source, directory, target, staging)
	except TransferError:
		# e.g. the target's disk is full: a partial copy must not keep holding that space until a rerun
		docker_exec.run(target, ["rm", "-rf", "--", staging], check=False)
		raise
	ctx.run(target, ["sh", "-c", 'mv -- "$1/$2" "$3" && rmdir -- "$1"', "sh", staging, site, directory])
	ctx.log(f"copied {directory} from bench {source_bench} to bench {destination_bench}")
	ctx.run(source, ["rm", "-rf", "--", directory])


def _record_bench(ctx: StepContext, bench_name: str) -> None:
	"""The site's database record names the bench it goes to (a site recorded before: as found now)."""
	db = mariadb(ctx)
	if db.database_of(site_name(ctx), ctx.job.bench, ctx.server.name):
		db.move_record(site_name(ctx), site_name(ctx), bench=bench_name)


# Every regular file below the site folder: path, size and modification time (seconds: Docker's
# archive keeps whole seconds).
_MANIFEST = 'cd "$1" && find . -type f -printf "%P\\t%s\\t%T@\\n"'


def _manifest(container, directory: str) -> dict[str, tuple[int, int]]:
	listed = docker_exec.run(container, ["sh", "-c", _MANIFEST, "sh", directory], READ).stdout
	found = {}
	for line in listed.splitlines():
		path, size, mtime = line.rsplit("\t", 2)
		found[path] = (int(size), int(float(mtime)))
	return found


def _hashes(container, directory: str, paths: list[str]) -> dict[str, str]:
	found = {}
	for start in range(0, len(paths), 200):
		script = 'cd "$1" && shift && sha256sum -- "$@"'
		listed = docker_exec.run(
			container, ["sh", "-c", script, "sh", directory, *paths[start : start + 200]], READ
		)
		for line in listed.stdout.splitlines():
			digest, _, path = line.partition("  ")
			found[path] = digest
	return found


def _newest_copy(ctx: StepContext, source, target, directory: str):
	"""None when both copies hold the same files; else the container whose copy changed last (the
	source on a tie: it is the copy the site was served from). A file of the same size whose time
	alone differs (a config file written again with the same content) is compared by its sha256."""
	mine, theirs = _manifest(source, directory), _manifest(target, directory)
	touched = [
		path
		for path, (size, mtime) in mine.items()
		if path in theirs and theirs[path][0] == size and theirs[path][1] != mtime
	]
	if touched:
		same = _hashes(source, directory, touched)
		other = _hashes(target, directory, touched)
		for path in touched:
			if same.get(path) is not None and same.get(path) == other.get(path):
				theirs[path] = mine[path]
	if mine == theirs:
		return None

	def latest(copy: dict, other: dict) -> int:
		return max(
			(mtime for path, (size, mtime) in copy.items() if other.get(path) != (size, mtime)), default=-1
		)

	changed = sorted(path for path in set(mine) | set(theirs) if mine.get(path) != theirs.get(path))
	ctx.log(f"the two copies differ in {len(changed)} file(s), e.g. {', '.join(changed[:5])}")
	return target if latest(theirs, mine) > latest(mine, theirs) else source


def app_scripts(key: str) -> Callable[[StepContext], None]:
	"""Press's ``before_migrate_scripts`` / ``rollback_scripts``: ``{app: python}`` for bench console."""

	def step(ctx: StepContext) -> None:
		scripts = ctx.payload.get(key) or {}
		if not scripts:
			ctx.log(f"no {key}")
			return
		for app, script in scripts.items():
			ctx.log(f"running the {key} of {app}")
			how = docker_exec.Exec(environment={"PRESS_CONSOLE_SCRIPT": script})
			pipe = 'printf "%s" "$PRESS_CONSOLE_SCRIPT" | bench --site "$1" console'
			ctx.run(backend(ctx), ["sh", "-c", pipe, "sh", site_name(ctx)], how)

	return step


def migrate_site(ctx: StepContext) -> None:
	flags = ["--skip-search-index"] if ctx.payload.get("skip_search_index", True) else []
	flags += ["--skip-failing"] if ctx.payload.get("skip_failing_patches") else []
	bench(ctx, "migrate", *flags)


def build_search_index(ctx: StepContext) -> None:
	# As the Agent: an index that cannot be built does not fail an update that has otherwise worked.
	result = bench(ctx, "build-search-index", check=False)
	if result.exit_code != 0:
		ctx.log(f"building the search index failed (exit {result.exit_code}); the site works without it")


# --- the site's route on the proxy ---------------------------------------------------------------------


class SiteUpdateJobs:
	"""The handlers of Press's site update jobs; ``proxies`` reaches the app server's Traefik."""

	def __init__(self, proxies: ProxyJobs, settings: SiteSettings | None = None):
		self.proxies = proxies
		self.settings = settings or SiteSettings()

	def handlers(self) -> list[Handler]:
		update = "benches/{bench}/sites/{site}/update"
		quiesce = [
			("Enable Maintenance Mode", maintenance("on")),
			("Wait for Enqueued Jobs", wait_for_enqueued_jobs(self.settings)),
		]
		activate = ("Disable Maintenance Mode", at_target(if_activate(maintenance("off"))))
		return [
			handler("Update Site Pull", "POST", f"{update}/pull", [*quiesce, *self._moved(), activate]),
			handler(
				"Update Site Migrate",
				"POST",
				f"{update}/migrate",
				[
					*quiesce,
					("Clear Backup Directory", clear_backup_directory),
					("Backup Site Tables", backup_site_tables),
					*self._moved(),
					("Run App Specific Scripts", at_target(app_scripts("before_migrate_scripts"))),
					("Migrate Site", at_target(migrate_site)),
					("Log Touched Tables", at_target(log_touched_tables)),
					activate,
					("Build Search Index", at_target(build_search_index)),
				],
			),
			handler("Recover Failed Site Pull", "POST", f"{update}/pull/recover", [*self._moved(), activate]),
			handler(
				"Move Site to Bench",
				"POST",
				"benches/{bench}/sites/{site}/move_to_bench",
				[
					("Enable Maintenance Mode", if_deactivate(maintenance("on"))),
					("Wait for Enqueued Jobs", if_deactivate(wait_for_enqueued_jobs(self.settings))),
					*self._moved(),
					("Migrate Site", at_target(migrate_site)),
					activate,
				],
			),
			handler(
				"Recover Failed Site Migrate",
				"POST",
				f"{update}/migrate/recover",
				[
					*self._moved(),
					("Restore Touched Tables", at_target(restore_touched_tables)),
					("Run App Specific Scripts", at_target(app_scripts("rollback_scripts"))),
					activate,
				],
			),
			handler(
				"Recover Failed Site Update",
				"POST",
				f"{update}/recover",
				[("Disable Maintenance Mode", maintenance("off"))],
			),
		]

	def _route(self, ctx: StepContext):
		server = ctx.topology.proxy_for(ctx.server.name)
		if server is None:
			ctx.log(f"app server {ctx.server.name} has no container proxy server: no route to change")
			return None, None
		proxy = self.proxies.proxy_of(ctx.docker_of(server), server)
		route = proxy.site(site_name(ctx))
		if route is None:
			ctx.log(f"{site_name(ctx)} has no route on proxy {server.name} yet (Press adds it with the site)")
		return proxy, route

	def point_route_at_target(self, ctx: StepContext) -> None:
		"""'Bench Setup NGINX Target': the site's requests go to the target bench's front."""
		proxy, current = self._route(ctx)
		if current is None:
			return
		bench_name = target_bench(ctx)
		names = naming.BenchNames.of(ctx.server.container_prefix, bench_name)
		route = dataclasses.replace(current, bench=bench_name, front=f"{names.front}:{FRONT_PORT}")
		if route == current:
			ctx.log(f"the router already routes {route.site} to bench {bench_name}")
			return
		proxy.publish(ctx, route, current)

	def wait_for_route(self, ctx: StepContext) -> None:
		"""'Reload NGINX': waits until the proxy serves the new route."""
		proxy, current = self._route(ctx)
		if current is None:
			return
		if current.bench != target_bench(ctx):
			raise SiteError(
				f"The route of {current.site} on proxy {proxy.server.name} points at bench {current.bench}, "
				f"not {target_bench(ctx)}. Fix: retry the job (its 'Bench Setup NGINX Target' step rewrites it)."
			)
		proxy.verify(ctx, site_router.expected(current))

	def _moved(self) -> list[tuple[str, Callable[[StepContext], None]]]:
		return [
			("Move Site", move_site),
			("Bench Setup NGINX", setup_nginx),
			("Bench Setup NGINX Target", self.point_route_at_target),
			("Reload NGINX", self.wait_for_route),
		]
