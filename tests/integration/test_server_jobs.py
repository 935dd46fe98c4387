"""Server-wide jobs Press sends to every Active server (Ping Job, the six-hourly Cleanup Unused Files),
run against our real dockerd. The topology and secrets are fakes of Press's records (tests/proxy_helpers)."""

from __future__ import annotations

import io
import uuid
from dataclasses import replace

import docker.errors
import pytest
from fakes import PressRecords, Secrets
from proxy_helpers import container_server, remove_servers, run_job

from press_selfhosted.engine import naming
from press_selfhosted.engine.clients.mariadb import MariaDBSpec, ensure_mariadb
from press_selfhosted.engine.jobs.handlers import index
from press_selfhosted.engine.jobs.servers import ServerJobs

# The jobs tested here use neither the proxies nor the MariaDB image: Setup Container Server, which does,
# is tested in test_server_setup.
HANDLERS = index(ServerJobs(proxies=None, mariadb_image=None).handlers())


@pytest.fixture
def server(endpoints):
	prefix = f"j{uuid.uuid4().hex[:8]}"
	return container_server(endpoints, f"{prefix}-app.local", "Server", prefix, f"{prefix}-net")


def test_ping_job_answers_with_the_docker_version(server, docker_client):
	_, log = run_job(HANDLERS["Ping Job"], server, docker_client, PressRecords(), {})
	assert log == [f"server {server.name}: Docker answers ({docker_client.version()['Version']})"]


def build(docker_client, base: str, tag: str, marker: str, managed: bool = True) -> str:
	"""An image as the builder makes it (``press.managed`` label), or, unmanaged, one of the operator's."""
	label = f"LABEL {naming.MANAGED}=1\n" if managed else ""
	dockerfile = io.BytesIO(f"FROM {base}\nLABEL press.test.marker={marker}\n{label}".encode())
	image, _ = docker_client.images.build(fileobj=dockerfile, tag=tag, rm=True)
	return image.id


def test_cleanup_removes_the_apps_untagged_images_and_names_kept_volumes(server, docker_client, endpoints):
	base = endpoints["images"]["base"]
	tag = f"press-selfhosted-test/cleanup:{uuid.uuid4().hex[:8]}"
	replaced = build(docker_client, base, tag, "1")
	current = build(docker_client, base, tag, "2")  # takes the tag: the first build is now dangling
	# the operator's own image, untagged too: not the app's to prune
	other_tag = f"press-selfhosted-test/not-ours:{uuid.uuid4().hex[:8]}"
	not_ours = build(docker_client, base, other_tag, uuid.uuid4().hex, managed=False)
	build(docker_client, base, other_tag, uuid.uuid4().hex, managed=False)  # not_ours is dangling now
	# a sites volume Archive Bench kept (its bench has no containers any more) and a live bench's one
	kept = docker_client.volumes.create(
		f"{server.container_prefix}-old-sites", labels=naming.labels(server.name, "bench-sites", bench="old")
	)
	live = docker_client.volumes.create(
		f"{server.container_prefix}-live-sites",
		labels=naming.labels(server.name, "bench-sites", bench="live"),
	)
	backend = docker_client.containers.create(
		base,
		["sleep", "1"],
		name=f"{server.container_prefix}-live",
		labels=naming.labels(server.name, "bench", bench="live"),
	)
	try:
		_, log = run_job(HANDLERS["Cleanup Unused Files"], server, docker_client, PressRecords(), {})
		assert [step.name for step in HANDLERS["Cleanup Unused Files"].steps] == [
			"Remove Archived Benches",
			"Remove Temporary Files",
			"Remove Unused Docker Artefacts",
		]
		assert f"(not removed): {kept.name}" in log[0] and live.name not in log[0]
		with pytest.raises(docker.errors.ImageNotFound):
			docker_client.images.get(replaced)
		assert docker_client.images.get(tag).id == current
		assert docker_client.images.get(not_ours).id == not_ours, "only images with the app's labels go"
		assert docker_client.volumes.get(kept.name)  # other people's data stays
	finally:
		backend.remove(force=True)
		for volume in (kept, live):
			volume.remove(force=True)
		docker_client.images.remove(tag, force=True)
		docker_client.images.remove(other_tag, force=True)
		docker_client.images.remove(not_ours, force=True)


def test_ssh_users_on_a_container_proxy_succeed_saying_why_nothing_is_done(server, docker_client):
	proxy = replace(server, server_type="Proxy Server")
	_, log = run_job(HANDLERS["Add User to Proxy"], proxy, docker_client, PressRecords(), {"name": "bench-1"})
	assert len(log) == 3 and "has no SSH jump host" in log[0] and "bench-1" in log[0]
	payload = {"path_args": {"user": "bench-1"}}
	_, log = run_job(HANDLERS["Remove User from Proxy"], proxy, docker_client, PressRecords(), payload)
	assert "docker exec" in log[0]


def test_schema_sizes_are_measured_from_information_schema(server, docker_client, endpoints):
	db_server = replace(server, server_type="Database Server")
	docker_client.networks.create(db_server.network, labels=naming.labels(db_server.name, "network"))
	try:
		db = ensure_mariadb(
			docker_client, MariaDBSpec(db_server, endpoints["images"]["mariadb"]), "root-pw-1"
		)
		db.sql(
			"CREATE DATABASE _site1; CREATE TABLE _site1.t (x LONGTEXT); INSERT INTO _site1.t VALUES (REPEAT('x', 100000))"
		)
		secrets = Secrets({"mariadb_root_password": "root-pw-1"})
		_, log = run_job(
			HANDLERS["Update Database Schema Sizes"],
			db_server,
			docker_client,
			PressRecords(),
			{},
			secrets=secrets,
		)
		assert "no metadata table" in log[0]
		assert log[1].startswith("_site1: ") and log[1].endswith(" MiB")
	finally:
		remove_servers(docker_client, [db_server.name], db_server.network)
