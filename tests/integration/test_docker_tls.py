"""Docker over TLS with client certificates (``tcp://`` sockets), against a real TLS endpoint.

Starting a second dockerd is too heavy here, so the test puts a TLS-terminating TCP proxy in front of
our dockerd's unix socket: Python's ``ssl`` server with a certificate from the services' private CA,
requiring client certificates signed by that CA (what ``dockerd --tlsverify`` does). The engine's
client path (``DockerHosts`` + files written by ``docker_tls.materialize``) must work through it, and a
wrong or missing client certificate must fail with the operator message naming server and socket.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
import ssl
import stat
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from press_selfhosted.engine import naming
from press_selfhosted.engine.clients.docker_hosts import DockerHost, DockerHosts
from press_selfhosted.engine.clients.docker_tls import DockerTLS, materialize, server_folder
from press_selfhosted.engine.errors import DockerUnreachable, ValidationError
from press_selfhosted.record_rules.records import check_docker_tls


def _pem(cert) -> str:
	return cert.public_bytes(serialization.Encoding.PEM).decode()


def _key_pem(key) -> str:
	return key.private_bytes(
		serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
	).decode()


def _issue(issuer_cert, issuer_key, common_name: str, usage, ip: str | None = None, ca: bool = False):
	key = ec.generate_private_key(ec.SECP256R1())
	now = datetime.datetime.now(datetime.timezone.utc)
	subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
	builder = (
		x509.CertificateBuilder()
		.subject_name(subject)
		.issuer_name(issuer_cert.subject if issuer_cert else subject)
		.public_key(key.public_key())
		.serial_number(x509.random_serial_number())
		.not_valid_before(now - datetime.timedelta(minutes=5))
		.not_valid_after(now + datetime.timedelta(days=1))
		.add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
	)
	if usage:
		builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
	if ip:
		builder = builder.add_extension(
			x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), False
		)
	return builder.sign(issuer_key or key, hashes.SHA256()), key


@pytest.fixture(scope="module")
def pki(endpoints):
	ca_cert = x509.load_pem_x509_certificate(Path(endpoints["ca"]["cert_file"]).read_bytes())
	ca_key = serialization.load_pem_private_key(Path(endpoints["ca"]["key_file"]).read_bytes(), None)
	server = _issue(ca_cert, ca_key, "dockerd", ExtendedKeyUsageOID.SERVER_AUTH, ip="127.0.0.1")
	client = _issue(ca_cert, ca_key, "press", ExtendedKeyUsageOID.CLIENT_AUTH)
	rogue_ca = _issue(None, None, "rogue-ca", None, ca=True)
	rogue = _issue(rogue_ca[0], rogue_ca[1], "press", ExtendedKeyUsageOID.CLIENT_AUTH)
	return {
		"ca": _pem(ca_cert),
		"server": (_pem(server[0]), _key_pem(server[1])),
		"client": DockerTLS(_pem(ca_cert), _pem(client[0]), _key_pem(client[1])),
		"rogue": DockerTLS(_pem(ca_cert), _pem(rogue[0]), _key_pem(rogue[1])),
	}


def _pump(source, target) -> None:
	try:
		while data := source.recv(65536):
			target.sendall(data)
	except OSError:
		pass
	finally:
		for end in (source, target):
			try:
				end.shutdown(socket.SHUT_RDWR)
			except OSError:
				pass


@pytest.fixture(scope="module")
def tls_proxy(endpoints, pki, tmp_path_factory):
	"""``tcp://127.0.0.1:<port>``: TLS with required client certificates, forwarded to our dockerd."""
	folder = tmp_path_factory.mktemp("dockerd-tls")
	(folder / "cert.pem").write_text(pki["server"][0])
	(folder / "key.pem").write_text(pki["server"][1])
	(folder / "ca.pem").write_text(pki["ca"])
	context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
	context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
	context.load_verify_locations(folder / "ca.pem")
	context.verify_mode = ssl.CERT_REQUIRED
	unix_path = endpoints["docker"]["base_url"].removeprefix("unix://")
	listener = socket.create_server(("127.0.0.1", 0))
	stop = threading.Event()

	def serve(connection) -> None:
		try:
			secure = context.wrap_socket(connection, server_side=True)
		except (ssl.SSLError, OSError):
			connection.close()
			return
		upstream = socket.socket(socket.AF_UNIX)
		upstream.connect(unix_path)
		threading.Thread(target=_pump, args=(upstream, secure), daemon=True).start()
		_pump(secure, upstream)

	def accept() -> None:
		while not stop.is_set():
			try:
				connection, _ = listener.accept()
			except OSError:
				return
			threading.Thread(target=serve, args=(connection,), daemon=True).start()

	threading.Thread(target=accept, daemon=True).start()
	yield f"tcp://127.0.0.1:{listener.getsockname()[1]}"
	stop.set()
	listener.close()


