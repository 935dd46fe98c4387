"""A root domain's wildcard by DNS-01: Traefik's second ACME resolver asks the real pebble for
``*.<domain>`` and ``<domain>``, and publishes the challenge's TXT record through a DNS provider of
its ACME client (lego). The provider here is lego's ``exec``: a script in the Traefik container that
calls the real pebble-challtestsrv, the DNS server pebble validates against. Its variables are
credentials like any provider's: files the environment only names. Traefik, pebble and challtestsrv
are real; the served certificate is checked by SNI against pebble's root."""

from __future__ import annotations

import datetime
import json
import ssl
import uuid

import jsonschema
import pytest
import requests
import yaml
from cryptography import x509
from proxy_helpers import container_server, poll_until, remove_servers, verified_request
from references import schema

from press_selfhosted.engine import naming
from press_selfhosted.engine.clients import acme, traefik
from press_selfhosted.engine.clients.acme import AcmeResolver, DnsChallenge
from press_selfhosted.engine.clients.proxy import Proxy, ProxySettings, traefik_spec
from press_selfhosted.engine.errors import ValidationError
from press_selfhosted.tests.acme_services import EXEC_PATH, Relay, exec_script_archive

SCHEMA = schema("traefik-v3-file-provider.json")


def settings_for(endpoints, **more) -> ProxySettings:
	base = {"bind_address": "127.0.0.1", "http_port": 0, "https_port": 0, "reload_timeout": 20}
	return ProxySettings(
		traefik_image=endpoints["images"]["traefik"],
		router_image=endpoints["images"]["front"],
		**{**base, **more},
	)


# --- pure: settings and documents --------------------------------------------------------------------


@pytest.mark.parametrize(
	("arguments", "field", "words"),
	[
		({"provider": "Cloud Flare"}, acme.FIELD_PROVIDER, "lowercase"),
		({"provider": "manual"}, acme.FIELD_PROVIDER, "by hand"),
		({"credentials": {"cf_token": "x"}}, f"{acme.FIELD_CREDENTIALS}.variable", "uppercase"),
		({"credentials": {"CF_DNS_API_TOKEN_FILE": "x"}}, f"{acme.FIELD_CREDENTIALS}.variable", "_FILE"),
		({"credentials": {"CF_DNS_API_TOKEN": " "}}, f"{acme.FIELD_CREDENTIALS}.CF_DNS_API_TOKEN", "empty"),
		({"resolvers": ("1.1.1.1",)}, acme.FIELD_RESOLVERS, "host:port"),
		({"delay": -1}, acme.FIELD_DELAY, "seconds"),
	],
)
def test_dns_settings_are_refused_with_the_field_and_fix(arguments, field, words):
	with pytest.raises(ValidationError) as refused:
		DnsChallenge(**{"provider": "cloudflare", **arguments})
	assert refused.value.field == field and words in str(refused.value)
	assert "Fix: " in str(refused.value)


def test_a_credential_is_never_shown():
	with pytest.raises(ValidationError) as refused:
		DnsChallenge("cloudflare", {"CF_DNS_API_TOKEN": "secret\0"})
	assert "secret" not in str(refused.value)
	assert "secret" not in repr(DnsChallenge("cloudflare", {"CF_DNS_API_TOKEN": "secret"}))


def test_dns_needs_acme_and_a_wildcard_needs_dns(endpoints):
	dns = DnsChallenge("cloudflare", {"CF_DNS_API_TOKEN": "t"})
	with pytest.raises(ValidationError, match="ACME server and account"):
		settings_for(endpoints, dns_challenge=dns)
	with pytest.raises(ValidationError, match="only be obtained by DNS-01"):
		settings_for(endpoints, acme=AcmeResolver("ops@example.com"), wildcard_domains=("root.test",))


