"""The in-process agent's wiring: the transport swap, the router answering Press, the job store on the
site's database, RQ enqueueing, the worker function and the scheduler sweep. Press's records as the
engine sees them are in ``topology``, the handlers' settings in ``settings``.

Hooks: ``before_request`` and ``before_job`` call :func:`apply_swap` (they run before every web
request and every background job; ``bench execute``/console/migrate/tests run neither, so this
app's bench commands call it too).
"""

from __future__ import annotations

import re

import frappe

from press_selfhosted.engine.agent import timeouts
from press_selfhosted.engine.agent.executor import Executor, sweep
from press_selfhosted.engine.agent.router import Response, Router, error
from press_selfhosted.engine.agent.store import JobStore, StoreConfig
from press_selfhosted.engine.jobs import handlers
from press_selfhosted.glue import backups, job_results, registry, settings, topology, transport


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


# The router's store, one per site for the life of the process (its connection reconnects after a
# failure; it holds no locks: the executor's do, on a store of their own per job).
_router_stores: dict[StoreConfig, JobStore] = {}


def job_store() -> JobStore:
	config = settings.store_config()
	store = _router_stores.get(config)
	if store is None:
		store = JobStore(config)
		store.ensure_schema()  # made at install and migrate; here too, for a site restored from a backup
		_router_stores[config] = store
	return store


BUILD_CONTEXT_UPLOAD = re.compile(r"^/?builder/upload/(?P<build>[^/]+)$")


def route(agent, method, path, data, agent_job_id, files=None):
	upload = BUILD_CONTEXT_UPLOAD.match(path)
	if upload and files:
		return receive_build_context(upload["build"], files)
	# the store opens inside the router, so that its outage is a 503, never an exception
	router = Router(
		settings.all_handlers(),
		job_store,
		enqueue,
		topology.FrappeTopology(),
		topology.docker_hosts,
		enrich=backups.storage_payload,
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
		"press_selfhosted.glue.runtime.run_job",
		queue="long",
		# RQ's default (25 minutes) would kill a backup or a build while its command goes on
		timeout=timeouts.job_timeout(job.job_type, job.payload) if job else timeouts.DEFAULT,
		job_id=f"press_selfhosted_agent_job:{job_id}",
		deduplicate=True,
		enqueue_after_commit=False,  # the job row is already committed by the store's own connection
		job_id_int=job_id,
	)


def run_job(job_id_int: int) -> str | None:
	store = JobStore(settings.store_config())
	executor = Executor(
		store,
		handlers.index(settings.all_handlers()),
		topology.FrappeTopology(),
		topology.FrappeSecrets(),
		topology.docker_hosts,
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
