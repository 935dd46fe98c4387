"""Running proxy job steps directly: a StepContext over Press's records and secrets (tests/fakes.py);
Docker, Traefik and the containers are real.
"""

from __future__ import annotations

import datetime
import io
import socket
import ssl
import tarfile
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fakes import PressRecords, Secrets, job_record

from press_selfhosted.engine import naming
from press_selfhosted.engine.clients.docker_hosts import DockerHost
from press_selfhosted.engine.clients.proxy import ProxySettings
from press_selfhosted.engine.clients.servers import ContainerServer
from press_selfhosted.engine.jobs import benches
from press_selfhosted.engine.jobs.handlers import Handler, JobRecord, StepContext


def container_server(endpoints: dict, name: str, server_type: str, prefix: str, network: str, **more):
	host = DockerHost(server=name, socket=endpoints["docker"]["base_url"])
	return ContainerServer(name, server_type, prefix, host, network, **more)


def run_job(
	handler: Handler,
	server: ContainerServer,
	client,
	topology: PressRecords,
	payload: dict,
	*,
	site: str | None = None,
	secrets: Secrets | None = None,
) -> tuple[JobRecord, list[str]]:
	"""Run every step of ``handler`` in order as the executor would; returns the job and its log."""
	output: list[str] = []
	job = job_record(handler, server, payload, site=site)
	ctx = StepContext(job, server, client, topology, secrets or Secrets(), output.append, lambda s: client)
	for step in handler.steps:
		step.run(ctx)
	return job, output


# A bench backend answering websockets on :9000 as the socketio server would: the handshake (101),
# then each text frame echoed back after the site name the request carried; :8000 and plain requests
# on :9000 answer {"site": ...} as the stand-in bench does.
WEBSOCKET_BACKEND = r"""
import base64, hashlib, http.server, json, struct, threading

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        site = self.headers.get("X-Frappe-Site-Name") or self.headers.get("Host") or ""
        if self.headers.get("Upgrade", "").lower() != "websocket":
            body = json.dumps({"site": site}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        accept = base64.b64encode(hashlib.sha1(
            (self.headers["Sec-WebSocket-Key"] + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept.decode())
        self.end_headers()
        self.wfile.flush()
        while True:
            head = self.rfile.read(2)
            if len(head) < 2 or head[0] & 0x0F == 8:
                return
            length = head[1] & 0x7F
            if length == 126:
                length = struct.unpack("!H", self.rfile.read(2))[0]
            mask = self.rfile.read(4)
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(self.rfile.read(length)))
            reply = site.encode() + b" " + data
            self.wfile.write(bytes([0x81, len(reply)]) + reply)
            self.wfile.flush()

    def log_message(self, *args):
        pass

for port in (9000, 8000):
    server = http.server.ThreadingHTTPServer(("0.0.0.0", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=(port == 9000)).start()
"""


def start_bench_pair(
	client, endpoints: dict, app_server: ContainerServer, bench: str, websocket: bool = False
) -> None:
	"""Backend ``<prefix>-<bench>`` and front ``<prefix>-<bench>-front`` named and labelled as the
	bench lifecycle makes them (engine.jobs.benches), on the cluster network; the front runs the production
	configuration (benches.FRONT_CONF). ``websocket``: the backend answers websockets on :9000."""
	backend = naming.resource_name(app_server.container_prefix, bench)
	client.containers.run(
		endpoints["images"]["bench"],
		["python3", "-c", WEBSOCKET_BACKEND] if websocket else None,
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
	data = benches.FRONT_CONF.format(sites=benches.SITES, backend=backend).encode()
	buffer = io.BytesIO()
	with tarfile.open(fileobj=buffer, mode="w") as archive:
		info = tarfile.TarInfo(benches.FRONT_CONF_NAME)
		info.size = len(data)
		archive.addfile(info, io.BytesIO(data))
	front.put_archive(benches.FRONT_CONF_PATH, buffer.getvalue())
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


def verification_fails(port: int, host: str, root_pem: str, timeout: float) -> bool:
	"""Whether, within ``timeout``, the certificate served for ``host`` stops verifying against
	``root_pem`` (polled: Traefik applies a change asynchronously)."""
	context = ssl.create_default_context(cadata=root_pem)
	deadline = time.monotonic() + timeout
	while True:
		try:
			tls_request(port, host, context)
		except ssl.SSLCertVerificationError:
			return True
		if time.monotonic() > deadline:
			return False
		time.sleep(0.3)


def proxy_settings(endpoints: dict, **more) -> ProxySettings:
	"""A test proxy on loopback, on ports Docker picks, from the locally built images; ``more`` overrides.
	``reload_timeout`` only bounds a failure: a busy CI host may take long."""
	base = {"bind_address": "127.0.0.1", "http_port": 0, "https_port": 0, "reload_timeout": 90}
	return ProxySettings(
		traefik_image=endpoints["images"]["traefik"],
		router_image=endpoints["images"]["front"],
		**{**base, **more},
	)


def self_signed(domain: str) -> tuple[str, str]:
	"""A certificate for ``domain`` and its key (PEM), as Press sends a custom domain's."""
	key = ec.generate_private_key(ec.SECP256R1())
	subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)])
	now = datetime.datetime.now(datetime.timezone.utc)
	certificate = (
		x509.CertificateBuilder()
		.subject_name(subject)
		.issuer_name(subject)
		.public_key(key.public_key())
		.serial_number(x509.random_serial_number())
		.not_valid_before(now - datetime.timedelta(minutes=5))
		.not_valid_after(now + datetime.timedelta(days=1))
		.add_extension(x509.SubjectAlternativeName([x509.DNSName(domain)]), critical=False)
		.sign(key, hashes.SHA256())
	)
	key_pem = key.private_bytes(
		serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
	).decode()
	return certificate.public_bytes(serialization.Encoding.PEM).decode(), key_pem
