"""What every site job stands on: where a site's containers, files and database are, its site config,
and the steps several site job families share (New Site's, Restore Site's, Rename Site's...).

A site's database is the one the engine recorded for it on the database server
(``engine.clients.mariadb``), never the ``db_name`` its ``site_config.json`` names: code running in the
bench can rewrite that file. The engine makes, empties and drops databases and site users itself, as
root inside the MariaDB container; bench only bootstraps the empty database with the site's own
login (``bench new-site --force --no-setup-db``, Frappe's path that skips its root-only part), so no
temporary user with global privileges exists. Passwords reach bench on its standard input (the
prompt ``getpass`` falls back to without a terminal), never in its arguments.

Container benches have no per-bench nginx to regenerate: the bench's front serves every site of the
bench by its Host header. So ``Bench Setup NGINX`` says so, and ``Reload NGINX`` checks that the
front answers for the site.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from docker.models.containers import Container

from press_selfhosted.engine import naming
from press_selfhosted.engine.clients import docker_exec
from press_selfhosted.engine.clients.mariadb import MariaDB, database_name, find_mariadb, identifier, quote
from press_selfhosted.engine.errors import EngineError, SiteBusy, SiteError, SQLFailed
from press_selfhosted.engine.jobs.benches import ping_front
from press_selfhosted.engine.jobs.handlers import StepContext
from press_selfhosted.engine.validation import validate_fqdn

SITES = f"{docker_exec.BENCH_DIRECTORY}/sites"
ARCHIVED = "archived"


@dataclass(frozen=True)
class SiteSettings:
	idle_timeout: float = 300.0  # the Agent waits up to 300 s for a site's queued jobs
	idle_interval: float = 5.0


# --- where things are -------------------------------------------------------------------------------


def site_name(ctx: StepContext) -> str:
	"""The job's site, checked: it becomes part of paths the engine removes (``sites/<site>``)."""
	return validate_fqdn(ctx.job.site or ctx.payload.get("name"), "name")


def path_arg(ctx: StepContext, key: str) -> str:
	return (ctx.payload.get("path_args") or {}).get(key) or ctx.payload[key]


def _container(ctx: StepContext, name: str, what: str, role: str) -> Container:
	found = ctx.docker.containers.list(all=True, filters={"name": f"^{name}$"})
	if not found or found[0].status != "running":
		state = found[0].status if found else "missing"
		raise SiteError(
			f"The {what} container {name} of bench {ctx.job.bench} on server {ctx.server.name} is {state}. "
			"Fix: start the bench (Press: Update Bench Configuration or Bench Restart), then retry the job."
		)
	# site steps remove folders in it: it must be this bench's, not a container that took its name
	naming.require_owned(found[0], "container", ctx.server.name, role, ctx.job.bench)
	return found[0]


def backend(ctx: StepContext) -> Container:
	names = naming.BenchNames.of(ctx.server.container_prefix, ctx.job.bench)
	return _container(ctx, names.backend, "backend", "bench")


def front(ctx: StepContext) -> Container:
	names = naming.BenchNames.of(ctx.server.container_prefix, ctx.job.bench)
	return _container(ctx, names.front, "front", "bench-front")


def mariadb(ctx: StepContext) -> MariaDB:
	endpoint = ctx.topology.database_for(ctx.server.name)
	if endpoint is None:
		raise SiteError(
			f"The Database Server of app server {ctx.server.name} is not a container server, so its temporary "
			"database users cannot be made through Docker. Fix: fill container_prefix and docker_socket on "
			"that Database Server, or choose one that has them."
		)
	db_server = ctx.topology.server("Database Server", endpoint.server)
	return find_mariadb(
		ctx.docker_of(db_server), db_server, endpoint.host, ctx.secret("mariadb_root_password")
	)


