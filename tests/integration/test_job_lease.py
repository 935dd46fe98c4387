"""A job runs exactly once (issue 10), against the real job store (MariaDB).

Two workers are two Executors with their own store connections, as two RQ workers are. The store's
MariaDB kills a worker's connection the way a network cut or a server restart would (``KILL``): its
named locks vanish with it.
"""

from __future__ import annotations

import threading
import time
import uuid

import agent_support as support
import pymysql
from fakes import PressRecords

from press_selfhosted.engine.agent.executor import Executor, ExecutorSettings, sweep
from press_selfhosted.engine.agent.router import Router
from press_selfhosted.engine.agent.store import JobStore
from press_selfhosted.engine.clients.docker_hosts import DockerHosts
from press_selfhosted.engine.jobs import handlers

SETTINGS = ExecutorSettings(flush_interval=0.05, lease=4, renew_interval=0.5)


class Tally:
	"""How many times each step ran, and the most copies of a step that ever ran at once."""

	def __init__(self):
		self.lock = threading.Lock()
		self.runs: dict[str, int] = {}
		self.running = 0
		self.most = 0
		self.first_entered = threading.Event()
		self.release = threading.Event()

	def step(self, name: str, hold: bool = False):
		def run(ctx):
			with self.lock:
				self.runs[name] = self.runs.get(name, 0) + 1
				self.running += 1
				self.most = max(self.most, self.running)
			try:
				if hold and self.runs[name] == 1:
					self.first_entered.set()
					self.release.wait(30)
				ctx.log(f"{name} done")
			finally:
				with self.lock:
					self.running -= 1

		return run


def setup(endpoints, store_config, tally: Tally, hold: bool = False):
	server = support.app_server(endpoints, "l" + uuid.uuid4().hex[:6])
	topology = PressRecords([server])
	handler = handlers.handler(
		"Bench Restart",
		"POST",
		"benches/{bench}/restart",
		[("Bench Restart", tally.step("one", hold)), ("Reload", tally.step("two"))],
	)
	router = Router([handler], JobStore(store_config), lambda job_id: None, topology, DockerHosts())
	job_id = router.handle(server.name, "POST", "benches/b1/restart", {}, agent_job_id="AJ-x").json["job"]

	def worker() -> Executor:
		return support.executor_for(store_config, [handler], topology, SETTINGS)

	return job_id, worker


def test_a_job_finished_while_a_worker_waited_for_its_lock_is_not_run_again(endpoints, store_config):
	tally = Tally()
	job_id, worker = setup(endpoints, store_config, tally)
	late = worker()
	taking = late.store.try_lock

	def someone_else_first(name, timeout=0):
		# between reading the job and getting its lock, another worker runs it to the end
		if name == late.store.lock_name("job", job_id) and not tally.runs:
			assert worker().run(job_id) == "Success"
		return taking(name, timeout)

	late.store.try_lock = someone_else_first
	assert late.run(job_id) == "Success"
	assert tally.runs == {"one": 1, "two": 1}


def kill_connection_holding(store_config, lock: str) -> None:
	root = pymysql.connect(
		host=store_config.host, port=store_config.port, user=store_config.user, password=store_config.password
	)
	try:
		with root.cursor() as cursor:
			cursor.execute("SELECT IS_USED_LOCK(%s)", (lock,))
			(connection,) = cursor.fetchone()
			assert connection, f"nobody holds {lock}"
			cursor.execute(f"KILL {int(connection)}")
	finally:
		root.close()


def test_a_worker_that_loses_its_locks_stops_and_nobody_runs_its_step_twice(endpoints, store_config):
	tally = Tally()
	job_id, worker = setup(endpoints, store_config, tally, hold=True)
	first = worker()
	results = {}
	thread = threading.Thread(target=lambda: results.update(first=first.run(job_id)))
	thread.start()
	assert tally.first_entered.wait(30)
	store = JobStore(store_config)
	kill_connection_holding(store_config, store.lock_name("job", job_id))
	time.sleep(1)  # the server frees the killed connection's locks
	assert store.is_free(store.lock_name("job", job_id))

	# its lease still runs: the sweep leaves the job alone, and a second worker does not start it
	resumed = sweep(store, lambda job: None, min_age=0)
	assert job_id not in resumed
	assert worker().run(job_id) is None
	assert tally.runs == {"one": 1}

	# the first worker's step ends: the worker stops there, records nothing and gives the lease back
	tally.release.set()
	thread.join(30)
	assert results["first"] is None
	job = store.get(job_id)
	assert job.status == "Running" and job.lease_free
	assert [step.status for step in job.steps] == ["Running"]
	assert tally.runs == {"one": 1}

	# now the sweep resumes it: the interrupted step runs again, never at the same time as before
	resumed = sweep(store, lambda job: job == job_id and worker().run(job), min_age=0)
	assert job_id in resumed
	assert store.get(job_id).status == "Success"
	assert tally.runs == {"one": 2, "two": 1} and tally.most == 1


def test_a_dead_workers_job_waits_for_its_lease_then_resumes(endpoints, store_config):
	tally = Tally()
	job_id, worker = setup(endpoints, store_config, tally)
	store = JobStore(store_config)
	# a worker that died with the job: its lease is in the row, its locks went with its connection
	assert store.take_lease(job_id, "dead-worker", SETTINGS.lease)
	assert sweep(store, lambda job: None, min_age=0).count(job_id) == 0
	assert worker().run(job_id) is None
	time.sleep(SETTINGS.lease + 0.5)
	assert job_id in sweep(store, lambda job: job == job_id and worker().run(job), min_age=0)
	assert store.get(job_id).status == "Success" and tally.runs == {"one": 1, "two": 1}
