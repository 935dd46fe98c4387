"""Validation of operator input (engine/validation.py): accepted and refused examples, and
properties checked with hypothesis."""

from __future__ import annotations

import ipaddress
import re
import string

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from press_selfhosted.engine import validation as v
from press_selfhosted.engine.errors import EngineError, ValidationError


def refused(func, value, *args, **kwargs) -> ValidationError:
	with pytest.raises(ValidationError) as info:
		func(value, *args, **kwargs)
	return info.value


# --- the error itself ----------------------------------------------------------------------------


def test_validation_error_names_field_value_rule_and_fix():
	error = ValidationError("container_prefix", "ERP_Cloud", "must be lowercase", "use 'erp-cloud'")
	assert isinstance(error, EngineError)
	text = str(error)
	for part in ("container_prefix", "'ERP_Cloud'", "must be lowercase", "Fix: use 'erp-cloud'"):
		assert part in text
	assert (error.field, error.value, error.rule, error.fix) == (
		"container_prefix",
		"ERP_Cloud",
		"must be lowercase",
		"use 'erp-cloud'",
	)


def test_validation_error_can_hide_the_value():
	error = ValidationError("secret_key", "s3cr3t-value", "too short", "copy it again", show_value=False)
	assert "s3cr3t-value" not in str(error)
	assert "(hidden)" in str(error)


# --- FQDN ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
	"name",
	[
		"site1.platform.local",
		"a.b",
		"erp.example.com",
		"x-1.y-2.example",
		"1site.example.com",
		"a" * 63 + ".com",
		"xn--bcher-kva.example",
	],
)
def test_fqdn_accepted(name):
	assert v.validate_fqdn(name) == name


@pytest.mark.parametrize(
	("name", "rule_part"),
	[
		("site_1..local", "characters other than"),
		("site1..local", "empty label"),
		("Site1.platform.local", "lowercase"),
		("localhost", "at least two labels"),
		("-site.example.com", "hyphen"),
		("site-.example.com", "hyphen"),
		(".example.com", "empty label"),
		("example.com.", "end with a dot"),
		("a" * 64 + ".com", "at most 63"),
		(".".join(["a" * 60] * 5), "at most 253"),
		("10.0.0.1", "IP address"),
		("site one.example.com", "spaces"),
		("bücher.example", "characters other than"),
		("", "required"),
	],
)
def test_fqdn_refused(name, rule_part):
	error = refused(v.validate_fqdn, name, field="name")
	assert error.field == "name"
	assert error.value == name
	assert rule_part in error.rule
	assert error.fix


def test_fqdn_uppercase_fix_says_lowercase():
	error = refused(v.validate_fqdn, "Site1.Platform.local")
	assert "site1.platform.local" in error.fix


LABEL = st.from_regex(r"\A[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?\Z")
TLD = st.from_regex(r"\A[a-z]([a-z0-9-]{0,10}[a-z0-9])?\Z")
FQDNS = st.builds(lambda labels, tld: ".".join([*labels, tld]), st.lists(LABEL, min_size=1, max_size=5), TLD)


@given(FQDNS)
def test_generated_valid_fqdns_pass(name):
	assert v.validate_fqdn(name) == name


@given(st.text(min_size=1, max_size=80))
def test_any_string_with_an_uppercase_letter_is_refused(text):
	assume(any(c.isupper() for c in text))
	with pytest.raises(ValidationError):
		v.validate_fqdn(text)
	with pytest.raises(ValidationError):
		v.validate_container_prefix(text)
	with pytest.raises(ValidationError):
		v.validate_bucket_name(text)


@given(FQDNS, st.sampled_from(["_", "..", " ", "/", "*", "é"]))
def test_a_forbidden_character_breaks_any_valid_fqdn(name, bad):
	with pytest.raises(ValidationError):
		v.validate_fqdn(name[:1] + bad + name[1:])


@given(st.text(max_size=300))
def test_fqdn_never_fails_other_than_with_validation_error(text):
	try:
		v.validate_fqdn(text)
	except ValidationError as error:
		assert error.field == "name" and error.fix


# --- IP addresses --------------------------------------------------------------------------------


