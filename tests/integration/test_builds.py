"""Run Remote Builder as Press 010bc70 asks for it (``builder/build`` with its Dockerfile and clone
instructions), through the real Router, JobStore (MariaDB) and Executor, against real git repositories
(bare repositories made here, one served over HTTP with a token), the real dockerd's BuildKit (through
Debian's docker CLI) and the real TLS + basic-auth registry. Outcomes are checked from outside: the
registry's tags and digests, the image's content, and the job as Press polls it, read the way Press's
build parsers read it (deploy_candidate_build.py, docker_output_parsers.py).
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from dataclasses import dataclass

import agent_support as support
import crash_support as crash
import pytest
from build_support import (
	AppRepo,
	app_files,
	build_payload,
	frappe_files,
	make_app,
	press_dockerfile,
	serve_private,
)
from fakes import PressRecords, Secrets

from press_selfhosted.engine import masking, naming
from press_selfhosted.engine.agent.executor import Executor, ExecutorSettings, sweep
from press_selfhosted.engine.agent.router import Router
from press_selfhosted.engine.agent.store import JobStore, StoreConfig
from press_selfhosted.engine.clients.docker_hosts import DockerHost, DockerHosts
from press_selfhosted.engine.clients.registry import RegistryTarget
from press_selfhosted.engine.errors import BuildRequestError, BuildStageFailed
from press_selfhosted.engine.jobs import builds, handlers
from press_selfhosted.engine.policies.registry_cleanup import list_tags, manifest_digest

STEPS = ["Clone Repositories", "Run Validations", "Build Image", "Push Docker Image", "Cleanup Context"]
TOKEN = f"ghs_{uuid.uuid4().hex}"


@dataclass
class Builder:
	server: handlers.ContainerServer
	router: Router
	settings: builds.BuilderSettings
	secrets: Secrets
	store: JobStore
	store_config: StoreConfig
	registry: dict
	bench_image: str

	def executor(self) -> Executor:
		return Executor(
			JobStore(self.store_config),
			handlers.index(builds.BuilderJobs(self.settings).handlers()),
			PressRecords([self.server]),
			self.secrets,
			DockerHosts(),
			ExecutorSettings(flush_interval=0.2),
		)

	def post(self, payload: dict, run: bool = True) -> int:
		agent_job = f"AJ-{uuid.uuid4().hex[:8]}"
		self.secrets.requests[agent_job] = json.loads(json.dumps(payload))
		response = self.router.handle(self.server.name, "POST", "builder/build", payload, agent_job)
		assert response.status_code == 200, response.json
		job_id = response.json["job"]
		if run:
			self.executor().run(job_id)
		return job_id

	def poll(self, job_id: int) -> dict:
		return self.router.handle(self.server.name, "GET", f"jobs/{job_id}").json

	def repository(self, group: str, domain: str = "example.com") -> str:
		return f"{self.registry['url']}/press/{domain}/{group}"


@pytest.fixture(scope="module")
def builder(endpoints, store_config, tmp_path_factory):
	tls = endpoints["registry_tls"]
	prefix = "b" + uuid.uuid4().hex[:6]
	server = support.app_server(endpoints, prefix)
	settings = builds.BuilderSettings(
		workdir=tmp_path_factory.mktemp("builder"),
		registry_target=lambda url: RegistryTarget(url=url, namespace="press", ca_bundle=tls["ca_file"]),
		push_retry_wait=0.5,
	)
	secrets = Secrets({"registry_password": tls["password"]})
	store = JobStore(store_config)
	router = Router(
		builds.BuilderJobs(settings).handlers(),
		store,
		lambda job_id: None,
		PressRecords([server]),
		DockerHosts(),
	)
	return Builder(server, router, settings, secrets, store, store_config, tls, endpoints["images"]["bench"])


@pytest.fixture(scope="module")
def apps(tmp_path_factory) -> dict[str, AppRepo]:
	root = tmp_path_factory.mktemp("repos")
	return {
		"frappe": make_app(root, "frappe", frappe_files()),
		"shop": make_app(root, "shop", app_files("shop", apt=("jq",))),
		"crm": make_app(root, "crm", app_files("crm")),
	}


def registry_target(builder: Builder) -> RegistryTarget:
	tls = builder.registry
	return RegistryTarget(tls["url"], "press", tls["username"], tls["password"], ca_bundle=tls["ca_file"])


def press_build_steps(job: dict) -> dict[tuple[str, str], dict]:
	"""Press's DockerBuildOutputParser over the job's ``output.build``: the marked RUN steps by
	(stage, step) with Running/Success/Failure, as Deploy Candidate Build steps show them."""
	output = json.loads(job["data"]["output"])
	steps: dict[int, dict] = {}
	for raw in output["build"]:
		line = raw.strip()
		match = re.match(r"^#(\d+) (.*)$", line)
		if not match:
			continue
		index, text = int(match[1]), match[2]
		if index in steps:
			step = steps[index]
			if text.startswith("DONE"):
				step["status"] = "Success"
			elif text == "CACHED":
				step.update(status="Success", cached=True)
			elif text.startswith("ERROR"):
				step["status"] = "Failure"
				step["output"] += text[7:] + "\n"
			elif not text.startswith("sha256:"):
				step["output"] += text.partition(" ")[2] + "\n"
		elif text.startswith("[stage-"):
			name = text.split("]", 1)[1].strip()
			marker = re.search("`#stage-(.*)`", name)
			if name.startswith("RUN") and marker:
				stage, step_slug = marker[1].split("-", 1)
				steps[index] = {"key": (stage, step_slug), "status": "Running", "output": "", "cached": False}
	return {step["key"]: step for step in steps.values()}


def test_press_payload_is_read_and_refused_with_named_fields(apps, builder):
	payload = build_payload("dcb-a", "bench-a", list(apps.values()), "FROM x\n", builder.registry, "r/x")
	request = builds.BuildRequest.from_payload(payload)
	assert [c.app for c in request.clones] == ["frappe", "shop", "crm"]
	assert request.platform == "linux/amd64" and request.dockerfile == "FROM x\n"
	assert builds.BuildRequest.from_payload({**payload, "platform": "arm64"}).platform == "linux/arm64"
	bad = {**payload, "clone_instructions": [{**payload["clone_instructions"][0], "hash": "abc"}]}
	with pytest.raises(BuildRequestError, match=r"clone_instructions\[0\].hash 'abc' of app frappe"):
		builds.BuildRequest.from_payload(bad)
	with pytest.raises(BuildRequestError, match="uploaded build context"):
		builds.BuildRequest.from_payload({"filename": "dcb-a-1234.tar.gz"})


def test_image_name_with_an_empty_part_names_the_press_setting(apps, builder):
	"""Press Settings' domain left empty makes ``<registry>/press/None/<group>``: refused before building."""
	group = "bench-none"
	payload = build_payload(
		"dcb-none",
		group,
		[apps["frappe"]],
		press_dockerfile(builder.bench_image, ["frappe"]),
		builder.registry,
		f"{builder.registry['url']}/press/None/{group}",
	)
	job = builder.poll(builder.post(payload))
	assert job["status"] == "Failure"
	assert "Fix: fill Press Settings' domain" in job["data"]["traceback"]
	validation = next(s for s in job["steps"] if s["name"] == "Run Validations")
	# Press raises Exception(*values) of this report: the message is what its notification shows
	assert validation["status"] == "Failure" and "domain" in validation["data"]["message"]
	assert json.loads(job["data"]["output"]) == {"build": [], "push": []}


