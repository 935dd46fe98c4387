"""Runs a recorded job live in the store, its steps through :func:`runner.run_steps`, and the sweep that
resumes dead workers.

Locks (MariaDB named locks on the executor's own store connection, so they vanish with a dead worker):
- ``job:<id>`` makes one job run once; a second worker given the same id returns at once;
- ``bench:<server>:<bench>`` and ``site:<server>:<site>`` let one job at a time touch a bench or a
  site, and a job runs only when no older open job of its bench/site is left (Press's order), while
  jobs of other benches run in parallel.

A worker never waits inside a job: a job whose bench or site is busy returns at once and is enqueued
again when the job before it ends; a step whose condition is not met (:class:`StepWaiting`) leaves the
job Running for the sweep to resume. With Frappe's default layout (one worker for every queue) a
waiting worker would hold the only slot that could run what it waits for.

Exactly once: under those locks the job is read again (another worker may have finished it meanwhile)
and taken with a lease in its row, which a heartbeat thread renews on a connection of its own while
the steps run. The owner is checked before each step and every write of a step or of the job's end
is conditional on it. When the locks' connection ends (the locks are gone with it) or the lease
cannot be renewed, the worker stops its job at the next step boundary or output line, without
recording anything, and gives the lease back; the sweep resumes the job only when no lock and no
running lease hold it. A worker that dies keeps its lease until it runs out (``lease`` seconds).

Resuming: a rerun skips the steps already recorded Success and runs again the step that was Running
when the worker died. Steps are idempotent (they look at what exists and do only what is missing), so
that rerun converges; a job whose steps must all run again is simply a new job from Press.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import traceback as tracebacks
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from press_selfhosted.engine.agent import jobs
from press_selfhosted.engine.agent.jobs import JobRow
from press_selfhosted.engine.agent.locks import BENCH
from press_selfhosted.engine.agent.runner import (
	WAITING,
	Contexts,
	Journal,
	StepLines,
	StepResult,
	describe,
	run_steps,
)
from press_selfhosted.engine.agent.store import JobStore
from press_selfhosted.engine.clients.docker_hosts import DockerHosts
from press_selfhosted.engine.errors import EngineError, JobStoreUnavailable, LeaseLost
from press_selfhosted.engine.jobs.handlers import EndJob, Handler, JobRecord, SecretSource, Step, Topology


@dataclass
class ExecutorSettings:
	flush_interval: float = 1.0  # how often a running step's output and the job's data reach the store
	lease: float = 300.0  # a job stays its worker's this long after the last renewal
	renew_interval: float = 30.0  # how often the worker renews its lease and checks its locks


class Lease:
	"""A job's lease, renewed by a thread on a store connection of its own; ``lost`` once the lease
	could not be renewed in time or the connection holding the job's locks has ended."""

	def __init__(self, store: JobStore, job_id: int, job_lock: str, settings: ExecutorSettings):
		self.store, self.job_id, self.job_lock, self.settings = store, job_id, job_lock, settings
		self.owner = f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
		self.own = JobStore(store.config)  # the heartbeat's connection: it holds no lock
		self.lost: str | None = None
		self._valid_until = 0.0
		self._stop = threading.Event()
		self._thread = threading.Thread(target=self._beat, name=f"lease-{job_id}", daemon=True)

	def take(self) -> bool:
		if not self.own.take_lease(self.job_id, self.owner, self.settings.lease):
			self.own.close()
			return False
		self._valid_until = time.monotonic() + self.settings.lease
		self._thread.start()
		return True

	def _beat(self) -> None:
		while not self._stop.wait(self.settings.renew_interval):
			try:
				if not self.store.holds_lock(self.job_lock):
					self.lost = "the job's lock is not this worker's any more"
			except JobStoreUnavailable as error:
				self.lost = str(error)
			try:
				if self.own.renew_lease(self.job_id, self.owner, self.settings.lease):
					self._valid_until = time.monotonic() + self.settings.lease
				else:
					self.lost = self.lost or "another worker holds the job's lease"
			except JobStoreUnavailable:
				# keep trying: the lease holds until it runs out, and the job stops before that
				if time.monotonic() > self._valid_until - 2 * self.settings.renew_interval:
					self.lost = self.lost or "the lease could not be renewed in time"

	def check(self) -> None:
		if self.lost:
			raise LeaseLost(f"Job {self.job_id} stops on this worker: {self.lost}")

	def end(self) -> None:
		"""Stops renewing; a lease still running (a job stopped unfinished, or waiting) is given back."""
		self._stop.set()
		if self._thread.is_alive():
			self._thread.join()
		with contextlib.suppress(JobStoreUnavailable):
			self.own.release_lease(self.job_id, self.owner)
		self.own.close()


