"""A site's tables, with the site's own database login, from inside its bench container.

Update Site Migrate dumps every table into ``sites/<site>/.migrate/`` before it migrates (with the list
of tables in ``previous_tables.json``); Frappe's migrate writes the tables it changed to
``touched_tables.json``. A recovery restores those tables and drops the ones the migration created;
``Restore Site Tables`` restores every dump; ``Optimize Tables`` runs OPTIMIZE TABLE.
"""

from __future__ import annotations

from press_selfhosted.engine.clients import docker_exec
from press_selfhosted.engine.errors import ValidationError
from press_selfhosted.engine.jobs.handlers import Handler, StepContext, handler
from press_selfhosted.engine.jobs.site_steps import SITES, backend, if_activate, maintenance, site_name

# Frappe's own names (sites/<site>/...): the table-wise dumps of Update Site Migrate, the tables of
# the site before it, and the tables the migration wrote to (written by ``bench migrate``).
MIGRATE_BACKUPS = ".migrate"
PREVIOUS_TABLES = "previous_tables.json"
TOUCHED_TABLES = "touched_tables.json"


# Runs in the backend as the bench user with the site's own database login (from its site_config.json):
# argv = the action, the site, then the action's arguments.
_TABLES = r"""
import gzip, json, os, shutil, subprocess, sys, tempfile

action, site, arguments = sys.argv[1], sys.argv[2], sys.argv[3:]
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

def quoted(table):
	return "`%s`" % table.replace("`", "``")

def sql(statement):
	subprocess.run(["mariadb", login, database, "-e", statement], check=True, stdout=subprocess.DEVNULL)

def restore(table, path):
	with gzip.open(path, "rb") as dump:
		loading = subprocess.Popen(["mariadb", login, database], stdin=subprocess.PIPE)
		shutil.copyfileobj(dump, loading.stdin)
		loading.stdin.close()
		if loading.wait():
			sys.exit("restoring table %s failed (exit %s)" % (table, loading.returncode))
	print("restored", table)

def load(name):
	try:
		with open(os.path.join(folder, name)) as handle:
			return json.load(handle)
	except (OSError, ValueError):
		return None

if action == "backup":
	# previous_tables.json is written last, once every dump is in place (Clear Backup Directory removes
	# it at the start of each update): with it, this update's dumps are complete and are kept, not made
	# anew (new files: gzip and mariadb-dump stamp the time)
	if load("previous_tables.json") is not None:
		print("the tables of %s were dumped already by this update (%s): kept" % (database, backups))
		sys.exit(0)
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
		if os.path.exists(path):
			restore(table, path)
	for table in sorted(set(tables()) - set(previous)):
		sql("DROP TABLE %s" % quoted(table))
		print("dropped", table, "(created by the failed migration)")
elif action == "restore-all":
	if not os.path.isdir(backups):
		sys.exit("%s has no table-wise backup (%s): nothing to restore" % (site, backups))
	names = sorted(name[: -len(".sql.gz")] for name in os.listdir(backups) if name.endswith(".sql.gz"))
	for table in names:
		restore(table, os.path.join(backups, table + ".sql.gz"))
	print("restored %d tables of %s from %s" % (len(names), database, backups))
elif action == "optimize":
	for table in arguments or tables():
		sql("OPTIMIZE TABLE %s" % quoted(table))
		print("optimized", table)
"""


def clear_backup_directory(ctx: StepContext) -> None:
	"""Also with ``skip_backups``: dumps and table lists of an earlier update must never be restored
	over what the site has become since, so a recovery finds this update's backup or none."""
	folder = f"{SITES}/{site_name(ctx)}"
	stale = [f'"$1/{name}"' for name in (MIGRATE_BACKUPS, PREVIOUS_TABLES, TOUCHED_TABLES)]
	script = f'rm -rf -- {" ".join(stale)} && mkdir -- "$1/{MIGRATE_BACKUPS}"'
	ctx.run(backend(ctx), ["sh", "-c", script, "sh", folder])


def _tables(ctx: StepContext, action: str, *arguments: str) -> None:
	# The script travels in the environment so that the step's output shows a readable command.
	how = docker_exec.Exec(environment={"PRESS_TABLES_SCRIPT": _TABLES})
	script = 'exec python3 -c "$PRESS_TABLES_SCRIPT" "$@"'
	ctx.run(backend(ctx), ["sh", "-c", script, "tables", action, site_name(ctx), *arguments], how)


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
		found = docker_exec.run(
			backend(ctx), ["cat", f"{folder}/{name}"], docker_exec.Exec(reads_only=True), check=False
		)
		if found.exit_code == 0:
			ctx.log(f"{name}: {found.stdout.strip()}")
			return
	ctx.log("the migration recorded no touched tables")


def restore_site_tables(ctx: StepContext) -> None:
	_tables(ctx, "restore-all")


def optimize_tables(ctx: StepContext) -> None:
	tables = ctx.payload.get("tables") or []
	if not isinstance(tables, list) or not all(isinstance(t, str) and t and "\0" not in t for t in tables):
		raise ValidationError(
			"tables", tables, "a list of table names", "send the names of the site's tables"
		)
	_tables(ctx, "optimize", *tables)


class SiteTableJobs:
	"""Press's table jobs of a site: the tables an interrupted migration wrote to restored, tables optimized."""

	def handlers(self) -> list[Handler]:
		site = "benches/{bench}/sites/{site}"
		return [
			handler(
				"Restore Site Tables",
				"POST",
				f"{site}/update/migrate/restore",
				[
					("Restore Site Tables", restore_site_tables),
					("Disable Maintenance Mode", if_activate(maintenance("off"))),
				],
			),
			handler("Optimize Tables", "POST", f"{site}/optimize", [("Optimize Tables", optimize_tables)]),
		]