def test_build_push_with_buildkit_from_cloned_apps(apps, builder, docker_client):
	"""The whole request: apps cloned at their commits, apt package declared by an app injected,
	BuildKit cache mounts and the build token secret, pushed and served by the registry; the
	stage markers become Press's build steps; a second build of the same apps comes from cache."""
	group = f"bench-{uuid.uuid4().hex[:6]}"
	repository = builder.repository(group)
	names = ["frappe", "shop"]
	dockerfile = press_dockerfile(builder.bench_image, names, fresh=group)
	first = build_payload(
		"dcb-first", group, [apps[a] for a in names], dockerfile, builder.registry, repository
	)
	try:
		job = builder.poll(builder.post(first))
		assert job["status"] == "Success", json.dumps(job, indent=1)[-3000:]
		assert [s["name"] for s in job["steps"]] == STEPS, json.dumps(job, indent=1)[-3000:]
		assert {s["status"] for s in job["steps"]} == {"Success"}
		clone, validation = job["steps"][0]["data"], job["steps"][1]["data"]
		# CloneOutputParser: one entry per app, "git clone <app>" first
		assert [entry.splitlines()[0] for entry in clone] == ["git clone frappe", "git clone shop"]
		assert validation == {}, "Press reads any Run Validations data as a failure report"
		steps = press_build_steps(job)
		for key in [
			("pre", "essentials"),
			("pre", "python"),
			("bench", "bench"),
			("apps", "frappe"),
			("apps", "shop"),
			("pre", "jq"),
		]:
			assert steps[key]["status"] == "Success", (key, steps)
		assert "token mounted" in steps[("bench", "bench")]["output"]
		data = job["data"]
		assert data["build_failed"] is False and data["image"] == f"{repository}:dcb-first"
		assert any(
			line.startswith("#") and "writing image sha256:" in line
			for line in json.loads(data["output"])["build"]
		)
		path = repository.split("/", 1)[1]
		assert list_tags(registry_target(builder), path) == ["dcb-first"]
		assert manifest_digest(registry_target(builder), path, "dcb-first") == data["image_digest"]
		image = docker_client.images.get(data["image"])
		assert image.id == data["image_id"] and image.attrs["Architecture"] == "amd64"
		assert image.labels[naming.MANAGED] == "1" and image.labels[naming.SERVER] == builder.server.name
		out = docker_client.containers.run(
			data["image"],
			[
				"sh",
				"-c",
				(
					"cat sites/apps.txt; cat apps/shop/.git/refs/heads/develop; which jq; "
					"cat /opt/cache-mount-runs; cat /etc/supervisor/supervisord.conf | grep include -A1"
				),
			],
			remove=True,
		).decode()
		assert out.splitlines()[:3] == ["frappe", "shop", apps["shop"].commits[-1]]
		assert "/usr/bin/jq" in out and "frappe-bench/config/supervisor.conf" in out
		first_runs = int(out.splitlines()[4])
		assert not (builder.settings.build_dir(builds.BuildRequest.from_payload(first))).exists()
		assert TOKEN not in json.dumps(job)

		# the same apps again, every layer new: the essentials stage runs again and its cache mount still
		# holds what the first run wrote
		fresh = press_dockerfile(builder.bench_image, names, fresh=group + "-again")
		second = build_payload(
			"dcb-second", group, [apps[a] for a in names], fresh, builder.registry, repository
		)
		job = builder.poll(builder.post(second))
		assert job["status"] == "Success"
		assert all(entry.endswith("CACHED\n") for entry in job["steps"][0]["data"]), "clone cache"
		runs = docker_client.containers.run(
			job["data"]["image"], ["cat", "/opt/cache-mount-runs"], remove=True
		)
		assert int(runs.decode()) == first_runs + 1, "RUN --mount=type=cache kept its content"
		# and without no_cache, every marked step comes from the layer cache
		third = {**first, "deploy_candidate_build": "dcb-third", "image_tag": "dcb-third"}
		job = builder.poll(builder.post(third))
		assert job["status"] == "Success"
		assert all(s["cached"] for s in press_build_steps(job).values())
	finally:
		for image in docker_client.images.list(name=repository):
			for tag in image.tags:
				docker_client.images.remove(tag, force=True)