def bench(
	ctx: StepContext,
	*argv: str,
	secrets: tuple[str, ...] = (),
	site: bool = True,
	check: bool = True,
	prompted: str | None = None,
	reads_only: bool = False,
):
	"""``bench [--site S] argv`` in the backend; the job's output keeps it with secrets masked.
	``prompted`` is the answer to the password prompt of the command (its standard input);
	``reads_only``: the command changes nothing (see ``docker_exec.Exec``)."""
	prefix = ["bench", "--site", site_name(ctx)] if site else ["bench"]
	how = docker_exec.Exec(secrets=(*secrets, *([prompted] if prompted else [])), reads_only=reads_only)
	if prompted is not None:
		if "\n" in prompted or "\r" in prompted:
			raise SiteError(
				f"A password for {site_name(ctx)} holds a line break, which a prompt cannot take."
			)
		how.stdin = prompted.encode() + b"\n"
	return ctx.run(backend(ctx), [*prefix, *argv], how, check=check)


def read_site_config(ctx: StepContext, folder: str = "") -> dict | None:
	"""``site_config.json`` of the site (under ``sites/<folder>`` when given), None when there is none."""
	path = "/".join(part for part in (SITES, folder, site_name(ctx), "site_config.json") if part)
	for attempt in range(5):
		result = docker_exec.run(backend(ctx), ["cat", path], docker_exec.Exec(reads_only=True), check=False)
		if result.exit_code != 0:
			return None
		try:
			return json.loads(result.stdout)
		except ValueError:
			time.sleep(0.2 * (attempt + 1))  # a writer that does not replace the file atomically
	raise SiteError(
		f"{path} of site {site_name(ctx)} in bench {ctx.job.bench} is not valid JSON "
		f"({len(result.stdout)} bytes). Fix: repair the file, then retry the job."
	)


def with_job(ctx: StepContext, **changes) -> StepContext:
	"""The step context with ``changes`` to its job, e.g. the bench or name a site has after a step
	moved or renamed it (one job: the same data dict)."""
	changed = copy.copy(ctx)
	changed.job = dataclasses.replace(ctx.job, **changes)  # keeps the data dict itself
	return changed


def has_site_config(container: Container, site: str) -> bool:
	found = docker_exec.run(container, ["test", "-f", f"{SITES}/{site}/site_config.json"], check=False)
	return found.exit_code == 0


def set_aside_incomplete(ctx: StepContext, container: Container, site: str, why: str = "incomplete") -> None:
	"""A ``sites/<site>`` without site_config.json in the way is not a site: moved into ``archived``,
	as the Agent does, rather than merged into or deleted (so is a superseded copy of a site)."""
	site = validate_fqdn(site, "site")
	directory = f"{SITES}/{site}"
	if docker_exec.run(container, ["test", "-e", directory], check=False).exit_code != 0:
		return
	aside = f"{SITES}/{ARCHIVED}/{site}-{why}-{ctx.job.id}"
	ctx.log(f"{container.name} has an {why} {directory}: moving it to {aside}")
	script = 'mkdir -p -- "$(dirname -- "$2")" && rm -rf -- "$2" && mv -- "$1" "$2"'
	ctx.run(container, ["sh", "-c", script, "sh", directory, aside])


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


# Press leaves a site that was not Active before an update (or a table restore) in maintenance mode.
if_activate = when("activate", "{site} was not active before: it stays in maintenance mode")


def installed_apps(ctx: StepContext) -> list[str]:
	"""First word of each ``list-apps`` line, as Press parses it."""
	output = bench(ctx, "list-apps", reads_only=True).stdout
	return [line.split()[0] for line in output.splitlines() if line.strip()]


# --- site_config.json ----------------------------------------------------------------------------------

