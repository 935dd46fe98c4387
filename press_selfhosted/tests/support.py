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
import random
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import docker
import frappe
import requests
from cryptography import x509
from frappe.installer import update_site_config
from press.press.doctype.agent_job.agent_job import poll_pending_jobs_server
from press.press.doctype.bench.bench import process_bench_queue

from press_selfhosted.engine import naming
from press_selfhosted.engine.clients import acme
from press_selfhosted.engine.clients.proxy import Proxy
from press_selfhosted.glue import cluster, runtime, settings, topology
from press_selfhosted.tests.acme_services import Relay

SERVICES = "press_selfhosted_test_services"


def prepare() -> dict:
	"""The services' endpoints, with this process's Agent calls swapped as a worker's are (a test process
	runs neither ``before_request`` nor ``before_job``) and the site configured for them."""
	runtime.apply_swap()
	endpoints = services()
	configure_site(endpoints)
	return endpoints


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


def active_cluster(endpoints: dict) -> tuple[cluster.AllInOne, dict[str, str]]:
	"""A cluster of its own, registered and set up: its three servers Active; its spec and servers."""
	spec = new_cluster(endpoints)
	servers = cluster.register(spec)
	frappe.db.commit()
	cluster.set_up(servers)
	frappe.db.commit()
	wait_until(
		lambda: all(status_of(d, n) == "Active" for d, n in servers.items()),
		servers,
		what="the cluster's servers Active",
	)
	return spec, servers


def poll(servers: dict[str, str]) -> None:
	"""What the scheduler does every minute for these servers: Press polls their jobs (and runs the
	callbacks of those that ended) and makes the benches deploys queued; press_selfhosted's sweep resumes
	waiting jobs."""
	for doctype, name in servers.items():
		poll_pending_jobs_server(frappe._dict(server=name, server_type=doctype))
	frappe.db.commit()
	process_bench_queue()
	runtime.sweep_jobs()


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


def problems_since(moment, servers: dict[str, str], expected_failures=()) -> list[str]:
	"""Error Logs, Agent Request Failures and failed Agent Jobs of these servers since ``moment`` (but the
	jobs in ``expected_failures``, which a test made fail): a normal flow leaves none."""
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
				"name": ("not in", [*expected_failures, ""]),
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


# --- Press's records for a cluster of the suite ---------------------------------------------------------

TEST_REGISTRY = "press-selfhosted-tests"
TEST_STORAGE = "press-selfhosted-tests"
TEST_BUCKET = "press-selfhosted-tests"
VERSION = "Version 15"


def use_local_registry(endpoints: dict) -> str:
	"""The project's anonymous registry as the default Local Registry (Press Settings follow it)."""
	values = {"url": f"http://{endpoints['registry']['url']}", "is_default": 1, "insecure": 1}
	if frappe.db.exists("Local Registry", TEST_REGISTRY):
		doc = frappe.get_doc("Local Registry", TEST_REGISTRY)
		doc.update(values)
		doc.save()
	else:
		frappe.get_doc({"doctype": "Local Registry", "title": TEST_REGISTRY, **values}).insert()
	return TEST_REGISTRY


def use_local_storage(endpoints: dict) -> str:
	"""The project's S3 server as the default Storage Configuration, its bucket made when missing."""
	s3 = endpoints["s3"]
	values = {
		"endpoint_url": s3["endpoint_url"],
		"region": s3["region"],
		"access_key": s3["access_key"],
		"secret_key": s3["secret_key"],
		"default_bucket": TEST_BUCKET,
		"minio_prefix": "backups",
		"is_default": 1,
	}
	if frappe.db.exists("Storage Configuration", TEST_STORAGE):
		doc = frappe.get_doc("Storage Configuration", TEST_STORAGE)
		doc.update(values)
		doc.save()
	else:
		doc = frappe.get_doc({"doctype": "Storage Configuration", "title": TEST_STORAGE, **values}).insert()
	doc.test_connection(create_bucket=True)
	return TEST_BUCKET


