"""MariaDB of a container Database Server: its container, root access, site databases and users.

The engine either runs the server's MariaDB container (``<prefix>-mariadb``, labelled, data in a named
volume, root password handed over as a file in a second volume, as ``MARIADB_ROOT_PASSWORD_FILE``
expects, root allowed from inside the container only) or adopts a container the operator already
runs, found by its name.

Root SQL runs with ``docker exec`` of the ``mariadb`` client inside that container. The statements
and the root login (a client option file) are copied into the container as root-only files (0400)
and removed after the call: the root password, the SQL and the password hashes in it appear in no
command line, no exec environment and no Docker event.

Site databases are the engine's own work, done as root inside the container: ``create_site_database``
makes the database and its user ``<db_name>@%`` with rights on that database only (the grant's
pattern escaped, so ``_`` is no wildcard), ``drop_site_database`` removes both. No temporary user
with global privileges exists at any time, and bench only bootstraps a database that exists
(``bench new-site --no-setup-db``) with the site's own login.

Which database belongs to which site is recorded by the engine on the database server itself, in
``press_selfhosted.site_databases`` (root only): a tenant can rewrite its ``site_config.json``, never
that record. Every name that reaches root SQL is that record's, matched against
``_<16 hex digits>`` and quoted as an identifier.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import docker
import docker.errors
from docker.models.containers import Container

from press_selfhosted.engine import naming
from press_selfhosted.engine.clients import docker_exec
from press_selfhosted.engine.clients.containers import tar_archive
from press_selfhosted.engine.clients.docker_hosts import docker_errors
from press_selfhosted.engine.clients.servers import ContainerServer
from press_selfhosted.engine.errors import (
	CommandOutputLost,
	DatabaseContainerMissing,
	DatabaseError,
	DatabaseNotReady,
	SQLFailed,
	UnsafeName,
)

ROLE = "mariadb"
DATA_PATH = "/var/lib/mysql"
SECRETS_PATH = "/run/press-secrets"
ROOT_PASSWORD_FILE = f"{SECRETS_PATH}/mariadb-root-password"
SCRATCH = "/tmp"  # where a call's option and SQL files live for the length of the call
DB_NAME = re.compile(r"_[0-9a-f]{16}")
REGISTRY = "press_selfhosted"  # the engine's schema on the database server (root only)
# What the MariaDB entrypoint needs as root before it becomes ``mysql`` (chown of the data directory,
# the switch of user, stopping the temporary server of the first start); every other one is dropped.
CAPABILITIES = ("CHOWN", "DAC_OVERRIDE", "FOWNER", "KILL", "SETGID", "SETUID")
PIDS_LIMIT = 4096  # MariaDB runs one thread per connection: the limit counts threads


@dataclass(frozen=True)
class MariaDBSpec:
	"""The MariaDB of a container Database Server; ``adopt`` names an operator's running container."""

	server: ContainerServer
	image: str
	adopt: str | None = None
	ready_timeout: float = 120.0

	@property
	def container_name(self) -> str:
		return self.adopt or naming.mariadb_container(self.server.container_prefix)


def database_name(bench: str, site: str, attempt: int = 0) -> str:
	"""Stable per bench and site, so a rerun of a crashed job finds the database it started; a later
	``attempt`` when that name is recorded for another site already (a site renamed away from it)."""
	key = f"{bench}/{site}" + (f"#{attempt}" if attempt else "")
	return "_" + hashlib.sha1(key.encode()).hexdigest()[:16]


def checked_name(name: object) -> str:
	"""``name`` if it is a database name the engine makes (``_`` + 16 hex digits), else UnsafeName."""
	if not isinstance(name, str) or not DB_NAME.fullmatch(name):
		raise UnsafeName(
			f"{name!r} is not a database name this platform makes (_ and 16 hex digits); it is not used. "
			"Fix: a site's database is the one the engine recorded for it, whatever its site_config.json says."
		)
	return name