@pytest.mark.parametrize(
	("value", "canonical"),
	[("10.0.0.5", "10.0.0.5"), ("2001:db8:0:0::5", "2001:db8::5"), (" 192.168.1.1 ", "192.168.1.1")],
)
def test_ip_accepted(value, canonical):
	assert v.validate_ip(value) == canonical


@pytest.mark.parametrize(
	"value",
	["10.0.0", "256.1.1.1", "010.0.0.1", "10.0.0.0/8", "fe80::1%eth0", "0.0.0.0", "224.0.0.1", "host", ""],
)
def test_ip_refused(value):
	error = refused(v.validate_ip, value)
	assert error.field == "ip"


@pytest.mark.parametrize(
	"value",
	["10.1.2.3", "172.16.0.1", "172.31.255.254", "192.168.0.10", "100.64.0.1", "fd12:3456::1", "fc00::1"],
)
def test_private_ip_inside_default_internal_networks(value):
	assert v.validate_private_ip(value) == str(ipaddress.ip_address(value))


@pytest.mark.parametrize(
	"value", ["8.8.8.8", "172.32.0.1", "127.0.0.1", "169.254.1.1", "2001:db8::1", "fe80::1"]
)
def test_private_ip_outside_default_internal_networks(value):
	error = refused(v.validate_private_ip, value)
	assert error.field == "private_ip"
	assert v.INTERNAL_NETWORKS_CONFIG_KEY in error.fix


def test_internal_networks_are_configurable_and_replace_the_default():
	networks = v.parse_internal_networks(["203.0.113.0/24"])
	assert v.validate_private_ip("203.0.113.7", networks) == "203.0.113.7"
	refused(v.validate_private_ip, "10.0.0.1", networks)
	assert v.validate_private_ip("203.0.113.7", ["203.0.113.0/24"]) == "203.0.113.7"


@pytest.mark.parametrize(
	("value", "expected"),
	[
		(None, v.DEFAULT_INTERNAL_NETWORKS),
		("", v.DEFAULT_INTERNAL_NETWORKS),
		('["10.0.0.0/8", "fd00::/8"]', ("10.0.0.0/8", "fd00::/8")),
		("10.0.0.0/8, 192.168.0.0/16", ("10.0.0.0/8", "192.168.0.0/16")),
	],
)
def test_internal_networks_forms(value, expected):
	assert tuple(str(n) for n in v.parse_internal_networks(value)) == tuple(expected)


@pytest.mark.parametrize("value", [["10.0.0.1/8"], ["not-a-network"], "[broken", 42, [1]])
def test_internal_networks_refused(value):
	error = refused(v.parse_internal_networks, value)
	assert error.field == v.INTERNAL_NETWORKS_CONFIG_KEY


def test_internal_networks_host_bits_fix_names_the_network():
	assert "10.0.0.0/8" in refused(v.parse_internal_networks, ["10.0.0.1/8"]).fix


@given(
	st.sampled_from(["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"]),
	st.integers(min_value=1),
)
def test_every_host_of_an_internal_network_is_private(network, offset):
	net = ipaddress.ip_network(network)
	address = net.network_address + (offset % (net.num_addresses - 2)) + 1
	assume(not address.is_multicast)
	assert v.validate_private_ip(str(address)) == str(address)


@given(st.ip_addresses(v=4))
def test_public_ipv4_addresses_are_never_private(address):
	assume(address.is_global and not address.is_multicast)
	with pytest.raises(ValidationError):
		v.validate_private_ip(str(address))


@given(st.ip_addresses())
def test_ip_round_trip(address):
	assume(not (address.is_unspecified or address.is_multicast))
	canonical = v.validate_ip(str(address))
	assert v.validate_ip(canonical) == canonical == str(address)


# --- container prefix ----------------------------------------------------------------------------


@pytest.mark.parametrize(
	"prefix", ["erp-saas-cloud-c16", "a", "press", "c16", "a1-b2-c3", "a" * v.MAX_CONTAINER_PREFIX_LENGTH]
)
def test_container_prefix_accepted(prefix):
	assert v.validate_container_prefix(prefix) == prefix