class _LiveStep(StepLines):
	"""A running step's output, written to the store while the step runs, so that Press's polls show
	progress (build stages, long commands) and not only the end result. Writes are at most every
	``interval``; a thread on a store connection of its own writes the last lines once the step goes quiet
	(a stage that starts and then runs silently for minutes shows as started). Used as a context around
	the step: the thread has stopped before the step's end is recorded."""

	def __init__(self, store: JobStore, record: JobRecord, idx: int, interval: float, lease: Lease):
		super().__init__()
		self._store, self._record, self._idx, self._interval = store, record, idx, interval
		self._lease = lease
		self._flushed = time.monotonic()
		self._pending = False
		self._lock = threading.Lock()  # the step's thread and the flusher share lines and _pending
		self._writing = threading.Lock()  # one write at a time: an older text never lands after a newer
		self._stop = threading.Event()
		self._flusher = threading.Thread(target=self._flush_when_quiet, name=f"live-{record.id}", daemon=True)
		self._own: JobStore | None = None  # opened when the step first goes quiet with lines unwritten

	def __enter__(self) -> None:
		self._flusher.start()

	def __exit__(self, *exc_info) -> None:
		self._stop.set()
		self._flusher.join()
		if self._own is not None:
			self._own.close()

	def append(self, text: str) -> None:
		with self._lock:
			self.lines.append(text)
			self._pending = True
		self._lease.check()  # a job this worker lost stops at its next line of output
		if time.monotonic() - self._flushed >= self._interval:
			self._write(self._store)

	def _write(self, store: JobStore) -> None:
		with self._writing:
			with self._lock:
				text, self._pending = self.text, False
				self._flushed = time.monotonic()
			owner = self._lease.owner
			store.save_step_output(
				self._record.id, self._idx, text, owner=owner, commands=self.context and self.context.commands
			)
			# a copy: the step's thread may change its data meanwhile (dict() copies under the GIL)
			store.save_data(self._record.id, dict(self._record.data), owner=owner)

	def _flush_when_quiet(self) -> None:
		while not self._stop.wait(self._interval):
			if not self._pending or time.monotonic() - self._flushed < self._interval:
				continue
			try:
				self._own = self._own or JobStore(self._store.config)
				self._write(self._own)
			except (JobStoreUnavailable, RuntimeError):
				pass  # a later write, or the step's end, records the same lines

	@property
	def text(self) -> str:
		return "\n".join(self.lines)


class _StoreJournal(Journal):
	"""The executor's record of a run: each step in the job store as it goes, under the job's lease. A job
	this worker lost (its lease, or the connection holding its locks) stops unrecorded at a step's end."""

	def __init__(self, store: JobStore, record: JobRecord, settings: ExecutorSettings, lease: Lease):
		super().__init__()
		self.store, self.record, self.settings, self.lease = store, record, settings, lease

	def start(self, idx: int, step: Step) -> StepLines:
		self.lease.check()
		live = _LiveStep(self.store, self.record, idx, self.settings.flush_interval, self.lease)
		self.store.start_step(self.record.id, idx, step.name, owner=self.lease.owner)
		return live

	def end(self, result: StepResult) -> None:
		error, owner = result.error, self.lease.owner
		failed = result.status == jobs.FAILURE and not isinstance(error, EndJob)
		if failed and (isinstance(error, LeaseLost | JobStoreUnavailable) or self.lease.lost):
			raise LeaseLost(
				f"job {self.record.id} stopped in step {result.name!r}: {self.lease.lost or error}"
			) from error
		self.lease.check()
		if result.status == WAITING:
			self.store.wait_step(self.record.id, result.idx, result.output, result.retry_after, owner=owner)
		else:
			self.store.finish_step(
				self.record.id,
				result.idx,
				result.status,
				result.output,
				result.traceback,
				result.data,
				owner=owner,
				commands=result.commands,
			)
		self.store.save_data(self.record.id, self.record.data, owner=owner)