def identifier(name: str) -> str:
	"""A checked database name as a quoted SQL identifier."""
	return "`" + checked_name(name).replace("`", "``") + "`"


def grant_pattern(name: str) -> str:
	"""The database part of a GRANT for exactly ``name``: in GRANT, ``_`` and ``%`` are wildcards
	unless escaped. Frappe grants the name unescaped, a pattern that also matches ``Xabc…``: a site
	user could create such databases, which no usage counts."""
	escaped = re.sub(r"([\\_%])", r"\\\1", checked_name(name))
	return "`" + escaped + "`"


def quote(value: str) -> str:
	return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def password_hash(password: str) -> str:
	"""MariaDB's mysql_native_password hash (password-equivalent for that protocol: kept as secret)."""
	return "*" + hashlib.sha1(hashlib.sha1(password.encode()).digest()).hexdigest().upper()


_BATCH_ESCAPES = {"\\\\": "\\", "\\t": "\t", "\\n": "\n", "\\0": "\0"}


def _unescape(field: str) -> str:
	"""Undo the ``--batch`` output escaping of backslash, tab, newline and NUL."""
	return re.sub(r"\\[\\tn0]", lambda match: _BATCH_ESCAPES[match.group(0)], field)


def option_value(value: str) -> str:
	"""A value for a MariaDB option file: quoted (kept verbatim between the quotes), with the escapes
	the option file reader undoes (backslash, newline, tab, carriage return, backspace)."""
	escaped = (
		value.replace("\\", "\\\\")
		.replace("\n", "\\n")
		.replace("\t", "\\t")
		.replace("\r", "\\r")
		.replace("\b", "\\b")
	)
	return f'"{escaped}"'


READ_STATEMENTS = ("SELECT", "SHOW", "DESCRIBE", "EXPLAIN")


def _reads_only(query: str) -> bool:
	"""Whether every statement of ``query`` only reads (a ``;`` inside a literal only makes it look like
	more statements, so a write is never taken for a read)."""
	statements = [part.split(None, 1)[0].upper() for part in query.split(";") if part.strip()]
	return bool(statements) and all(word in READ_STATEMENTS for word in statements)


# Runs as root in the MariaDB container: $1 the option file, $2 the SQL file, then client options.
_SQL = 'o="$1"; q="$2"; shift 2; mariadb --defaults-extra-file="$o" "$@" < "$q"; s=$?; rm -f -- "$o" "$q"; exit $s'


