"""A whole container cluster driven as Press drives it: shared by the platform and site crash tests.

App server, Database Server (MariaDB through ``engine.clients.mariadb``) and Proxy Server (Traefik through
``engine.clients.proxy``) are container servers on one cluster network of our dockerd. Jobs go through the
real ``Router`` into the real ``JobStore`` (MariaDB service) and each runs in its own worker thread
with its own ``Executor`` and store connection, as separate RQ workers would (so Archive Site can wait
for the proxy's job while that job runs). The Frappe layer is played by plain stand-ins: the
topology (Press's Server/Site records), the secret source (Password fields) and ``enrich`` (the glue's
storage payload, built with the glue's own pure functions).
"""

from __future__ import annotations

import copy
import functools
import http.client
import json
import os
import threading
import time
import uuid
from dataclasses import dataclass, field

from crash_support import CRASH_SETTINGS, lingering
from fakes import PressRecords, Secrets, no_press_jobs
from proxy_helpers import proxy_settings

from press_selfhosted.engine import naming
from press_selfhosted.engine.agent.catalog import all_handlers
from press_selfhosted.engine.agent.executor import Executor, ExecutorSettings, sweep
from press_selfhosted.engine.agent.jobs import FINISHED
from press_selfhosted.engine.agent.router import Router
from press_selfhosted.engine.agent.store import JOB_TABLE, JobStore, StoreConfig
from press_selfhosted.engine.clients.docker_hosts import DockerHost, DockerHosts
from press_selfhosted.engine.clients.mariadb import MariaDB, MariaDBSpec, ensure_mariadb
from press_selfhosted.engine.clients.proxy import Proxy
from press_selfhosted.engine.clients.registry import RegistryTarget
from press_selfhosted.engine.clients.servers import ContainerServer, DatabaseEndpoint
from press_selfhosted.engine.jobs import handlers
from press_selfhosted.engine.jobs.benches import BenchSettings
from press_selfhosted.engine.jobs.builds import BuilderSettings
from press_selfhosted.engine.jobs.handlers import Handler
from press_selfhosted.engine.jobs.site_steps import SiteSettings
from press_selfhosted.glue import backups as glue

APP_IP = "10.9.0.1"


def records(
	app: ContainerServer,
	db: ContainerServer,
	proxy: ContainerServer,
	site_benches: dict[str, str] | None = None,
	store: StoreConfig | None = None,
) -> PressRecords:
	"""Press's records of the platform: its three servers, the Database Server's MariaDB as the app
	server's database, and Press's Agent Job records standing as the job store's rows (``store``)."""
	return PressRecords(
		[app, db, proxy],
		DatabaseEndpoint(server=db.name, host=naming.mariadb_container(db.container_prefix)),
		proxy,
		{} if site_benches is None else site_benches,
		functools.partial(latest_status, store) if store else no_press_jobs,
	)


def latest_status(store: StoreConfig, job_type: str, site: str) -> str | None:
	"""What Press would have recorded of the latest ``job_type`` job of ``site``: its status in the store."""
	connection = store.connect()
	try:
		with connection.cursor() as cursor:
			cursor.execute(
				f"SELECT status FROM `{JOB_TABLE}` WHERE job_type = %s AND site = %s ORDER BY id DESC LIMIT 1",
				(job_type, site),
			)
			row = cursor.fetchone()
	finally:
		connection.close()
	return row["status"] if row else None


def servers(endpoints: dict, prefix: str) -> tuple[ContainerServer, ContainerServer, ContainerServer]:
	network = naming.resource_name(prefix, "net")

	def make(name: str, server_type: str, **more) -> ContainerServer:
		host = DockerHost(server=name, socket=endpoints["docker"]["base_url"])
		return ContainerServer(name, server_type, prefix, host, network, **more)

	return (
		make(f"{prefix}-app.local", "Server", private_ip=APP_IP, front_image=endpoints["images"]["front"]),
		make(f"{prefix}-db.local", "Database Server"),
		make(f"{prefix}-proxy.local", "Proxy Server"),
	)


