"""Shared fixtures: the real local services started by scripts/services, the job store made on their
MariaDB for this session, the bench test image pushed to the local registries."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pymysql
import pytest
from hypothesis import settings
from references import press_fixtures_dir

from press_selfhosted.engine.agent.store import JobStore, StoreConfig

# properties are checked for correctness, never for speed: a loaded machine must not fail them
settings.register_profile("press_selfhosted", deadline=None)
settings.load_profile("press_selfhosted")

# the engine reads Press's Agent Job Types from an installed press app or this folder
os.environ.setdefault("PRESS_FIXTURES_DIR", str(press_fixtures_dir()))

ROOT = Path(__file__).resolve().parent.parent
ENDPOINTS = ROOT / ".services" / "endpoints.json"

# The tests' three trees, each a marker (``pytest -m unit``): unit tests need no service, integration
# tests run against the real services, crash tests kill a real worker in every step of a job.
TREES = ("unit", "integration", "crash")
SERVICE_FIXTURES = {"endpoints", "docker_client", "store_config", "registry_images"}


def pytest_collection_modifyitems(config, items):
	for item in items:
		tree = Path(str(item.path)).parent.name
		if tree not in TREES:
			raise pytest.UsageError(
				f"{item.nodeid}: a test lives in tests/unit, tests/integration or tests/crash"
			)
		item.add_marker(tree)
		if tree == "unit" and SERVICE_FIXTURES & set(item.fixturenames):
			raise pytest.UsageError(
				f"{item.nodeid} uses the services ({', '.join(sorted(SERVICE_FIXTURES & set(item.fixturenames)))}): "
				"move it to tests/integration"
			)


@pytest.fixture(scope="session")
def endpoints() -> dict:
	"""Endpoints of the running services (``scripts/services up`` writes them; ``scripts/test`` runs it).
	A fixture never starts them: that needs root and minutes, which a test run must not do behind
	the operator's back.

	The role images are those of this checkout: the services may have been started from another
	checkout (a worktree sharing them), whose stand-ins differ. Images are tagged by the hash of
	their inputs, so this builds only what this checkout changed (on top of the shared base image)."""
	if not ENDPOINTS.exists():
		pytest.fail(
			f"the test services are not running ({ENDPOINTS.relative_to(ROOT)} is missing). "
			"Fix: scripts/services up (as root; scripts/test does it before running the suite)",
			pytrace=False,
		)
	found = json.loads(ENDPOINTS.read_text())
	found["images"] = {**found["images"], **checkout_images(found)}
	return found


def checkout_images(found: dict) -> dict:
	import sys

	import docker

	sys.path.insert(0, str(ROOT / "scripts"))
	try:
		import test_images
	finally:
		sys.path.pop(0)
	client = docker.DockerClient(base_url=found["docker"]["base_url"], timeout=600)
	try:
		base = found["images"]["base"]
		return {role: test_images.ensure_role(client, role, base) for role in ("bench", "front", "mariadb")}
	finally:
		client.close()


@pytest.fixture(scope="session")
def docker_client(endpoints):
	import docker

	client = docker.DockerClient(base_url=endpoints["docker"]["base_url"], timeout=120)
	yield client
	client.close()


@pytest.fixture
def unique() -> str:
	"""A short lowercase token for names that must not collide between tests or runs."""
	return uuid.uuid4().hex[:8]


# --- the job store and the bench image in the registries, shared by the agent, bench and site tests ---


# One job store per test module: a module's sweep must find only its own jobs, never another module's
# left running.
@pytest.fixture(scope="module")
def store_config(endpoints):
	db = endpoints["mariadb"]
	name = f"psa_test_{uuid.uuid4().hex[:8]}"
	root = pymysql.connect(host=db["host"], port=db["port"], user=db["user"], password=db["password"])
	with root.cursor() as cursor:
		cursor.execute(f"CREATE DATABASE `{name}`")
	config = StoreConfig(db["host"], db["port"], db["user"], db["password"], name)
	JobStore(config).ensure_schema()
	yield config
	with root.cursor() as cursor:
		cursor.execute(f"DROP DATABASE `{name}`")
	root.close()


@pytest.fixture(scope="session")
def registry_images(endpoints, docker_client):
	"""The bench test image pushed to both local registries: {"plain": ref, "tls": ref}."""
	local = endpoints["images"]["bench"]
	tag = local.split(":")[-1]
	tls = endpoints["registry_tls"]
	refs = {
		"plain": f"{endpoints['registry']['url']}/press-selfhosted-test/bench:{tag}",
		"tls": f"{tls['url']}/press-selfhosted-test/bench:{tag}",
	}
	image = docker_client.images.get(local)
	auth = {"username": tls["username"], "password": tls["password"]}
	for kind, ref in refs.items():
		repository, _ = ref.rsplit(":", 1)
		image.tag(repository, tag)
		for line in docker_client.images.push(
			repository, tag, stream=True, decode=True, auth_config=auth if kind == "tls" else None
		):
			assert "error" not in line, line
	return refs


@pytest.fixture(scope="module")
def idle_container(endpoints, docker_client):
	"""A base-image container that sleeps, labelled as a test's: for commands and files run in a container."""
	tag = uuid.uuid4().hex[:8]
	container = docker_client.containers.run(
		endpoints["images"]["base"],
		["sleep", "infinity"],
		detach=True,
		name=f"t{tag}-idle",
		labels={"press.managed": "1", "press.test": f"t{tag}"},
	)
	try:
		yield container
	finally:
		container.remove(force=True)