def test_traefik_gets_a_dns_resolver_whose_environment_only_names_files(endpoints):
	server = container_server(endpoints, "p.local", "Proxy Server", "pp", "net")
	dns = DnsChallenge(
		"cloudflare", {"CF_DNS_API_TOKEN": "s3cret"}, resolvers=("1.1.1.1:53", "8.8.8.8:53"), delay=30
	)
	resolver = AcmeResolver("ops@example.com")
	spec = traefik_spec(server, settings_for(endpoints, acme=resolver, dns_challenge=dns))
	prefix = "--certificatesresolvers.acme-dns.acme"
	assert {
		f"{prefix}.email=ops@example.com",
		f"{prefix}.storage={acme.ACME_STORAGE}",
		f"{prefix}.dnschallenge.provider=cloudflare",
		f"{prefix}.dnschallenge.resolvers=1.1.1.1:53,8.8.8.8:53",
		f"{prefix}.dnschallenge.propagation.delaybeforechecks=30s",
	} <= set(spec.command)
	assert set(resolver.arguments()) <= set(spec.command)  # the HTTP-01 resolver stays as it was
	assert spec.environment == {"CF_DNS_API_TOKEN_FILE": f"{acme.DNS_CREDENTIALS_DIRECTORY}/CF_DNS_API_TOKEN"}
	assert "s3cret" not in json.dumps([spec.command, spec.environment, spec.labels])
	assert dns.files() == {f"{acme.DNS_CREDENTIALS_DIRECTORY}/CF_DNS_API_TOKEN": b"s3cret"}


def test_the_wildcard_document_asks_the_dns_resolver():
	files = acme.wildcard_files(traefik.DYNAMIC_DIRECTORY, ("root.test",), "acme-dns")
	(path, content), *others = files.items()
	assert not others and path == f"{traefik.DYNAMIC_DIRECTORY}/acme_wildcard_root_test.yml"
	document = yaml.safe_load(content)
	jsonschema.validate(document, SCHEMA)
	(router,) = document["http"]["routers"].values()
	assert router["tls"] == {
		"certResolver": "acme-dns",
		"domains": [{"main": "*.root.test", "sans": ["root.test"]}],
	}


# --- real Traefik, real pebble and challtestsrv ----------------------------------------------------------


@pytest.fixture
def proxy_server(endpoints, docker_client):
	prefix = f"d{uuid.uuid4().hex[:8]}"
	network = f"{prefix}-net"
	server = container_server(endpoints, f"{prefix}-proxy.local", "Proxy Server", prefix, network)
	docker_client.networks.create(network, labels=naming.labels(server.name, "network"))
	try:
		yield server
	finally:
		remove_servers(docker_client, [server.name], network)


