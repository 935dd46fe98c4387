"""The bench lock the executor holds while a job of a bench runs, for work on a bench that is no job.

The executor takes ``bench:<server>:<bench>`` (a MariaDB named lock on its store connection) for each job
of a bench, so that one job at a time touches a bench; it never waits for it. Work that is not a job but
runs commands in a bench (the restore drill) takes the same lock with :class:`BenchLocks`, waiting a
bounded time for the job that holds it; meanwhile a job of that bench finds the bench busy and returns,
and the sweep enqueues it again once the lock is free.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from press_selfhosted.engine.agent import jobs
from press_selfhosted.engine.agent.store import JobStore
from press_selfhosted.engine.errors import BenchBusy

BENCH = "bench"  # the kind of the executor's per-bench lock (see JobStore.lock_name)


class BenchLocks:
	def __init__(self, store: JobStore, wait: float = 300.0):
		"""``store``: a store of its own (a named lock belongs to its connection); ``wait``: seconds."""
		self.store = store
		self.wait = wait

	def name(self, server: str, bench: str) -> str:
		return self.store.lock_name(BENCH, server, bench)

	@contextlib.contextmanager
	def hold(self, server: str, bench: str, work: str) -> Iterator[None]:
		"""Runs the block holding ``bench``'s lock; :class:`BenchBusy` when a job kept it for ``wait``
		seconds. ``work`` says what waits, for the error."""
		name = self.name(server, bench)
		if not self.store.try_lock(name, timeout=self.wait):
			raise BenchBusy(
				f"{work} did not run: bench {bench} of server {server} stayed busy for {self.wait:.0f} s, "
				f"held by {self._holder(server, bench)}. It runs again at its next schedule; to run it now, "
				"wait for that job to end (the Agent Jobs of the server show it)."
			)
		try:
			yield
		finally:
			self.store.release(name)

	def _holder(self, server: str, bench: str) -> str:
		running = [
			job
			for job in self.store.unfinished()
			if job.server == server and job.bench == bench and job.status == jobs.RUNNING
		]
		if not running:
			return "no running job now (another restore drill, or a job that has just ended)"
		job = running[0]
		return f"job {job.id} ({job.job_type}{f', Agent Job {job.agent_job_id}' if job.agent_job_id else ''})"