def test_stages_show_while_the_build_runs(apps, builder):
	"""What Press reads during the build (the running Build Image step's first command, as the Agent lists
	it): the stages done and the one running, also when that stage then runs silently."""
	group = f"bench-{uuid.uuid4().hex[:6]}"
	names = ["frappe"]
	dockerfile = press_dockerfile(builder.bench_image, names, fresh=group, sleep_at="apps-frappe", seconds=8)
	payload = build_payload(
		"dcb-live", group, [apps[a] for a in names], dockerfile, builder.registry, builder.repository(group)
	)
	job_id = builder.post(payload, run=False)
	worker = threading.Thread(target=builder.executor().run, args=(job_id,))
	worker.start()
	seen: dict = {}
	deadline = time.monotonic() + 120
	while worker.is_alive() and time.monotonic() < deadline:
		job = builder.poll(job_id)
		running = [s for s in job["steps"] if s["name"] == "Build Image" and s["status"] == "Running"]
		if running and running[0]["commands"]:
			seen = press_build_steps({"data": {"output": running[0]["commands"][0]["output"]}})
			if seen.get(("apps", "frappe"), {}).get("status") == "Running":
				break
		time.sleep(0.2)
	worker.join()
	assert seen[("pre", "essentials")]["status"] == "Success", seen
	assert seen[("apps", "frappe")]["status"] == "Running", seen
	assert builder.poll(job_id)["status"] == "Success"


