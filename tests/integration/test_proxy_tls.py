"""TLS of sites on a container proxy: certificates from an ACME server (the real pebble) and the
operator's default certificate (made here with the services' CA). Traefik, the bench front and pebble
are real; requests go over HTTPS through Traefik's published port and the served certificate is
verified against the issuing root. The topology and secret source are fakes of Press's documents."""

from __future__ import annotations

import base64
import contextlib
import datetime
import json
import random
import ssl
import time
import uuid

import jsonschema
import pytest
import requests
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fakes import PressRecords
from proxy_helpers import (
	container_server,
	poll_until,
	remove_servers,
	run_job,
	start_bench_pair,
	verification_fails,
	verified_request,
)
from references import schema

from press_selfhosted.engine import naming
from press_selfhosted.engine.clients import acme, traefik
from press_selfhosted.engine.clients.acme import AcmeResolver, DefaultCertificate
from press_selfhosted.engine.clients.proxy import Proxy, ProxySettings, traefik_spec
from press_selfhosted.engine.errors import ValidationError
from press_selfhosted.engine.jobs.handlers import index
from press_selfhosted.engine.jobs.proxy import ProxyJobs
from press_selfhosted.engine.policies import acme_records
from press_selfhosted.tests.acme_services import Relay

SCHEMA = schema("traefik-v3-file-provider.json")
UPSTREAM = "10.20.0.9"
BENCH = "bench-tls"
ACME_SITE = "acme1.example.com"
LOCAL_SITE = "shop.root.test"
# pebble validates HTTP-01 on port 5002 of the address its DNS gives (127.0.0.1 for every name).
PEBBLE_HTTP_PORT = 5002


# --- helpers ----------------------------------------------------------------------------------------


def issue(ca: dict, names: list[str]) -> tuple[str, str, x509.Certificate]:
	"""A server certificate for ``names`` signed by the services' CA: (chain PEM, key PEM, cert)."""
	with open(ca["cert_file"], "rb") as handle:
		ca_cert = x509.load_pem_x509_certificate(handle.read())
	with open(ca["key_file"], "rb") as handle:
		ca_key = serialization.load_pem_private_key(handle.read(), password=None)
	key = ec.generate_private_key(ec.SECP256R1())
	now = datetime.datetime.now(datetime.timezone.utc)
	certificate = (
		x509.CertificateBuilder()
		.subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
		.issuer_name(ca_cert.subject)
		.public_key(key.public_key())
		.serial_number(x509.random_serial_number())
		.not_valid_before(now - datetime.timedelta(minutes=5))
		.not_valid_after(now + datetime.timedelta(days=1))
		.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
		.sign(ca_key, hashes.SHA256())
	)
	key_pem = key.private_bytes(
		serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
	).decode()
	return certificate.public_bytes(serialization.Encoding.PEM).decode(), key_pem, certificate


def container_file(container, path: str) -> str | None:
	result = container.exec_run(["cat", path])
	return result.output.decode() if result.exit_code == 0 else None


def add_site(cluster, settings: ProxySettings, server, site: str) -> list[str]:
	handlers = index(ProxyJobs(settings).handlers())
	payload = {"name": site, "path_args": {"upstream": UPSTREAM}}
	_, log = run_job(
		handlers["Add Site to Upstream"],
		server,
		cluster["client"],
		cluster["topology"],
		payload,
		site=site,
	)
	return log


def settings_for(endpoints, **more) -> ProxySettings:
	base = {"bind_address": "127.0.0.1", "http_port": 0, "https_port": 0, "reload_timeout": 90}
	return ProxySettings(
		traefik_image=endpoints["images"]["traefik"],
		router_image=endpoints["images"]["front"],
		**{**base, **more},
	)


@pytest.fixture(scope="module")
def cluster(endpoints, docker_client):
	"""A bench (front + backend) on a cluster network; each test brings its own proxy server."""
	prefix = f"t{uuid.uuid4().hex[:8]}"
	network = f"{prefix}-net"
	app = container_server(endpoints, f"{prefix}-app.local", "Server", prefix, network, private_ip=UPSTREAM)
	proxies = {
		kind: container_server(
			endpoints, f"{prefix}{kind}-proxy.local", "Proxy Server", f"{prefix}{kind}", network
		)
		for kind in ("a", "l", "c", "r", "f", "s")
	}
	docker_client.networks.create(network, labels=naming.labels(app.name, "network"))
	try:
		start_bench_pair(docker_client, endpoints, app, BENCH)
		topology = PressRecords([app, *proxies.values()], site_benches={ACME_SITE: BENCH, LOCAL_SITE: BENCH})
		yield {"client": docker_client, "topology": topology, "proxies": proxies, "network": network}
	finally:
		remove_servers(docker_client, [app.name, *(p.name for p in proxies.values())], network)


