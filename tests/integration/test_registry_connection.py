"""engine/clients/registry.py against the real registries: anonymous plain HTTP, and TLS (private CA) with
htpasswd basic authentication."""

from __future__ import annotations

import socket
import time
from dataclasses import replace

import pytest

from press_selfhosted.engine.clients import registry
from press_selfhosted.engine.errors import (
	RegistryAuthError,
	RegistryError,
	RegistryTLSError,
	RegistryUnreachable,
	ValidationError,
)


def closed_port() -> int:
	with socket.socket() as sock:
		sock.bind(("127.0.0.1", 0))
		return sock.getsockname()[1]


@pytest.fixture
def plain(endpoints) -> registry.RegistryTarget:
	return registry.RegistryTarget(
		url=endpoints["registry"]["url"], namespace="press", connect_timeout=3, read_timeout=10
	)


@pytest.fixture
def tls(endpoints) -> registry.RegistryTarget:
	info = endpoints["registry_tls"]
	with open(info["ca_file"]) as handle:
		pem = handle.read()
	return registry.RegistryTarget(
		url=info["url"],
		namespace="press",
		username=info["username"],
		password=info["password"],
		ca_bundle=pem,
		connect_timeout=3,
		read_timeout=10,
	)


def test_anonymous_plain_http_registry_on_loopback(plain):
	report = registry.test_connection(plain)
	assert report.auth == "anonymous"
	assert report.url == f"http://{plain.url}"
	assert report.api_version == "registry/2.0"
	assert "anonymously" in report.message


def test_explicit_http_scheme_on_loopback(plain):
	report = registry.test_connection(replace(plain, url=f"http://{plain.url}"))
	assert report.url == f"http://{plain.url}"


def test_explicit_https_against_plain_port_is_a_tls_error_with_the_fix(plain):
	with pytest.raises(RegistryTLSError) as info:
		registry.test_connection(replace(plain, url=f"https://{plain.url}"))
	assert "does not speak TLS" in str(info.value)


def test_tls_registry_with_basic_auth_and_private_ca(tls):
	report = registry.test_connection(tls)
	assert report.auth == "basic"
	assert report.url == f"https://{tls.url}"
	assert "basic authentication" in report.message


def test_ca_bundle_as_a_path(tls, endpoints):
	report = registry.test_connection(replace(tls, ca_bundle=endpoints["registry_tls"]["ca_file"]))
	assert report.auth == "basic"


def test_tls_registry_without_the_ca_fails_verification(tls):
	with pytest.raises(RegistryTLSError) as info:
		registry.test_connection(replace(tls, ca_bundle=None))
	message = str(info.value)
	assert "CERTIFICATE_VERIFY_FAILED" in message
	assert "CA Bundle" in message


def test_tls_registry_without_verification(tls):
	report = registry.test_connection(replace(tls, ca_bundle=None, verify_tls=False))
	assert report.auth == "basic"


def test_basic_challenge_without_credentials(tls):
	with pytest.raises(RegistryAuthError) as info:
		registry.test_connection(replace(tls, username="", password=""))
	assert "requires authentication" in str(info.value)
	assert "Username and Password" in str(info.value)


def test_wrong_password(tls):
	with pytest.raises(RegistryAuthError) as info:
		registry.test_connection(replace(tls, password="definitely-wrong"))
	message = str(info.value)
	assert "rejected the user name or password" in message
	assert "definitely-wrong" not in message
	assert tls.password not in message


def test_unknown_user(tls):
	with pytest.raises(RegistryAuthError):
		registry.test_connection(replace(tls, username="nobody"))


def test_unreachable_registry(plain):
	started = time.monotonic()
	with pytest.raises(RegistryUnreachable) as info:
		registry.test_connection(replace(plain, url=f"127.0.0.1:{closed_port()}"))
	assert time.monotonic() - started < 5
	assert "Connection refused" in str(info.value)
	assert "Fix:" in str(info.value)