def test_failing_stage_is_named_and_nothing_is_pushed(apps, builder, docker_client):
	"""As the Agent does: the job completes with ``build_failed``, the Build Image step is Failure, Push
	is never run (Press marks it Skipped), the context is cleaned; Press's parser finds the failed step."""
	group = f"bench-{uuid.uuid4().hex[:6]}"
	repository = builder.repository(group)
	names = ["frappe", "crm"]
	dockerfile = press_dockerfile(builder.bench_image, names, fail_at="apps-crm")
	payload = build_payload(
		"dcb-broken", group, [apps[a] for a in names], dockerfile, builder.registry, repository
	)
	job = builder.poll(builder.post(payload))
	assert job["status"] == "Success"
	statuses = {s["name"]: s["status"] for s in job["steps"]}
	assert statuses == {
		"Clone Repositories": "Success",
		"Run Validations": "Success",
		"Build Image": "Failure",
		"Cleanup Context": "Success",
	}, "Push Docker Image is not reported: Press marks it Skipped"
	data = job["data"]
	assert data["build_failed"] is True and data["failed_stage"] == {"stage": "apps", "step": "crm"}
	build_step = next(s for s in job["steps"] if s["name"] == "Build Image")
	message = build_step["data"]["output"]
	assert "Build stage `apps-crm`" in message and "exit code 3" in message
	assert "this stage was made to fail" in message
	steps = press_build_steps(job)
	assert steps[("apps", "crm")]["status"] == "Failure"
	assert steps[("apps", "frappe")]["status"] == "Success"
	assert list_tags(registry_target(builder), repository.split("/", 1)[1]) == []
	assert not builder.settings.build_dir(builds.BuildRequest.from_payload(payload)).exists()