# Runs inside the backend: one read-modify-rename, so bench commands never see half a file. The
# changes come on standard input (one JSON line): values may be secrets (a database password). The file
# is the bench user's alone (0600): it holds the site's database password.
_EDIT_CONFIG = """
import json, os, sys
path, create = sys.argv[1], sys.argv[2] == "create"
if create:
	os.makedirs(os.path.dirname(path), exist_ok=True)
try:
	config = json.load(open(path))
except FileNotFoundError:
	if not create:
		raise
	config = {}
for op, key, value in json.loads(sys.stdin.readline()):
	if op == "set":
		config[key] = value
	elif op == "unset":
		config.pop(key, None)
	elif op == "append" and value not in config.setdefault(key, []):
		config[key].append(value)
	elif op == "discard":
		config[key] = [item for item in config.get(key, []) if item != value]
tmp = "%s.press-%d.tmp" % (path, os.getpid())
with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
	json.dump(config, handle, indent=1, sort_keys=True)
os.chmod(tmp, 0o600)
os.replace(tmp, path)
"""
# Keys only the engine writes: the database a site uses and its login are the recorded ones.
ENGINE_KEYS = ("db_name", "db_password", "db_user")


def edit_site_config(ctx: StepContext, changes: list[tuple[str, str, object]], create: bool = False) -> None:
	if not changes:
		ctx.log("site_config.json: nothing to change")
		return
	path = f"{SITES}/{site_name(ctx)}/site_config.json"
	how = docker_exec.Exec(stdin=json.dumps(changes).encode() + b"\n")
	argv = ["python3", "-c", _EDIT_CONFIG, path, "create" if create else "edit"]
	result = docker_exec.run(backend(ctx), argv, how, check=False)
	if result.exit_code != 0:
		raise SiteError(
			f"Could not update {path} of site {site_name(ctx)} in bench {ctx.job.bench}: "
			f"{ctx.redact(result.output)[-1500:]}"
		)
	ctx.log("site_config.json: " + ", ".join(f"{op} {key}" for op, key, _ in changes))


def config_changes(ctx: StepContext, config: dict, remove: list[str] = ()) -> list[tuple[str, str, object]]:
	"""Press's ``config``/``remove``; a value the job store masked is read back from the SecretSource.
	The database keys are the engine's (ENGINE_KEYS): a request never changes them."""
	kept = [key for key in (*config, *remove) if key in ENGINE_KEYS]
	if kept:
		ctx.log(f"site_config.json: {', '.join(sorted(set(kept)))} left as the engine wrote them")
	changes = [
		("set", key, ctx.unmasked(f"config.{key}", value))
		for key, value in config.items()
		if key not in ENGINE_KEYS
	]
	return changes + [("unset", key, None) for key in remove if key not in ENGINE_KEYS]


# --- the site's database ----------------------------------------------------------------------------


def site_database(ctx: StepContext, db: MariaDB, missing_ok: bool = False) -> str | None:
	"""The database recorded for the job's site. A site created before the engine recorded databases
	is recorded on first use when its database is the one the engine named for this bench and site;
	otherwise the operator records it (README, Security model)."""
	site = site_name(ctx)
	found = db.database_of(site, ctx.job.bench, ctx.server.name)
	if found or missing_ok:
		return found
	named = database_name(ctx.job.bench, site)
	raise SiteError(
		f"No database is recorded for site {site} on database server {db.server}, and {named} (the name "
		f"the engine gives a site of bench {ctx.job.bench}) does not exist. Fix: record the site's database "
		f"as root on the database server (INSERT INTO press_selfhosted.site_databases, see the README's "
		"Security model), then retry; its site_config.json is not trusted for this."
	)


def new_database_name(ctx: StepContext, db: MariaDB) -> str:
	"""The recorded database of a site being created, recorded now when it has none."""
	site = site_name(ctx)
	found = db.recorded_database(site)
	if found:
		return found
	for attempt in range(100):
		name = database_name(ctx.job.bench, site, attempt)
		if db.recorded_site(name) is None and (attempt == 0 or not db.database_exists(name)):
			db.record_database(site, name, ctx.server.name, ctx.job.bench)
			return name
	raise SiteError(f"No free database name for {site} on database server {db.server}.")