class Executor:
	def __init__(
		self,
		store: JobStore,
		handlers: Mapping[str, Handler],
		topology: Topology,
		secrets: SecretSource,
		docker_hosts: DockerHosts,
		settings: ExecutorSettings | None = None,
		on_finished: Callable[[JobRecord, str], None] | None = None,
		enqueue: Callable[[int], object] | None = None,
	):
		"""``on_finished(job, status)`` runs once a job has ended and its end is stored: where the Frappe
		layer records what Press's own callbacks do not (e.g. that a server set up is Active).
		``enqueue(job_id)`` hands the jobs that waited for an ended one to a worker."""
		self.store = store
		self.handlers = handlers
		self.topology = topology
		self.secrets = secrets
		self.docker_hosts = docker_hosts
		self.contexts = Contexts(topology, secrets, docker_hosts)
		self.settings = settings or ExecutorSettings()
		self.on_finished = on_finished
		self.enqueue = enqueue

	def run(self, job_id: int) -> str | None:
		"""Run (or resume) job ``job_id``; returns its status, :data:`WAITING`, or None when it cannot
		run now (another worker has it, or an older job of its bench or site is open) or this worker lost
		it (the job stops unrecorded and the sweep resumes it).

		A job given up because its bench or site was busy is tried again when they are free once its own
		lock is released: the job before it may have ended meanwhile, and its hand-over to a worker found
		the job's lock held here and gave up in turn; else the job would wait for the sweep."""
		while True:
			status, busy = self._attempt(job_id)
			if busy is None or not self._scope_free(busy):
				return status

	def _attempt(self, job_id: int) -> tuple[str | None, JobRow | None]:
		"""One try at running the job: its status (as :meth:`run`), and the job when its bench or site
		was busy."""
		job = self.store.get(job_id)
		if job is None or job.status in jobs.FINISHED:
			return (job.status if job else None), None
		job_lock = self.store.lock_name("job", job.id)
		if not self.store.try_lock(job_lock):
			return None, None
		held, lease, status = [job_lock], None, None
		try:
			scope = self._acquire_scope(job)
			if scope is None:
				return None, job
			held += scope
			# the row read before the locks may be stale: another worker may have run the job meanwhile
			job = self.store.get(job_id)
			if job is None or job.status in jobs.FINISHED:
				return (job.status if job else None), None
			lease = Lease(self.store, job.id, job_lock, self.settings)
			if not lease.take():
				lease = None
				return None, None
			status = self._execute(job, lease)
			return status, None
		except (LeaseLost, JobStoreUnavailable):
			return None, None
		finally:
			if lease is not None:
				lease.end()
			for name in reversed(held):
				with contextlib.suppress(JobStoreUnavailable):
					self.store.release(name)
			self.store.forget_lost_locks()
			if status in jobs.FINISHED:
				self._enqueue_successors(job)

	def _scope_names(self, job: JobRow) -> list[str]:
		return [
			self.store.lock_name(kind, job.server, value)
			for kind, value in ((BENCH, job.bench), ("site", job.site))
			if value
		]

	def _acquire_scope(self, job: JobRow) -> list[str] | None:
		"""The bench and site locks of ``job`` when they are free and no older job of its bench or site is
		open; else None at once (the ending job before it enqueues it again)."""
		names = self._scope_names(job)
		got: list[str] = []
		for name in names:
			if not self.store.try_lock(name):
				break
			got.append(name)
		if len(got) == len(names) and not self.store.has_earlier_unfinished(job):
			return got
		for name in got:
			self.store.release(name)
		return None

	def _scope_free(self, job: JobRow) -> bool:
		"""Could ``job`` run now as far as its bench and site go? (A store that cannot answer: no.)"""
		try:
			names = self._scope_names(job)
			return all(self.store.is_free(name) for name in names) and not self.store.has_earlier_unfinished(
				job
			)
		except JobStoreUnavailable:
			return False

	def _execute(self, job: JobRow, lease: Lease) -> str:
		owner = lease.owner
		self.store.mark_running(job.id, owner=owner)
		handler = self.handlers.get(job.job_type)
		record = JobRecord.of(job, job.id, {**(handler.initial_data if handler else {}), **job.data})
		try:
			if handler is None:
				raise EngineError(f"press_selfhosted has no handler for job type {job.job_type!r}")
			context = self.contexts.for_job(record)
		except Exception as error:  # noqa: BLE001 - any failure to start is the job's failure
			return self._fail(record, describe(error), tracebacks.format_exc(), owner)
		done = {step.idx for step in job.steps if step.status == jobs.SUCCESS}
		journal = _StoreJournal(self.store, record, self.settings, lease)
		run = run_steps(record, handler.steps, context, journal, done)
		if run.status == WAITING:
			return WAITING
		if run.failure:
			return self._fail(record, run.failure.output, run.failure.traceback, owner)
		lease.check()
		self.store.finish(job.id, jobs.SUCCESS, record.data, owner=owner)
		self._finished(record, jobs.SUCCESS)
		return jobs.SUCCESS

	def _fail(self, record: JobRecord, output: str, trace: str, owner: str) -> str:
		"""Press takes a failed job's ``output`` and ``traceback`` from its data. A handler that set
		``output`` itself owns it (Run Remote Builder's is JSON that Press parses): then the failure's
		text goes before the traceback instead."""
		if "output" in record.data:
			failure = {"traceback": f"{output}\n\n{trace}"}
		else:
			failure = {"output": output, "traceback": trace}
		self.store.finish(record.id, jobs.FAILURE, {**record.data, **failure}, owner=owner)
		self._finished(record, jobs.FAILURE)
		return jobs.FAILURE

	def _finished(self, record: JobRecord, status: str) -> None:
		if self.on_finished:
			self.on_finished(record, status)

	def _enqueue_successors(self, job: JobRow) -> None:
		"""Hands the jobs that waited for ``job`` to workers, once its locks are free: a worker taking
		one at once would otherwise find the bench still locked and drop it until the sweep (a minute
		or more later). A store that cannot answer leaves them to the sweep too."""
		if not self.enqueue:
			return
		with contextlib.suppress(JobStoreUnavailable):
			for successor in self.store.successors(job.server, job.id, job.bench, job.site):
				self.enqueue(successor)


def sweep(store: JobStore, enqueue: Callable[[int], object], min_age: float = 60.0) -> list[int]:
	"""Re-enqueue open jobs that no worker holds (no named lock, no running lease): the worker died,
	the enqueue was lost, or a step is waiting (:class:`StepWaiting`) and its time to look again has come.

	``min_age`` (seconds since the job was recorded) leaves a freshly recorded job to the worker it
	was enqueued for. Enqueueing a job that is already queued is harmless: the job lock and the lease
	make it run once.
	"""
	resumed = []
	now = jobs.utcnow()
	for job in store.unfinished():
		if not job.lease_free:
			continue
		if job.resume_after is not None:
			if job.resume_after > now:
				continue
		elif (now - job.enqueued).total_seconds() < min_age:
			continue
		if store.is_free(store.lock_name("job", job.id)):
			enqueue(job.id)
			resumed.append(job.id)
	return resumed
