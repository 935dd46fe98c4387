"""The agent's job store: jobs and steps in tables this app owns, in the site's MariaDB.

The store uses its own autocommitting PyMySQL connection, so what it writes is committed at once and
survives Press rolling back its own transaction (the router runs inside Press's request or job).
Ids are auto-increment integers, > 0 and unique, as Press needs for ``Agent Job.job_id``.

The same connection holds the executor's MariaDB named locks (``GET_LOCK``): they are released by
the server when the connection ends. A connection that ends while it holds locks is never silently
replaced: every later call raises :class:`LocksLost`, and the executor stops the job (a lock that
vanished with its connection may already be another worker's). Besides the locks, a running job
carries a lease in its row (``owner``, ``lease_until``, by the database's clock) that its worker
renews; another worker takes the job only once the lease has run out, and every write of a step or
of the job's end is conditional on the writer still being the owner.

Only a lost or refused connection is an outage (:class:`JobStoreUnavailable`, which the router
answers 503); other database errors are :class:`JobStoreError`.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pymysql
import pymysql.constants.CLIENT
import pymysql.cursors

from press_selfhosted.engine import masking
from press_selfhosted.engine.agent import jobs
from press_selfhosted.engine.agent.jobs import JobRow, StepRow
from press_selfhosted.engine.errors import (
	JobStoreError,
	JobStoreUnavailable,
	LeaseLost,
	LocksLost,
)
from press_selfhosted.engine.jobs.handlers import JobRequest

JOB_TABLE = "press_selfhosted_agent_job"
STEP_TABLE = "press_selfhosted_agent_job_step"

_SCHEMA = (
	f"""CREATE TABLE IF NOT EXISTS `{JOB_TABLE}` (
		id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
		server VARCHAR(140) NOT NULL,
		server_type VARCHAR(40) NOT NULL,
		job_type VARCHAR(140) NOT NULL,
		method VARCHAR(10) NOT NULL,
		path VARCHAR(1000) NOT NULL,
		bench VARCHAR(140) NULL,
		site VARCHAR(255) NULL,
		agent_job_id VARCHAR(140) NULL,
		payload LONGTEXT NOT NULL,
		status VARCHAR(20) NOT NULL,
		data LONGTEXT NOT NULL,
		enqueued_at DATETIME(6) NOT NULL,
		started_at DATETIME(6) NULL,
		ended_at DATETIME(6) NULL,
		resume_after DATETIME(6) NULL,
		owner VARCHAR(64) NULL,
		lease_until DATETIME(6) NULL,
		KEY server_status (server, status),
		KEY agent_job (agent_job_id),
		KEY job_type_site (job_type, site)
	) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
	f"""CREATE TABLE IF NOT EXISTS `{STEP_TABLE}` (
		id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
		job_id BIGINT NOT NULL,
		idx INT NOT NULL,
		name VARCHAR(140) NOT NULL,
		status VARCHAR(20) NOT NULL,
		output LONGTEXT NOT NULL,
		traceback LONGTEXT NOT NULL,
		data LONGTEXT NOT NULL,
		started_at DATETIME(6) NULL,
		ended_at DATETIME(6) NULL,
		UNIQUE KEY job_step (job_id, idx)
	) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
)


# columns added after the first release, for tables made before them
_MIGRATIONS = (
	f"ALTER TABLE `{JOB_TABLE}` ADD COLUMN IF NOT EXISTS resume_after DATETIME(6) NULL",
	f"""ALTER TABLE `{JOB_TABLE}` ADD COLUMN IF NOT EXISTS owner VARCHAR(64) NULL,
		ADD COLUMN IF NOT EXISTS lease_until DATETIME(6) NULL""",
)
OPEN = (jobs.PENDING, jobs.RUNNING)


@dataclass(frozen=True)
class StoreConfig:
	"""Where the job store lives: the site's own database (``db_name`` etc. from site_config)."""

	host: str
	port: int
	user: str
	password: str
	database: str

	def connect(self) -> pymysql.connections.Connection:
		try:
			return pymysql.connect(
				host=self.host,
				port=self.port,
				user=self.user,
				password=self.password,
				database=self.database,
				autocommit=True,
				charset="utf8mb4",
				cursorclass=pymysql.cursors.DictCursor,
				connect_timeout=10,
				# an UPDATE's row count is the rows it matched (a renewed lease may change nothing)
				client_flag=pymysql.constants.CLIENT.FOUND_ROWS,
			)
		except pymysql.err.MySQLError as error:
			raise JobStoreUnavailable(
				f"The agent job store at {self.host}:{self.port}/{self.database} could not be reached: "
				f"{error.args[-1] if error.args else error}. Check the site's db_host/db_port/db_name."
			) from error