@contextlib.contextmanager
def resolver_of(cluster, pebble: dict, **settings):
	"""A resolver of ``pebble`` (reached through a relay on the cluster network's gateway: pebble listens
	on the host's loopback) and pebble's root certificate, which its certificates verify against."""
	with open(pebble["ca_file"]) as handle:
		pebble_https_ca = handle.read()
	gateway = cluster["client"].networks.get(cluster["network"]).attrs["IPAM"]["Config"][0]["Gateway"]
	directory = requests.utils.urlparse(pebble["directory_url"])
	relay = Relay(gateway, (directory.hostname, directory.port))
	try:
		resolver = AcmeResolver(
			"ops@example.com",
			f"https://{gateway}:{relay.port}{directory.path}",
			ca_bundle=pebble_https_ca,
			server_name="localhost",  # pebble's HTTPS certificate names localhost and 127.0.0.1
			**settings,
		)
		root = requests.get(f"{pebble['management_url']}/roots/0", verify=pebble["ca_file"], timeout=10).text
		yield resolver, root
	finally:
		relay.close()


@pytest.fixture
def pebble_acme(cluster, endpoints):
	with resolver_of(cluster, endpoints["pebble"]) as found:
		yield found


@pytest.fixture
def short_lived_acme(cluster, endpoints):
	"""The pebble whose certificates hold ten minutes, told to Traefik (under a day: it checks every
	minute and renews a certificate with under 20 minutes left)."""
	with resolver_of(cluster, endpoints["pebble_short"], certificates_duration=1) as found:
		yield found


def served_names(served: bytes) -> list[str]:
	names = x509.load_der_x509_certificate(served).extensions.get_extension_for_class(
		x509.SubjectAlternativeName
	)
	return names.value.get_values_for_type(x509.DNSName)


# --- pure: settings, flags, documents -------------------------------------------------------------


def test_acme_resolver_becomes_traefik_flags(endpoints):
	with open(endpoints["ca"]["cert_file"]) as handle:
		ca = handle.read()
	resolver = AcmeResolver("ops@example.com", "https://acme.internal/dir", ca, server_name="acme.internal")
	flags = resolver.arguments()
	assert "--certificatesresolvers.acme.acme.email=ops@example.com" in flags
	assert "--certificatesresolvers.acme.acme.caserver=https://acme.internal/dir" in flags
	assert "--certificatesresolvers.acme.acme.httpchallenge.entrypoint=web" in flags
	assert f"--certificatesresolvers.acme.acme.storage={acme.ACME_STORAGE}" in flags
	assert f"--certificatesresolvers.acme.acme.cacertificates={acme.ACME_CA_BUNDLE}" in flags
	assert "--certificatesresolvers.acme.acme.caservername=acme.internal" in flags
	assert "--certificatesresolvers.acme.acme.certificatesduration=2160" in flags  # Traefik's own default
	six_days = AcmeResolver("ops@example.com", certificates_duration=160).arguments()
	assert "--certificatesresolvers.acme.acme.certificatesduration=160" in six_days
	plain = AcmeResolver("ops@example.com")
	assert f"--certificatesresolvers.acme.acme.caserver={acme.LETS_ENCRYPT}" in plain.arguments()
	assert not any("cacertificates" in flag or "caservername" in flag for flag in plain.arguments())


@pytest.mark.parametrize(
	("arguments", "field", "words"),
	[
		({"email": ""}, acme.CONFIG_EMAIL, "e-mail address is required"),
		({"email": "ops"}, acme.CONFIG_EMAIL, "set-config"),
		({"directory_url": "http://acme.internal/dir"}, acme.CONFIG_DIRECTORY, "https:// URL"),
		({"ca_bundle": "not a certificate"}, acme.CONFIG_CA_BUNDLE, "no PEM certificate"),
		({"key_type": "DSA"}, "key_type", "EC256"),
		({"certificates_duration": 0}, acme.CONFIG_CERTIFICATES_DURATION, "whole number of hours"),
		({"certificates_duration": "90 days"}, acme.CONFIG_CERTIFICATES_DURATION, "160 for its six-day"),
	],
)
def test_acme_settings_are_refused_with_the_field_and_fix(arguments, field, words):
	with pytest.raises(ValidationError) as refused:
		AcmeResolver(**{"email": "ops@example.com", **arguments})
	assert refused.value.field == field and words in str(refused.value)


