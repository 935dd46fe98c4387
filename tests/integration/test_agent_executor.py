"""Executor behaviour Press depends on, with handlers made for the test (the store is the real MariaDB):
a running step's output is visible to polls before the step ends, a handler's own ``output``
survives a failure (Press parses Run Remote Builder's as JSON), and a job that waited for its bench
runs as soon as the job before it ends."""

from __future__ import annotations

import json
import threading
import time
import uuid

import agent_support as support
import pytest
from fakes import PressRecords

from press_selfhosted.engine.agent.executor import Executor, ExecutorSettings
from press_selfhosted.engine.agent.router import Router
from press_selfhosted.engine.agent.store import JobStore
from press_selfhosted.engine.clients.docker_hosts import DockerHosts
from press_selfhosted.engine.errors import ContainerNotRunning, EngineError
from press_selfhosted.engine.jobs import handlers


def run_handler(endpoints, store_config, handler, started=None):
	server = support.app_server(endpoints, "x" + uuid.uuid4().hex[:6])
	topology = PressRecords([server])
	store = JobStore(store_config)
	router = Router([handler], store, lambda job_id: None, topology, DockerHosts())
	job_id = router.handle(server.name, "POST", "benches/b1/restart", {}).json["job"]
	executor = support.executor_for(store_config, [handler], topology, ExecutorSettings(flush_interval=0.05))
	worker = threading.Thread(target=executor.run, args=(job_id,))
	worker.start()
	return router, server, job_id, worker


def poll_until(router, server, job_id, condition, timeout: float = 10) -> dict:
	"""Polls the job as Press does until ``condition(first step's output, job data)``; the last poll."""
	deadline = time.monotonic() + timeout
	polled: dict = {}
	while time.monotonic() < deadline:
		polled = router.handle(server.name, "GET", f"jobs/{job_id}").json
		output = polled["steps"][0]["data"].get("output", "") if polled["steps"] else ""
		if condition(output, polled["data"]):
			break
		time.sleep(0.05)
	return polled


def test_running_step_output_and_data_are_visible_while_it_runs(endpoints, store_config):
	release = threading.Event()

	def long_step(ctx):
		ctx.log("stage 1 of 2 done")
		ctx.data["stages"] = ["one"]
		time.sleep(0.1)
		ctx.log("still working")
		release.wait(10)

	handler = handlers.handler(
		"Bench Restart", "POST", "benches/{bench}/restart", [("Bench Restart", long_step)]
	)
	router, server, job_id, worker = run_handler(endpoints, store_config, handler)
	# the output and the data of a running step reach the store together, at its next output line
	polled = poll_until(
		router, server, job_id, lambda output, data: "stage 1 of 2 done" in output and "stages" in data
	)
	release.set()
	worker.join()
	assert polled["status"] == "Running" and polled["steps"][0]["status"] == "Running"
	assert "stage 1 of 2 done" in polled["steps"][0]["data"]["output"]
	assert polled["data"]["stages"] == ["one"]
	assert router.handle(server.name, "GET", f"jobs/{job_id}").json["status"] == "Success"


def test_the_last_lines_of_a_step_that_goes_quiet_reach_the_store(endpoints, store_config):
	"""A stage that starts right after another ended, then runs silently (a long ``RUN``): its start is
	visible while it runs, not only at the next line minutes later."""
	release = threading.Event()

	def quiet_step(ctx):
		ctx.log("stage 1 done")
		ctx.log("stage 2 started")  # within the write interval of the line before
		ctx.data["stage"] = 2
		release.wait(10)

	handler = handlers.handler(
		"Bench Restart", "POST", "benches/{bench}/restart", [("Bench Restart", quiet_step)]
	)
	router, server, job_id, worker = run_handler(endpoints, store_config, handler)
	polled = poll_until(
		router, server, job_id, lambda output, data: "stage 2 started" in output and data.get("stage") == 2
	)
	release.set()
	worker.join()
	assert polled["steps"][0]["status"] == "Running"
	assert polled["steps"][0]["data"]["output"] == "stage 1 done\nstage 2 started"
	assert polled["data"]["stage"] == 2
	done = router.handle(server.name, "GET", f"jobs/{job_id}").json
	assert (
		done["status"] == "Success" and done["steps"][0]["data"]["output"] == "stage 1 done\nstage 2 started"
	)


