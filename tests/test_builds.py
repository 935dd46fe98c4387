"""Run Remote Builder against the real dockerd and the real TLS + basic-auth local registry.

The steps run in order as the executor runs them (a failing step ends the job); the outcomes are
checked from outside: the registry's tag list and digest, a pull of exactly the reported image.
"""

from __future__ import annotations

import io
import json
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from references import press_fixtures_dir

from press_selfhosted.engine import builds
from press_selfhosted.engine.agent.handlers import ContainerServer, Handler, JobRecord, StepContext
from press_selfhosted.engine.docker_hosts import DockerHost
from press_selfhosted.engine.errors import RegistryAuthError, RegistryUnreachable
from press_selfhosted.engine.registry import RegistryTarget
from press_selfhosted.engine.registry_cleanup import list_tags, manifest_digest

CONTEXT_DIR = Path(__file__).parent / "images" / "build-context"
STEPS = ["Clone Repositories", "Run Validations", "Build Image", "Push Docker Image", "Cleanup Context"]


@dataclass
class Secrets:
	values: dict[str, str] = field(default_factory=dict)

	def secret(self, job, key: str) -> str:
		return self.values.get(key, "")


@dataclass
class Outcome:
	job: JobRecord
	steps: dict[str, str]  # step name -> Success/Failure; absent when it never ran
	log: list[str]
	error: Exception | None

	@property
	def data(self) -> dict:
		return self.job.data

	@property
	def output(self) -> dict:
		return json.loads(self.job.data.get("output") or "{}")


def run_job(handler: Handler, job: JobRecord, client, socket: str, secrets: dict[str, str]) -> Outcome:
	"""What the executor does with a handler, minus the job store."""
	server = ContainerServer(job.server, job.server_type, "build", DockerHost(job.server, socket), "none")
	log: list[str] = []
	ctx = StepContext(job, server, client, None, Secrets(secrets), log.append, lambda other: client)
	steps: dict[str, str] = {}
	for step in handler.steps:
		try:
			step.run(ctx)
		except Exception as error:  # noqa: BLE001 - any failure ends the job, as in the executor
			steps[step.name] = "Failure"
			return Outcome(job, steps, log, error)
		steps[step.name] = "Success"
	return Outcome(job, steps, log, None)


@pytest.fixture(scope="module")
def setup(endpoints, docker_client, tmp_path_factory):
	tls = endpoints["registry_tls"]
	settings = builds.BuilderSettings(
		contexts=builds.ContextStore(tmp_path_factory.mktemp("contexts")),
		registry_target=lambda url: RegistryTarget(url=url, ca_bundle=tls["ca_file"]),
	)
	group = f"bench-{uuid.uuid4().hex[:8]}"
	# a new build-id makes the first build of this module uncached, whatever earlier runs left
	context = builds.context_from_directory(CONTEXT_DIR, {"build-id": group.encode()})
	state = {
		"settings": settings,
		"handler": builds.run_remote_builder(settings),
		"context": context,
		"tls": tls,
		"repository": f"{tls['url']}/press/example.com/{group}",
		"base": endpoints["images"]["base"],
		"socket": endpoints["docker"]["base_url"],
	}
	yield state
	for image in docker_client.images.list(filters={"label": "press.server=build-server"}):
		for tag in image.tags:
			docker_client.images.remove(tag, force=True)


def start_build(setup, docker_client, tag: str, build_args: dict | None = None, **registry) -> Outcome:
	filename = builds.save_upload(setup["settings"], tag, io.BytesIO(setup["context"]))["filename"]
	payload = {
		"filename": filename,
		"image_repository": setup["repository"],
		"image_tag": tag,
		"registry": {"url": setup["tls"]["url"], "username": setup["tls"]["username"], **registry},
		"no_cache": False,
		"no_push": False,
		"deploy_candidate_build": tag,
		"deploy_after_build": 0,
		"build_args": {"BASE": setup["base"], **(build_args or {})},
	}
	job = JobRecord(
		1, "Run Remote Builder", "build-server", "Server", "POST", "builder/build", None, None, payload
	)
	password = registry.pop("password", setup["tls"]["password"])
	return run_job(setup["handler"], job, docker_client, setup["socket"], {"registry_password": password})


@pytest.fixture(scope="module")
def first(setup, docker_client):
	return start_build(setup, docker_client, "dcb-first")


@pytest.fixture(scope="module")
def second(setup, docker_client, first):
	return start_build(setup, docker_client, "dcb-second")