def test_traefik_container_spec_carries_the_resolver(endpoints):
	server = container_server(endpoints, "p.local", "Proxy Server", "pp", "net")
	plain = traefik_spec(server, settings_for(endpoints))
	with_acme = traefik_spec(server, settings_for(endpoints, acme=AcmeResolver("ops@example.com")))
	assert "pp-traefik-acme" not in plain.volumes
	assert with_acme.volumes["pp-traefik-acme"] == acme.ACME_DIRECTORY
	assert set(AcmeResolver("ops@example.com").arguments()) <= set(with_acme.command)
	assert plain.digest != with_acme.digest  # the container is recreated when ACME is switched on


def test_the_tls_router_asks_the_resolver_for_each_site_name_only():
	sites = traefik.Sites("http://p-router:80", "acme", ("a.example.com", "b.example.com"), 3)
	document = yaml.safe_load(traefik.render(sites))
	jsonschema.validate(document, SCHEMA)
	routers = document["http"]["routers"]
	assert routers["sites-tls"]["tls"] == {
		"certResolver": "acme",
		"domains": [{"main": "a.example.com"}, {"main": "b.example.com"}],  # one certificate per site
	}
	assert "tls" not in routers["sites"]
	assert traefik.parse(traefik.render(sites), traefik.SITES_FILE) == sites
	untouched = traefik.HostRoute("www.customer.test", "a.example.com")
	assert "certResolver" not in traefik.render(untouched)


def test_default_certificate_must_match_its_key(endpoints):
	chain, key, _ = issue(endpoints["ca"], ["*.root.test"])
	_, other_key, _ = issue(endpoints["ca"], ["*.other.test"])
	with pytest.raises(ValidationError) as refused:
		DefaultCertificate(chain, other_key)
	assert refused.value.field == acme.CONFIG_CERTIFICATE_KEY and "does not belong" in str(refused.value)
	assert other_key not in str(refused.value)
	with pytest.raises(ValidationError) as refused:
		DefaultCertificate("garbage", key)
	assert refused.value.field == acme.CONFIG_CERTIFICATE
	assert key not in repr(DefaultCertificate(chain, key))
	files = acme.default_certificate_files(traefik.DYNAMIC_DIRECTORY, DefaultCertificate(chain, key))
	document = yaml.safe_load(files[f"{traefik.DYNAMIC_DIRECTORY}/{acme.DEFAULT_CERTIFICATE_FILE}"][0])
	jsonschema.validate(document, SCHEMA)
	assert [mode for _content, mode in files.values()] == [0o644, 0o600, 0o644]


def test_site_config_keys(endpoints, tmp_path):
	chain, key, _ = issue(endpoints["ca"], ["*.root.test"])
	(tmp_path / "chain.pem").write_text(chain)
	(tmp_path / "key.pem").write_text(key)
	assert acme.from_site_config({}) == (None, None)
	resolver, certificate = acme.from_site_config(
		{
			acme.CONFIG_EMAIL: "ops@example.com",
			acme.CONFIG_CA_BUNDLE: endpoints["ca"]["cert_file"],
			acme.CONFIG_CERTIFICATE: str(tmp_path / "chain.pem"),
			acme.CONFIG_CERTIFICATE_KEY: str(tmp_path / "key.pem"),
		}
	)
	assert resolver.directory_url == acme.LETS_ENCRYPT and "BEGIN CERTIFICATE" in resolver.ca_bundle
	assert resolver.certificates_duration == 2160
	short, _ = acme.from_site_config(
		{acme.CONFIG_EMAIL: "ops@example.com", acme.CONFIG_CERTIFICATES_DURATION: "160"}
	)
	assert short.certificates_duration == 160
	assert certificate == DefaultCertificate(chain, key)
	with pytest.raises(ValidationError) as refused:
		acme.from_site_config(
			{acme.CONFIG_CERTIFICATE: chain, acme.CONFIG_CERTIFICATE_KEY: "/nonexistent.pem"}
		)
	assert refused.value.field == acme.CONFIG_CERTIFICATE_KEY and "cannot be read" in str(refused.value)