def test_a_handler_that_owns_output_keeps_it_when_the_job_fails(endpoints, store_config):
	def failing_build(ctx):
		ctx.data["output"] = json.dumps({"build": ["step 1"], "push": []})
		raise EngineError("stage apps-frappe failed: exit code 1")

	handler = handlers.handler(
		"Bench Restart", "POST", "benches/{bench}/restart", [("Bench Restart", failing_build)]
	)
	router, server, job_id, worker = run_handler(endpoints, store_config, handler)
	worker.join()
	job = router.handle(server.name, "GET", f"jobs/{job_id}").json
	assert job["status"] == "Failure"
	assert json.loads(job["data"]["output"]) == {"build": ["step 1"], "push": []}
	assert "stage apps-frappe failed" in job["data"]["traceback"]
	assert "stage apps-frappe failed" in job["steps"][0]["data"]["output"]


def test_a_job_that_waited_for_its_bench_runs_when_the_one_before_it_ends(endpoints, store_config):
	"""The ending job hands the jobs after it to workers once its bench and site locks are free: a worker
	that takes one at once (here, within the hand-over itself) runs it, where it would find the bench
	still locked and drop it until the sweep."""
	handler = handlers.handler(
		"Bench Restart", "POST", "benches/{bench}/restart", [("Bench Restart", lambda ctx: None)]
	)
	server = support.app_server(endpoints, "x" + uuid.uuid4().hex[:6])
	topology = PressRecords([server])
	router = Router([handler], JobStore(store_config), lambda job_id: None, topology, DockerHosts())
	first, second = (
		router.handle(server.name, "POST", "benches/b1/restart", {}).json["job"] for _ in range(2)
	)

	def executor(enqueue=None) -> Executor:
		return support.executor_for(store_config, [handler], topology, enqueue=enqueue)

	other_worker = executor()
	ran = {}
	assert executor(lambda job_id: ran.setdefault(job_id, other_worker.run(job_id))).run(first) == "Success"
	assert ran == {second: "Success"}


def test_a_job_given_up_while_the_one_before_it_hands_it_over_still_runs(endpoints, store_config):
	"""A worker gives the second job up (its bench is busy) while the first ends and hands the second to
	another worker, which finds the job's lock held by the first worker and gives up too: the first
	worker, once it has released the job's lock, sees the bench free and runs the job."""
	go = threading.Event()

	def held_until_go(ctx):
		assert go.wait(60), "the test never let the first job end"

	handler = handlers.handler(
		"Bench Restart", "POST", "benches/{bench}/restart", [("Bench Restart", held_until_go)]
	)
	server = support.app_server(endpoints, "x" + uuid.uuid4().hex[:6])
	topology = PressRecords([server])
	router = Router([handler], JobStore(store_config), lambda job_id: None, topology, DockerHosts())
	first, second = (
		router.handle(server.name, "POST", "benches/b1/restart", {}).json["job"] for _ in range(2)
	)
	handed_over = {}

	def executor(kind=Executor, enqueue=None) -> Executor:
		return support.executor_for(store_config, [handler], topology, kind=kind, enqueue=enqueue)

	other_worker = executor()
	ending = threading.Thread(
		target=executor(enqueue=lambda job_id: handed_over.setdefault(job_id, other_worker.run(job_id))).run,
		args=(first,),
	)

	class GivingUp(Executor):
		def _acquire_scope(self, job):
			scope = super()._acquire_scope(job)
			if scope is None and not go.is_set():  # the bench is busy: now the first job ends
				go.set()
				ending.join()
			return scope

	ending.start()
	deadline = time.monotonic() + 60  # the first job runs (it holds its bench) before the second is tried
	while router.handle(server.name, "GET", f"jobs/{first}").json["status"] != "Running":
		assert time.monotonic() < deadline, "the first job never started"
		time.sleep(0.05)
	assert executor(GivingUp).run(second) == "Success"
	assert handed_over == {second: None}  # the hand-over found the job's lock held and gave up


def test_a_command_in_a_stopped_container_names_the_container_and_the_fix(docker_client, endpoints, unique):
	from press_selfhosted.engine.clients import docker_exec

	container = docker_client.containers.run(
		endpoints["images"]["base"],
		["sleep", "60"],
		name=f"t{unique}-stopped",
		detach=True,
		labels={"press.managed": "1", "press.server": f"t{unique}"},
	)
	try:
		container.kill()
		container.reload()
		with pytest.raises(ContainerNotRunning) as failure:
			docker_exec.run(
				container, ["echo", "--password", "pw-1"], docker_exec.Exec(user="root", secrets=["pw-1"])
			)
		message = str(failure.value)
		assert f"container t{unique}-stopped is not running" in message
		assert "Bench Restart" in message and "pw-1" not in message
	finally:
		container.remove(force=True)