class MariaDB:
	"""Root access to one MariaDB container through ``docker exec``."""

	def __init__(self, server: str, container: Container, root_password: str, root_user: str = "root"):
		self.server = server
		self.container = container
		self._root_user = root_user
		self._root_password = root_password

	def sql(self, query: str, *, database: str | None = None) -> list[list[str]]:
		"""Rows of tab-separated columns; SQL errors name the server and keep MariaDB's message."""
		token = secrets.token_hex(8)
		login, statements = f".press-{token}.cnf", f".press-{token}.sql"
		files = {
			login: f"[client]\nuser={option_value(self._root_user)}\npassword={option_value(self._root_password)}\n",
			statements: query,
		}
		options = [
			"--batch",
			"--skip-column-names",
			*([f"--database={checked_name(database)}"] if database else []),
		]
		how = docker_exec.Exec(user="root", workdir="/", secrets=[self._root_password])
		argv = ["sh", "-c", _SQL, "sh", f"{SCRATCH}/{login}", f"{SCRATCH}/{statements}", *options]
		# a read is asked again when Docker cut its answer; the SQL files go with each run (the script
		# removes them), so they are copied again
		reads = _reads_only(query)
		for _attempt in range(docker_exec.READ_ATTEMPTS if reads else 1):
			try:
				self.container.put_archive(
					SCRATCH, tar_archive({name: (text.encode(), 0o400) for name, text in files.items()})
				)
			except docker.errors.APIError as error:
				raise SQLFailed(
					f"MariaDB of database server {self.server}: could not copy the SQL into container "
					f"{self.container.name}: {error.explanation or error}"
				) from error
			result = docker_exec.run(self.container, argv, how, check=False)
			if not result.output_lost:
				break
		if reads and result.output_lost:
			raise CommandOutputLost(self.container.name, result)
		if result.exit_code != 0:
			raise SQLFailed(
				f"MariaDB of database server {self.server} (container {self.container.name}) refused SQL: "
				f"{result.stderr.strip() or result.stdout.strip()}"
			)
		return [[_unescape(field) for field in line.split("\t")] for line in result.stdout.splitlines()]

	def database_exists(self, name: str) -> bool:
		return bool(self.sql(f"SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = {quote(name)}"))

	def users(self, like: str = "%") -> list[str]:
		return [row[0] for row in self.sql(f"SELECT User FROM mysql.user WHERE User LIKE {quote(like)}")]

	def grants(self, user: str, host: str = "%") -> list[str]:
		return [row[0] for row in self.sql(f"SHOW GRANTS FOR {quote(user)}@{quote(host)}")]

	def drop_user(self, user: str) -> None:
		self.sql(f"DROP USER IF EXISTS {quote(user)}@'%'")

	# --- site databases ---------------------------------------------------------------------------

	def create_site_database(self, db_name: str, password: str) -> None:
		"""A new, empty ``db_name`` and its user ``db_name@%`` holding ALL on it alone (what Frappe's
		setup_database makes, with the grant's pattern escaped); whatever was there before is gone."""
		user = f"{quote(checked_name(db_name))}@'%'"
		self.sql(
			f"DROP DATABASE IF EXISTS {identifier(db_name)}; DROP USER IF EXISTS {user}; "
			f"CREATE USER {user} IDENTIFIED BY PASSWORD {quote(password_hash(password))}; "
			f"CREATE DATABASE {identifier(db_name)} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci; "
			f"GRANT ALL PRIVILEGES ON {grant_pattern(db_name)}.* TO {user}"
		)

	def drop_site_database(self, db_name: str) -> None:
		self.sql(
			f"DROP DATABASE IF EXISTS {identifier(db_name)}; "
			f"DROP USER IF EXISTS {quote(checked_name(db_name))}@'%', {quote(db_name)}@'localhost'"
		)

	def _registry(self, query: str) -> list[list[str]]:
		return self.sql(
			f"CREATE DATABASE IF NOT EXISTS `{REGISTRY}`; CREATE TABLE IF NOT EXISTS `{REGISTRY}`.site_databases ("
			"site VARCHAR(255) NOT NULL PRIMARY KEY, db_name CHAR(17) NOT NULL UNIQUE, "
			"app_server VARCHAR(255) NOT NULL, bench VARCHAR(255) NOT NULL, recorded DATETIME NOT NULL"
			f") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4; {query}"
		)

	def recorded_database(self, site: str) -> str | None:
		"""The database the engine recorded for ``site`` (None: none recorded)."""
		rows = self._registry(f"SELECT db_name FROM `{REGISTRY}`.site_databases WHERE site = {quote(site)}")
		return checked_name(rows[0][0]) if rows else None

	def recorded_site(self, db_name: str) -> str | None:
		rows = self._registry(
			f"SELECT site FROM `{REGISTRY}`.site_databases WHERE db_name = {quote(checked_name(db_name))}"
		)
		return rows[0][0] if rows else None

	def record_database(self, site: str, db_name: str, app_server: str, bench: str) -> None:
		"""Records ``db_name`` as ``site``'s; refused when either is recorded with another."""
		owner = self.recorded_site(db_name)
		mine = self.recorded_database(site)
		if owner not in (None, site) or mine not in (None, db_name):
			raise DatabaseError(
				f"Database server {self.server}: {db_name} is recorded for {owner or '-'} and {site} has "
				f"{mine or '-'}; not recording {db_name} for {site}."
			)
		self._registry(
			f"REPLACE INTO `{REGISTRY}`.site_databases VALUES ({quote(site)}, {quote(db_name)}, "
			f"{quote(app_server)}, {quote(bench)}, UTC_TIMESTAMP())"
		)

	def database_of(self, site: str, bench: str, app_server: str) -> str | None:
		"""The database recorded for ``site``. A site made before the engine recorded databases is
		recorded on first use when its database is the one the engine named for its bench and site
		(a site renamed or moved since then is not guessed at: None)."""
		found = self.recorded_database(site)
		if found:
			return found
		named = database_name(bench, site)
		if self.database_exists(named) and self.recorded_site(named) is None:
			self.record_database(site, named, app_server, bench)
			return named
		return None

	def move_record(self, old: str, new: str, bench: str | None = None) -> None:
		"""The record of ``old`` now names ``new`` (a rename) and, given, its new bench (a move)."""
		changes = f"site = {quote(new)}" + (f", bench = {quote(bench)}" if bench else "")
		self._registry(f"UPDATE `{REGISTRY}`.site_databases SET {changes} WHERE site = {quote(old)}")

	def forget_database(self, site: str) -> None:
		self._registry(f"DELETE FROM `{REGISTRY}`.site_databases WHERE site = {quote(site)}")

	def site_databases(self) -> dict[str, str]:
		return dict(self._registry(f"SELECT site, db_name FROM `{REGISTRY}`.site_databases"))


