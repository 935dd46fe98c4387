"""MariaDB of a container Database Server: its container, root access, temporary and per-site users.

The engine either runs the server's MariaDB container (``<prefix>-mariadb``, labelled, data in a named
volume, root password handed over as a file in a second volume, as ``MARIADB_ROOT_PASSWORD_FILE``
expects) or adopts a container the operator already runs, found by its name on the cluster network.

SQL runs with ``docker exec`` of the ``mariadb`` client inside that container. The root password
travels in the exec's environment (``MYSQL_PWD``), never on a command line or in kept output; the
temporary users' passwords reach MariaDB only as their hash (``IDENTIFIED BY PASSWORD``).
Site databases are made the way the Agent makes them: a temporary ``<db_name>_limited`` user per
operation, dropped afterwards whatever happens, while each site's own user (created by
``bench new-site``) reaches only its own database.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
import secrets
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import docker
import docker.errors
from docker.models.containers import Container

from press_selfhosted.engine import commands, naming
from press_selfhosted.engine.agent.handlers import ContainerServer
from press_selfhosted.engine.docker_hosts import docker_errors
from press_selfhosted.engine.errors import EngineError

ROLE = "mariadb"
DATA_PATH = "/var/lib/mysql"
SECRETS_PATH = "/run/press-secrets"
ROOT_PASSWORD_FILE = f"{SECRETS_PATH}/mariadb-root-password"
LIMITED_SUFFIX = "_limited"


class DatabaseError(EngineError):
	"""The database server could not do what a job needed."""


class DatabaseContainerMissing(DatabaseError):
	pass


class DatabaseNotReady(DatabaseError):
	pass


class SQLFailed(DatabaseError):
	pass


@dataclass(frozen=True)
class MariaDBSpec:
	"""The MariaDB of a container Database Server; ``adopt`` names an operator's running container."""

	server: ContainerServer
	image: str
	adopt: str | None = None
	ready_timeout: float = 120.0

	@property
	def container_name(self) -> str:
		return self.adopt or naming.resource_name(self.server.container_prefix, ROLE)


@dataclass(frozen=True)
class Login:
	user: str
	password: str


def database_name(bench: str, site: str) -> str:
	"""Stable per bench and site, so a rerun of a crashed job finds the database it started."""
	return "_" + hashlib.sha1(f"{bench}/{site}".encode()).hexdigest()[:16]


def quote(value: str) -> str:
	return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def password_hash(password: str) -> str:
	"""MariaDB's mysql_native_password hash, so the password itself never reaches a command line."""
	return "*" + hashlib.sha1(hashlib.sha1(password.encode()).digest()).hexdigest().upper()


_BATCH_ESCAPES = {"\\\\": "\\", "\\t": "\t", "\\n": "\n", "\\0": "\0"}


def _unescape(field: str) -> str:
	"""Undo the ``--batch`` output escaping of backslash, tab, newline and NUL."""
	return re.sub(r"\\[\\tn0]", lambda match: _BATCH_ESCAPES[match.group(0)], field)


class MariaDB:
	"""Root access to one MariaDB container through ``docker exec``."""

	def __init__(self, server: str, container: Container, root_password: str, root_user: str = "root"):
		self.server = server
		self.container = container
		self._root_user = root_user
		self._root_password = root_password

	def sql(self, query: str, *, database: str | None = None) -> list[list[str]]:
		"""Rows of tab-separated columns; SQL errors name the server and keep MariaDB's message."""
		argv = ["mariadb", "--batch", "--skip-column-names", f"--user={self._root_user}", "-e", query]
		if database:
			argv.insert(1, f"--database={database}")
		how = commands.Exec(
			user="root",
			workdir="/",
			environment={"MYSQL_PWD": self._root_password},
			secrets=[self._root_password],
		)
		result = commands.run(self.container, argv, how, check=False)
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

	def drop_database_and_user(self, db_name: str, user: str) -> None:
		self.sql(f"DROP DATABASE IF EXISTS `{db_name}`; DROP USER IF EXISTS {quote(user)}@'%'")

	def drop_user(self, user: str) -> None:
		self.sql(f"DROP USER IF EXISTS {quote(user)}@'%'")