def test_failing_clone_names_the_app_for_press(apps, builder):
	"""A commit the repository does not hold: the job fails with a traceback whose first line is
	``Failed to clone repository for <app> - …`` (CloneOutputParser marks that app's clone step)."""
	group = f"bench-{uuid.uuid4().hex[:6]}"
	payload = build_payload(
		"dcb-noclone",
		group,
		[apps["frappe"], apps["crm"]],
		press_dockerfile(builder.bench_image, ["frappe", "crm"]),
		builder.registry,
		builder.repository(group),
		hashes={"crm": "0" * 40},
	)
	job = builder.poll(builder.post(payload))
	assert job["status"] == "Failure"
	assert (
		job["data"]["traceback"].splitlines()[0].startswith("Failed to clone repository for crm - git fetch")
	)
	assert json.loads(job["data"]["output"]) == {"build": [], "push": []}, "Press json.loads it"
	clone = job["steps"][0]
	assert clone["status"] == "Failure" and clone["data"]["traceback"].startswith(
		"Failed to clone repository for crm"
	)
	assert [s["name"] for s in job["steps"]] == ["Clone Repositories"]
	assert not list((builder.settings.clones / ".partial").iterdir()), "no half clone left"


def test_private_source_token_is_read_at_run_time_and_never_stored(apps, builder, tmp_path):
	"""Press's URL for a private source carries a token; the job store masks it, the clone reads it back
	from Press's request when it runs, and a wrong token fails the clone without showing it."""
	root = tmp_path / "github"
	private = make_app(root, "vault", app_files("vault"))
	server, port = serve_private(root, TOKEN)
	try:
		url = f"http://x-access-token:{TOKEN}@127.0.0.1:{port}/vault.git"
		group = f"bench-{uuid.uuid4().hex[:6]}"
		payload = build_payload(
			"dcb-private",
			group,
			[apps["frappe"], private],
			press_dockerfile(builder.bench_image, ["frappe", "vault"]),
			builder.registry,
			builder.repository(group),
			urls={"vault": url},
			no_push=True,
		)
		job_id = builder.post(payload, run=False)
		stored = builder.store.get(job_id).payload
		assert TOKEN not in json.dumps(stored) and masking.MASK in stored["clone_instructions"][1]["url"]
		builder.executor().run(job_id)
		job = builder.poll(job_id)
		assert job["status"] == "Success", json.dumps(job, indent=1)[-2000:]
		assert "clone_instructions.1.url" in builder.secrets.asked
		assert TOKEN not in json.dumps(job) and TOKEN not in json.dumps(builder.store.get(job_id).data)
		assert not list(builder.settings.clones.rglob("config")) or all(
			TOKEN not in p.read_text() for p in builder.settings.clones.rglob("config") if p.is_file()
		)

		wrong = build_payload(
			"dcb-private2",
			group,
			[private],
			"FROM x\n",
			builder.registry,
			builder.repository(group),
			urls={"vault": url.replace(TOKEN, "ghs_wrong")},
			hashes={"vault": private.commits[-1]},
		)
		wrong["clone_instructions"][0]["source"] = "SRC-other"  # not in the clone cache
		job = builder.poll(builder.post(wrong))
		assert job["status"] == "Failure"
		assert job["data"]["traceback"].startswith("Failed to clone repository for vault - ")
		assert "ghs_wrong" not in json.dumps(job)
	finally:
		server.shutdown()


def test_push_refused_by_the_registry_fails_the_job(apps, builder, docker_client):
	"""The Local Registry's password changed between Run Validations and the push: the registry refuses
	it, the job fails at once (a refusal is not retried) naming the registry and the fix."""
	group = f"bench-{uuid.uuid4().hex[:6]}"
	repository = builder.repository(group)
	payload = build_payload(
		"dcb-denied",
		group,
		[apps["frappe"]],
		press_dockerfile(builder.bench_image, ["frappe"]),
		builder.registry,
		repository,
	)
	builder.secrets.rotate_after["registry_password"] = 1  # Run Validations reads it once
	try:
		job = builder.poll(builder.post(payload))
	finally:
		builder.secrets.rotate_after.clear()
	try:
		assert job["status"] == "Failure"
		statuses = {s["name"]: s["status"] for s in job["steps"]}
		assert statuses["Build Image"] == "Success" and statuses["Push Docker Image"] == "Failure"
		traceback = job["data"]["traceback"]
		assert (
			"rejected the user name or password for 'press'" in traceback
			and "Fix: check Username" in traceback
		)
		assert "retrying" not in traceback, "a refusal is not retried"
		assert json.loads(job["data"]["output"])["build"], "Press still parses the build output"
		assert list_tags(registry_target(builder), repository.split("/", 1)[1]) == []
	finally:
		for image in docker_client.images.list(name=repository):
			for tag in image.tags:
				docker_client.images.remove(tag, force=True)