def make_site_database(ctx: StepContext, db: MariaDB, db_name: str, create: bool = False) -> None:
	"""An empty ``db_name`` with the site's user made anew (the old one is dropped with the database), and
	the site's config naming both. The password is the one the config already holds for ``db_name`` (a
	restore, or a step run again after a crash, changes no password), else a new one."""
	import secrets as tokens

	config = read_site_config(ctx) or {}
	kept = config.get("db_password") if config.get("db_name") == db_name else None
	password = kept or tokens.token_hex(16)
	db.create_site_database(db_name, password)
	ctx.log(f"database {db_name} and its user made on database server {db.server}")
	edit_site_config(
		ctx,
		[
			("set", "db_name", db_name),
			("set", "db_user", db_name),
			("set", "db_password", password),
			("set", "db_type", "mariadb"),
		],
		create=create,
	)


def bootstrap(ctx: StepContext, db_name: str, *argv: str) -> None:
	"""Frappe's new-site without its root-only part: the database exists, empty, with the site's user."""
	bench(
		ctx,
		"new-site",
		site_name(ctx),
		"--force",
		"--no-setup-db",
		"--db-name",
		db_name,
		*argv,
		site=False,
		prompted=ctx.secret("admin_password"),
	)


# --- steps -----------------------------------------------------------------------------------------------


def _site_exists(ctx: StepContext, db: MariaDB, db_name: str) -> bool:
	"""A complete site: its config names its database, which exists and has frappe installed."""
	config = read_site_config(ctx)
	if config and config.get("db_name") == db_name:
		try:
			return bool(
				db.sql(
					f"SELECT 1 FROM {identifier(db_name)}.`tabInstalled Application` WHERE app_name = 'frappe'"
				)
			)
		except SQLFailed:
			return False
	return False


def _clear_half_created(ctx: StepContext, db: MariaDB, db_name: str) -> None:
	site = site_name(ctx)
	if read_site_config(ctx) is not None or db.database_exists(db_name):
		ctx.log(
			f"site {site} was half created (earlier run interrupted): removing its directory and database"
		)
	db.drop_site_database(db_name)
	ctx.run(backend(ctx), ["rm", "-rf", "--", f"{SITES}/{site}"])


def new_site(ctx: StepContext) -> None:
	site = site_name(ctx)
	db = mariadb(ctx)
	db_name = new_database_name(ctx, db)
	if _site_exists(ctx, db, db_name):
		ctx.log(f"site {site} already exists with database {db_name}")
		return
	_clear_half_created(ctx, db, db_name)
	make_site_database(ctx, db, db_name, create=True)
	bootstrap(ctx, db_name)


def install_apps(ctx: StepContext) -> None:
	present = installed_apps(ctx)
	for app in ctx.payload.get("apps", []):
		if app == "frappe" or app in present:
			continue
		bench(ctx, "install-app", app)


def update_config_from_payload(ctx: StepContext) -> None:
	edit_site_config(
		ctx, config_changes(ctx, ctx.payload.get("config") or {}, ctx.payload.get("remove") or [])
	)


def enable_scheduler(ctx: StepContext) -> None:
	bench(ctx, "scheduler", "enable")


def create_user(ctx: StepContext) -> None:
	"""The optional first user Press sends with New Site (``create_user``)."""
	user = ctx.payload.get("create_user")
	if not user:
		ctx.log("no user to create")
		return
	_add_system_manager(ctx, user, "create_user.password")


def create_user_from_payload(ctx: StepContext) -> None:
	"""Press's Create User job: the user is the payload itself."""
	_add_system_manager(ctx, ctx.payload, "password")


def _user_exists(ctx: StepContext, email: str) -> bool:
	db = mariadb(ctx)
	db_name = site_database(ctx, db)
	rows = db.sql(f"SELECT COUNT(*) FROM {identifier(db_name)}.`tabUser` WHERE name = {quote(email)}")
	return rows[0][0] != "0"


def _add_system_manager(ctx: StepContext, user: dict, password_key: str) -> None:
	# Frappe's add-system-manager fails on an existing user: a rerun after a crash must not. The
	# password is set apart, on set-password's prompt: it never appears in a command line.
	if _user_exists(ctx, user["email"]):
		ctx.log(f"user {user['email']} exists on {site_name(ctx)} already")
	else:
		bench(
			ctx,
			"add-system-manager",
			user["email"],
			"--first-name",
			user["first_name"],
			"--last-name",
			user["last_name"],
		)
	if user.get("password"):
		bench(ctx, "set-password", user["email"], prompted=ctx.secret(password_key))