@pytest.mark.parametrize(
	("prefix", "rule_part"),
	[
		("ERP_Cloud", "lowercase"),
		("erp_cloud", "only lowercase letters"),
		("-x", "start with a letter"),
		("1abc", "start with a letter"),
		("a--", "end with a letter or a digit"),
		("x-", "end with a letter or a digit"),
		("a--b", "two hyphens"),
		("erp.cloud", "only lowercase letters"),
		("a" * (v.MAX_CONTAINER_PREFIX_LENGTH + 1), "at most"),
		("", "required"),
	],
)
def test_container_prefix_refused(prefix, rule_part):
	error = refused(v.validate_container_prefix, prefix)
	assert error.field == "container_prefix"
	assert rule_part in error.rule


def test_container_prefix_fix_suggests_a_valid_prefix():
	error = refused(v.validate_container_prefix, "ERP_Cloud")
	assert "'erp-cloud'" in error.fix
	assert v.validate_container_prefix("erp-cloud")


PREFIXES = st.from_regex(r"\A[a-z]([a-z0-9]{0,4}(-[a-z0-9]{1,4}){0,3})?\Z").filter(
	lambda p: len(p) <= v.MAX_CONTAINER_PREFIX_LENGTH
)


@given(PREFIXES, st.from_regex(r"\Abench-[a-z0-9-]{0,26}[a-z0-9]\Z"))
def test_valid_prefix_plus_longest_bench_and_suffix_is_a_dns_label(prefix, bench):
	assert v.validate_container_prefix(prefix) == prefix
	bench = bench[: v.MAX_BENCH_NAME_LENGTH]
	name = f"{prefix}-{bench}" + "-" + "x" * (v.CONTAINER_SUFFIX_RESERVE - 1)
	assert len(name) <= 63
	# a container hostname must be one valid DNS label
	assert v.validate_fqdn(f"{name}.example.com")


@given(st.text(max_size=40))
def test_container_prefix_accepts_exactly_the_documented_shape(text):
	import re

	shape = re.fullmatch(r"[a-z](?:[a-z0-9]|-(?!-))*", text) and not text.endswith("-")
	ok = bool(shape) and len(text) <= v.MAX_CONTAINER_PREFIX_LENGTH
	try:
		v.validate_container_prefix(text)
		accepted = True
	except ValidationError:
		accepted = False
	assert accepted == ok or text != text.strip()


# --- Docker socket -------------------------------------------------------------------------------


@pytest.mark.parametrize(
	("value", "expected"),
	[
		("unix:///var/run/docker.sock", v.DockerSocket("unix", path="/var/run/docker.sock")),
		("tcp://10.0.0.5:2376", v.DockerSocket("tcp", host="10.0.0.5", port=2376)),
		("tcp://docker.internal:2375", v.DockerSocket("tcp", host="docker.internal", port=2375)),
		("tcp://[fd00::5]:2376", v.DockerSocket("tcp", host="fd00::5", port=2376)),
		("ssh://root@10.0.0.5", v.DockerSocket("ssh", host="10.0.0.5", user="root")),
		(
			"ssh://deploy@host.internal:2222",
			v.DockerSocket("ssh", host="host.internal", port=2222, user="deploy"),
		),
		("ssh://docker-host", v.DockerSocket("ssh", host="docker-host")),
	],
)
def test_docker_socket_accepted(value, expected):
	parsed = v.parse_docker_socket(value)
	assert parsed == expected
	assert parsed.url == value


@pytest.mark.parametrize(
	"value",
	[
		"/var/run/docker.sock",
		"unix://var/run/docker.sock",
		"unix:///var/run/../docker.sock",
		"unix:///" + "a" * 120,
		"tcp://10.0.0.5",
		"tcp://10.0.0.5:0",
		"tcp://10.0.0.5:65536",
		"tcp://10.0.0.5:port",
		"tcp://user@10.0.0.5:2376",
		"tcp://10.0.0.5:2376/path",
		"ssh://user:pass@host",
		"ssh://host/path",
		"ssh://bad user@host",
		"http://10.0.0.5:2375",
		"npipe:////./pipe/docker_engine",
		"tcp://bad_host:2375",
		"tcp://10.0.0.5:2376?tls=1",
		"",
	],
)
def test_docker_socket_refused_with_the_accepted_forms(value):
	error = refused(v.parse_docker_socket, value)
	assert error.field == "docker_socket"
	assert v.DOCKER_SOCKET_FORMS in str(error)


