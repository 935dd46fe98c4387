"""Site updates: Press moves a site to another bench of the same app server (a new deploy of its
Release Group), with or without a migration, and moves it back when the update failed.

On an Agent server a site moves with one directory rename between two bench folders. Here each bench
has its own ``sites`` volume, so ``Move Site`` copies the site directory from the source bench's
backend container into the target's (Docker's archive, streamed), renames it into place, and only
then removes the source copy: a crash at any point leaves a complete copy somewhere, and the next
run finishes the move from what it finds.

A container Proxy Server routes each site straight to its bench's front container, so the steps
Press names after nginx re-point the site's Traefik route at the target bench (``Bench Setup NGINX
Target``) and wait until Traefik serves the new route (``Reload NGINX``).

Press sends the job to the bench the site is on (``benches/<source>/sites/<site>/update/...``) with
the other bench as ``target``; a recovery job moves the site from where the failed update left it
back to the bench in ``target``. Steps after ``Move Site`` work on the target bench.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from press_selfhosted.engine import commands, naming, traefik, transfer
from press_selfhosted.engine.agent.handlers import Handler, StepContext, handler
from press_selfhosted.engine.proxy import ProxyJobs
from press_selfhosted.engine.sites import (
	SITES,
	SiteError,
	SiteSettings,
	backend,
	bench,
	has_site_config,
	maintenance,
	set_aside_incomplete,
	setup_nginx,
	site_name,
	wait_for_enqueued_jobs,
	with_job,
)
from press_selfhosted.engine.validation import validate_fqdn

# Frappe's own names (sites/<site>/...): the table-wise dumps of Update Site Migrate, the tables of
# the site before it, and the tables the migration wrote to (written by ``bench migrate``).
MIGRATE_BACKUPS = ".migrate"
PREVIOUS_TABLES = "previous_tables.json"
TOUCHED_TABLES = "touched_tables.json"
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


def when(
	key: str, otherwise: str
) -> Callable[[Callable[[StepContext], None]], Callable[[StepContext], None]]:
	"""Runs a step when the payload's ``key`` is true (or absent); else logs ``otherwise``."""

	def wrap(step: Callable[[StepContext], None]) -> Callable[[StepContext], None]:
		def run(ctx: StepContext) -> None:
			if ctx.payload.get(key, True):
				step(ctx)
			else:
				ctx.log(otherwise.format(site=site_name(ctx)))

		return run

	return wrap


# Press leaves a site that was not Active before the update in maintenance mode after it.
if_activate = when("activate", "{site} was not active before the update: it stays in maintenance mode")
# Move Site to Bench quiesces the site only when asked (a bench whose Python is broken cannot).
if_deactivate = when("deactivate", "deactivate is off: {site} is moved as it is")


# --- Move Site -----------------------------------------------------------------------------------------


def move_site(ctx: StepContext) -> None:
	site = validate_fqdn(site_name(ctx), "site")
	source_bench, destination_bench = ctx.job.bench, target_bench(ctx)
	source, target = backend(ctx), backend(on_target(ctx))
	directory = f"{SITES}/{site}"
	in_source = has_site_config(source, site)
	if has_site_config(target, site):
		# A copy is renamed into place only once complete, so a site_config.json there means a whole site.
		if in_source:
			ctx.log(
				f"{site} was copied to bench {destination_bench} by an earlier run; removing the source copy"
			)
			ctx.run(source, ["rm", "-rf", "--", directory])
		else:
			ctx.log(f"{site} is on bench {destination_bench} already")
		return
	if not in_source:
		raise SiteError(
			f"Site {site} has no site_config.json in bench {source_bench} nor in bench {destination_bench} on "
			f"server {ctx.server.name}. Fix: find where the site's directory went before retrying."
		)
	set_aside_incomplete(ctx, target, site)
	staging = f"{SITES}/{STAGING_PREFIX}{site}"
	ctx.run(target, ["sh", "-c", 'rm -rf -- "$1" && mkdir -p -- "$1"', "sh", staging])
	transfer.copy_between_containers(source, directory, target, staging)
	ctx.run(target, ["sh", "-c", 'mv -- "$1/$2" "$3" && rmdir -- "$1"', "sh", staging, site, directory])
	ctx.log(f"copied {directory} from bench {source_bench} to bench {destination_bench}")
	ctx.run(source, ["rm", "-rf", "--", directory])


