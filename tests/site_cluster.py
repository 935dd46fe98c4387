"""A small container cluster for the bench stand-in, database and site tests.

One Docker network, the Database Server's MariaDB container made by ``engine.clients.mariadb``, and bench
containers started the way the bench lifecycle starts them (backend ``<prefix>-<bench>`` with the
``<prefix>-<bench>-sites`` volume at ``sites/``, a front ``<prefix>-<bench>-front`` sharing it).
Everything carries the ``press.server`` label of the test's own servers and is removed by label.
"""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import dataclass

import docker
from fakes import PressJobs, PressRecords, Secrets, job_record

from press_selfhosted.engine import naming
from press_selfhosted.engine.agent import jobs, runner
from press_selfhosted.engine.agent.runner import Contexts
from press_selfhosted.engine.clients.docker_hosts import DockerHost, DockerHosts
from press_selfhosted.engine.clients.mariadb import MariaDB, MariaDBSpec, ensure_mariadb
from press_selfhosted.engine.clients.servers import ContainerServer, DatabaseEndpoint

SITES = "/home/frappe/frappe-bench/sites"

# The front's routing by Host header, as the bench lifecycle configures it (static files omitted).
FRONT_CONF = """server {
	listen 80 default_server;
	location / {
		proxy_set_header Host $host;
		proxy_set_header X-Frappe-Site-Name $host;
		proxy_pass http://%s:8000;
	}
}
"""


@dataclass
class Cluster:
	prefix: str
	network: str
	app_server: ContainerServer
	db_server: ContainerServer
	db: MariaDB
	root_password: str

	@property
	def endpoint(self) -> DatabaseEndpoint:
		return DatabaseEndpoint(server=self.db_server.name, host=self.db.container.name, port=3306)


def server(endpoints: dict, name: str, server_type: str, prefix: str, network: str) -> ContainerServer:
	host = DockerHost(server=name, socket=endpoints["docker"]["base_url"])
	return ContainerServer(
		name=name, server_type=server_type, container_prefix=prefix, docker=host, network=network
	)


def start_cluster(client: docker.DockerClient, endpoints: dict, prefix: str) -> Cluster:
	network = naming.resource_name(prefix, "net")
	app = server(endpoints, f"{prefix}-app.local", "Server", prefix, network)
	dbs = server(endpoints, f"{prefix}-db.local", "Database Server", prefix, network)
	client.networks.create(network, labels=naming.labels(app.name, "network"))
	root_password = f"root-{prefix}-secret"
	db = ensure_mariadb(client, MariaDBSpec(dbs, endpoints["images"]["mariadb"]), root_password)
	return Cluster(prefix, network, app, dbs, db, root_password)


def put_file(container, directory: str, name: str, text: str, mode: int = 0o644, uid: int = 1000) -> None:
	buffer = io.BytesIO()
	data = text.encode()
	with tarfile.open(fileobj=buffer, mode="w") as archive:
		info = tarfile.TarInfo(name)
		info.size, info.mode, info.uid, info.gid = len(data), mode, uid, uid
		archive.addfile(info, io.BytesIO(data))
	container.put_archive(directory, buffer.getvalue())


def start_bench(
	client: docker.DockerClient, endpoints: dict, cluster: Cluster, bench: str, front: bool = True
):
	"""Backend (and front) of ``bench``; ``common_site_config.json`` points at the cluster's MariaDB."""
	name = naming.resource_name(cluster.prefix, bench)
	labels = naming.labels(cluster.app_server.name, "bench", bench=bench)
	sites = naming.resource_name(cluster.prefix, bench, "sites")
	client.volumes.create(sites, labels=labels)
	backend = client.containers.run(
		endpoints["images"]["bench"],
		name=name,
		hostname=name,
		labels=labels,
		volumes={sites: {"bind": SITES, "mode": "rw"}},
		network=cluster.network,
		detach=True,
	)
	config = {"db_host": cluster.db.container.name, "db_port": 3306, "socketio_port": 9000}
	put_file(backend, SITES, "common_site_config.json", json.dumps(config))
	if front:
		front_container = client.containers.create(
			endpoints["images"]["front"],
			name=f"{name}-front",
			labels=naming.labels(cluster.app_server.name, "bench-front", bench=bench),
			volumes={sites: {"bind": SITES, "mode": "ro"}},
			network=cluster.network,
		)
		put_file(front_container, "/etc/nginx/sites-enabled", "bench.conf", FRONT_CONF % name, uid=0)
		front_container.start()
	return backend