def settings_of(endpoints: dict, contexts_dir: str) -> dict:
	"""What the Frappe layer reads from its settings to build the handlers, as plain values."""
	return {
		"proxy": proxy_settings(endpoints),
		"builder": BuilderSettings(
			workdir=contexts_dir,
			push_retry_wait=1,
			registry_target=lambda url: RegistryTarget(
				url=url, ca_bundle=endpoints["registry_tls"]["ca_file"]
			),
		),
		"benches": BenchSettings(health_timeout=60),
		"sites": SiteSettings(),
		"mariadb_image": endpoints["images"]["mariadb"],
	}


@dataclass
class Platform:
	"""The cluster and Press's side of the agent protocol (POST, then poll ``jobs/<id>``)."""

	prefix: str
	topology: PressRecords
	secrets: Secrets
	store_config: StoreConfig
	found: list[Handler]
	router: Router
	mariadb: MariaDB
	storage: dict  # the default Storage Configuration (non-secret fields)
	endpoints: dict = field(default_factory=dict)
	backups: dict = field(default_factory=dict)  # Site Backup stand-ins by database object key
	workers: list[threading.Thread] = field(default_factory=list)
	contexts: str = ""  # the builder's work directory (BuilderSettings.workdir)

	def executor(self) -> Executor:
		return Executor(
			JobStore(self.store_config),
			handlers.index(self.found),
			self.topology,
			self.secrets,
			DockerHosts(),
			ExecutorSettings(flush_interval=0.2),
			enqueue=self.enqueue,
		)

	def enqueue(self, job_id: int) -> None:
		worker = threading.Thread(target=lambda: self.executor().run(job_id), daemon=True)
		self.workers.append(worker)
		worker.start()

	def enrich(self, job_type: str, site: str | None, payload: dict) -> dict:
		"""The glue's ``storage_payload`` with the default Storage Configuration and Site Backups here."""
		if job_type not in glue.BACKUP_JOB_TYPES + glue.RESTORE_JOB_TYPES:
			return {}
		storage = glue.storage_fields(self.storage)
		if job_type in glue.RESTORE_JOB_TYPES:
			key = glue.key_of_url(payload.get("database"), storage["bucket"])
			if key in self.backups:
				storage["backup"] = glue.recorded_backup(self.backups[key], payload)
		return {"storage": storage}

	def record_backup(self, data: dict) -> dict:
		"""Press's Site Backup from a successful backup job's data (with the glue's MinIO fields)."""
		files = data["backups"]
		record = {
			field_name: files[kind]["file"] for kind, field_name in glue.FILE_FIELDS.items() if kind in files
		}
		record.update(glue.site_backup_fields(data))
		self.backups[data["offsite"][files["database"]["file"]]] = record
		return record

	def post(self, server: ContainerServer, path: str, data: dict, method: str = "POST") -> int:
		agent_job_id = f"AJ-{uuid.uuid4().hex[:8]}"
		# Press keeps the request on its Agent Job (request_data), where the glue reads a secret the job
		# store holds masked (a build token)
		self.secrets.requests[agent_job_id] = copy.deepcopy(data)
		response = self.router.handle(
			server.name, method, path, data, agent_job_id=agent_job_id, server_type=server.server_type
		)
		assert response.status_code == 200, response.json
		assert set(response.json) == {"job"} and isinstance(response.json["job"], int)
		return response.json["job"]

	def poll(self, server: ContainerServer, job_id: int, timeout: float = 300) -> dict:
		"""Press's poll until the job ends; checks the shape ``update_job``/``update_steps`` read."""
		deadline = time.monotonic() + timeout
		while True:
			response = self.router.handle(
				server.name, "GET", f"jobs/{job_id}", server_type=server.server_type
			)
			assert response.status_code == 200, response.json
			job = response.json
			if job["status"] in FINISHED:
				break
			assert time.monotonic() < deadline, f"job {job_id} still {job['status']}: {job}"
			# the scheduler's sweep, as often as Press polls here: resumes a waiting step
			sweep(self.router.store, self.enqueue, min_age=0)
			time.sleep(0.3)
		assert {"id", "name", "status", "data", "start", "end", "duration", "steps"} <= set(job)
		assert job["id"] == job_id
		if job["status"] == "Failure":
			assert job["data"]["output"] and job["data"]["traceback"], job
		for step in job["steps"]:
			assert {"name", "status", "data", "start", "end", "duration"} <= set(step), step
			if job["name"] != "Run Remote Builder":  # its steps' data is shaped for Press's build parsers
				assert {"output", "traceback"} <= set(step["data"]), step
		return job

	def run(self, server: ContainerServer, path: str, data: dict, method: str = "POST") -> dict:
		"""POST then poll; the job must succeed with every step Success."""
		job = self.poll(server, self.post(server, path, data, method))
		assert job["status"] == "Success", json.dumps(job, indent=1)[-4000:]
		assert {step["status"] for step in job["steps"]} == {"Success"}, job["steps"]
		return job