def test_validation_report_has_the_agents_shape(apps, builder, tmp_path):
	old = make_app(tmp_path, "legacy", app_files("legacy", requires_python=">=3.12"))
	group = f"bench-{uuid.uuid4().hex[:6]}"
	payload = build_payload(
		"dcb-py",
		group,
		[apps["frappe"], old],
		"FROM x\n",
		builder.registry,
		builder.repository(group),
	)
	job = builder.poll(builder.post(payload))
	assert job["status"] == "Failure"
	report = next(s for s in job["steps"] if s["name"] == "Run Validations")["data"]
	assert report["message"] == "Incompatible Python version found"
	assert (report["app"], report["actual"], report["expected"]) == ("legacy", "3.11", ">=3.12")


def test_platform_of_the_request_is_honoured(apps, builder, docker_client):
	group = f"bench-{uuid.uuid4().hex[:6]}"
	repository = builder.repository(group)
	payload = build_payload(
		"dcb-arm",
		group,
		[apps["frappe"]],
		"FROM scratch\nCOPY apps.txt /apps.txt\n",
		builder.registry,
		repository,
		platform="arm64",
		no_push=True,
	)
	job = builder.poll(builder.post(payload))
	try:
		assert job["status"] == "Success", json.dumps(job, indent=1)[-2000:]
		assert docker_client.images.get(job["data"]["image"]).attrs["Architecture"] == "arm64"
	finally:
		docker_client.images.remove(job["data"]["image"], force=True)


def worker_executor() -> Executor:
	"""Factory of the crash test's worker subprocess."""
	import os

	world = json.loads(os.environ["PSA_BUILD_WORLD"])
	server = handlers.ContainerServer(
		**{**world["server"], "docker": DockerHost(**world["server"]["docker"])}
	)
	tls = world["registry"]
	settings = builds.BuilderSettings(
		workdir=world["workdir"],
		registry_target=lambda url: RegistryTarget(url=url, namespace="press", ca_bundle=tls["ca_file"]),
	)
	return Executor(
		JobStore(StoreConfig(**world["store"])),
		handlers.index(builds.BuilderJobs(settings).handlers()),
		PressRecords([server]),
		Secrets({"registry_password": tls["password"]}, world["requests"]),
		DockerHosts(),
		# a short lease: the killed worker's job may be resumed seconds later (crash.kill_at_step)
		ExecutorSettings(flush_interval=0.2, lease=crash.CRASH_SETTINGS.lease, renew_interval=0.5),
	)