class JobStore:
	"""Reads and writes jobs; one connection per instance, guarded for use from several threads."""

	def __init__(self, config: StoreConfig):
		self.config = config
		self._connection: pymysql.connections.Connection | None = None
		self._lock = threading.RLock()
		self._held: set[str] = set()  # named locks this connection holds
		self._lost = False

	@property
	def where(self) -> str:
		return f"{self.config.host}:{self.config.port}/{self.config.database}"

	def _query(self, sql: str, args: Sequence[Any] | None = None) -> list[dict[str, Any]]:
		with self._lock:
			if self._lost:
				raise LocksLost(
					f"The connection to the agent job store at {self.where} that held this worker's locks "
					"ended; the job stops here and the sweep resumes it."
				)
			if self._connection is None:
				self._connection = self.config.connect()
			try:
				with self._connection.cursor() as cursor:
					cursor.execute(sql, args)
					if cursor.description is None:
						return [{"lastrowid": cursor.lastrowid, "rowcount": cursor.rowcount}]
					return list(cursor.fetchall())
			except (pymysql.err.OperationalError, pymysql.err.InterfaceError) as error:
				# a dropped connection frees our named locks: never reconnect behind them
				self.close()
				reason = error.args[-1] if error.args else error
				if self._held:
					self._lost = True
					raise LocksLost(
						f"The agent job store at {self.where} failed while this worker held locks on it: {reason}"
					) from error
				raise JobStoreUnavailable(f"The agent job store at {self.where} failed: {reason}") from error
			except pymysql.err.MySQLError as error:
				raise JobStoreError(
					f"The agent job store at {self.where} refused a statement: "
					f"{error.args[-1] if error.args else error}"
				) from error

	def forget_lost_locks(self) -> None:
		"""After a LocksLost the executor has stopped its job: the store may serve the next one."""
		with self._lock:
			self._lost = False
			self._held.clear()

	def close(self) -> None:
		with self._lock:
			if self._connection is not None:
				try:
					self._connection.close()
				except pymysql.err.Error:
					pass
				self._connection = None

	def ensure_schema(self) -> None:
		for statement in (*_SCHEMA, *_MIGRATIONS):
			self._query(statement)

	# --- jobs -------------------------------------------------------------------------------------

	def create(self, new: JobRequest) -> int:
		result = self._query(
			f"INSERT INTO `{JOB_TABLE}` (server, server_type, job_type, method, path, bench, site, "
			"agent_job_id, payload, status, data, enqueued_at) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
			(
				new.server,
				new.server_type,
				new.job_type,
				new.method,
				new.path,
				new.bench,
				new.site,
				new.agent_job_id,
				json.dumps(masking.scrub(new.payload)),
				jobs.PENDING,
				"{}",
				jobs.utcnow(),
			),
		)
		return int(result[0]["lastrowid"])

	def get(self, job_id: int) -> JobRow | None:
		found = self._jobs("id = %s", (job_id,))
		return found[0] if found else None

	def get_many(self, server: str, ids: Sequence[int]) -> list[JobRow]:
		if not ids:
			return []
		marks = ",".join(["%s"] * len(ids))
		return self._jobs(f"server = %s AND id IN ({marks})", (server, *ids))

	def by_agent_job_ids(self, server: str, names: Sequence[str]) -> list[JobRow]:
		if not names:
			return []
		marks = ",".join(["%s"] * len(names))
		return self._jobs(f"server = %s AND agent_job_id IN ({marks})", (server, *names))

	def latest(self, server: str, limit: int) -> list[JobRow]:
		"""The ``limit`` most recent jobs of ``server``, newest first."""
		rows = self._query(
			f"SELECT id FROM `{JOB_TABLE}` WHERE server = %s ORDER BY id DESC LIMIT %s", (server, limit)
		)
		return sorted(self.get_many(server, [row["id"] for row in rows]), key=lambda job: -job.id)

	def unfinished(self) -> list[JobRow]:
		return self._jobs("status IN (%s, %s)", (jobs.PENDING, jobs.RUNNING), with_steps=False)

	def has_earlier_unfinished(self, job: JobRow) -> bool:
		"""Is an older job of the same server still open on the same bench or site? (jobs run in order)"""
		scopes, args = [], [job.server, job.id, jobs.PENDING, jobs.RUNNING]
		for column, value in (("bench", job.bench), ("site", job.site)):
			if value:
				scopes.append(f"{column} = %s")
				args.append(value)
		if not scopes:
			return False
		rows = self._query(
			f"SELECT 1 FROM `{JOB_TABLE}` WHERE server = %s AND id < %s AND status IN (%s, %s) "
			f"AND ({' OR '.join(scopes)}) LIMIT 1",
			args,
		)
		return bool(rows)

	def mark_running(self, job_id: int, owner: str | None = None) -> None:
		self._owned(
			f"UPDATE `{JOB_TABLE}` SET status = %s, started_at = COALESCE(started_at, %s), resume_after = NULL "
			"WHERE id = %s",
			(jobs.RUNNING, jobs.utcnow(), job_id),
			job_id,
			owner,
		)

	def wait_step(
		self, job_id: int, idx: int, output: str, retry_after: float, owner: str | None = None
	) -> None:
		"""The step stays Running with ``output``; the sweep resumes the job ``retry_after`` seconds on."""
		self.save_step_output(job_id, idx, output, owner=owner)
		resume = jobs.utcnow() + datetime.timedelta(seconds=retry_after)
		self._owned(
			f"UPDATE `{JOB_TABLE}` SET resume_after = %s WHERE id = %s", (resume, job_id), job_id, owner
		)

	def successors(self, server: str, job_id: int, bench: str | None, site: str | None) -> list[int]:
		"""Open jobs of ``server`` after ``job_id`` on the same bench or site, oldest first (they may have
		been waiting for it)."""
		scopes, args = [], [server, job_id, jobs.PENDING, jobs.RUNNING]
		for column, value in (("bench", bench), ("site", site)):
			if value:
				scopes.append(f"{column} = %s")
				args.append(value)
		if not scopes:
			return []
		rows = self._query(
			f"SELECT id FROM `{JOB_TABLE}` WHERE server = %s AND id > %s AND status IN (%s, %s) "
			f"AND ({' OR '.join(scopes)}) ORDER BY id",
			args,
		)
		return [row["id"] for row in rows]

	def save_data(self, job_id: int, data: dict[str, Any], owner: str | None = None) -> None:
		self._owned(
			f"UPDATE `{JOB_TABLE}` SET data = %s WHERE id = %s", (json.dumps(data), job_id), job_id, owner
		)

	def finish(self, job_id: int, status: str, data: dict[str, Any], owner: str | None = None) -> None:
		self._owned(
			f"UPDATE `{JOB_TABLE}` SET status = %s, data = %s, ended_at = %s, "
			"started_at = COALESCE(started_at, %s), owner = NULL, lease_until = NULL WHERE id = %s",
			(status, json.dumps(data), jobs.utcnow(), jobs.utcnow(), job_id),
			job_id,
			owner,
		)

	def _owned(self, sql: str, args: tuple, job_id: int, owner: str | None) -> None:
		"""Runs an UPDATE of job ``job_id`` (its row or its steps' rows) only while ``owner`` holds
		its lease (always when no owner is given); raises LeaseLost when the lease is another's."""
		if owner is None:
			self._query(sql, args)
			return
		if sql.startswith(f"UPDATE `{JOB_TABLE}`"):
			guarded, more = f"{sql} AND owner = %s", (owner,)
		else:
			guarded = f"{sql} AND EXISTS (SELECT 1 FROM `{JOB_TABLE}` WHERE id = %s AND owner = %s)"
			more = (job_id, owner)
		if not self._query(guarded, (*args, *more))[0]["rowcount"]:
			raise LeaseLost(f"Job {job_id} is no longer this worker's ({owner}): it stops here.")

	# --- leases -----------------------------------------------------------------------------------

	def take_lease(self, job_id: int, owner: str, seconds: float) -> bool:
		"""The open job becomes ``owner``'s for ``seconds`` unless another worker's lease runs still."""
		found = self._query(
			f"UPDATE `{JOB_TABLE}` SET owner = %s, lease_until = UTC_TIMESTAMP(6) + INTERVAL %s MICROSECOND "
			"WHERE id = %s AND status IN (%s, %s) AND (owner IS NULL OR owner = %s OR lease_until IS NULL "
			"OR lease_until < UTC_TIMESTAMP(6))",
			(owner, int(seconds * 1e6), job_id, *OPEN, owner),
		)
		return bool(found[0]["rowcount"])

	def renew_lease(self, job_id: int, owner: str, seconds: float) -> bool:
		found = self._query(
			f"UPDATE `{JOB_TABLE}` SET lease_until = UTC_TIMESTAMP(6) + INTERVAL %s MICROSECOND "
			"WHERE id = %s AND owner = %s AND status IN (%s, %s)",
			(int(seconds * 1e6), job_id, owner, *OPEN),
		)
		return bool(found[0]["rowcount"])

	def holds_lease(self, job_id: int, owner: str) -> bool:
		rows = self._query(
			f"SELECT 1 FROM `{JOB_TABLE}` WHERE id = %s AND owner = %s AND lease_until >= UTC_TIMESTAMP(6)",
			(job_id, owner),
		)
		return bool(rows)

	def release_lease(self, job_id: int, owner: str) -> None:
		self._query(
			f"UPDATE `{JOB_TABLE}` SET owner = NULL, lease_until = NULL WHERE id = %s AND owner = %s",
			(job_id, owner),
		)

	# --- steps ------------------------------------------------------------------------------------

	def start_step(self, job_id: int, idx: int, name: str, owner: str | None = None) -> None:
		if owner is not None and not self.holds_lease(job_id, owner):
			raise LeaseLost(f"Job {job_id} is no longer this worker's ({owner}): it stops here.")
		self._query(
			f"INSERT INTO `{STEP_TABLE}` (job_id, idx, name, status, output, traceback, data, started_at) "
			"VALUES (%s,%s,%s,%s,'','','{}',%s) ON DUPLICATE KEY UPDATE status = VALUES(status), "
			"output = '', traceback = '', data = '{}', started_at = VALUES(started_at), ended_at = NULL",
			(job_id, idx, name, jobs.RUNNING, jobs.utcnow()),
		)

	def finish_step(
		self,
		job_id: int,
		idx: int,
		status: str,
		output: str,
		traceback: str = "",
		data: Any = None,
		owner: str | None = None,
		commands: list[dict[str, Any]] | None = None,
	) -> None:
		"""``data``: the step's data as the handler shaped it for Press (None: its output and traceback);
		``commands``: what the step ran, with its output, as the Agent lists a step's commands."""
		self._owned(
			f"UPDATE `{STEP_TABLE}` SET status = %s, output = %s, traceback = %s, data = %s, ended_at = %s "
			"WHERE job_id = %s AND idx = %s",
			(status, output, traceback, jobs.step_data_column(data, commands), jobs.utcnow(), job_id, idx),
			job_id,
			owner,
		)

	def save_step_output(
		self,
		job_id: int,
		idx: int,
		output: str,
		owner: str | None = None,
		commands: list[dict[str, Any]] | None = None,
	) -> None:
		"""A running step's output so far (and its commands, when it lists them)."""
		if commands is None:
			sql, values = f"UPDATE `{STEP_TABLE}` SET output = %s WHERE job_id = %s AND idx = %s", (output,)
		else:
			sql = f"UPDATE `{STEP_TABLE}` SET output = %s, data = %s WHERE job_id = %s AND idx = %s"
			values = (output, jobs.step_data_column(None, commands))
		self._owned(sql, (*values, job_id, idx), job_id, owner)

	# --- named locks ------------------------------------------------------------------------------

	def lock_name(self, *parts: object) -> str:
		# lock names are global to the MariaDB server: the database name keeps sites apart
		key = ":".join(map(str, (self.config.database, *parts)))
		return "psa:" + hashlib.sha1(key.encode()).hexdigest()

	def try_lock(self, name: str, timeout: float = 0) -> bool:
		rows = self._query("SELECT GET_LOCK(%s, %s) AS got", (name, timeout))
		if rows[0]["got"] == 1:
			self._held.add(name)
			return True
		return False

	def release(self, name: str) -> None:
		self._query("SELECT RELEASE_LOCK(%s)", (name,))
		self._held.discard(name)

	def holds_lock(self, name: str) -> bool:
		"""Is ``name`` held by this very connection? (Raises LocksLost when the connection is gone.)"""
		rows = self._query("SELECT IS_USED_LOCK(%s) = CONNECTION_ID() AS mine", (name,))
		return rows[0]["mine"] == 1

	def is_free(self, name: str) -> bool:
		rows = self._query("SELECT IS_FREE_LOCK(%s) AS free", (name,))
		return rows[0]["free"] == 1

	# --- reading ----------------------------------------------------------------------------------

	def _jobs(self, where: str, args: Sequence[Any], with_steps: bool = True) -> list[JobRow]:
		rows = self._query(
			"SELECT *, (owner IS NULL OR lease_until IS NULL OR lease_until < UTC_TIMESTAMP(6)) AS lease_free "
			f"FROM `{JOB_TABLE}` WHERE {where} ORDER BY id",
			args,
		)
		found = [_job_row(row) for row in rows]
		if with_steps and found:
			by_id = {job.id: job for job in found}
			marks = ",".join(["%s"] * len(by_id))
			for row in self._query(
				f"SELECT * FROM `{STEP_TABLE}` WHERE job_id IN ({marks}) ORDER BY job_id, idx", list(by_id)
			):
				by_id[row["job_id"]].steps.append(_step_row(row))
		return found


def _job_row(row: dict[str, Any]) -> JobRow:
	return JobRow(
		id=row["id"],
		server=row["server"],
		server_type=row["server_type"],
		job_type=row["job_type"],
		method=row["method"],
		path=row["path"],
		bench=row["bench"],
		site=row["site"],
		agent_job_id=row["agent_job_id"],
		payload=json.loads(row["payload"]),
		status=row["status"],
		data=json.loads(row["data"]),
		enqueued=row["enqueued_at"],
		start=row["started_at"],
		end=row["ended_at"],
		resume_after=row.get("resume_after"),
		owner=row.get("owner"),
		lease_free=bool(row.get("lease_free", 1)),
	)


def _step_row(row: dict[str, Any]) -> StepRow:
	return StepRow(
		id=row["id"],
		job_id=row["job_id"],
		idx=row["idx"],
		name=row["name"],
		status=row["status"],
		output=row["output"],
		traceback=row["traceback"],
		data=json.loads(row["data"]),
		start=row["started_at"],
		end=row["ended_at"],
	)
