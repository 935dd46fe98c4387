"""The step runner (engine.agent.runner) with handlers made for the test, and the bench lock that the
restore drill shares with the executor (the job store is the real MariaDB).

The runner's steps here touch no Docker: their server's client is never asked for.
"""

from __future__ import annotations

import threading
import uuid

import agent_support as support
import pytest
from fakes import PressRecords, Secrets, job_record

from press_selfhosted.engine.agent import jobs, runner
from press_selfhosted.engine.agent.executor import Executor, ExecutorSettings
from press_selfhosted.engine.agent.locks import BenchLocks
from press_selfhosted.engine.agent.router import Router
from press_selfhosted.engine.agent.store import JobStore
from press_selfhosted.engine.clients.docker_hosts import DockerHost, DockerHosts
from press_selfhosted.engine.clients.servers import ContainerServer
from press_selfhosted.engine.errors import BenchBusy, EngineError
from press_selfhosted.engine.jobs import handlers
from press_selfhosted.engine.jobs.handlers import EndJob, JobRecord, StepWaiting

SERVER = ContainerServer(
	"r.example.test", "Server", "r", DockerHost("r.example.test", "unix:///nowhere"), "r-net"
)


def context(job: JobRecord):
	topology = PressRecords([SERVER])
	secrets = Secrets({"admin_password": "Hidden-42"})
	return runner.Contexts(topology, secrets, DockerHosts(lambda host: None)).for_job(job)


def job_of(steps) -> tuple[JobRecord, tuple]:
	found = handlers.handler("Bench Restart", "POST", "benches/{bench}/restart", steps)
	return job_record(found, SERVER, {}, "b1"), found.steps


def says(text):
	def step(ctx):
		ctx.log(text)
		ctx.data.setdefault("ran", []).append(text)

	return step


def fails(error):
	def step(ctx):
		ctx.log(f"uses {ctx.secret('admin_password')}")
		raise error

	return step


def test_steps_run_in_order_and_the_first_failure_stops_the_run_with_its_error():
	job, steps = job_of([("One", says("one")), ("Two", fails(EngineError("broken"))), ("Three", says("3"))])
	result = runner.run_steps(job, steps, context(job))
	assert result.status == jobs.FAILURE
	assert [(s.name, s.status) for s in result.steps] == [("One", jobs.SUCCESS), ("Two", jobs.FAILURE)]
	assert result.failure.output == "uses ********\nbroken"  # the secret the step read is masked
	assert job.data == {"ran": ["one"]}
	with pytest.raises(EngineError, match="broken"):
		result.check()


def test_done_steps_are_skipped_and_a_waiting_step_stops_the_run():
	job, steps = job_of(
		[("One", says("one")), ("Two", fails(StepWaiting("not yet", 5))), ("Three", says("3"))]
	)
	result = runner.run_steps(job, steps, context(job), done={0})
	assert result.status == runner.WAITING and result.failure is None
	assert [(s.idx, s.status, s.retry_after) for s in result.steps] == [(1, runner.WAITING, 5)]
	assert "ran" not in job.data


def test_end_job_fails_its_step_and_runs_only_the_steps_it_names():
	end = EndJob("stage failed", run_after=["Cleanup"])
	job, steps = job_of([("Build", fails(end)), ("Push", says("push")), ("Cleanup", says("clean"))])
	echoed: list[str] = []
	result = runner.run_steps(job, steps, context(job), runner.Journal(echoed.append))
	assert result.status == jobs.SUCCESS
	assert [(s.name, s.status) for s in result.steps] == [("Build", jobs.FAILURE), ("Cleanup", jobs.SUCCESS)]
	assert echoed == ["uses ********", "clean"]


def bench_job(endpoints, store_config, step) -> tuple[Executor, JobStore, int, ContainerServer]:
	server = support.app_server(endpoints, "k" + uuid.uuid4().hex[:6])
	topology = PressRecords([server])
	found = handlers.handler("Bench Restart", "POST", "benches/{bench}/restart", [("Bench Restart", step)])
	store = JobStore(store_config)
	router = Router([found], store, lambda job_id: None, topology, DockerHosts())
	job_id = router.handle(server.name, "POST", "benches/b1/restart", {}, "AJ-lock").json["job"]
	executor = Executor(
		JobStore(store_config),
		handlers.index([found]),
		topology,
		Secrets(),
		DockerHosts(),
		ExecutorSettings(flush_interval=0.05),
	)
	return executor, store, job_id, server


def test_a_job_of_a_bench_the_drill_holds_waits_for_it(endpoints, store_config):
	executor, store, job_id, server = bench_job(endpoints, store_config, says("restarted"))
	locks = BenchLocks(JobStore(store_config), wait=0)
	with locks.hold(server.name, "b1", "The restore drill of a.example.test"):
		assert executor.run(job_id) is None  # the bench is busy: the job stays for the sweep
		assert store.get(job_id).status == jobs.PENDING
	assert executor.run(job_id) == jobs.SUCCESS


def test_the_drill_gives_up_on_a_bench_a_job_keeps_naming_the_job(endpoints, store_config):
	entered, release = threading.Event(), threading.Event()

	def holds(ctx):
		entered.set()
		release.wait(60)

	executor, store, job_id, server = bench_job(endpoints, store_config, holds)
	worker = threading.Thread(target=executor.run, args=(job_id,))
	worker.start()
	try:
		assert entered.wait(60)
		locks = BenchLocks(JobStore(store_config), wait=1)
		drill = locks.hold(server.name, "b1", "The restore drill of a.example.test")
		with pytest.raises(BenchBusy) as busy, drill:
			pytest.fail("the bench of a running job was taken")
		assert str(busy.value).startswith(
			f"The restore drill of a.example.test did not run: bench b1 of server {server.name} stayed busy "
			f"for 1 s, held by job {job_id} (Bench Restart, Agent Job AJ-lock)."
		)
	finally:
		release.set()
		worker.join(60)
	assert store.get(job_id).status == jobs.SUCCESS
	with BenchLocks(JobStore(store_config), wait=0).hold(server.name, "b1", "drill"):
		pass  # the job's end freed the bench