def release_group_with_image(endpoints: dict, spec: cluster.AllInOne) -> tuple[str, str, str]:
	"""A Release Group with frappe, a Deploy Candidate and a finished Deploy Candidate Build whose image
	is the project's stand-in bench, pushed to the registry under the name Press gives it (Press's own
	build path is test_press_builds')."""
	url = "https://github.com/frappe/frappe"
	source = frappe_source(url, "version-15", hashlib.sha1(url.encode()).hexdigest())
	group = release_group(spec, source)
	candidate, build = new_build(endpoints, spec, group)
	return group, candidate, build


def frappe_source(repository_url: str, branch: str, commit: str) -> str:
	"""An App Source of frappe at ``repository_url`` that Press never polls on GitHub, with an Approved
	App Release at ``commit``; the source's name."""
	team = cluster.operator_team()
	if not frappe.db.exists("App", "frappe"):
		frappe.get_doc({"doctype": "App", "name": "frappe", "title": "Frappe Framework"}).insert()
	source = frappe.db.get_value("App Source", {"app": "frappe", "repository_url": repository_url})
	if not source:
		source = (
			frappe.get_doc(
				{
					"doctype": "App Source",
					"app": "frappe",
					"app_title": "Frappe Framework",
					"repository_url": repository_url,
					"branch": branch,
					"team": team,
					"public": 1,
					"enabled": 1,
					"last_github_poll_failed": 1,  # this Press never asks GitHub for releases
					"versions": [{"version": VERSION}],
				}
			)
			.insert()
			.name
		)
	if not frappe.db.exists("App Release", {"source": source, "hash": commit}):
		frappe.get_doc(
			{
				"doctype": "App Release",
				"app": "frappe",
				"source": source,
				"team": team,
				"hash": commit,
				"status": "Approved",
				"deployable": 1,
			}
		).insert()
	return source


def release_group(spec: cluster.AllInOne, source: str, build_server: str | None = None) -> str:
	"""A Release Group of frappe from ``source`` on the cluster's app server."""
	return (
		frappe.get_doc(
			{
				"doctype": "Release Group",
				"title": f"{spec.cluster} group {uuid.uuid4().hex[:4]}",
				"team": cluster.operator_team(),
				"version": VERSION,
				"public": 1,
				"apps": [{"app": "frappe", "source": source}],
				"servers": [{"server": spec.server_name("Server")}],
				"build_server": build_server,
			}
		)
		.insert()
		.name
	)


def new_build(endpoints: dict, spec: cluster.AllInOne, group: str) -> tuple[str, str]:
	"""A Deploy Candidate of ``group`` and its finished build (the stand-in bench image, pushed)."""
	candidate = frappe.get_doc("Release Group", group).create_deploy_candidate(
		validate_pre_candidate_checks=False
	)
	build = frappe.get_doc(
		{
			"doctype": "Deploy Candidate Build",
			"deploy_candidate": candidate.name,
			"group": group,
			"team": candidate.team,
			"run_build": 0,
		}
	).insert()
	registry = endpoints["registry"]["url"]
	repository = f"{registry}/{spec.domain}/{group}"
	client = docker_client(endpoints)
	client.images.get(endpoints["images"]["bench"]).tag(repository, tag=build.name)
	for line in client.images.push(repository, tag=build.name, stream=True, decode=True):
		if "error" in line:
			raise AssertionError(f"pushing the bench image failed: {line['error']}")
	client.close()
	frappe.db.set_value(
		"Deploy Candidate Build",
		build.name,
		{
			"status": "Success",
			"docker_image_repository": repository,
			"docker_image_tag": build.name,
			"docker_image": f"{repository}:{build.name}",
		},
	)
	# what Press records when a build of the server's platform succeeds
	frappe.db.set_value("Deploy Candidate", candidate.name, "intel_build", build.name)
	return candidate.name, build.name


def deploy(build: str, servers: dict[str, str]) -> str:
	"""Press's deploy of a finished build to the Release Group's servers (Deploy → New Bench Queue →
	Bench, and the Deploy Candidate Differences a Site Update needs); the new Bench's name."""
	frappe.get_doc("Deploy Candidate Build", build).create_deploy()
	frappe.db.commit()
	return wait_until(
		lambda: frappe.db.get_value("Bench", {"build": build}), servers, what=f"the bench of build {build}"
	)