HOSTS = st.one_of(
	st.ip_addresses(v=4).map(str),
	st.from_regex(r"\A[a-z]([a-z0-9-]{0,10}[a-z0-9])?(\.[a-z]{2,6}){0,2}\Z"),
)
SOCKETS = st.one_of(
	st.from_regex(r"\A(/[a-z0-9_.-]{1,12}){1,4}\Z")
	.filter(lambda p: all(seg not in (".", "..") for seg in p.split("/")))
	.map(lambda p: f"unix://{p}"),
	st.builds(lambda h, p: f"tcp://{h}:{p}", HOSTS, st.integers(1, 65535)),
	st.builds(
		lambda u, h, p: "ssh://" + (f"{u}@" if u else "") + h + (f":{p}" if p else ""),
		st.one_of(st.none(), st.from_regex(r"\A[a-z_][a-z0-9_-]{0,10}\Z")),
		HOSTS,
		st.one_of(st.none(), st.integers(1, 65535)),
	),
)


@given(SOCKETS)
def test_docker_socket_round_trip(value):
	parsed = v.parse_docker_socket(value)
	assert parsed.url == value
	assert v.parse_docker_socket(parsed.url) == parsed


@given(st.text(max_size=60))
def test_docker_socket_refusals_always_list_the_forms(text):
	try:
		v.parse_docker_socket(text)
	except ValidationError as error:
		assert error.field == "docker_socket"
		assert v.DOCKER_SOCKET_FORMS in str(error)


# --- S3 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["press-backups", "abc", "a.b.c", "backups-2026", "a" * 63, "1bucket"])
def test_bucket_accepted(name):
	assert v.validate_bucket_name(name) == name


@pytest.mark.parametrize(
	"name",
	[
		"ab",
		"a" * 64,
		"Press",
		"my_bucket",
		"-abc",
		"abc-",
		"a..b",
		"a.-b",
		"a-.b",
		"192.168.5.4",
		"xn--abc",
		"sthree-abc",
		"abc-s3alias",
		"abc--ol-s3",
		"abc.mrap",
		"abc--x-s3",
		"",
	],
)
def test_bucket_refused(name):
	error = refused(v.validate_bucket_name, name)
	assert error.field == "default_bucket"


BUCKETS = st.from_regex(r"\A[a-z0-9]([a-z0-9-]{1,20}(\.[a-z0-9][a-z0-9-]{0,10}[a-z0-9])?)?[a-z0-9]\Z").filter(
	lambda n: (
		3 <= len(n) <= 63
		and "-." not in n
		and ".-" not in n
		and not n.startswith(v.BUCKET_FORBIDDEN_PREFIXES)
		and not n.endswith(v.BUCKET_FORBIDDEN_SUFFIXES)
	)
)


@given(BUCKETS)
def test_generated_bucket_names_pass(name):
	assume(not all(part.isdigit() for part in name.split(".")))
	assert v.validate_bucket_name(name) == name


@pytest.mark.parametrize(
	("value", "normalised"),
	[
		("http://127.0.0.1:8333", "http://127.0.0.1:8333"),
		("HTTPS://MinIO.Internal:9000/", "https://minio.internal:9000"),
		("https://minio", "https://minio"),
		("http://[::1]:9000", "http://[::1]:9000"),
	],
)
def test_endpoint_url_accepted(value, normalised):
	assert v.validate_endpoint_url(value) == normalised


@pytest.mark.parametrize(
	"value",
	[
		"minio:9000",
		"ftp://minio",
		"https://minio/bucket",
		"https://key:secret@minio",
		"https://minio:0",
		"https://minio?x=1",
		"",
	],
)
def test_endpoint_url_refused(value):
	assert refused(v.validate_endpoint_url, value).field == "endpoint_url"


def test_secret_and_access_key_never_appear_in_errors():
	for func, value in (
		(v.validate_secret_key, "short"),
		(v.validate_access_key, "a b"),
		(v.validate_secret_key, "has space inside"),
	):
		error = refused(func, value)
		assert value not in str(error)
		assert error.value == "(hidden)"


@pytest.mark.parametrize(
	("value", "ok"), [("us-east-1", True), ("home_lab", True), ("eu central", False), ("", False)]
)
def test_region(value, ok):
	if ok:
		assert v.validate_region(value) == value
	else:
		refused(v.validate_region, value)