def test_rerun_after_a_crash_mid_build_converges(apps, builder, docker_client):
	"""The worker is killed while BuildKit runs a stage (its docker CLI dies with it); the sweep's rerun
	builds again from the laid-out context and pushes; the end is one tag, a clean build directory."""
	group = f"bench-{uuid.uuid4().hex[:6]}"
	repository = builder.repository(group)
	dockerfile = press_dockerfile(builder.bench_image, ["frappe", "crm"], sleep_at="apps-crm", seconds=4)
	dockerfile = dockerfile.replace("echo installed crm", f"echo installed crm {group}")  # never cached
	payload = build_payload(
		"dcb-crash", group, [apps["frappe"], apps["crm"]], dockerfile, builder.registry, repository
	)
	job_id = builder.post(payload, run=False)
	world = json.dumps(
		{
			"server": {**vars(builder.server), "docker": vars(builder.server.docker)},
			"registry": builder.registry,
			"workdir": str(builder.settings.root),
			"store": vars(builder.store_config),
			"requests": builder.secrets.requests,
		}
	)
	worker = crash.spawn_worker("test_builds:worker_executor", job_id, PSA_BUILD_WORLD=world)
	try:
		deadline = time.monotonic() + 120
		while "apps-crm" not in json.dumps(builder.poll(job_id)["data"].get("output", "")):
			assert worker.poll() is None and time.monotonic() < deadline, builder.poll(job_id)
			time.sleep(0.1)
		crash.kill_at_step(builder.store, job_id, 2, worker)
		assert builder.poll(job_id)["status"] == "Running"
		assert sweep(builder.store, lambda found: builder.executor().run(found), min_age=0) == [job_id]
		job = builder.poll(job_id)
		assert job["status"] == "Success", json.dumps(job, indent=1)[-3000:]
		assert {s["status"] for s in job["steps"]} == {"Success"}
		path = repository.split("/", 1)[1]
		assert list_tags(registry_target(builder), path) == ["dcb-crash"]
		assert manifest_digest(registry_target(builder), path, "dcb-crash") == job["data"]["image_digest"]
		assert not builder.settings.build_dir(builds.BuildRequest.from_payload(payload)).exists()
	finally:
		if worker.poll() is None:
			worker.kill()
		for image in docker_client.images.list(name=repository):
			for tag in image.tags:
				docker_client.images.remove(tag, force=True)


def test_dockerfile_gets_apt_packages_and_loses_the_hub_syntax_line():
	dockerfile = (
		"# syntax = docker/dockerfile:experimental\nFROM ubuntu:22.04\n"
		f"RUN echo a `#stage-pre-essentials`\n{builds.APT_ANCHOR}\nUSER frappe\n"
	)
	prepared = builds.prepare_dockerfile(dockerfile, ["libmagic1", "jq"], keep_syntax_directive=False)
	assert (
		"docker/dockerfile:experimental" not in prepared and prepared.splitlines()[1] == "FROM ubuntu:22.04"
	)
	assert (
		prepared.index("`#stage-pre-libmagic1`")
		< prepared.index("`#stage-pre-jq`")
		< prepared.index(builds.APT_ANCHOR)
	)
	kept = builds.prepare_dockerfile(dockerfile, [], keep_syntax_directive=True)
	assert kept == dockerfile


def test_buildkit_log_names_the_failed_stage():
	log = builds.BuildKitLog()
	for line in [
		"#5 [stage-0 2/3] RUN --mount=type=cache,target=/x echo a `#stage-pre-essentials`\n",
		"#5 sha256:277d\n",
		"#5 0.222 a\n",
		"#5 DONE 0.7s\n",
		"\n",
		"#6 [stage-0 3/3] RUN exit 3 `#stage-apps-shop`\n",
		"#6 0.31 pip failed\n",
		"#6 ERROR: executor failed running [/bin/sh -c exit 3]: exit code: 3\n",
		"------\n",
		"error: failed to solve: exit code: 3\n",
	]:
		log.feed(line)
	failure = builds.failure_of("build1", log, 1)
	assert isinstance(failure, BuildStageFailed)
	assert "`apps-shop` (Dockerfile step 3/3)" in str(failure) and "exit code 3" in str(failure)
	assert "pip failed" in str(failure)
	assert [s["status"] for s in log.stages()] == ["Done", "Error"]


def test_cli_reaches_the_server_as_docker_py_does():
	assert builds.cli_host_args(DockerHost("s", "unix:///run/docker.sock")) == [
		"--host",
		"unix:///run/docker.sock",
	]
	tls = DockerHost("s", "tcp://h:2376", tls_ca_file="/ca", tls_cert_file="/c", tls_key_file="/k")
	assert builds.cli_host_args(tls) == [
		"--host",
		"tcp://h:2376",
		"--tlsverify",
		"--tlscacert",
		"/ca",
		"--tlscert",
		"/c",
		"--tlskey",
		"/k",
	]