def new_site(bench: str, group: str, spec: cluster.AllInOne, label: str, apps=("frappe",)) -> str:
	site = frappe.get_doc(
		{
			"doctype": "Site",
			"subdomain": f"{label}-{uuid.uuid4().hex[:6]}",
			"domain": spec.domain,
			"bench": bench,
			"group": group,
			"server": spec.server_name("Server"),
			"cluster": spec.cluster,
			"team": cluster.operator_team(),
			"subscription_plan": "Unlimited",
			"apps": [{"app": app} for app in apps],
		}
	).insert()
	return site.name


def backup(site: str) -> str:
	"""A backup with files, offsite, as the dashboard asks for it; the Site Backup's name."""
	frappe.get_doc("Site", site).backup(with_files=True, offsite=True)
	return frappe.db.get_value("Site Backup", {"site": site}, "name", order_by="creation desc")


def api_call(path: str, **data) -> requests.Response:
	"""``/api/method/<path>`` over HTTP, signed in as Administrator with an API key: the web worker's
	request hooks and Frappe's ``override_whitelisted_methods`` apply, as for an operator's desk."""
	user = frappe.get_doc("User", "Administrator")
	if not user.api_key:
		user.api_key = frappe.generate_hash(length=15)
	secret = frappe.generate_hash(length=15)
	user.api_secret = secret
	user.save(ignore_permissions=True)
	frappe.db.commit()
	return requests.post(
		f"{frappe.utils.get_url()}/api/method/{path}",
		headers={"Authorization": f"token {user.api_key}:{secret}"},
		data=data,
		timeout=60,
	)


def desk_call(doctype: str, name: str, method: str) -> dict:
	"""A document method called over HTTP as the desk's buttons call it (``run_doc_method``)."""
	response = api_call("run_doc_method", dt=doctype, dn=name, method=method)
	if response.status_code != 200:
		raise AssertionError(
			f"{method} of {doctype} {name}: HTTP {response.status_code} {response.text[:1000]}"
		)
	return response.json()


def served_serial(host: str, expected: int | None = None, timeout: float = 30) -> int:
	"""The serial of the certificate the cluster's proxy serves for ``host`` by SNI, once it verifies
	against the platform CA (and is ``expected``, when given: Traefik applies a change within seconds)."""
	context = ssl.create_default_context(
		cadata=frappe.db.get_single_value("Platform Certificate Authority", "certificate")
	)
	port = frappe.conf.press_selfhosted_proxy_https_port
	deadline = time.monotonic() + timeout
	while True:
		try:
			with (
				socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
				context.wrap_socket(raw, server_hostname=host) as tls,
			):
				serial = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True)).serial_number
			if expected is None or serial == expected or time.monotonic() > deadline:
				return serial
		except (ssl.SSLError, OSError):
			if time.monotonic() > deadline:
				raise
		time.sleep(0.5)


def bench_command(*argv: str) -> subprocess.CompletedProcess:
	"""``bench --site <this site> argv`` as an operator types it, in the bench's sites folder."""
	return subprocess.run(
		[sys.executable, "-m", "frappe.utils.bench_helper", "frappe", "--site", frappe.local.site, *argv],
		cwd=frappe.utils.get_bench_path() + "/sites",
		capture_output=True,
		text=True,
		timeout=600,
		check=False,
	)


def save_with_latest(doctype: str, name: str, action: Callable, attempts: int = 3) -> None:
	"""``action(doc)`` on a fresh copy, committed; again on a fresher copy when a background write got in
	between (Frappe's optimistic locking: the desk would ask the operator to refresh and retry)."""
	for attempt in range(attempts):
		try:
			action(frappe.get_doc(doctype, name))
			frappe.db.commit()
			return
		except frappe.TimestampMismatchError:
			frappe.db.rollback()
			if attempt == attempts - 1:
				raise


# --- the cluster's proxy certified by the project's pebble ----------------------------------------------