def set_admin_password(ctx: StepContext) -> None:
	bench(ctx, "set-admin-password", prompted=ctx.secret("admin_password"))


def nothing_to_reload(ctx: StepContext) -> None:
	# No ping here: a Frappe site still in maintenance mode answers 503 until a later step.
	ctx.log(f"bench {ctx.job.bench}: its front finds a site by Host header; nothing to reload")


def setup_nginx(ctx: StepContext) -> None:
	ctx.log(
		f"container bench {ctx.job.bench}: its front serves every site of the bench by Host header; "
		"no per-site nginx configuration to write"
	)


def check_front(ctx: StepContext) -> None:
	container = front(ctx)
	result = ping_front(container, site_name(ctx))
	status = result.stdout.strip()
	if result.exit_code != 0 or not status.isdigit() or int(status) >= 500:
		raise SiteError(
			f"The front {container.name} of bench {ctx.job.bench} does not serve site {site_name(ctx)}: "
			f"/api/method/ping answered {status or result.output or result.exit_code}. Fix: check the bench's "
			"backend and front containers (Bench Restart), then retry the job."
		)
	ctx.log(f"front {container.name} answers for {site_name(ctx)} (HTTP {status}); nothing to reload")


def install_app(ctx: StepContext) -> None:
	app = ctx.payload["name"]
	if app in installed_apps(ctx):
		ctx.log(f"{app} is already installed on {site_name(ctx)}")
		return
	bench(ctx, "install-app", app, "--force")


def uninstall_app(ctx: StepContext) -> None:
	app = path_arg(ctx, "app")
	if app not in installed_apps(ctx):
		ctx.log(f"{app} is not installed on {site_name(ctx)}")
		return
	bench(ctx, "uninstall-app", app, "--no-backup", "--yes", "--force")


def migrate(ctx: StepContext) -> None:
	bench(ctx, "migrate", *(["--skip-failing"] if ctx.payload.get("skip_failing_patches") else []))
	if ctx.payload.get("activate"):
		bench(ctx, "set-maintenance-mode", "off")


def reinstall(ctx: StepContext) -> None:
	"""Frappe's reinstall (a fresh database with the apps the site had), the database made by the engine."""
	db = mariadb(ctx)
	db_name = site_database(ctx, db)
	if "apps" not in ctx.data:
		try:
			ctx.data["apps"] = installed_apps(ctx)
		except EngineError:
			ctx.data["apps"] = ["frappe"]  # a database an earlier run emptied: as Frappe, frappe only
	make_site_database(ctx, db, db_name)
	apps = [app for app in ctx.data["apps"] if app != "frappe"]
	bootstrap(ctx, db_name, *(option for app in apps for option in ("--install-app", app)))


def bench_command(*argv: str) -> Callable[[StepContext], None]:
	def step(ctx: StepContext) -> None:
		bench(ctx, *argv)

	return step


def maintenance(state: str) -> Callable[[StepContext], None]:
	return bench_command("set-maintenance-mode", state)


def wait_for_enqueued_jobs(settings: SiteSettings) -> Callable[[StepContext], None]:
	def step(ctx: StepContext) -> None:
		deadline = time.monotonic() + settings.idle_timeout
		while bench(ctx, "ready-for-migration", check=False).exit_code != 0:
			if time.monotonic() >= deadline:
				raise SiteBusy(
					f"Site {site_name(ctx)} still has queued background jobs after {settings.idle_timeout:.0f}s "
					"in maintenance mode. Fix: look at the bench's workers (they may be stuck), then retry."
				)
			time.sleep(settings.idle_interval)

	return step


def add_domain(ctx: StepContext) -> None:
	edit_site_config(ctx, [("append", "domains", ctx.payload["domain"])])


def remove_domain(ctx: StepContext) -> None:
	edit_site_config(ctx, [("discard", "domains", path_arg(ctx, "domain"))])