# --- the container ----------------------------------------------------------------------------------


def _volume(client: docker.DockerClient, spec: MariaDBSpec, purpose: str) -> str:
	name = naming.resource_name(spec.server.container_prefix, ROLE, purpose)
	try:
		client.volumes.get(name)
	except docker.errors.NotFound:
		client.volumes.create(name, labels=naming.labels(spec.server.name, ROLE))
	return name


def _container_spec(spec: MariaDBSpec) -> dict:
	"""What the container is made with; its digest (label ``press.spec``) says when to make it again."""
	return {
		"image": spec.image,
		"environment": {"MARIADB_ROOT_PASSWORD_FILE": ROOT_PASSWORD_FILE, "MARIADB_ROOT_HOST": "localhost"},
		"cap_drop": ["ALL"],
		"cap_add": list(CAPABILITIES),
		"security_opt": ["no-new-privileges"],
		"pids_limit": PIDS_LIMIT,
	}


def _digest(described: dict) -> str:
	return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:16]


def _create(client: docker.DockerClient, spec: MariaDBSpec) -> Container:
	data = _volume(client, spec, "data")
	secrets_volume = _volume(client, spec, "secrets")
	described = _container_spec(spec)
	return client.containers.create(
		name=spec.container_name,
		hostname=spec.container_name,
		labels={**naming.labels(spec.server.name, ROLE), naming.SPEC: _digest(described)},
		volumes={
			data: {"bind": DATA_PATH, "mode": "rw"},
			secrets_volume: {"bind": SECRETS_PATH, "mode": "rw"},
		},
		network=spec.server.network,
		restart_policy={"Name": "unless-stopped"},
		**described,
	)


def _find(client: docker.DockerClient, name: str) -> Container | None:
	try:
		return client.containers.get(name)
	except docker.errors.NotFound:
		return None


