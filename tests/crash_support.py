"""The crash tests' machinery (no tests here): a real worker subprocess SIGKILLed while a step runs, then
the executor's sweep resuming the job.

The worker runs the real entry point (``python -m press_selfhosted.engine.agent.worker --factory
module:function``) with handlers whose steps linger after doing their work. The kill comes as soon as the
job store shows the step Running: mid-work in a step that takes longer than that look (most do), in the
linger after the work in a quick one (the linger keeps it Running long enough to be seen). Either way
the rerun must finish or repeat the step's work harmlessly.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path

from press_selfhosted.engine.agent.executor import ExecutorSettings, sweep
from press_selfhosted.engine.agent.store import JobStore
from press_selfhosted.engine.jobs.handlers import Handler, Step

# Workers the crash tests kill: a short lease, so that the sweep may resume their job seconds later.
CRASH_SETTINGS = ExecutorSettings(lease=3, renew_interval=0.5)


def lingering(found: Iterable[Handler], seconds: float, hold: int | None = None) -> list[Handler]:
	"""``found`` with every step sleeping ``seconds`` after its work (the window the kill lands in); the
	step at position ``hold`` of its job sleeps until the worker is killed, so that a quick step cannot end
	unseen before the kill meant for it."""

	def linger(step: Step, position: int) -> Step:
		def run(ctx):
			step.run(ctx)
			while position == hold:
				time.sleep(1)
			time.sleep(seconds)

		return replace(step, run=run)

	return [replace(h, steps=tuple(linger(s, i) for i, s in enumerate(h.steps))) for h in found]


def spawn_worker(factory: str, job_id: int, **environment: str) -> subprocess.Popen:
	"""The real worker entry point in a subprocess a test can SIGKILL; ``factory`` (``module:function``
	importable from tests/) builds its executor from ``environment``."""
	env = dict(os.environ, **environment)
	# the support modules and the factories of the test modules (in every tree)
	tests = Path(__file__).parent
	trees = [str(tests), *(str(tests / tree) for tree in ("unit", "integration", "crash"))]
	env["PYTHONPATH"] = os.pathsep.join([*trees, env.get("PYTHONPATH", "")])
	argv = [sys.executable, "-m", "press_selfhosted.engine.agent.worker", "--factory", factory, str(job_id)]
	return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_step_running(store: JobStore, job_id: int, idx: int, worker: subprocess.Popen, timeout: float = 120):
	"""Returns once step ``idx`` of the job is Running (the moment a crash test kills the worker)."""
	deadline = time.monotonic() + timeout
	while not (len(steps := store.get(job_id).steps) > idx and steps[idx].status == "Running"):
		assert worker.poll() is None and time.monotonic() < deadline, (
			f"step {idx} never ran: {store.get(job_id)}"
		)
		time.sleep(0.05)


def kill_at_step(store: JobStore, job_id: int, idx: int, worker: subprocess.Popen, timeout: float = 30):
	"""SIGKILL the worker once step ``idx`` is Running; returns once MariaDB has freed the job's lock
	and the dead worker's lease has run out (CRASH_SETTINGS.lease).

	The server frees a dead client's named locks only when its connection thread notices the closed
	socket, a moment after the process is gone: a sweep run before that rightly leaves the job alone.
	"""
	wait_step_running(store, job_id, idx, worker)
	worker.send_signal(signal.SIGKILL)
	worker.wait()
	job_lock = store.lock_name("job", job_id)
	deadline = time.monotonic() + timeout
	while not store.is_free(job_lock):
		assert time.monotonic() < deadline, f"the killed worker's lock on job {job_id} was never freed"
		time.sleep(0.05)
	while not store.get(job_id).lease_free:
		assert time.monotonic() < deadline, f"the killed worker's lease on job {job_id} never ran out"
		time.sleep(0.1)


def resume(store: JobStore, job_id: int, spawn: Callable[[int], subprocess.Popen]) -> subprocess.Popen:
	"""The sweep's rerun of the killed worker's job, in a new worker (``spawn``); the sweep sees every
	open job of the session's store, only ``job_id`` is the caller's to resume."""
	assert store.get(job_id).status == "Running"
	workers = []
	resumed = sweep(store, lambda job: job == job_id and workers.append(spawn(job)), min_age=0)
	assert job_id in resumed and workers, f"the sweep did not resume job {job_id}"
	return workers[0]


def kill_at_every_step(
	store: JobStore,
	job_id: int,
	steps: int,
	spawn: Callable[[int, int | None], subprocess.Popen],
	timeout: float = 300,
) -> None:
	"""One run of the job killed in each of its ``steps`` steps in turn: the worker is killed in step 0, the
	sweep's worker reruns step 0 and is killed in step 1, and so on; the last sweep's worker finishes the
	job. Every step is thus rerun after a kill in it, and every rerun but the last is itself cut short
	by the next kill (one kill per step: a job of n steps costs n kills and restarts, not n runs).

	``spawn(job_id, hold)`` starts a worker whose step ``hold`` waits for its kill (``lingering``); the
	last worker, which finishes the job, gets None."""
	worker = spawn(job_id, 0)
	try:
		for idx in range(steps):
			kill_at_step(store, job_id, idx, worker)
			worker = resume(
				store, job_id, lambda job, idx=idx: spawn(job, idx + 1 if idx + 1 < steps else None)
			)
		worker.wait(timeout)
	finally:
		worker.kill()  # a worker held in a step stays alive when an assertion ends the test early