# --- real Traefik, real pebble ----------------------------------------------------------------------


def test_traefik_obtains_a_site_certificate_from_pebble(cluster, endpoints, pebble_acme):
	client = cluster["client"]
	server = cluster["proxies"]["a"]
	pebble = endpoints["pebble"]
	resolver, root = pebble_acme
	settings = settings_for(endpoints, acme=resolver, http_port=PEBBLE_HTTP_PORT)
	log = add_site(cluster, settings, server, ACME_SITE)
	assert any("writing the routes of" in line for line in log)
	proxy = Proxy.ensure(client, server, settings)
	try:
		served, answer = verified_request(proxy.published_port("443/tcp"), ACME_SITE, root, timeout=90)
	except ssl.SSLError:
		pytest.fail(f"no certificate from pebble; Traefik's log:\n{proxy.traefik.logs(tail=40).decode()}")
	assert answer.startswith("HTTP/1.1 200") and json.loads(answer.split("\r\n\r\n", 1)[1]) == {
		"site": ACME_SITE
	}
	assert served_names(served) == [ACME_SITE]

	storage = proxy.traefik.exec_run(["stat", "-c", "%a", acme.ACME_STORAGE]).output.decode().strip()
	assert storage == "600"
	assert ACME_SITE in container_file(proxy.traefik, acme.ACME_STORAGE)
	volume = client.volumes.get(f"{server.container_prefix}-traefik-acme")
	assert volume.attrs["Labels"][naming.SERVER] == server.name
	inspected = client.api.inspect_container(proxy.traefik.id)
	assert not any("PRIVATE" in value for value in inspected["Config"]["Env"] or [])
	sites_file = f"{traefik.DYNAMIC_DIRECTORY}/{traefik.SITES_FILE}"
	document = yaml.safe_load(container_file(proxy.traefik, sites_file))
	jsonschema.validate(document, SCHEMA)
	assert document["http"]["routers"]["sites-tls"]["tls"] == {
		"certResolver": "acme",
		"domains": [{"main": ACME_SITE}],
	}

	# The operator's view of what Traefik holds for each site it certifies. pebble's DNS sends the
	# challenge of this one to an address where no proxy listens, so it gets no certificate.
	unreachable = "acme-unreachable.example.com"
	dns = pebble["challtestsrv_url"]
	requests.post(f"{dns}/add-a", json={"host": unreachable, "addresses": ["127.0.0.2"]}, timeout=5)
	try:
		cluster["topology"].site_benches[unreachable] = BENCH
		add_site(cluster, settings, server, unreachable)
		report = {c.site: c for c in Proxy.existing(client, server, settings).site_certificates()}
	finally:
		requests.post(f"{dns}/clear-a", json={"host": unreachable}, timeout=5)
	assert set(report) == {ACME_SITE, unreachable}
	now = datetime.datetime.now(datetime.timezone.utc)
	assert report[ACME_SITE].not_after == acme.not_after(x509.load_der_x509_certificate(served))
	assert report[ACME_SITE].problem(now) is None
	assert report[unreachable].not_after is None and report[unreachable].problem(now) is None  # grace
	later = report[unreachable].problem(now + acme.ISSUE_GRACE + datetime.timedelta(minutes=1))
	assert later.startswith(f"{unreachable}: no certificate") and "acme-challenge" in later

	# ACME switched off: the container is remade without the resolver, the TLS router no longer
	# names it, the next job drops it from the site's route, and acme.json stays in its volume for a
	# later switch back.
	plain = settings_for(endpoints, http_port=PEBBLE_HTTP_PORT)
	add_site(cluster, plain, server, ACME_SITE)
	proxy = Proxy.ensure(client, server, plain)
	assert not any("certificatesresolvers" in arg for arg in proxy.traefik.attrs["Args"])
	assert proxy.site(ACME_SITE).cert_resolver is None
	assert "certResolver" not in container_file(proxy.traefik, sites_file)
	client.volumes.get(f"{server.container_prefix}-traefik-acme")