PEBBLE_HTTP_PORT = 5002


@dataclass
class Pebble:
	"""A cluster's container proxy with an ACME resolver pointed at the project's pebble. pebble validates
	HTTP-01 on port 5002 of the address its DNS (pebble-challtestsrv) gives for a name: :meth:`point` gives
	a name this run's own loopback address, where a relay passes port 5002 on to the proxy's HTTP port."""

	endpoints: dict
	address: str
	https_port: int
	root: str  # pebble's root certificate (PEM): what its certificates verify against
	relays: list[Relay]
	config_keys: list[str]
	names: list[str] = field(default_factory=list)

	def point(self, name: str) -> None:
		url = self.endpoints["pebble"]["challtestsrv_url"]
		requests.post(
			f"{url}/add-a", json={"host": name, "addresses": [self.address]}, timeout=5
		).raise_for_status()
		self.names.append(name)

	def served(self, host: str, timeout: float = 120) -> x509.Certificate:
		"""The certificate the proxy serves for ``host`` by SNI, once it verifies against pebble's root
		(Traefik obtains it in the background)."""
		context = ssl.create_default_context(cadata=self.root)
		deadline = time.monotonic() + timeout
		while True:
			try:
				with (
					socket.create_connection(("127.0.0.1", self.https_port), timeout=10) as raw,
					context.wrap_socket(raw, server_hostname=host) as tls,
				):
					return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))
			except (ssl.SSLError, OSError):
				if time.monotonic() > deadline:
					raise
				time.sleep(0.5)

	def close(self) -> None:
		"""Relays closed, DNS records cleared, the ACME keys out of the site config."""
		for relay in self.relays:
			relay.close()
		url = self.endpoints["pebble"]["challtestsrv_url"]
		for name in self.names:
			requests.post(f"{url}/clear-a", json={"host": name}, timeout=5)
		for key in self.config_keys:
			update_site_config(key, "None")  # Frappe removes a key set to "None"
			frappe.local.conf.pop(key, None)


def use_pebble(endpoints: dict, proxy_name: str, which: str = "pebble") -> Pebble:
	"""The ACME keys in the site config (as the workers read them; :meth:`Pebble.close` removes them) and
	the proxy remade with the resolver. ``which``: "pebble_short" is the pebble whose certificates hold
	minutes (its lifetime is then told to Traefik, which renews them within a minute or two)."""
	pebble = endpoints[which]
	server = topology.FrappeTopology().server("Proxy Server", proxy_name)
	client = docker_client(endpoints)
	gateway = client.networks.get(server.network).attrs["IPAM"]["Config"][0]["Gateway"]
	directory = urlparse(pebble["directory_url"])
	relays = [Relay(gateway, (directory.hostname, directory.port))]
	found = Pebble(endpoints, f"127.0.0.{random.randint(2, 250)}", 0, "", relays, [])
	try:
		with open(pebble["ca_file"]) as handle:
			ca_bundle = handle.read()
		values = {
			acme.CONFIG_EMAIL: "ops@example.com",
			acme.CONFIG_DIRECTORY: f"https://{gateway}:{relays[0].port}{directory.path}",
			acme.CONFIG_CA_BUNDLE: ca_bundle,
			acme.CONFIG_SERVER_NAME: "localhost",  # pebble's HTTPS certificate names localhost
		}
		if pebble.get("certificate_seconds"):
			values[acme.CONFIG_CERTIFICATES_DURATION] = max(1, pebble["certificate_seconds"] // 3600)
		for key, value in values.items():
			update_site_config(key, value)
			found.config_keys.append(key)
		frappe.local.conf.update(values)
		proxy = Proxy.ensure(client, server, settings.proxy_settings(server))
		target = ("127.0.0.1", proxy.published_port("80/tcp"))
		relays.append(Relay(found.address, target, port=PEBBLE_HTTP_PORT))
		found.https_port = proxy.published_port("443/tcp")
		found.root = requests.get(
			f"{pebble['management_url']}/roots/0", verify=pebble["ca_file"], timeout=10
		).text
	except BaseException:
		found.close()
		raise
	return found