def ensure_mariadb(client: docker.DockerClient, spec: MariaDBSpec, root_password: str) -> MariaDB:
	"""The server's MariaDB, created or adopted, running and answering root; idempotent."""
	server = spec.server
	with docker_errors(server.docker, f"preparing MariaDB container {spec.container_name}"):
		container = _find(client, spec.container_name)
		if spec.adopt:
			if container is None:
				raise DatabaseContainerMissing(
					f"Database server {server.name}: no container named {spec.adopt!r} on {server.docker.socket}. "
					"Fix: start the operator's MariaDB container under that name, or clear the adopted container "
					"name so the engine runs its own."
				)
		elif container is None:
			container = _create(client, spec)
		elif not naming.owned(container.labels, server.name, ROLE):
			raise DatabaseError(
				f"Database server {server.name}: container {spec.container_name} exists but is not managed for "
				"this server (labels differ). Fix: remove or rename it, or change the server's container_prefix."
			)
		elif container.labels.get(naming.SPEC) != _digest(_container_spec(spec)):
			# made by an earlier version (e.g. without the dropped capabilities): the data stays in its volume
			container.remove(force=True)
			container = _create(client, spec)
		if not spec.adopt:
			# Written each time: a crash between create and start must not leave MariaDB without it.
			container.put_archive(
				SECRETS_PATH,
				tar_archive({ROOT_PASSWORD_FILE.rsplit("/", 1)[1]: (root_password.encode(), 0o400)}),
			)
		if server.network not in (container.attrs["NetworkSettings"]["Networks"] or {}):
			client.networks.get(server.network).connect(container)
		container.reload()
		if container.status != "running":
			container.start()
	db = MariaDB(server.name, container, root_password)
	wait_until_ready(db, spec.ready_timeout)
	if not spec.adopt:
		root_inside_only(db)
	return db


def root_inside_only(db: MariaDB) -> None:
	"""Root logs in through the container's own socket only: ``root@%`` (a data directory made before
	MARIADB_ROOT_HOST was set, or by an image that ignores it) and the other hosts
	``mariadb-install-db`` adds (the container's name, 127.0.0.1, ::1) are dropped."""
	hosts = [row[0] for row in db.sql("SELECT Host FROM mysql.user WHERE User = 'root'")]
	if "localhost" in hosts and len(hosts) > 1:
		db.sql("; ".join(f"DROP USER 'root'@{quote(host)}" for host in hosts if host != "localhost"))


def wait_until_ready(db: MariaDB, timeout: float, sleep: Callable[[float], None] = time.sleep) -> None:
	deadline = time.monotonic() + timeout
	last = ""
	while True:
		db.container.reload()
		if db.container.status in ("exited", "dead"):
			logs = db.container.logs(tail=20).decode(errors="replace")
			raise DatabaseNotReady(
				f"MariaDB container {db.container.name} of database server {db.server} stopped "
				f"(status {db.container.status}). Last log lines:\n{logs}"
			)
		try:
			db.sql("SELECT 1")
			return
		except SQLFailed as error:
			last = str(error)
			if "Access denied" in last:
				raise DatabaseNotReady(
					f"{last}. Fix: set the Database Server's MariaDB root password to the one this container uses."
				) from error
		if time.monotonic() > deadline:
			raise DatabaseNotReady(
				f"MariaDB container {db.container.name} of database server {db.server} did not answer within "
				f"{timeout:.0f}s: {last}"
			)
		sleep(0.5)


def find_mariadb_container(client: docker.DockerClient, server: ContainerServer, host: str) -> Container:
	"""The MariaDB container serving ``server``: the one the engine labelled, else the adopted one named ``host``."""
	with docker_errors(server.docker, f"finding the MariaDB container of {server.name}"):
		found = client.containers.list(filters={"label": naming.label_filters(server.name, role=ROLE)})
		container = found[0] if found else _find(client, host)
	if container is None:
		raise DatabaseContainerMissing(
			f"Database server {server.name}: no MariaDB container labelled for it and none named {host!r} on "
			f"{server.docker.socket}. Fix: start the database server (or the operator's container named {host!r})."
		)
	return container


def find_mariadb(
	client: docker.DockerClient, server: ContainerServer, host: str, root_password: str
) -> MariaDB:
	"""Root access to the MariaDB container serving ``server`` (see find_mariadb_container)."""
	return MariaDB(server.name, find_mariadb_container(client, server, host), root_password)