def registry_target(setup, password=None) -> RegistryTarget:
	tls = setup["tls"]
	return RegistryTarget(
		tls["url"], "", tls["username"], password or tls["password"], ca_bundle=tls["ca_file"]
	)


def test_handler_steps_are_press_steps():
	fixture = json.loads((press_fixtures_dir() / "agent_job_type.json").read_text())
	press = next(item for item in fixture if item["name"] == "Run Remote Builder")
	handler = builds.run_remote_builder(builds.BuilderSettings(builds.ContextStore("/nonexistent")))
	assert handler.step_names == [step["step_name"] for step in press["steps"]] == STEPS
	assert (handler.method, handler.path) == ("POST", press["request_path"].lstrip("/"))


def test_build_pushes_to_tls_registry_and_pulls_back(setup, docker_client, first, second):
	# `second` is built before this test drops the local image: the cache is the build server's
	assert first.error is None, first.error
	assert first.steps == dict.fromkeys(STEPS, "Success")
	image = f"{setup['repository']}:dcb-first"
	assert first.data["image"] == image
	assert first.data["image_tag"] == "dcb-first"
	assert first.data["build_failed"] is False

	# the registry agrees with the job data
	path = setup["repository"].split("/", 1)[1]
	assert "dcb-first" in list_tags(registry_target(setup), path)
	assert manifest_digest(registry_target(setup), path, "dcb-first") == first.data["image_digest"]

	# Press's parser input: BuildKit-style lines with every marker, and the final image id
	lines = first.output["build"]
	for marker in ("pre-essentials", "pre-python", "bench-env", "apps-frappe", "mounts-create"):
		assert any(
			line.startswith("#") and "[stage-" in line and f"`#stage-{marker}`" in line for line in lines
		)
	assert "Dockerfile stages: pre-essentials, pre-python, bench-env, apps-frappe, mounts-create" in first.log
	assert f"writing image {first.data['image_id']} done\n" in [line.split(" ", 1)[1] for line in lines]
	assert any(" DONE " in line for line in lines)
	assert [stage["status"] for stage in first.data["stages"]] == ["Success"] * 5
	assert first.output["push"], "push progress is published for Press's upload step"
	assert any("Installing erpnext" in line for line in first.log)

	# the uploaded context is gone after Cleanup Context
	assert not list(setup["settings"].contexts.directory.glob("dcb-first-*"))

	# pull exactly the reported name:tag from the registry, after dropping the local copy
	docker_client.images.remove(image, force=True)
	auth = {"username": setup["tls"]["username"], "password": setup["tls"]["password"]}
	docker_client.api.pull(setup["repository"], tag="dcb-first", auth_config=auth)
	pulled = docker_client.images.get(image)
	assert f"{setup['repository']}@{first.data['image_digest']}" in pulled.attrs["RepoDigests"]
	out = docker_client.containers.run(image, ["cat", "/opt/press/installed"], remove=True)
	assert out.decode().split() == ["erpnext", "frappe"]


def test_second_build_of_same_context_uses_cache(first, second):
	assert second.error is None, second.error
	assert any("---> Using cache" in line for line in second.log)
	assert all(stage["cached"] for stage in second.data["stages"])
	assert not any(stage["cached"] for stage in first.data["stages"])
	cached = {line.split(" ", 1)[0] for line in second.output["build"] if line.endswith(" CACHED\n")}
	assert {f"#{stage['index']}" for stage in second.data["stages"]} <= cached
	assert second.data["image_id"] == first.data["image_id"]
	assert second.data["image_digest"] == first.data["image_digest"]


def test_failing_stage_fails_job_with_stage_and_output_and_pushes_nothing(setup, docker_client, first):
	outcome = start_build(setup, docker_client, "dcb-broken", {"FAIL_AT": "apps-frappe"})
	assert isinstance(outcome.error, builds.BuildStageFailed)
	assert outcome.steps == {
		"Clone Repositories": "Success",
		"Run Validations": "Success",
		"Build Image": "Failure",
	}
	message = str(outcome.error)
	assert "`apps-frappe`" in message and "build-server" in message
	assert "returned a non-zero code: 3" in message
	assert "pip install failed for frappe" in message and "ERROR: frappe requires Python >=3.14" in message
	assert outcome.data["build_failed"] is True
	assert outcome.data["stages"][-1] == {**outcome.data["stages"][-1], "stage": "apps", "status": "Failure"}
	assert any(line.split(" ", 1)[1].startswith("ERROR: ") for line in outcome.output["build"])
	path = setup["repository"].split("/", 1)[1]
	assert "dcb-broken" not in list_tags(registry_target(setup), path)
	assert manifest_digest(registry_target(setup), path, "dcb-broken") is None
	assert list(setup["settings"].contexts.directory.glob("dcb-broken-*")), "kept for a retry"