def test_a_custom_domain_sent_without_a_certificate_is_certified_by_acme(cluster, endpoints, pebble_acme):
	"""Press's Add Host to Proxy without a certificate (its TLS Certificate left to the proxy's resolver):
	the domain routes to its site and Traefik obtains its certificate from pebble by HTTP-01, served by
	SNI; Remove Host from Proxy takes it out of the route and of the names Traefik asks for."""
	client = cluster["client"]
	server = cluster["proxies"]["c"]
	resolver, root = pebble_acme
	# names of this run's own: pebble's DNS is shared with whatever else runs
	run = uuid.uuid4().hex[:8]
	site, domain = f"acme-{run}.example.com", f"www.acme-{run}.test"
	cluster["topology"].site_benches[site] = BENCH
	settings = settings_for(endpoints, acme=resolver)
	proxy = Proxy.ensure(client, server, settings)
	# pebble validates HTTP-01 on port 5002 of the address its DNS gives: a loopback address of this
	# test's own, relayed to the proxy's published HTTP port (proxy "a" holds 127.0.0.1:5002)
	address = f"127.0.0.{random.randint(2, 250)}"
	dns = endpoints["pebble"]["challtestsrv_url"]
	relay = Relay(address, ("127.0.0.1", proxy.published_port("80/tcp")), port=PEBBLE_HTTP_PORT)
	try:
		for name in (site, domain):
			answer = requests.post(f"{dns}/add-a", json={"host": name, "addresses": [address]}, timeout=5)
			answer.raise_for_status()
		add_site(cluster, settings, server, site)
		handlers = index(ProxyJobs(settings).handlers())
		empty = dict.fromkeys(("privkey.pem", "fullchain.pem", "chain.pem"))  # what Press sends for none
		payload = {"name": domain, "target": site, "certificate": empty}
		run_job(handlers["Add Host to Proxy"], server, client, cluster["topology"], payload, site=site)
		route = proxy.site(site)
		assert (route.domains, route.acme_domains) == ((domain,), (domain,))
		sites_file = f"{traefik.DYNAMIC_DIRECTORY}/{traefik.SITES_FILE}"
		document = yaml.safe_load(container_file(proxy.traefik, sites_file))
		jsonschema.validate(document, SCHEMA)
		assert document["http"]["routers"]["sites-tls"]["tls"]["domains"] == [
			{"main": site},
			{"main": domain},
		]
		try:
			served, answer = verified_request(proxy.published_port("443/tcp"), domain, root, timeout=120)
		except ssl.SSLError:
			pytest.fail(f"no certificate from pebble; Traefik's log:\n{proxy.traefik.logs(tail=40).decode()}")
		assert served_names(served) == [domain]
		assert json.loads(answer.split("\r\n\r\n", 1)[1]) == {"site": site}
		# the report (and so the TLS Certificate records) has the domain, once acme.json holds it
		expiry = acme.not_after(x509.load_der_x509_certificate(served))
		reported = poll_until(
			lambda: [c for c in proxy.site_certificates() if c.domain == domain and c.not_after],
			timeout=60,
			what="the custom domain's certificate in acme.json",
		)
		assert [(c.site, c.name, c.not_after) for c in reported] == [(site, domain, expiry)]

		run_job(
			handlers["Remove Host from Proxy"],
			server,
			client,
			cluster["topology"],
			{"path_args": {"host": domain}},
			site=site,
		)
	finally:
		relay.close()
		for name in (site, domain):
			requests.post(f"{dns}/clear-a", json={"host": name}, timeout=5)
	route = proxy.site(site)
	assert (route.domains, route.acme_domains) == ((), ())
	assert proxy.served([domain]) == {domain: None}
	assert proxy.sites().acme_domains == ()
	document = yaml.safe_load(container_file(proxy.traefik, sites_file))
	assert document["http"]["routers"]["sites-tls"]["tls"]["domains"] == [{"main": site}]
	assert [c.name for c in proxy.site_certificates()] == [site]


