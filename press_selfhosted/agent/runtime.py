"""Frappe glue of the in-process agent: Press's records as the engine's Topology and SecretSource,
the job store on the site's database, RQ enqueueing, the worker function and the scheduler sweep.

Hooks: ``before_request`` and ``before_job`` call :func:`apply_swap` (they run before every web
request and every background job; ``bench execute``/console/migrate/tests run neither, so this
app's bench commands call it too).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import frappe

from press_selfhosted.agent import backups, job_results, registry, transport
from press_selfhosted.engine import acme, validation
from press_selfhosted.engine.agent import catalog, handlers, jobs, timeouts
from press_selfhosted.engine.agent.executor import Executor, sweep
from press_selfhosted.engine.agent.handlers import ContainerServer, DatabaseEndpoint, JobRecord
from press_selfhosted.engine.agent.router import Response, Router, error
from press_selfhosted.engine.agent.store import JobStore, StoreConfig
from press_selfhosted.engine.benches import BenchSettings
from press_selfhosted.engine.docker_hosts import DockerHost, DockerHosts
from press_selfhosted.engine.docker_tls import DockerTLS, materialize
from press_selfhosted.engine.proxy import ProxySettings

_docker_hosts = DockerHosts()  # one Docker client per server for the life of the process


def apply_swap() -> None:
	from press.agent import Agent

	transport.install(Agent, is_container_agent, route)


def is_container_agent(agent) -> bool:
	"""A container server has both ``container_prefix`` and ``docker_socket``; cached per request.

	``frappe.local`` is a werkzeug ``Local``: it has attributes, not a ``__dict__``."""
	cache = getattr(frappe.local, "press_selfhosted_container_servers", None)
	if cache is None:
		cache = frappe.local.press_selfhosted_container_servers = {}
	key = (agent.server_type, agent.server)
	if key not in cache:
		values = frappe.db.get_value(agent.server_type, agent.server, ["container_prefix", "docker_socket"])
		cache[key] = bool(values and all(values))
	return cache[key]


def store_config() -> StoreConfig:
	conf = frappe.conf
	return StoreConfig(
		host=conf.get("db_host") or "127.0.0.1",
		port=int(conf.get("db_port") or 3306),
		user=conf.get("db_user") or conf.db_name,
		password=conf.db_password,
		database=conf.db_name,
	)


# The router's store, one per site for the life of the process (its connection reconnects after a
# failure; it holds no locks: the executor's do, on a store of their own per job).
_router_stores: dict[StoreConfig, JobStore] = {}


def job_store() -> JobStore:
	config = store_config()
	store = _router_stores.get(config)
	if store is None:
		store = JobStore(config)
		store.ensure_schema()  # made at install and migrate; here too, for a site restored from a backup
		_router_stores[config] = store
	return store


def all_handlers():
	# host folders a Bench Mount may use (none unless the operator lists them)
	roots = tuple(frappe.conf.get("press_selfhosted_bench_mount_roots") or ())
	return catalog.all_handlers(
		proxy_settings,
		registry.builder_settings(),
		benches=BenchSettings(mount_roots=roots),
		mariadb_image=mariadb_image,
	)


def mariadb_image() -> str:
	"""What a container Database Server runs (site config, so that it can name the Local Registry)."""
	return frappe.conf.get("press_selfhosted_mariadb_image") or "mariadb:10.6"


# where each container proxy's Traefik listens on its host (site config keys)
PROXY_BIND_ADDRESS = "press_selfhosted_proxy_bind_address"
PROXY_HTTP_PORT = "press_selfhosted_proxy_http_port"
PROXY_HTTPS_PORT = "press_selfhosted_proxy_https_port"


def proxy_settings() -> ProxySettings:
	"""Traefik and the page service of container proxy servers; images from the site config, so that
	an operator points them at the Local Registry. TLS of sites from the keys engine.acme names: an
	ACME resolver and/or a default certificate. Read when a proxy step runs."""
	conf = frappe.conf
	resolver, certificate = acme.from_site_config(conf)
	return ProxySettings(
		traefik_image=frappe.conf.get("press_selfhosted_traefik_image") or "traefik:v3.1",
		pages_image=frappe.conf.get("press_selfhosted_front_image") or "nginx:stable",
		bind_address=validation.validate_bind_address(
			conf.get(PROXY_BIND_ADDRESS) or "0.0.0.0", PROXY_BIND_ADDRESS
		),
		http_port=validation.validate_port(conf.get(PROXY_HTTP_PORT) or 80, PROXY_HTTP_PORT),
		https_port=validation.validate_port(conf.get(PROXY_HTTPS_PORT) or 443, PROXY_HTTPS_PORT),
		acme=resolver,
		default_certificate=certificate,
	)


BUILD_CONTEXT_UPLOAD = re.compile(r"^/?builder/upload/(?P<build>[^/]+)$")


def route(agent, method, path, data, agent_job_id, files=None):
	upload = BUILD_CONTEXT_UPLOAD.match(path)
	if upload and files:
		return receive_build_context(upload["build"], files)
	# the store opens inside the router, so that its outage is a 503, never an exception
	router = Router(
		all_handlers(), job_store, enqueue, FrappeTopology(), _docker_hosts, enrich=backups.storage_payload
	)
	return router.handle(agent.server, method, path, data, agent_job_id, server_type=agent.server_type)


def receive_build_context(build: str, files) -> Response:
	"""Press uploads a build context before it requests ``builder/build``; no job is made for it."""
	try:
		return Response(200, registry.save_build_context(build, files))
	except Exception as failure:  # noqa: BLE001 - the transport must never raise (findings, pitfall 1)
		return error(400, f"build context for {build} not accepted: {failure}")


def enqueue(job_id: int) -> None:
	job = job_store().get(job_id)
	frappe.enqueue(
		"press_selfhosted.agent.runtime.run_job",
		queue="long",
		# RQ's default (25 minutes) would kill a backup or a build while its command goes on
		timeout=timeouts.job_timeout(job.job_type, job.payload) if job else timeouts.DEFAULT,
		job_id=f"press_selfhosted_agent_job:{job_id}",
		deduplicate=True,
		enqueue_after_commit=False,  # the job row is already committed by the store's own connection
		job_id_int=job_id,
	)


def run_job(job_id_int: int) -> str | None:
	store = JobStore(store_config())
	executor = Executor(
		store,
		handlers.index(all_handlers()),
		FrappeTopology(),
		FrappeSecrets(),
		_docker_hosts,
		on_finished=job_results.recorder(store),
		enqueue=enqueue,
	)
	try:
		return executor.run(job_id_int)
	finally:
		executor.store.close()


def sweep_jobs() -> list[int]:
	"""Scheduler (every minute): re-enqueue open jobs whose worker died."""
	return sweep(job_store(), enqueue)


def network_name(cluster: str) -> str:
	return "press-" + re.sub(r"[^a-z0-9_.-]+", "-", (cluster or "default").lower()).strip("-")


def docker_host(doc) -> DockerHost:
	"""Where the server's Docker answers; for tcp:// with the Docker TLS fields set, the PEMs are written
	to ``<site>/private/press_selfhosted/docker-tls/<server>/`` (0600) for docker-py to read."""
	host = DockerHost(server=doc.name, socket=doc.docker_socket)
	if not (doc.get("docker_tls_ca") and doc.get("docker_tls_cert") and doc.get("docker_tls_key")):
		return host
	base = Path(frappe.get_site_path("private", "press_selfhosted", "docker-tls")).resolve()
	key = doc.get_password("docker_tls_key")
	return materialize(base, host, DockerTLS(doc.docker_tls_ca, doc.docker_tls_cert, key))


class FrappeTopology:
	def server(self, server_type: str, name: str) -> ContainerServer:
		doc = frappe.get_cached_doc(server_type, name)
		return ContainerServer(
			name=doc.name,
			server_type=server_type,
			container_prefix=doc.container_prefix,
			docker=docker_host(doc),
			network=network_name(doc.cluster),
			private_ip=doc.private_ip,
			ip=doc.ip,
			front_image=frappe.conf.get("press_selfhosted_front_image"),
		)

	def app_server_by_ip(self, ip: str) -> ContainerServer:
		name = frappe.db.get_value("Server", {"private_ip": ip}) or frappe.db.get_value("Server", {"ip": ip})
		if not name:
			frappe.throw(f"No app server has the IP {ip}")
		return self.server("Server", name)

	def bench_for_site(self, site: str) -> str:
		return frappe.db.get_value("Site", site, "bench")

	def press_job_status(self, job_type: str, site: str) -> str | None:
		# each run of a waiting step is a job of its own, so it reads what Press committed meanwhile
		return frappe.db.get_value(
			"Agent Job", {"job_type": job_type, "site": site}, "status", order_by="creation desc"
		)

	def proxy_for(self, app_server: str) -> ContainerServer | None:
		doc = _container_server_doc("Proxy Server", frappe.db.get_value("Server", app_server, "proxy_server"))
		return self.server("Proxy Server", doc.name) if doc else None

	def database_for(self, app_server: str) -> DatabaseEndpoint | None:
		database = frappe.db.get_value("Server", app_server, "database_server")
		doc = _container_server_doc("Database Server", database)
		if not doc:
			return None
		return DatabaseEndpoint(server=doc.name, host=f"{doc.container_prefix}-mariadb", port=3306)


def _container_server_doc(doctype: str, name: str | None):
	"""The ``doctype`` record ``name`` when it is a container server (both container fields set)."""
	doc = frappe.get_cached_doc(doctype, name) if name else None
	return doc if doc and doc.get("container_prefix") and doc.get("docker_socket") else None


class FrappeSecrets:
	"""Secrets read when a step asks, never stored with a job: from Password fields where Press or this
	app keeps one, else from the request Press recorded on its own Agent Job (``request_data`` already
	holds the payload in clear), so the job store never needs a copy."""

	def secret(self, job: JobRecord, key: str) -> str:
		from frappe.utils.password import get_decrypted_password

		if key == "mariadb_root_password":
			server = job.server if job.server_type == "Database Server" else None
			server = server or frappe.db.get_value("Server", job.server, "database_server")
			return get_decrypted_password("Database Server", server, "mariadb_root_password")
		if key == "admin_password":
			return get_decrypted_password("Site", job.site, "admin_password")
		if key == "registry_password":
			default = frappe.db.get_value("Local Registry", {"is_default": 1}, "name")
			if default:
				return get_decrypted_password("Local Registry", default, "password")
			return frappe.db.get_single_value("Press Settings", "docker_registry_password")
		if key in ("offsite_access_key", "offsite_secret_key"):
			from press_selfhosted.press_selfhosted.doctype.storage_configuration.storage_configuration import (
				get_default,
			)

			return get_default().get_password(key.removeprefix("offsite_"))
		if key == "privkey.pem":  # Add Host to Proxy: the host's certificate, named after the domain
			return get_decrypted_password("TLS Certificate", job.payload.get("name"), "private_key")
		return self.from_press_request(job, key)

	@staticmethod
	def from_press_request(job: JobRecord, key: str) -> str:
		request = (
			frappe.db.get_value("Agent Job", job.agent_job_id, "request_data") if job.agent_job_id else None
		)
		value = jobs.lookup(json.loads(request or "{}"), key)
		if not isinstance(value, str) or not value:
			frappe.throw(
				f"press_selfhosted found no {key!r} for agent job {job.id} in Press's Agent Job "
				f"{job.agent_job_id or '(none)'}: retry the action in Press so that it sends the request again"
			)
		return value