def test_materialize_writes_private_files_and_rewrites_only_changes(tmp_path, pki):
	host = DockerHost(server="app/../1.example.com", socket="tcp://10.0.0.5:2376")
	first = materialize(tmp_path, host, pki["client"])
	folder = server_folder(tmp_path, host.server)
	assert folder.parent == tmp_path and stat.S_IMODE(folder.stat().st_mode) == 0o700
	for path in (first.tls_ca_file, first.tls_cert_file, first.tls_key_file):
		assert Path(path).parent == folder and stat.S_IMODE(os.stat(path).st_mode) == 0o600
	assert Path(first.tls_key_file).read_text().strip() == pki["client"].key.strip()
	inode = os.stat(first.tls_ca_file).st_ino
	again = materialize(tmp_path, host, pki["client"])
	assert again == first and os.stat(first.tls_ca_file).st_ino == inode  # unchanged: not rewritten
	rotated = materialize(tmp_path, host, pki["rogue"])
	assert Path(first.tls_cert_file).read_text().strip() == pki["rogue"].cert.strip()
	# same paths, new content: a different DockerHost, so DockerHosts connects anew with the new files
	assert rotated != first and rotated.tls_cert_file == first.tls_cert_file
	hosts = DockerHosts(factory=lambda host: object())
	assert hosts.client(rotated) is not hosts.client(first)
	assert not [p for p in folder.iterdir() if p.name.startswith(".tmp-")]


def test_the_engine_reaches_docker_through_tls_with_a_client_certificate(
	tls_proxy, pki, tmp_path, docker_client, unique
):
	server = f"t{unique}-app.local"
	host = materialize(tmp_path, DockerHost(server=server, socket=tls_proxy), pki["client"])
	hosts = DockerHosts()
	try:
		assert hosts.call(host, "reading info", lambda c: c.info()["ID"]) == docker_client.info()["ID"]
		labels = naming.labels(server, "probe")
		created = hosts.call(
			host,
			"creating a probe volume",
			lambda c: c.volumes.create(name=f"t{unique}-probe", labels=labels),
		)
		assert created.name == f"t{unique}-probe"
		# seen from outside, through the plain socket
		assert docker_client.volumes.get(f"t{unique}-probe").attrs["Labels"][naming.SERVER] == server
		listed = hosts.call(
			host, "listing", lambda c: c.volumes.list(filters={"label": naming.label_filters(server)})
		)
		assert [volume.name for volume in listed] == [f"t{unique}-probe"]
	finally:
		hosts.close()
		for volume in docker_client.volumes.list(filters={"label": naming.label_filters(server)}):
			volume.remove(force=True)


@pytest.mark.parametrize("which", ["rogue", "missing"])
def test_a_wrong_or_missing_client_certificate_names_server_and_socket(which, tls_proxy, pki, tmp_path):
	server = "tls-refused.example.com"
	plain = DockerHost(server=server, socket=tls_proxy)
	host = materialize(tmp_path, plain, pki["rogue"]) if which == "rogue" else plain
	hosts = DockerHosts()
	with pytest.raises(DockerUnreachable) as failure:
		hosts.call(host, "listing containers", lambda c: c.containers.list())
	message = str(failure.value)
	assert f"Docker on server {server} ({tls_proxy}) did not answer while connecting" in message
	assert "docker_socket" in message and "BEGIN" not in message


def test_the_rule_takes_all_three_pems_with_tcp_only(pki):
	tls = {"docker_tls_ca": pki["ca"], "docker_tls_cert": pki["client"].cert, "docker_tls_key": "********"}
	assert check_docker_tls({"docker_socket": "tcp://10.0.0.5:2376", **tls}) is True
	assert check_docker_tls({"docker_socket": "tcp://10.0.0.5:2375"}) is False
	with pytest.raises(ValidationError) as unix:
		check_docker_tls({"docker_socket": "unix:///var/run/docker.sock", **tls})
	assert unix.value.field == "docker_tls_ca" and "only with a tcp:// Docker Socket" in str(unix.value)
	with pytest.raises(ValidationError) as ssh:
		check_docker_tls({"docker_socket": "ssh://root@10.0.0.5", "docker_tls_key": "secret-key"})
	assert "secret-key" not in str(ssh.value)
	with pytest.raises(ValidationError) as partial:
		check_docker_tls({"docker_socket": "tcp://10.0.0.5:2376", "docker_tls_ca": pki["ca"]})
	assert partial.value.field == "docker_tls_cert" and "docker_tls_key" in str(partial.value)
	with pytest.raises(ValidationError) as garbage:
		check_docker_tls({**tls, "docker_socket": "tcp://h:2376", "docker_tls_cert": "not a pem"})
	assert garbage.value.field == "docker_tls_cert" and "PEM" in str(garbage.value)
