"""Runs a recorded job's steps in order, live in the store, and the sweep that resumes dead workers.

Locks (MariaDB named locks on the executor's own store connection, so they vanish with a dead worker):
- ``job:<id>`` makes one job run once; a second worker given the same id returns at once;
- ``bench:<server>:<bench>`` and ``site:<server>:<site>`` let one job at a time touch a bench or a
  site, and a job runs only when no older open job of its bench/site is left (Press's order), while
  jobs of other benches run in parallel.

A worker never waits inside a job: a job whose bench or site is busy returns at once and is enqueued
again when the job before it ends; a step whose condition is not met (:class:`StepWaiting`) leaves the
job Running for the sweep to resume. With Frappe's default layout (one worker for every queue) a
waiting worker would hold the only slot that could run what it waits for.

Resuming: a rerun skips the steps already recorded Success and runs again the step that was Running
when the worker died. Steps are idempotent (they look at what exists and do only what is missing), so
that rerun converges; a job whose steps must all run again is simply a new job from Press.
"""

from __future__ import annotations

import time
import traceback as tracebacks
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import docker

from press_selfhosted.engine.agent import jobs
from press_selfhosted.engine.agent.handlers import (
	ContainerServer,
	EndJob,
	Handler,
	JobRecord,
	SecretSource,
	StepContext,
	StepWaiting,
	Topology,
)
from press_selfhosted.engine.agent.jobs import JobRow
from press_selfhosted.engine.agent.store import JobStore
from press_selfhosted.engine.docker_hosts import DockerHosts, docker_errors
from press_selfhosted.engine.errors import EngineError

WAITING = "Waiting"  # what run() returns for a job left Running until a step's condition is met


@dataclass
class ExecutorSettings:
	flush_interval: float = 1.0  # how often a running step's output and the job's data reach the store


