"""What the in-bench suite shares: the project's services, a cluster on them, and Press's side of a job.

These tests run inside a real Frappe + Press bench (``bench --site S run-tests --app press_selfhosted``)
next to the project's services (``scripts/services up``; ``scripts/services share PATH --owner USER``
writes their endpoints where the bench's user can read them; the site config key
``press_selfhosted_test_services`` names that file). Press's own code does everything Press does; the
bench's background worker runs the agent jobs as in production. Only Press's scheduler is replaced:
the tests poll the container servers' jobs themselves, with Press's ``poll_pending_jobs_server``, so
that they do not wait for the next minute.
"""

from __future__ import annotations

import hashlib
import json
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import docker
import frappe
from frappe.installer import update_site_config
from press.press.doctype.agent_job.agent_job import poll_pending_jobs_server

from press_selfhosted.agent import cluster
from press_selfhosted.engine import naming

SERVICES = "press_selfhosted_test_services"


def services() -> dict:
	path = frappe.conf.get(SERVICES)
	if not path or not Path(path).exists():
		raise AssertionError(
			f"The in-bench suite needs the project's services: run `scripts/services up`, then "
			f"`scripts/services share <file> --owner <bench user>` and `bench --site {frappe.local.site} "
			f"set-config {SERVICES} <file>` (now: {path!r})."
		)
	return json.loads(Path(path).read_text())


def docker_client(endpoints: dict) -> docker.DockerClient:
	return docker.DockerClient(base_url=endpoints["docker"]["base_url"], timeout=120)


def free_port() -> int:
	with socket.socket() as probe:
		probe.bind(("127.0.0.1", 0))
		return probe.getsockname()[1]


def configure_site(endpoints: dict) -> dict:
	"""The site config keys the workers read: images from the project's local builds, the proxy on
	loopback ports of its own. Written to site_config.json (the worker reads the file, not this process)."""
	images = endpoints["images"]
	values = {
		"press_selfhosted_front_image": images["front"],
		"press_selfhosted_traefik_image": images["traefik"],
		"press_selfhosted_mariadb_image": images["mariadb"],
		"press_selfhosted_proxy_bind_address": "127.0.0.1",
		"press_selfhosted_proxy_http_port": free_port(),
		"press_selfhosted_proxy_https_port": free_port(),
	}
	for key, value in values.items():
		update_site_config(key, value)
	frappe.local.conf.update(values)
	return values


def new_cluster(endpoints: dict) -> cluster.AllInOne:
	"""An all-in-one cluster of its own for a test class: names nobody else uses."""
	run = uuid.uuid4().hex[:6]
	address = hashlib.sha1(run.encode()).digest()
	return cluster.AllInOne(
		cluster=f"t{run}",
		domain=f"t{run}.test",
		docker_socket=endpoints["docker"]["base_url"],
		container_prefix=f"t{run}",
		private_ip=f"10.{address[0]}.{address[1]}.{max(address[2], 1)}",
	)


def poll(servers: dict[str, str]) -> None:
	"""What Press's scheduler does every minute for these servers (the job result's callbacks included)."""
	for doctype, name in servers.items():
		poll_pending_jobs_server(frappe._dict(server=name, server_type=doctype))
	frappe.db.commit()


def wait_until(
	condition: Callable[[], object], servers: dict[str, str], timeout: float = 300, what: str = ""
) -> object:
	"""Polls Press's jobs of ``servers`` until ``condition()`` is true; its value is returned."""
	deadline = time.monotonic() + timeout
	while True:
		poll(servers)
		frappe.db.rollback()  # a fresh snapshot: the worker commits in another transaction
		value = condition()
		if value:
			return value
		if time.monotonic() > deadline:
			raise AssertionError(f"still waiting after {timeout:.0f}s: {what or condition}")
		time.sleep(1)


def agent_job(name: str) -> dict:
	return frappe.db.get_value("Agent Job", name, ["name", "status", "output", "job_type"], as_dict=True)


def status_of(doctype: str, name: str) -> str | None:
	return frappe.db.get_value(doctype, name, "status")


def problems_since(moment, servers: dict[str, str]) -> list[str]:
	"""Error Logs, Agent Request Failures and failed Agent Jobs of these servers since ``moment``: a
	normal flow leaves none."""
	found = [
		f"Error Log {row.name}: {row.method}"
		for row in frappe.get_all(
			"Error Log", filters={"creation": (">=", moment)}, fields=["name", "method"]
		)
	]
	found += [
		f"Agent Request Failure for {row.server}"
		for row in frappe.get_all(
			"Agent Request Failure", filters={"server": ("in", list(servers.values()))}, fields=["server"]
		)
	]
	found += [
		f"Agent Job {row.name} ({row.job_type}) {row.status}"
		for row in frappe.get_all(
			"Agent Job",
			filters={
				"server": ("in", list(servers.values())),
				"status": ("in", ("Failure", "Delivery Failure")),
				"creation": (">=", moment),
			},
			fields=["name", "job_type", "status"],
		)
	]
	return found


def remove_cluster_containers(endpoints: dict, servers: dict[str, str]) -> None:
	"""Everything the engine made for these servers (exact server labels only)."""
	client = docker_client(endpoints)
	labels = [{"label": naming.label_filters(name)} for name in servers.values()]
	# containers first: a network cannot go while a container of another server is attached to it
	for label in labels:
		for container in client.containers.list(all=True, filters=label):
			container.remove(force=True, v=True)
	for label in labels:
		for volume in client.volumes.list(filters=label):
			volume.remove(force=True)
		for network in client.networks.list(filters=label):
			network.remove()
	client.close()