def remove_cluster(client: docker.DockerClient, cluster_prefix: str) -> None:
	"""Everything labelled for the test's two servers: containers, volumes, then the network.

	Filtered by exact label: a broad listing would inspect other tests' containers, which may vanish
	between the listing and the inspection.
	"""
	servers = (f"{cluster_prefix}-app.local", f"{cluster_prefix}-db.local")
	for server in servers:
		filters = {"label": naming.label_filters(server)}
		for container in client.containers.list(all=True, filters=filters):
			container.remove(force=True, v=True)
		for volume in client.volumes.list(filters=filters):
			volume.remove(force=True)
	for server in servers:
		for network in client.networks.list(filters={"label": naming.label_filters(server)}):
			if network.name != naming.resource_name(cluster_prefix, "net"):
				network.remove()
	for network in client.networks.list(names=[naming.resource_name(cluster_prefix, "net")]):
		network.remove()


def sql_as(cluster: Cluster, user: str, password: str, query: str, bench_container) -> tuple[int, str]:
	"""Run ``query`` as a site's own user from the bench container, as the site's code would connect."""
	exit_code, output = bench_container.exec_run(
		[
			"mariadb",
			f"--user={user}",
			f"--host={cluster.db.container.name}",
			"--batch",
			"--skip-column-names",
			"-e",
			query,
		],
		environment={"MYSQL_PWD": password},
	)
	return exit_code, output.decode(errors="replace")


# --- running handlers' steps with the executor's runner (no job store) ---------------------------


def records(cluster: Cluster, press_jobs: PressJobs | None = None) -> PressRecords:
	"""Press's records of the cluster: its app and Database Server, the MariaDB container as the app
	server's database, and what Press recorded of its proxy's jobs."""
	return PressRecords(
		[cluster.app_server, cluster.db_server],
		cluster.endpoint,
		job_status=(press_jobs or PressJobs()).status,
	)


def contexts(client: docker.DockerClient, topology, secrets) -> Contexts:
	"""StepContexts as the executor makes them, every server's Docker being ``client``."""
	return Contexts(topology, secrets, DockerHosts(lambda host: client))


def run_steps(
	client,
	cluster: Cluster,
	handler,
	bench: str,
	site: str | None,
	payload: dict,
	secrets: dict,
	steps: int | None = None,
	press_jobs: PressJobs | None = None,
	waits: int = 10,
) -> list[str]:
	"""Run the first ``steps`` steps of ``handler`` (all by default) with the executor's step runner;
	returns the output and raises a failed step's error. A waiting step runs again, as the sweep would,
	up to ``waits`` times."""
	record = job_record(handler, cluster.app_server, payload, bench, site)
	output: list[str] = []
	context = contexts(client, records(cluster, press_jobs), Secrets(secrets)).for_job(record)
	done: set[int] = set()
	for _ in range(waits + 1):
		run = runner.run_steps(record, handler.steps[:steps], context, runner.Journal(output.append), done)
		run.check()
		if run.status != runner.WAITING:
			return output
		done |= {step.idx for step in run.steps if step.status == jobs.SUCCESS}
	raise run.steps[-1].error


def new_site_payload(site: str, apps=("frappe",), **more) -> dict:
	"""Press's New Site body (press.agent.Agent.new_site); the secrets masked as the job store keeps them."""
	return {
		"name": site,
		"apps": list(apps),
		"config": {"host_name": f"https://{site}"},
		"mariadb_root_password": "********",
		"admin_password": "********",
		"managed_database_config": {},
		**more,
	}