class AcmeProxy:
	"""A proxy of the cluster with ``resolver``, its sites' names pointed by pebble's DNS at an address
	relayed to its HTTP port (pebble validates HTTP-01 on port 5002 of the address its DNS gives) or at
	one where nothing listens; what it serves and what its TLS Certificate records are made of
	(``acme_records.records`` of its report and ``acme.json``)."""

	def __init__(self, cluster, endpoints, kind: str, acme_settings: tuple, pebble: str):
		self.cluster = cluster
		self.resolver, self.root = acme_settings
		self.server = cluster["proxies"][kind]
		self.settings = settings_for(endpoints, acme=self.resolver)
		self.proxy = Proxy.ensure(cluster["client"], self.server, self.settings)
		self.address, self.nowhere = random.sample(
			[f"127.0.{n}.{m}" for n in (3, 4) for m in range(2, 250)], 2
		)
		self.dns = endpoints[pebble]["challtestsrv_url"]
		self.relay = Relay(
			self.address, ("127.0.0.1", self.proxy.published_port("80/tcp")), port=PEBBLE_HTTP_PORT
		)
		self.names: list[str] = []

	def add_site(self, site: str, reachable: bool = True) -> None:
		self.point(site, self.address if reachable else self.nowhere)
		self.cluster["topology"].site_benches[site] = BENCH
		add_site(self.cluster, self.settings, self.server, site)

	def point(self, name: str, to: str) -> None:
		"""``name``'s only A record (challtestsrv adds to the ones it has)."""
		self.names.append(name)
		requests.post(f"{self.dns}/clear-a", json={"host": name}, timeout=5).raise_for_status()
		requests.post(
			f"{self.dns}/add-a", json={"host": name, "addresses": [to]}, timeout=5
		).raise_for_status()

	def served(self, name: str, timeout: float = 120) -> x509.Certificate:
		"""The certificate served for ``name`` once it verifies against pebble's root."""
		try:
			answer = verified_request(self.proxy.published_port("443/tcp"), name, self.root, timeout)
		except ssl.SSLError:
			pytest.fail(
				f"no certificate for {name}; Traefik's log:\n{self.proxy.traefik.logs(tail=40).decode()}"
			)
		return x509.load_der_x509_certificate(answer[0])

	def records(self) -> dict[str, acme_records.CertificateRecord]:
		now = datetime.datetime.now(datetime.timezone.utc)
		held = self.proxy.held_certificates()
		found = acme_records.records(self.proxy.site_certificates(), {}, held, self.resolver, now)
		return {record.name: record for record in found}

	def recorded(self, name: str, served: x509.Certificate) -> acme_records.CertificateRecord:
		"""``name``'s record once it holds ``served`` (Traefik writes acme.json after it serves)."""

		def holding():
			record = self.records().get(name)
			return (
				record
				if record and record.held and record.held.leaf.serial_number == served.serial_number
				else None
			)

		return poll_until(holding, 60, f"{name}'s record holding serial {served.serial_number:x}")

	def close(self) -> None:
		self.relay.close()
		for name in self.names:
			requests.post(f"{self.dns}/clear-a", json={"host": name}, timeout=5)


def test_traefik_renews_a_short_lived_certificate_and_the_records_follow(
	cluster, endpoints, short_lived_acme
):
	"""A site's ten-minute certificate is renewed by Traefik on its own; the records then hold the new
	serial and expiry, which is what the proxy serves."""
	proxy = AcmeProxy(cluster, endpoints, "r", short_lived_acme, "pebble_short")
	site = f"renew-{uuid.uuid4().hex[:8]}.example.com"
	try:
		proxy.add_site(site)
		first = proxy.served(site)
		assert acme.not_after(first) - acme.not_before(first) <= datetime.timedelta(minutes=11)
		record = proxy.recorded(site, first)
		assert (record.status, record.error) == (acme_records.ACTIVE, None)

		renewed = poll_until(
			lambda: (leaf := proxy.served(site)).serial_number != first.serial_number and leaf,
			timeout=300,
			what=f"Traefik renewing {site}'s certificate (issued {acme.not_before(first):%H:%M:%S})",
		)
		assert acme.not_after(renewed) > acme.not_after(first)
		record = proxy.recorded(site, renewed)
		assert (record.status, record.error) == (acme_records.ACTIVE, None)
		assert acme.not_after(record.held.leaf) == acme.not_after(renewed)
	finally:
		proxy.close()