def start_platform(
	client, endpoints: dict, store_config: StoreConfig, prefix: str, contexts_dir: str, bucket: str
):
	"""The cluster network and the Database Server's MariaDB; the bench and proxy come from jobs."""
	app, db, proxy = servers(endpoints, prefix)
	client.networks.create(app.network, labels=naming.labels(app.name, "network"))
	root_password = f"root-{uuid.uuid4().hex}"
	mariadb = ensure_mariadb(client, MariaDBSpec(db, endpoints["images"]["mariadb"]), root_password)
	s3 = endpoints["s3"]
	secrets = Secrets(
		{
			"mariadb_root_password": root_password,
			"admin_password": f"adm-{uuid.uuid4().hex[:12]}",
			"registry_password": endpoints["registry_tls"]["password"],
			"offsite_access_key": s3["access_key"],
			"offsite_secret_key": s3["secret_key"],
		}
	)
	found = all_handlers(**settings_of(endpoints, contexts_dir))
	topology = records(app, db, proxy, store=store_config)
	storage = {
		"endpoint_url": s3["endpoint_url"],
		"default_bucket": bucket,
		"region": s3["region"],
		"verify_tls": 0,
	}
	platform = Platform(prefix, topology, secrets, store_config, found, None, mariadb, storage, endpoints)  # type: ignore[arg-type]
	platform.contexts = contexts_dir
	platform.router = Router(
		found, JobStore(store_config), platform.enqueue, topology, DockerHosts(), platform.enrich
	)
	return platform


def remove_platform(client, prefix: str) -> None:
	"""Everything labelled for the cluster's three servers, then the network (exact labels only)."""
	servers = (f"{prefix}-app.local", f"{prefix}-db.local", f"{prefix}-proxy.local")
	for server in servers:
		filters = {"label": naming.label_filters(server)}
		for container in client.containers.list(all=True, filters=filters):
			container.remove(force=True, v=True)
		for volume in client.volumes.list(filters=filters):
			volume.remove(force=True)
	for server in servers:  # the benches' own networks, once no container is on them
		for network in client.networks.list(filters={"label": naming.label_filters(server)}):
			if network.name != naming.resource_name(prefix, "net"):
				network.remove()
	for network in client.networks.list(names=[naming.resource_name(prefix, "net")]):
		network.remove()


# --- Press's side of a site's life --------------------------------------------------------------------