def test_a_server_that_is_not_a_registry(endpoints, plain):
	s3 = endpoints["s3"]["endpoint_url"]
	with pytest.raises(RegistryError) as info:
		registry.test_connection(replace(plain, url=s3))
	assert "not a Docker registry" in str(info.value)


def test_http_to_a_non_loopback_host_is_refused_unless_insecure():
	with pytest.raises(ValidationError) as info:
		registry.test_connection(registry.RegistryTarget(url="http://registry.example.com"))
	assert info.value.field == "url"
	target = registry.RegistryTarget(url="http://registry.example.com", insecure=True)
	assert target.validated().url == "http://registry.example.com"


def test_client_requests_with_scope_after_check(tls):
	"""The client keeps its session and auth: later calls (catalog, tags) reuse request()."""
	with registry.RegistryClient(tls) as client:
		client.check()
		response = client.request("GET", "/v2/_catalog", scope="registry:catalog:*")
		assert response.status_code == 200
		assert "repositories" in response.json()


def test_target_helpers(tls):
	assert tls.repository("bench-0001") == "press/bench-0001"
	assert tls.image_reference("bench-0001", "abc") == f"{tls.url}/press/bench-0001:abc"
	assert tls.password not in repr(tls)


def test_parse_challenge():
	assert registry.parse_challenge('Basic realm="Registry Realm"') == ("basic", {"realm": "Registry Realm"})
	assert registry.parse_challenge(
		'Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"'
	) == (
		"bearer",
		{
			"realm": "https://auth.example/token",
			"service": "registry.example",
			"scope": "repository:a/b:pull,push",
		},
	)
	assert registry.parse_challenge(None) == ("", {})


class _TokenRegistry:
	"""A loopback HTTP server answering like a registry with a token service (Bearer challenges)."""

	def __init__(self):
		import base64
		import http.server
		import threading

		owner = self
		self.token_requests = []

		class Handler(http.server.BaseHTTPRequestHandler):
			def log_message(self, *args):
				pass

			def _send(self, status, body=b"{}", headers=()):
				self.send_response(status)
				self.send_header("Content-Type", "application/json")
				self.send_header("Docker-Distribution-Api-Version", "registry/2.0")
				for key, value in headers:
					self.send_header(key, value)
				self.send_header("Content-Length", str(len(body)))
				self.end_headers()
				self.wfile.write(body)

			def do_GET(self):
				if self.path.startswith("/token"):
					owner.token_requests.append(self.path)
					expected = "Basic " + base64.b64encode(b"press:token-password").decode()
					if self.headers.get("Authorization") != expected:
						return self._send(401)
					return self._send(200, b'{"token": "tok-123"}')
				if self.headers.get("Authorization") == "Bearer tok-123":
					return self._send(200)
				port = self.server.server_address[1]
				challenge = f'Bearer realm="http://127.0.0.1:{port}/token",service="test-registry"'
				return self._send(401, headers=[("WWW-Authenticate", challenge)])

		self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
		self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
		self.thread.start()
		self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

	def close(self):
		self.server.shutdown()
		self.server.server_close()


@pytest.fixture
def token_registry():
	server = _TokenRegistry()
	yield server
	server.close()


def test_bearer_token_registry(token_registry):
	target = registry.RegistryTarget(url=token_registry.url, username="press", password="token-password")
	report = registry.test_connection(target)
	assert report.auth == "token"
	assert "with a token" in report.message
	assert any(
		"service=test-registry" in path and "account=press" in path for path in token_registry.token_requests
	)


def test_bearer_token_registry_wrong_password(token_registry):
	target = registry.RegistryTarget(url=token_registry.url, username="press", password="wrong")
	with pytest.raises(RegistryAuthError, match="rejected the user name or password"):
		registry.test_connection(target)


def test_bearer_token_registry_without_credentials(token_registry):
	with pytest.raises(RegistryAuthError, match="requires authentication"):
		registry.test_connection(registry.RegistryTarget(url=token_registry.url))
