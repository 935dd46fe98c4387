"""engine/registry.py against the real registries: anonymous plain HTTP, and TLS (private CA) with
htpasswd basic authentication."""

from __future__ import annotations

import socket
import time
from dataclasses import replace

import pytest

from press_selfhosted.engine import registry
from press_selfhosted.engine.errors import ValidationError


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
	with pytest.raises(registry.RegistryTLSError) as info:
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
	with pytest.raises(registry.RegistryTLSError) as info:
		registry.test_connection(replace(tls, ca_bundle=None))
	message = str(info.value)
	assert "CERTIFICATE_VERIFY_FAILED" in message
	assert "CA Bundle" in message


def test_tls_registry_without_verification(tls):
	report = registry.test_connection(replace(tls, ca_bundle=None, verify_tls=False))
	assert report.auth == "basic"


def test_basic_challenge_without_credentials(tls):
	with pytest.raises(registry.RegistryAuthError) as info:
		registry.test_connection(replace(tls, username="", password=""))
	assert "requires authentication" in str(info.value)
	assert "Username and Password" in str(info.value)


def test_wrong_password(tls):
	with pytest.raises(registry.RegistryAuthError) as info:
		registry.test_connection(replace(tls, password="definitely-wrong"))
	message = str(info.value)
	assert "rejected the user name or password" in message
	assert "definitely-wrong" not in message
	assert tls.password not in message


def test_unknown_user(tls):
	with pytest.raises(registry.RegistryAuthError):
		registry.test_connection(replace(tls, username="nobody"))


def test_unreachable_registry(plain):
	started = time.monotonic()
	with pytest.raises(registry.RegistryUnreachable) as info:
		registry.test_connection(replace(plain, url=f"127.0.0.1:{closed_port()}"))
	assert time.monotonic() - started < 5
	assert "Connection refused" in str(info.value)
	assert "Fix:" in str(info.value)


def test_a_server_that_is_not_a_registry(endpoints, plain):
	s3 = endpoints["s3"]["endpoint_url"]
	with pytest.raises(registry.RegistryError) as info:
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