@pytest.mark.parametrize(
	("value", "expected"),
	[("backups", "backups"), ("/press/backups/", "press/backups"), ("", ""), (None, "")],
)
def test_object_prefix_accepted(value, expected):
	assert v.validate_object_prefix(value) == expected


@pytest.mark.parametrize("value", ["a//b", "a/../b", "a b", "a/./b", "x" * 300])
def test_object_prefix_refused(value):
	refused(v.validate_object_prefix, value)


@pytest.mark.parametrize(("value", "expected"), [(5, 5), ("10", 10), (" 60 ", 60)])
def test_connect_timeout_accepted(value, expected):
	assert v.validate_connect_timeout(value) == expected


@pytest.mark.parametrize("value", [0, 61, "five", None, True, -1])
def test_connect_timeout_refused(value):
	refused(v.validate_connect_timeout, value)


def test_addressing_style():
	assert v.validate_addressing_style("virtual") == "virtual"
	refused(v.validate_addressing_style, "auto")


def _pem_certificate() -> str:
	import datetime

	from cryptography import x509
	from cryptography.hazmat.primitives import hashes, serialization
	from cryptography.hazmat.primitives.asymmetric import ec
	from cryptography.x509.oid import NameOID

	key = ec.generate_private_key(ec.SECP256R1())
	name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test ca")])
	now = datetime.datetime.now(datetime.timezone.utc)
	cert = (
		x509.CertificateBuilder()
		.subject_name(name)
		.issuer_name(name)
		.public_key(key.public_key())
		.serial_number(x509.random_serial_number())
		.not_valid_before(now)
		.not_valid_after(now + datetime.timedelta(days=1))
		.sign(key, hashes.SHA256())
	)
	return cert.public_bytes(serialization.Encoding.PEM).decode()


def test_ca_bundle_accepts_certificates_and_refuses_keys_and_garbage():
	pem = _pem_certificate()
	assert v.validate_ca_bundle(pem).startswith("-----BEGIN CERTIFICATE-----")
	assert v.validate_ca_bundle(pem + pem)
	assert v.validate_ca_bundle("") == ""
	assert (
		"private key"
		in refused(
			v.validate_ca_bundle, pem + "-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----\n"
		).rule
	)
	assert "no PEM certificate" in refused(v.validate_ca_bundle, "hello").rule
	broken = pem.replace(pem.splitlines()[3], "AAAA")
	assert "could not be read" in refused(v.validate_ca_bundle, broken).rule


# --- registry ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
	("value", "host_port", "scheme"),
	[
		("127.0.0.1:5000", "127.0.0.1:5000", None),
		("registry.internal", "registry.internal", None),
		("https://Registry.Internal:5443/", "registry.internal:5443", "https"),
		("https://registry.internal/v2/", "registry.internal", "https"),
		("http://localhost:5000", "localhost:5000", "http"),
		("http://[::1]:5000", "[::1]:5000", "http"),
		("registry:5000", "registry:5000", None),
		("localhost", "localhost", None),
	],
)
def test_registry_url_accepted(value, host_port, scheme):
	address = v.validate_registry_url(value)
	assert address.host_port == host_port
	assert address.scheme == scheme


@pytest.mark.parametrize(
	("value", "rule_part"),
	[
		("http://registry.internal:5000", "plain http://"),
		("ftp://registry.internal", "scheme"),
		("registry.internal/press", "no path"),
		("https://user:pw@registry.internal", "credentials"),
		("registry", "single-label"),
		("registry.internal:99999", "port"),
		("", "required"),
	],
)
def test_registry_url_refused(value, rule_part):
	error = refused(v.validate_registry_url, value)
	assert error.field == "url"
	assert rule_part in error.rule


def test_registry_url_plain_http_allowed_when_marked_insecure():
	assert v.validate_registry_url("http://registry.internal:5000", allow_insecure_http=True).scheme == "http"


@given(HOSTS, st.one_of(st.none(), st.integers(1, 65535)), st.sampled_from([None, "https"]))
def test_registry_url_round_trip(host, port, scheme):
	assume("." in host or port is not None)
	text = (f"{scheme}://" if scheme else "") + host + (f":{port}" if port else "")
	address = v.validate_registry_url(text)
	assert address.url == text
	assert v.validate_registry_url(address.url) == address