def through_traefik(
	docker_client, platform, host: str, path: str = "/", headers: dict | None = None
) -> tuple[int, str]:
	"""GET on Traefik's published web port with ``host`` as Host header, as a browser would."""
	traefik = docker_client.containers.get(naming.resource_name(platform.prefix, "traefik"))
	port = int(traefik.ports["80/tcp"][0]["HostPort"])
	connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
	try:
		connection.request("GET", path, headers={"Host": host, **(headers or {})})
		response = connection.getresponse()
		return response.status, response.read().decode(errors="replace")
	finally:
		connection.close()


def routed_bench(docker_client, platform, site: str) -> str:
	"""The bench the site's route on the proxy (its site router's map) names."""
	proxy = Proxy.existing(docker_client, platform.topology.proxy, proxy_settings(platform.endpoints))
	return proxy.site(site).bench


def update_payload(target: str, **more) -> dict:
	"""Press's update_site body (press.agent.Agent.update_site), for the bench the site is on."""
	return {
		"target": target,
		"activate": True,
		"skip_failing_patches": False,
		"skip_backups": False,
		"before_migrate_scripts": {},
		"skip_search_index": True,
		**more,
	}


def upstream(platform) -> str:
	return f"proxy/upstreams/{platform.topology.app.private_ip}"


def new_site_payload(platform, site: str, apps=("frappe",)) -> dict:
	"""Press's new_site body (press-facts §2.5); secrets in clear as Press sends them."""
	return {
		"name": site,
		"config": {"developer_mode": 0, "plan": "starter"},
		"apps": list(apps),
		"mariadb_root_password": "press-sends-this-in-clear",
		"admin_password": platform.secrets.values["admin_password"],
		"managed_database_config": {},
	}


def create_site(platform, site: str, bench: str) -> tuple[dict, dict]:
	"""Press's site insert: New Site on the app server and Add Site to Upstream on the proxy, together."""
	platform.topology.site_benches[site] = bench
	app, proxy = platform.topology.app, platform.topology.proxy
	new_site = platform.post(app, f"benches/{bench}/sites", new_site_payload(platform, site))
	upstream_job = platform.post(proxy, f"{upstream(platform)}/sites", {"name": site})
	return platform.poll(app, new_site), platform.poll(proxy, upstream_job)


# --- the crash tests' worker subprocess --------------------------------------------------------------


def crash_world(platform: Platform) -> dict:
	"""What a worker subprocess needs to rebuild this platform's executor (no secrets but the test's)."""

	def server(s: ContainerServer) -> dict:
		return {**vars(s), "docker": vars(s.docker)}

	t = platform.topology
	return {
		"servers": [server(s) for s in (t.app, t.db, t.proxy)],
		"site_benches": t.site_benches,
		"store": vars(platform.store_config),
		"secrets": platform.secrets.values,
		"endpoints": platform.endpoints,
		"contexts": platform.contexts,
	}


def crash_executor() -> Executor:
	"""Factory of ``python -m press_selfhosted.engine.agent.worker --factory platform_support:crash_executor``.

	Every handler of the catalog, its steps lingering ``PSA_LINGER`` seconds after doing their work and
	the step at position ``PSA_HOLD_STEP`` until the worker is killed (tests/crash_support.py), with the
	platform's settings and Press's records from ``PSA_PLATFORM_WORLD``.
	"""
	world = json.loads(os.environ["PSA_PLATFORM_WORLD"])
	linger = float(os.environ.get("PSA_LINGER", "0"))
	app, db, proxy = (ContainerServer(**{**s, "docker": DockerHost(**s["docker"])}) for s in world["servers"])
	hold = int(os.environ["PSA_HOLD_STEP"]) if os.environ.get("PSA_HOLD_STEP") else None
	found = lingering(all_handlers(**settings_of(world["endpoints"], world["contexts"])), linger, hold)
	return Executor(
		JobStore(StoreConfig(**world["store"])),
		handlers.index(found),
		records(app, db, proxy, world["site_benches"], StoreConfig(**world["store"])),
		Secrets(world["secrets"]),
		DockerHosts(),
		CRASH_SETTINGS,
	)