def test_a_name_whose_challenge_failed_is_asked_for_again_once_retried(cluster, endpoints, pebble_acme):
	"""Nothing answers a site's challenge (its DNS points elsewhere): no certificate, the record Pending
	(then Failure with the reason once the grace period is over: tests/unit/test_acme_records.py). Traefik does
	not ask again on its own once the DNS is fixed; ``retry_certificates`` has it ask, and restarts the
	name's grace period."""
	proxy = AcmeProxy(cluster, endpoints, "f", pebble_acme, "pebble")
	run = uuid.uuid4().hex[:8]
	site = f"retry-{run}.example.com"
	try:
		proxy.add_site(site, reachable=False)
		routed = poll_until(
			lambda: (
				"connection refused" in proxy.proxy.traefik.logs(tail=20).decode()
				and {c.name: c.routed_since for c in proxy.proxy.site_certificates()}[site]
			),
			60,
			"pebble refusing the challenge",
		)
		waiting = proxy.records()[site]
		assert (waiting.status, waiting.held) == (acme_records.PENDING, None)

		proxy.point(site, proxy.address)
		port = proxy.proxy.published_port("443/tcp")
		time.sleep(5)
		assert verification_fails(port, site, proxy.root, timeout=0)  # still Traefik's default certificate
		generation = proxy.proxy.sites().generation
		assert proxy.proxy.retry_certificates((site,)) == generation + 1
		retried = proxy.served(site)
		assert proxy.recorded(site, retried).status == acme_records.ACTIVE
		assert {c.name: c.routed_since for c in proxy.proxy.site_certificates()}[site] > routed
		with pytest.raises(ValidationError, match="does not ask an ACME resolver"):
			proxy.proxy.retry_certificates((f"elsewhere-{run}.example.com",))
	finally:
		proxy.close()


def test_a_new_acme_server_gets_a_new_account_and_the_certificates_stay(cluster, endpoints):
	"""The operator points the resolver at another ACME server (Let's Encrypt's staging server, then its
	production one): Traefik would keep the former server's account, whose key ID the new server refuses;
	the account is dropped before the new Traefik starts, so the next name is certified by the new server,
	and the former server's certificates are still served."""
	run = uuid.uuid4().hex[:8]
	before, after = f"before-{run}.example.com", f"after-{run}.example.com"
	with resolver_of(cluster, endpoints["pebble"]) as first_server:
		proxy = AcmeProxy(cluster, endpoints, "s", first_server, "pebble")
		try:
			proxy.add_site(before)
			kept = proxy.served(before)
		finally:
			proxy.close()
	with resolver_of(cluster, endpoints["pebble_short"]) as second_server:
		proxy = AcmeProxy(cluster, endpoints, "s", second_server, "pebble_short")
		try:
			proxy.add_site(after)
			assert proxy.served(after).issuer != kept.issuer  # the second pebble's own CA
			held = {h.main: h.leaf.serial_number for h in proxy.proxy.held_certificates()}
			assert held[before] == kept.serial_number
		finally:
			proxy.close()


def test_only_another_servers_account_is_dropped():
	account = {"Email": "ops@example.com", "Registration": {"uri": "https://acme.test:14000/my-account/1"}}
	stored = {"acme": {"Account": account, "Certificates": [{"domain": {"main": "a.example.com"}}]}}
	same = acme.without_other_servers_accounts(
		json.dumps(stored).encode(), "https://acme.test:14000/dir", ("acme",)
	)
	assert same is None
	other = acme.without_other_servers_accounts(
		json.dumps(stored).encode(), "https://acme.test:14001/dir", ("acme",)
	)
	assert json.loads(other) == {"acme": {"Account": None, "Certificates": stored["acme"]["Certificates"]}}
	assert acme.without_other_servers_accounts(b"", "https://acme.test/dir", ("acme",)) is None


def test_stored_certificates_are_read_without_their_keys(endpoints):
	chain, key, certificate = issue(endpoints["ca"], ["one.example.com", "www.one.example.com"])
	stored = {
		"acme": {
			"Account": {"Email": "ops@example.com", "PrivateKey": "c2VjcmV0"},
			"Certificates": [
				{
					"domain": {"main": "one.example.com", "sans": ["www.one.example.com"]},
					"certificate": base64.b64encode(chain.encode()).decode(),
					"key": base64.b64encode(key.encode()).decode(),
					"Store": "default",
				}
			],
		}
	}
	found = acme.stored_certificates(json.dumps(stored).encode(), "acme")
	validity = (acme.not_before(certificate), acme.not_after(certificate))
	assert found == dict.fromkeys(["one.example.com", "www.one.example.com"], validity)
	assert acme.stored_certificates(b"", "acme") == {} and acme.stored_certificates(b"{}", "other") == {}
	with pytest.raises(ValidationError, match="acme.json"):
		acme.stored_certificates(b"{not json", "acme")