# --- table-wise backup and restore (Update Site Migrate and its recovery) --------------------------------

# Runs in the backend as the bench user with the site's own database login (from its site_config.json):
# argv = the action, then the site.
_TABLES = r"""
import gzip, json, os, shutil, subprocess, sys, tempfile

action, site = sys.argv[1], sys.argv[2]
folder = os.path.join("sites", site)
config = json.load(open(os.path.join(folder, "site_config.json")))
try:
	common = json.load(open("sites/common_site_config.json"))
except (OSError, ValueError):
	common = {}
options = tempfile.NamedTemporaryFile("w", suffix=".cnf")
os.chmod(options.name, 0o600)
options.write("[client]\nuser=%s\npassword=%s\nhost=%s\nport=%s\n" % (
	config.get("db_user") or config["db_name"], config["db_password"],
	config.get("db_host") or common.get("db_host") or "127.0.0.1",
	config.get("db_port") or common.get("db_port") or 3306))
options.flush()
login = "--defaults-extra-file=" + options.name
database = config["db_name"]
backups = os.path.join(folder, ".migrate")

def tables():
	out = subprocess.run(["mariadb", login, "-N", "-B", database, "-e", "SHOW TABLES"],
		check=True, capture_output=True, text=True).stdout
	return [line for line in out.splitlines() if line]

def load(name):
	try:
		with open(os.path.join(folder, name)) as handle:
			return json.load(handle)
	except (OSError, ValueError):
		return None

if action == "backup":
	names = tables()
	for table in names:
		final = os.path.join(backups, table + ".sql.gz")
		with open(final + ".tmp", "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb") as out:
			dump = subprocess.Popen(["mariadb-dump", login, "--single-transaction", "--quick",
				"--lock-tables=false", database, table], stdout=subprocess.PIPE)
			shutil.copyfileobj(dump.stdout, out)
			if dump.wait():
				sys.exit("mariadb-dump of table %s failed (exit %s)" % (table, dump.returncode))
		os.replace(final + ".tmp", final)
	with open(os.path.join(folder, "previous_tables.json.tmp"), "w") as handle:
		json.dump(names, handle)
	os.replace(os.path.join(folder, "previous_tables.json.tmp"), os.path.join(folder, "previous_tables.json"))
	print("dumped %d tables of %s into %s" % (len(names), database, backups))
elif action == "restore":
	previous = load("previous_tables.json")
	if previous is None:
		print("no table-wise backup of this update (skip_backups): the tables stay as the migration left them")
		sys.exit(0)
	touched = load("touched_tables.json")
	for table in (previous if touched is None else touched):
		path = os.path.join(backups, table + ".sql.gz")
		if not os.path.exists(path):
			continue
		with gzip.open(path, "rb") as dump:
			restore = subprocess.Popen(["mariadb", login, database], stdin=subprocess.PIPE)
			shutil.copyfileobj(dump, restore.stdin)
			restore.stdin.close()
			if restore.wait():
				sys.exit("restoring table %s failed (exit %s)" % (table, restore.returncode))
		print("restored", table)
	for table in sorted(set(tables()) - set(previous)):
		subprocess.run(["mariadb", login, database, "-e", "DROP TABLE `%s`" % table.replace("`", "``")], check=True)
		print("dropped", table, "(created by the failed migration)")
"""