@contextlib.contextmanager
def temporary_user(db: MariaDB, db_name: str) -> Iterator[Login]:
	"""``<db_name>_limited`` with what bench needs to (re)create or drop that one site's database.

	A leftover from a crashed run is replaced; the user is dropped when the block ends, also on error.
	The database name is granted unescaped (``_`` is a one-character wildcard there) because Frappe
	grants the site user the same unescaped pattern, and MariaDB only lets a user grant a pattern it
	holds itself.
	"""
	login = Login(db_name + LIMITED_SUFFIX, secrets.token_hex(16))
	user = f"{quote(login.user)}@'%'"
	db.sql(
		f"DROP USER IF EXISTS {user}; "
		f"CREATE USER {user} IDENTIFIED BY PASSWORD {quote(password_hash(login.password))}; "
		f"GRANT ALL PRIVILEGES ON `{db_name}`.* TO {user} WITH GRANT OPTION; "
		f"GRANT RELOAD, CREATE USER ON *.* TO {user}"
	)
	try:
		yield login
	finally:
		db.drop_user(login.user)


# --- the container ----------------------------------------------------------------------------------


def _volume(client: docker.DockerClient, spec: MariaDBSpec, purpose: str) -> str:
	name = naming.resource_name(spec.server.container_prefix, ROLE, purpose)
	try:
		client.volumes.get(name)
	except docker.errors.NotFound:
		client.volumes.create(name, labels=naming.labels(spec.server.name, ROLE))
	return name


def _password_archive(password: str) -> bytes:
	buffer = io.BytesIO()
	data = password.encode()
	with tarfile.open(fileobj=buffer, mode="w") as archive:
		info = tarfile.TarInfo(ROOT_PASSWORD_FILE.rsplit("/", 1)[1])
		info.size, info.mode = len(data), 0o400
		archive.addfile(info, io.BytesIO(data))
	return buffer.getvalue()


def _create(client: docker.DockerClient, spec: MariaDBSpec) -> Container:
	data = _volume(client, spec, "data")
	secrets_volume = _volume(client, spec, "secrets")
	return client.containers.create(
		spec.image,
		name=spec.container_name,
		hostname=spec.container_name,
		labels=naming.labels(spec.server.name, ROLE),
		environment={"MARIADB_ROOT_PASSWORD_FILE": ROOT_PASSWORD_FILE},
		volumes={
			data: {"bind": DATA_PATH, "mode": "rw"},
			secrets_volume: {"bind": SECRETS_PATH, "mode": "rw"},
		},
		network=spec.server.network,
		restart_policy={"Name": "unless-stopped"},
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
		elif container.labels.get(naming.SERVER) != server.name:
			raise DatabaseError(
				f"Database server {server.name}: container {spec.container_name} exists but is not managed for "
				"this server (labels differ). Fix: remove or rename it, or change the server's container_prefix."
			)
		if not spec.adopt:
			# Written each time: a crash between create and start must not leave MariaDB without it.
			container.put_archive(SECRETS_PATH, _password_archive(root_password))
		if server.network not in (container.attrs["NetworkSettings"]["Networks"] or {}):
			client.networks.get(server.network).connect(container)
		container.reload()
		if container.status != "running":
			container.start()
	db = MariaDB(server.name, container, root_password)
	wait_until_ready(db, spec.ready_timeout)
	return db


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


def find_mariadb(
	client: docker.DockerClient, server: ContainerServer, host: str, root_password: str
) -> MariaDB:
	"""The MariaDB container serving ``server``: the one the engine labelled, else the adopted one named ``host``."""
	with docker_errors(server.docker, f"finding the MariaDB container of {server.name}"):
		found = client.containers.list(filters={"label": naming.label_filters(server.name, role=ROLE)})
		container = found[0] if found else _find(client, host)
	if container is None:
		raise DatabaseContainerMissing(
			f"Database server {server.name}: no MariaDB container labelled for it and none named {host!r} on "
			f"{server.docker.socket}. Fix: start the database server (or the operator's container named {host!r})."
		)
	return MariaDB(server.name, container, root_password)