def test_traefik_obtains_a_wildcard_by_dns01_from_pebble(proxy_server, endpoints, docker_client):
	pebble = endpoints["pebble"]
	domain = f"w{uuid.uuid4().hex[:8]}.example.com"
	token = uuid.uuid4().hex
	gateway = docker_client.networks.get(proxy_server.network).attrs["IPAM"]["Config"][0]["Gateway"]
	directory = requests.utils.urlparse(pebble["directory_url"])
	management = requests.utils.urlparse(pebble["challtestsrv_url"])
	relays = [
		Relay(gateway, (directory.hostname, directory.port)),
		Relay(gateway, (management.hostname, management.port)),
	]
	try:
		with open(pebble["ca_file"]) as handle:
			resolver = AcmeResolver(
				"ops@example.com",
				f"https://{gateway}:{relays[0].port}{directory.path}",
				ca_bundle=handle.read(),
				server_name="localhost",  # pebble's HTTPS certificate names localhost and 127.0.0.1
			)
		dns = DnsChallenge(
			"exec",
			{
				"EXEC_PATH": EXEC_PATH,
				"PRESS_TEST_TOKEN": token,
				# lego's exec provider solves one name at a time, 60 s apart unless told otherwise
				"EXEC_SEQUENCE_INTERVAL": "1",
			},
			# challtestsrv answers on the host's loopback only, where the container's lego cannot ask
			check_propagation=False,
		)
		settings = settings_for(endpoints, acme=resolver, dns_challenge=dns)
		proxy = Proxy.ensure(docker_client, proxy_server, settings)
		# the provider's script is in place before any wildcard is asked for
		proxy.traefik.put_archive(
			acme.ACME_DIRECTORY, exec_script_archive(token, f"{gateway}:{relays[1].port}")
		)
		with_wildcard = settings_for(endpoints, acme=resolver, dns_challenge=dns, wildcard_domains=(domain,))
		proxy = Proxy.ensure(docker_client, proxy_server, with_wildcard)
		root = requests.get(f"{pebble['management_url']}/roots/0", verify=pebble["ca_file"], timeout=10).text
		try:
			served, _answer = verified_request(
				proxy.published_port("443/tcp"), f"anything.{domain}", root, timeout=120
			)
		except ssl.SSLError:
			pytest.fail(f"no wildcard from pebble; Traefik's log:\n{proxy.traefik.logs(tail=60).decode()}")
	finally:
		for relay in relays:
			relay.close()
		requests.post(
			f"{pebble['challtestsrv_url']}/clear-txt", json={"host": f"_acme-challenge.{domain}."}, timeout=5
		)
	leaf = x509.load_der_x509_certificate(served)
	names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
	assert sorted(names.get_values_for_type(x509.DNSName)) == sorted([f"*.{domain}", domain])
	# Traefik writes acme.json in the background, after it serves the certificate
	stored = poll_until(
		lambda: json.loads(proxy.traefik.exec_run(["cat", acme.ACME_STORAGE]).output or b"{}").get(
			resolver.dns_name
		),
		timeout=30,
		what="the wildcard in acme.json",
	)
	assert [c["domain"] for c in stored["Certificates"]] == [{"main": f"*.{domain}", "sans": [domain]}]
	# what its record's grace period counts from; asked for again on request (a fixed credential)
	asked = proxy.wildcards_requested()
	assert list(asked) == [domain]
	assert datetime.datetime.now(datetime.timezone.utc) - asked[domain] < datetime.timedelta(minutes=10)
	before = proxy.sites()
	assert proxy.retry_certificates((f"*.{domain}",)) == (before.generation if before else 0) + 1
	assert proxy.wildcards_requested()[domain] >= asked[domain]

	# The credentials: files only root reads, named by the environment, in no inspect output.
	for variable in dns.credentials:
		path = acme.credential_path(variable)
		assert proxy.traefik.exec_run(["stat", "-c", "%a %u %g", path]).output.decode().split() == [
			"400",
			"0",
			"0",
		]
	listing = proxy.traefik.exec_run(["stat", "-c", "%a", acme.DNS_CREDENTIALS_DIRECTORY])
	assert listing.output.decode().strip() == "700"
	inspected = json.dumps(docker_client.api.inspect_container(proxy.traefik.id))
	assert token not in inspected
	assert f"PRESS_TEST_TOKEN_FILE={acme.credential_path('PRESS_TEST_TOKEN')}" in inspected

	# A changed credential is rewritten and Traefik restarted to read it (same container: the environment
	# names the same files); a variable no longer set loses its file; without the wildcard domain its
	# document goes.
	started = proxy.traefik.attrs["State"]["StartedAt"]
	rotated = DnsChallenge(
		"exec", {**dns.credentials, "PRESS_TEST_TOKEN": "rotated"}, check_propagation=False
	)
	again = Proxy.ensure(
		docker_client, proxy_server, settings_for(endpoints, acme=resolver, dns_challenge=rotated)
	)
	again.traefik.reload()
	assert again.traefik.id == proxy.traefik.id and again.traefik.attrs["State"]["StartedAt"] != started
	assert again.traefik.exec_run(["cat", acme.credential_path("PRESS_TEST_TOKEN")]).output == b"rotated"

	fewer = DnsChallenge("exec", {"EXEC_PATH": EXEC_PATH}, check_propagation=False)
	again = Proxy.ensure(
		docker_client, proxy_server, settings_for(endpoints, acme=resolver, dns_challenge=fewer)
	)
	held = again.traefik.exec_run(["ls", acme.DNS_CREDENTIALS_DIRECTORY]).output.decode().split()
	assert held == ["EXEC_PATH"]
	wildcard_file = f"{traefik.DYNAMIC_DIRECTORY}/{acme.wildcard_file_name(domain)}"
	assert again.traefik.exec_run(["test", "-e", wildcard_file]).exit_code == 1