def clear_backup_directory(ctx: StepContext) -> None:
	"""Also with ``skip_backups``: dumps and table lists of an earlier update must never be restored
	over what the site has become since, so a recovery finds this update's backup or none."""
	folder = f"{SITES}/{site_name(ctx)}"
	stale = [f'"$1/{name}"' for name in (MIGRATE_BACKUPS, PREVIOUS_TABLES, TOUCHED_TABLES)]
	script = f'rm -rf -- {" ".join(stale)} && mkdir -- "$1/{MIGRATE_BACKUPS}"'
	ctx.run(backend(ctx), ["sh", "-c", script, "sh", folder])


def _tables(ctx: StepContext, action: str) -> None:
	# The script travels in the environment so that the step's output shows a readable command.
	how = commands.Exec(environment={"PRESS_TABLES_SCRIPT": _TABLES})
	argv = ["sh", "-c", 'exec python3 -c "$PRESS_TABLES_SCRIPT" "$@"', "tables", action, site_name(ctx)]
	ctx.run(backend(ctx), argv, how)


def backup_site_tables(ctx: StepContext) -> None:
	if ctx.payload.get("skip_backups"):
		ctx.log("skip_backups was asked: no table-wise backup, so a failed migration cannot be rolled back")
		return
	_tables(ctx, "backup")


def restore_touched_tables(ctx: StepContext) -> None:
	if not ctx.payload.get("restore_touched_tables", True):
		ctx.log("restore_touched_tables is off: the tables stay as the failed migration left them")
		return
	_tables(ctx, "restore")


def log_touched_tables(ctx: StepContext) -> None:
	folder = f"{SITES}/{site_name(ctx)}"
	for name in (TOUCHED_TABLES, PREVIOUS_TABLES):
		found = commands.run(backend(ctx), ["cat", f"{folder}/{name}"], check=False)
		if found.exit_code == 0:
			ctx.log(f"{name}: {found.stdout.strip()}")
			return
	ctx.log("the migration recorded no touched tables")


def app_scripts(key: str) -> Callable[[StepContext], None]:
	"""Press's ``before_migrate_scripts`` / ``rollback_scripts``: ``{app: python}`` for bench console."""

	def step(ctx: StepContext) -> None:
		scripts = ctx.payload.get(key) or {}
		if not scripts:
			ctx.log(f"no {key}")
			return
		for app, script in scripts.items():
			ctx.log(f"running the {key} of {app}")
			how = commands.Exec(environment={"PRESS_CONSOLE_SCRIPT": script})
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


class SiteUpdates:
	"""The handlers of Press's site update jobs; ``proxies`` reaches the app server's Traefik."""

	def __init__(self, proxies: ProxyJobs, settings: SiteSettings | None = None):
		self.proxies = proxies
		self.settings = settings or SiteSettings()

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
		route = dataclasses.replace(
			current,
			bench=bench_name,
			front=f"http://{names.front}:80",
			socketio=f"http://{names.backend}:9000",
		)
		if route == current:
			ctx.log(f"{route.file_name} already routes {route.site} to bench {bench_name}")
			return
		proxy.publish(ctx, route)

	def wait_for_route(self, ctx: StepContext) -> None:
		"""'Reload NGINX': Traefik reloads by itself; this waits until it serves the new route."""
		proxy, current = self._route(ctx)
		if current is None:
			return
		if current.bench != target_bench(ctx):
			raise SiteError(
				f"The route of {current.site} on proxy {proxy.server.name} points at bench {current.bench}, "
				f"not {target_bench(ctx)}. Fix: retry the job (its 'Bench Setup NGINX Target' step rewrites it)."
			)
		proxy.verify(ctx, traefik.expected_state(current))

	def _moved(self) -> list[tuple[str, Callable[[StepContext], None]]]:
		return [
			("Move Site", move_site),
			("Bench Setup NGINX", setup_nginx),
			("Bench Setup NGINX Target", self.point_route_at_target),
			("Reload NGINX", self.wait_for_route),
		]

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
