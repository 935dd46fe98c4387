"""New Bench failures end as failed jobs whose message says what to fix; nothing unlabelled is left."""

from __future__ import annotations

import uuid

import agent_support as support
import pytest

from press_selfhosted.engine import naming
from press_selfhosted.engine.errors import BenchError


@pytest.fixture
def make(endpoints, docker_client, store_config):
	made = []

	def build(socket=None, secrets=None, health_timeout=60):
		prefix = "t" + uuid.uuid4().hex[:8]
		server = support.app_server(endpoints, prefix, socket)
		made.append(server.name)
		return prefix, support.make_agent(store_config, server, secrets, health_timeout)

	yield build
	for name in made:
		support.remove_server_objects(docker_client, name)


def assert_nothing_unlabelled(client, prefix: str) -> None:
	for container in client.containers.list(all=True, filters={"name": prefix}):
		assert container.labels.get(naming.MANAGED) == "1", container.name
	for volume in client.volumes.list(filters={"name": prefix}):
		assert (volume.attrs.get("Labels") or {}).get(naming.MANAGED) == "1", volume.name


def test_docker_unreachable(make, docker_client, registry_images, tmp_path):
	socket = f"unix://{tmp_path}/nobody.sock"
	_prefix, agent = make(socket=socket)
	job = agent.poll(agent.post("benches", support.new_bench_payload("b1", registry_images["plain"])))
	assert job["status"] == "Failure"
	output = job["data"]["output"]
	assert f"Docker on server {agent.server.name} ({socket}) did not answer" in output
	assert "docker_socket" in output


def test_image_missing_in_registry(make, docker_client, endpoints):
	prefix, agent = make()
	image = f"{endpoints['registry']['url']}/press-selfhosted-test/missing:{uuid.uuid4().hex[:8]}"
	job = agent.poll(agent.post("benches", support.new_bench_payload("b1", image)))
	assert job["status"] == "Failure"
	assert job["steps"][0]["name"] == "Initialize Bench" and job["steps"][0]["status"] == "Failure"
	assert f"Image {image} could not be pulled" in job["data"]["output"]
	assert "push the image to the registry" in job["data"]["output"]
	assert not support.labelled(docker_client, agent.server.name)
	assert_nothing_unlabelled(docker_client, prefix)


def test_wrong_registry_password(make, docker_client, endpoints, registry_images):
	tls = endpoints["registry_tls"]
	prefix, agent = make(secrets={"registry_password": "wrong-" + uuid.uuid4().hex})
	registry = {"url": tls["url"], "username": tls["username"], "password": "wrong"}
	job = agent.poll(agent.post("benches", support.new_bench_payload("b1", registry_images["tls"], registry)))
	assert job["status"] == "Failure"
	assert f"Registry {tls['url']} refused the login of user 'press'" in job["data"]["output"]
	assert "correct the registry password" in job["data"]["output"]
	assert agent.secrets.values["registry_password"] not in str(job)
	assert_nothing_unlabelled(docker_client, prefix)


def test_failing_health_check(make, docker_client, registry_images):
	# 6 MB is below what the bench's web server needs: it is OOM-killed and never answers
	prefix, agent = make(health_timeout=8)
	payload = support.new_bench_payload("b1", registry_images["plain"], memory_max=6, memory_swap=6)
	job = agent.poll(agent.post("benches", payload))
	assert job["status"] == "Failure"
	assert [s["status"] for s in job["steps"]] == ["Success", "Success", "Success", "Failure"]
	output = job["data"]["output"]
	assert "Bench b1 did not answer its health check" in output
	assert "memory/CPU limits (bench_config)" in output
	assert_nothing_unlabelled(docker_client, prefix)


def test_a_mount_reaches_only_folders_the_operator_allows():
	"""A Bench Mount is a host folder inside a tenant's bench: /, the Docker socket or /etc would be its
	way out of the container. Only folders under the operator's roots are mounted (none by default)."""
	from press_selfhosted.engine.jobs.benches import BenchSpec

	def spec(source: str, roots: tuple[str, ...] = ("/srv/press-mounts",)):
		mount = {"source": source, "destination": "/home/frappe/shared", "is_absolute_path": True}
		payload = {"bench_config": {"docker_image": "img:1"}, "mounts": [mount]}
		return BenchSpec.from_payload("bench-1", payload, roots)

	assert spec("/srv/press-mounts/bench-1/shared").mounts[0].source == "/srv/press-mounts/bench-1/shared"
	for source in ("/", "/var/run/docker.sock", "/etc", "/srv/press-mounts/../../etc", "/srv/press-mounts"):
		with pytest.raises(BenchError, match="is not under a folder benches may mount"):
			spec(source)
	with pytest.raises(BenchError, match=r"allowed: none\).*press_selfhosted_bench_mount_roots"):
		spec("/srv/press-mounts/x", roots=())