def test_a_certificate_not_renewed_in_time_is_a_problem():
	now = datetime.datetime(2026, 11, 26, tzinfo=datetime.timezone.utc)
	since = now - datetime.timedelta(days=80)
	healthy = acme.SiteCertificate("a.example.com", since, now + datetime.timedelta(days=45))
	overdue = acme.SiteCertificate("a.example.com", since, now + datetime.timedelta(days=12))
	assert healthy.problem(now) is None
	assert "expires 2026-12-08" in overdue.problem(now) and "not been renewed" in overdue.problem(now)
	# a short-lived certificate (Traefik renews it every minute once a third of its life is left) is
	# judged by its own lifetime, not by Let's Encrypt's 90 days
	issued = now - datetime.timedelta(minutes=5)
	lifetime = datetime.timedelta(minutes=10)
	short = acme.SiteCertificate("a.example.com", since, issued + lifetime, not_before=issued)
	assert short.problem(now) is None
	assert "not been renewed" in short.problem(now + datetime.timedelta(minutes=4))


def test_default_certificate_from_the_operators_ca(cluster, endpoints):
	client = cluster["client"]
	server = cluster["proxies"]["l"]
	chain, key, issued = issue(endpoints["ca"], ["*.root.test", "root.test"])
	settings = settings_for(endpoints, default_certificate=DefaultCertificate(chain, key))
	add_site(cluster, settings, server, LOCAL_SITE)
	proxy = Proxy.ensure(client, server, settings)
	with open(endpoints["ca"]["cert_file"]) as handle:
		ca = handle.read()
	served, answer = verified_request(proxy.published_port("443/tcp"), LOCAL_SITE, ca, timeout=90)
	assert served == issued.public_bytes(serialization.Encoding.DER)
	assert json.loads(answer.split("\r\n\r\n", 1)[1]) == {"site": LOCAL_SITE}
	key_path = f"{traefik.DYNAMIC_DIRECTORY}/{acme.DEFAULT_CERTIFICATE_DIRECTORY}/privkey.pem"
	assert proxy.traefik.exec_run(["stat", "-c", "%a", key_path]).output.decode().strip() == "600"
	inspected = client.api.inspect_container(proxy.traefik.id)
	assert key not in json.dumps(inspected)

	# Unchanged settings rewrite nothing; removed settings remove the files and Traefik falls back
	# to its own self-signed certificate.
	document = f"{traefik.DYNAMIC_DIRECTORY}/{acme.DEFAULT_CERTIFICATE_FILE}"
	before = proxy.traefik.exec_run(["stat", "-c", "%i %Y", document]).output
	again = Proxy.ensure(client, server, settings)
	assert again.traefik.id == proxy.traefik.id
	assert proxy.traefik.exec_run(["stat", "-c", "%i %Y", document]).output == before

	# Proxy.ensure returns once Traefik has applied the removal (the generation of its files); the
	# served certificate is still polled, with a generous deadline, rather than looked at once.
	Proxy.ensure(client, server, settings_for(endpoints))
	assert container_file(proxy.traefik, document) is None
	assert container_file(proxy.traefik, key_path) is None
	assert verification_fails(proxy.published_port("443/tcp"), LOCAL_SITE, ca, timeout=90)


def test_a_tls_setting_that_cannot_be_read_fails_the_proxy_job_not_the_routing(cluster, endpoints):
	"""Settings given as a callable are read when a step runs (as the Frappe glue does)."""
	broken = {acme.CONFIG_EMAIL: "ops@example.com", acme.CONFIG_CA_BUNDLE: "/nonexistent/ca.pem"}

	def settings(server) -> ProxySettings:
		resolver, certificate = acme.from_site_config(broken)
		return settings_for(endpoints, acme=resolver, default_certificate=certificate)

	handlers = index(ProxyJobs(settings).handlers())  # building the handlers reads nothing
	with pytest.raises(ValidationError) as refused:
		run_job(
			handlers["Add Site to Upstream"],
			cluster["proxies"]["l"],
			cluster["client"],
			cluster["topology"],
			{"name": LOCAL_SITE, "path_args": {"upstream": UPSTREAM}},
			site=LOCAL_SITE,
		)
	assert refused.value.field == acme.CONFIG_CA_BUNDLE and "/nonexistent/ca.pem" in str(refused.value)