class _LiveStep:
	"""A running step's output, written to the store while the step runs (throttled), so that Press's
	polls show progress (build stages, long commands) and not only the end result."""

	def __init__(self, store: JobStore, record: JobRecord, idx: int, interval: float):
		self.lines: list[str] = []
		self._store, self._record, self._idx, self._interval = store, record, idx, interval
		self._flushed = time.monotonic()

	def append(self, text: str) -> None:
		self.lines.append(text)
		if time.monotonic() - self._flushed >= self._interval:
			self._store.save_step_output(self._record.id, self._idx, self.text)
			self._store.save_data(self._record.id, self._record.data)
			self._flushed = time.monotonic()

	@property
	def text(self) -> str:
		return "\n".join(self.lines)


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
		self.settings = settings or ExecutorSettings()
		self.on_finished = on_finished
		self.enqueue = enqueue

	def run(self, job_id: int) -> str | None:
		"""Run (or resume) job ``job_id``; returns its status, :data:`WAITING`, or None when it cannot
		run now (another worker has it, or an older job of its bench or site is open)."""
		job = self.store.get(job_id)
		if job is None or job.status in jobs.FINISHED:
			return job.status if job else None
		job_lock = self.store.lock_name("job", job.id)
		if not self.store.try_lock(job_lock):
			return None
		held = [job_lock]
		try:
			scope = self._acquire_scope(job)
			if scope is None:
				return None
			held += scope
			return self._execute(job)
		finally:
			for name in reversed(held):
				self.store.release(name)

	def _acquire_scope(self, job: JobRow) -> list[str] | None:
		"""The bench and site locks of ``job`` when they are free and no older job of its bench or site is
		open; else None at once (the ending job before it enqueues it again)."""
		names = [
			self.store.lock_name(kind, job.server, value)
			for kind, value in (("bench", job.bench), ("site", job.site))
			if value
		]
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

	def _execute(self, job: JobRow) -> str:
		self.store.mark_running(job.id)
		handler = self.handlers.get(job.job_type)
		record = JobRecord(
			id=job.id,
			job_type=job.job_type,
			server=job.server,
			server_type=job.server_type,
			method=job.method,
			path=job.path,
			bench=job.bench,
			site=job.site,
			payload=job.payload,
			agent_job_id=job.agent_job_id,
			data={**(handler.initial_data if handler else {}), **job.data},
		)
		try:
			if handler is None:
				raise EngineError(f"press_selfhosted has no handler for job type {job.job_type!r}")
			server = self.topology.server(job.server_type, job.server)
			client = self.docker_hosts.client(server.docker)
		except Exception as error:  # noqa: BLE001 - any failure to start is the job's failure
			return self._fail(record, _describe(error), tracebacks.format_exc())
		done = {step.idx for step in job.steps if step.status == jobs.SUCCESS}
		still_run: set[str] | None = None  # after an EndJob: the steps that run all the same
		for idx, step in enumerate(handler.steps):
			if idx in done or (still_run is not None and step.name not in still_run):
				continue
			live = _LiveStep(self.store, record, idx, self.settings.flush_interval)
			ctx = StepContext(
				record,
				server,
				client,
				self.topology,
				self.secrets,
				live.append,
				self._docker_for,
			)
			self.store.start_step(job.id, idx, step.name)
			try:
				with docker_errors(server.docker, f"running step {step.name!r} of job {job.id}"):
					step.run(ctx)
			except StepWaiting as waiting:
				text = "\n".join([*live.lines, ctx.redact(str(waiting))])
				self.store.wait_step(job.id, idx, text, waiting.retry_after)
				self.store.save_data(job.id, record.data)
				return WAITING
			except EndJob as end:
				text = "\n".join([*live.lines, ctx.redact(str(end))])
				self.store.finish_step(job.id, idx, jobs.FAILURE, text, "", ctx.step_data)
				self.store.save_data(job.id, record.data)
				still_run = set(end.run_after)
				continue
			except Exception as error:  # noqa: BLE001 - a step's failure is the job's failure
				message = ctx.redact(_describe(error))
				trace = ctx.redact(tracebacks.format_exc())
				text = "\n".join([*live.lines, message])
				self.store.finish_step(job.id, idx, jobs.FAILURE, text, trace, ctx.step_data)
				return self._fail(record, text, trace)
			self.store.finish_step(job.id, idx, jobs.SUCCESS, live.text, "", ctx.step_data)
			self.store.save_data(job.id, record.data)
		self.store.finish(job.id, jobs.SUCCESS, record.data)
		self._finished(record, jobs.SUCCESS)
		return jobs.SUCCESS

	def _fail(self, record: JobRecord, output: str, trace: str) -> str:
		"""Press takes a failed job's ``output`` and ``traceback`` from its data. A handler that set
		``output`` itself owns it (Run Remote Builder's is JSON that Press parses): then the failure's
		text goes before the traceback instead."""
		if "output" in record.data:
			failure = {"traceback": f"{output}\n\n{trace}"}
		else:
			failure = {"output": output, "traceback": trace}
		self.store.finish(record.id, jobs.FAILURE, {**record.data, **failure})
		self._finished(record, jobs.FAILURE)
		return jobs.FAILURE

	def _finished(self, record: JobRecord, status: str) -> None:
		if self.on_finished:
			self.on_finished(record, status)
		if self.enqueue:
			for successor in self.store.successors(record.server, record.id, record.bench, record.site):
				self.enqueue(successor)

	def _docker_for(self, server: ContainerServer) -> docker.DockerClient:
		return self.docker_hosts.client(server.docker)


def _describe(error: BaseException) -> str:
	if isinstance(error, EngineError):
		return str(error)
	return f"{type(error).__name__}: {error}"


def sweep(store: JobStore, enqueue: Callable[[int], object], min_age: float = 60.0) -> list[int]:
	"""Re-enqueue open jobs that no worker holds: the worker died, the enqueue was lost, or a step is
	waiting (:class:`StepWaiting`) and its time to look again has come.

	``min_age`` (seconds since the job was recorded) leaves a freshly recorded job to the worker it
	was enqueued for. Enqueueing a job that is already queued is harmless: the job lock makes it run once.
	"""
	resumed = []
	now = jobs.utcnow()
	for job in store.unfinished():
		if job.resume_after is not None:
			if job.resume_after > now:
				continue
		elif (now - job.enqueued).total_seconds() < min_age:
			continue
		if store.is_free(store.lock_name("job", job.id)):
			enqueue(job.id)
			resumed.append(job.id)
	return resumed