@pytest.mark.parametrize(
	("value", "expected"),
	[
		("press", "press"),
		("acme/press", "acme/press"),
		("a.b_c__d-e--f", "a.b_c__d-e--f"),
		("/press/", "press"),
		("", ""),
	],
)
def test_registry_namespace_accepted(value, expected):
	assert v.validate_registry_namespace(value) == expected


@pytest.mark.parametrize("value", ["Press", "press_", "_press", "a..b", "a___b", "a//b", "press!", "x" * 129])
def test_registry_namespace_refused(value):
	assert refused(v.validate_registry_namespace, value).field == "namespace"


@given(st.lists(st.from_regex(r"\A[a-z0-9]+((\.|_|__|-+)[a-z0-9]+){0,3}\Z"), min_size=1, max_size=3))
def test_generated_namespaces_pass(components):
	namespace = "/".join(components)
	assume(len(namespace) <= v.MAX_NAMESPACE_LENGTH)
	assert v.validate_registry_namespace(namespace) == namespace


def test_registry_credentials_both_or_none():
	assert v.validate_registry_credentials("", "") == ("", "")
	assert v.validate_registry_credentials("press", "pw") == ("press", "pw")
	assert refused(v.validate_registry_credentials, "press", "").field == "password"
	assert refused(v.validate_registry_credentials, "", "pw").field == "username"
	assert refused(v.validate_registry_credentials, "a:b", "pw").field == "username"


@given(st.text(alphabet=string.printable, max_size=40))
def test_validators_raise_only_validation_errors(text):
	for func in (
		v.validate_ip,
		v.validate_private_ip,
		v.validate_container_prefix,
		v.parse_docker_socket,
		v.validate_bucket_name,
		v.validate_endpoint_url,
		v.validate_registry_url,
		v.validate_registry_namespace,
		v.validate_object_prefix,
	):
		try:
			func(text)
		except ValidationError as error:
			assert error.fix and error.rule and error.field


# --- a fix never suggests a value that is refused too ----------------------------------------------

SUGGESTING = (
	v.validate_fqdn,
	v.validate_container_prefix,
	v.validate_bucket_name,
	v.validate_registry_namespace,
)


@given(st.sampled_from(SUGGESTING), st.text(max_size=40))
def test_a_suggested_value_is_itself_accepted(validator, text):
	try:
		validator(text)
	except ValidationError as error:
		for suggested in re.findall(r"(?:use|e\.g\.) '([^']*)'", error.fix):
			validator(suggested)


@pytest.mark.parametrize(
	"validator, value",
	[
		(v.validate_bucket_name, "Bad_Bucket!"),
		(v.validate_fqdn, "Site_1.Example.com"),
		(v.validate_registry_namespace, "Acme/Pr$ess"),
	],
)
def test_lowercasing_is_not_suggested_when_it_does_not_make_the_value_valid(validator, value):
	error = refused(validator, value)
	assert repr(value.lower()) not in error.fix


@pytest.mark.parametrize("value, expected", [("80", 80), (8080, 8080), (" 443 ", 443), (65535, 65535)])
def test_port_accepted(value, expected):
	assert v.validate_port(value, "press_selfhosted_proxy_http_port") == expected


@pytest.mark.parametrize("value", ["http", "", None, 0, 65536, "-1", "8o"])
def test_port_refused_names_the_setting(value):
	error = refused(v.validate_port, value, "press_selfhosted_proxy_http_port")
	assert error.field == "press_selfhosted_proxy_http_port" and "1 to 65535" in error.rule


@pytest.mark.parametrize("value, expected", [("0.0.0.0", "0.0.0.0"), ("::", "::"), ("10.0.0.5", "10.0.0.5")])
def test_bind_address_may_be_every_address_of_the_host(value, expected):
	assert v.validate_bind_address(value, "press_selfhosted_proxy_bind_address") == expected


@pytest.mark.parametrize("value", ["localhost", "224.0.0.1", "10.0.0.0/8", ""])
def test_bind_address_refused(value):
	assert refused(v.validate_bind_address, value, "bind").field == "bind"
