"""Running proxy job steps directly: a StepContext over fakes of what the Frappe layer provides.

Only the topology and the secret source are fakes (they stand for Press's documents); Docker, Traefik
and the containers are real.
"""

from __future__ import annotations

import io
import socket
import ssl
import tarfile
import time
from dataclasses import dataclass, field

from press_selfhosted.engine import naming
from press_selfhosted.engine.agent.handlers import ContainerServer, Handler, JobRecord, StepContext
from press_selfhosted.engine.docker_hosts import DockerHost


@dataclass
class FakeTopology:
	"""Press's records for the test: app servers by IP and the bench of each site."""

	app_servers: dict[str, ContainerServer] = field(default_factory=dict)
	benches: dict[str, str] = field(default_factory=dict)
	proxies: list[ContainerServer] = field(default_factory=list)

	def server(self, server_type: str, name: str) -> ContainerServer:
		known = [*self.app_servers.values(), *self.proxies]
		return next(s for s in known if s.name == name and s.server_type == server_type)

	def app_server_by_ip(self, ip: str) -> ContainerServer:
		return self.app_servers[ip]

	def database_for(self, app_server: str):
		raise NotImplementedError("proxy jobs never ask for a database")

	def bench_for_site(self, site: str) -> str:
		return self.benches[site]


@dataclass
class FakeSecrets:
	values: dict[str, str] = field(default_factory=dict)

	def secret(self, job: JobRecord, key: str) -> str:
		return self.values.get(key, "")


def container_server(endpoints: dict, name: str, server_type: str, prefix: str, network: str, **more):
	host = DockerHost(server=name, socket=endpoints["docker"]["base_url"])
	return ContainerServer(name, server_type, prefix, host, network, **more)


def run_job(
	handler: Handler,
	server: ContainerServer,
	client,
	topology: FakeTopology,
	payload: dict,
	*,
	site: str | None = None,
	secrets: FakeSecrets | None = None,
) -> tuple[JobRecord, list[str]]:
	"""Run every step of ``handler`` in order as the executor would; returns the job and its log."""
	output: list[str] = []
	job = JobRecord(
		id=1,
		job_type=handler.job_type,
		server=server.name,
		server_type=server.server_type,
		method=handler.method,
		path=handler.path,
		bench=None,
		site=site,
		payload=payload,
	)
	ctx = StepContext(
		job, server, client, topology, secrets or FakeSecrets(), output.append, lambda s: client
	)
	for step in handler.steps:
		step.run(ctx)
	return job, output


# The front as the bench lifecycle configures it, reduced to the routing: it keeps the
# X-Frappe-Site-Name Traefik sends (custom domains) and falls back to the Host.
FRONT_CONF = """map $http_x_frappe_site_name $press_site { default $http_x_frappe_site_name; "" $host; }
server {
	listen 80 default_server;
	location / {
		proxy_set_header Host $host;
		proxy_set_header X-Frappe-Site-Name $press_site;
		proxy_pass http://%s:8000;
	}
}
"""


def start_bench_pair(client, endpoints: dict, app_server: ContainerServer, bench: str) -> None:
	"""Backend ``<prefix>-<bench>`` and front ``<prefix>-<bench>-front`` named and labelled as the
	bench lifecycle makes them (engine.benches), on the cluster network."""
	backend = naming.resource_name(app_server.container_prefix, bench)
	client.containers.run(
		endpoints["images"]["bench"],
		name=backend,
		labels=naming.labels(app_server.name, "bench", bench=bench),
		network=app_server.network,
		detach=True,
	)
	front = client.containers.create(
		endpoints["images"]["front"],
		name=f"{backend}-front",
		labels=naming.labels(app_server.name, "bench-front", bench=bench),
		network=app_server.network,
	)
	data = (FRONT_CONF % backend).encode()
	buffer = io.BytesIO()
	with tarfile.open(fileobj=buffer, mode="w") as archive:
		info = tarfile.TarInfo("bench.conf")
		info.size = len(data)
		archive.addfile(info, io.BytesIO(data))
	front.put_archive("/etc/nginx/sites-enabled", buffer.getvalue())
	front.start()


def poll_until(condition, timeout: float, what: str):
	"""``condition()``'s first true value, asked again until ``timeout`` seconds have passed."""
	deadline = time.monotonic() + timeout
	while not (value := condition()):
		if time.monotonic() > deadline:
			raise AssertionError(f"still waiting after {timeout:.0f}s: {what}")
		time.sleep(0.5)
	return value


def remove_servers(client, servers: list[str], network: str) -> None:
	for server in servers:
		filters = {"label": f"{naming.SERVER}={server}"}
		for container in client.containers.list(all=True, filters=filters):
			container.remove(force=True, v=True)
		for volume in client.volumes.list(filters=filters):
			volume.remove(force=True)
	for server in servers:
		for found in client.networks.list(filters={"label": f"{naming.SERVER}={server}"}):
			if found.name != network:
				found.remove()
	for found in client.networks.list(names=[network]):
		found.remove()


# --- TLS as a client sees it ----------------------------------------------------------------------


def tls_request(port: int, host: str, context: ssl.SSLContext) -> tuple[bytes, str]:
	"""GET / over HTTPS with SNI ``host``: the served certificate (DER) and the response."""
	with (
		socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
		context.wrap_socket(raw, server_hostname=host) as tls,
	):
		tls.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
		answer = b""
		while chunk := tls.recv(65536):
			answer += chunk
		return tls.getpeercert(binary_form=True), answer.decode(errors="replace")


def verified_request(port: int, host: str, root_pem: str, timeout: float) -> tuple[bytes, str]:
	"""Retry until the certificate served for ``host`` verifies against ``root_pem`` (Traefik obtains
	or loads it asynchronously); the last TLS error is raised after ``timeout``."""
	context = ssl.create_default_context(cadata=root_pem)
	deadline = time.monotonic() + timeout
	while True:
		try:
			return tls_request(port, host, context)
		except ssl.SSLError:
			if time.monotonic() > deadline:
				raise
			time.sleep(0.5)