def test_out_of_space_says_disk_full(setup, docker_client, first):
	outcome = start_build(setup, docker_client, "dcb-full", {"FILL_SHM": "1"})
	assert isinstance(outcome.error, builds.BuildHostDiskFull)
	message = str(outcome.error)
	assert "build server build-server ran out of disk space" in message
	assert "`pre-python`" in message and "docker builder prune" in message


def test_disk_full_detected_in_daemon_error():
	progress = builds.BuildProgress()
	progress.feed({"stream": "Step 1/2 : RUN apt-get install big `#stage-pre-essentials`\n"})
	host = DockerHost("build-1", "unix:///x")
	with pytest.raises(builds.BuildHostDiskFull, match="build-1 ran out of disk space .*pre-essentials"):
		builds._raise_build_failure(
			host,
			progress,
			"failed to register layer: write /usr/lib/x: no space left on device",
			lambda _: None,
		)


def test_wrong_password_is_refused_before_building(setup, docker_client, first):
	outcome = start_build(setup, docker_client, "dcb-denied", password="wrong-password")
	assert isinstance(outcome.error, RegistryAuthError)
	assert "Build Image" not in outcome.steps
	assert "rejected the user name or password" in str(outcome.error)
	assert "wrong-password" not in str(outcome.error) + "".join(outcome.log)


def test_push_denied_by_registry(setup, docker_client, first):
	host = DockerHost("build-server", setup["socket"])
	target = registry_target(setup, password="wrong-password")
	with pytest.raises(builds.PushDenied) as caught:
		builds.push_image(host, docker_client, setup["repository"], "dcb-second", target)
	assert "refused the push" in str(caught.value) and "press" in str(caught.value)
	assert "wrong-password" not in str(caught.value)


def test_registry_unreachable(setup, docker_client, first):
	elsewhere = {**setup, "repository": "127.0.0.1:1/press/example.com/bench"}
	outcome = start_build(elsewhere, docker_client, "dcb-nowhere", url="127.0.0.1:1")
	assert "Cannot reach the registry https://127.0.0.1:1" in str(outcome.error)
	assert isinstance(outcome.error, RegistryUnreachable)
	assert "Build Image" not in outcome.steps
	with pytest.raises(builds.BuildError, match="is not in the registry 127.0.0.1:1"):
		raise start_build(setup, docker_client, "dcb-mismatch", url="127.0.0.1:1").error

	# and when the registry goes away between the check and the push, the daemon's error is named
	image = docker_client.images.get(f"{setup['repository']}:dcb-second")
	image.tag("127.0.0.1:1/press/gone", "dcb-second")
	host = DockerHost("build-server", setup["socket"])
	try:
		with pytest.raises(RegistryUnreachable, match="Docker on build server build-server cannot reach"):
			builds.push_image(
				host, docker_client, "127.0.0.1:1/press/gone", "dcb-second", RegistryTarget("127.0.0.1:1")
			)
	finally:
		docker_client.images.remove("127.0.0.1:1/press/gone:dcb-second")


def test_missing_or_foreign_context_is_refused(tmp_path):
	store = builds.ContextStore(tmp_path)
	with pytest.raises(builds.BuildContextError, match="not a Deploy Candidate Build name"):
		store.save("../etc", io.BytesIO(b""))
	with pytest.raises(builds.BuildContextError, match="not a name this builder hands out"):
		store.path("../../etc/passwd")
	with pytest.raises(builds.BuildContextError, match="never uploaded, or already cleaned up"):
		builds.inspect_context(store.path("dcb-x-00000000.tar.gz"))
	name = store.save("dcb-x", io.BytesIO(b"not a tar"))
	with pytest.raises(builds.BuildContextError, match="not a readable tar archive"):
		builds.inspect_context(store.path(name))


def test_stale_contexts_are_pruned_and_recent_ones_kept(tmp_path):
	store = builds.ContextStore(tmp_path / "contexts")
	assert store.prune(3600) == []  # nothing uploaded yet
	old = store.save("dcb-old", io.BytesIO(b"context of a failed build"))
	recent = store.save("dcb-new", io.BytesIO(b"context of a build that may be retried"))
	week_ago = time.time() - 8 * 24 * 3600
	os.utime(store.path(old), (week_ago, week_ago))
	assert store.prune(7 * 24 * 3600) == [old]
	assert not store.path(old).exists() and store.path(recent).exists()
