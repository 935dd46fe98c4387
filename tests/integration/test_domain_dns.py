"""Custom domains checked against real DNS: pebble-challtestsrv, the local ACME server's DNS, holds
the records (it answers 127.0.0.1 for names it was told nothing of, so every name here gets records
of its own, under TEST-NET addresses)."""

from __future__ import annotations

import socket

import pytest
import requests

from press_selfhosted.engine.clients import domain_dns
from press_selfhosted.engine.clients.domain_dns import Nameserver, ProxyTarget
from press_selfhosted.engine.errors import DnsUnanswered, DomainNotPointingHere, ValidationError

PROXY_IP = "192.0.2.10"
ELSEWHERE = "198.51.100.7"


@pytest.fixture
def dns(endpoints, unique):
	"""Sets records on challtestsrv and clears them afterwards; yields (set_a, set_cname, nameservers,
	names), names made unique for this test."""
	management = endpoints["pebble"]["challtestsrv_url"]
	host, port = endpoints["pebble"]["dns"].rsplit(":", 1)
	made: list[tuple[str, str]] = []

	def set_a(name: str, *addresses: str) -> None:
		requests.post(
			f"{management}/add-a", json={"host": f"{name}.", "addresses": list(addresses)}, timeout=5
		)
		made.append(("clear-a", name))

	def set_cname(name: str, target: str) -> None:
		requests.post(f"{management}/set-cname", json={"host": f"{name}.", "target": f"{target}."}, timeout=5)
		made.append(("clear-cname", name))

	def name(label: str) -> str:
		return f"{label}-{unique}.example.test"

	yield set_a, set_cname, (Nameserver(host, int(port)),), name
	for path, record in made:
		requests.post(f"{management}/{path}", json={"host": f"{record}."}, timeout=5)


def target(site: str, *addresses: str) -> ProxyTarget:
	return ProxyTarget(site=site, names=(site, "proxy.root.test"), addresses=addresses)


def test_a_cname_to_the_site_or_the_proxy_server_is_accepted(dns):
	set_a, set_cname, nameservers, name = dns
	site, shop, blog = name("tenant"), name("shop"), name("blog")
	set_a(site, PROXY_IP)
	set_cname(shop, site.upper())  # DNS names compare without case
	set_cname(blog, "proxy.root.test")

	found = domain_dns.check_domain(shop, target(site), nameservers)
	assert (found.kind, found.domain) == ("CNAME", shop)
	assert site in found.answer
	assert domain_dns.check_domain(blog, target(site), nameservers).kind == "CNAME"


def test_an_address_of_the_proxy_is_accepted(dns):
	set_a, set_cname, nameservers, name = dns
	site, shop, alias, lan = name("tenant"), name("shop"), name("alias"), name("lan")
	set_a(site, PROXY_IP)
	set_a(shop, PROXY_IP)
	# a CNAME to some other name of the operator's that resolves to the proxy
	set_a(name("edge"), PROXY_IP)
	set_cname(alias, name("edge"))
	# the proxy server's own IP counts even where the site's name resolves elsewhere (split DNS)
	set_a(lan, "10.1.2.3")

	assert domain_dns.check_domain(shop, target(site), nameservers) == domain_dns.DomainDns(
		shop, "A", f"{shop} → {PROXY_IP}"
	)
	assert domain_dns.check_domain(alias, target(site), nameservers).kind == "CNAME"
	assert domain_dns.check_domain(lan, target(site, "10.1.2.3"), nameservers).kind == "A"


def test_a_domain_pointing_elsewhere_is_refused_with_the_records_to_add(dns):
	set_a, set_cname, nameservers, name = dns
	site, shop, mixed, other = name("tenant"), name("shop"), name("mixed"), name("other")
	set_a(site, PROXY_IP)
	set_a(shop, ELSEWHERE)
	set_a(mixed, PROXY_IP, ELSEWHERE)
	set_a(name("unrelated"), ELSEWHERE)
	set_cname(other, name("unrelated"))

	with pytest.raises(DomainNotPointingHere) as refused:
		domain_dns.check_domain(shop, target(site), nameservers)
	message = str(refused.value)
	assert f"resolves to {ELSEWHERE}" in message
	assert f"CNAME record {shop} → {site}" in message and f"A/AAAA record to {PROXY_IP}" in message

	# one right and one wrong address: half of the visitors (and an ACME challenge) would go elsewhere
	with pytest.raises(DomainNotPointingHere) as partly:
		domain_dns.check_domain(mixed, target(site), nameservers)
	assert partly.value.wrong == (ELSEWHERE,) and "partly elsewhere" in str(partly.value)

	with pytest.raises(DomainNotPointingHere, match=f"is a CNAME of {name('unrelated')}"):
		domain_dns.check_domain(other, target(site), nameservers)


def test_resolvers_that_do_not_answer_are_named():
	# a UDP port nothing listens on: the resolver gets no answer within the timeout
	with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
		probe.bind(("127.0.0.1", 0))
		silent = Nameserver("127.0.0.1", probe.getsockname()[1])
		with pytest.raises(DnsUnanswered, match=f"127.0.0.1:{silent.port}.*press_selfhosted_dns_nameservers"):
			domain_dns.check_domain("shop.example.test", target("tenant.root.test"), (silent,), timeout=1)


def test_a_name_that_is_not_a_domain_is_refused_before_any_query():
	for hostile in ("../etc", "shop example.test", "a..b.test", "x" * 300):
		with pytest.raises(ValidationError, match="domain"):
			domain_dns.check_domain(
				hostile, target("tenant.root.test"), (Nameserver("127.0.0.1", 9),), timeout=1
			)


def test_nameservers_from_the_site_config():
	assert domain_dns.parse_nameservers("") == ()
	assert domain_dns.parse_nameservers(None) == ()
	assert domain_dns.parse_nameservers("10.0.0.2, 10.0.0.3") == (
		Nameserver("10.0.0.2"),
		Nameserver("10.0.0.3"),
	)
	assert domain_dns.parse_nameservers(["127.0.0.1:8053"]) == (Nameserver("127.0.0.1", 8053),)
	assert domain_dns.parse_nameservers("2001:db8::53") == (Nameserver("2001:db8::53"),)
	with pytest.raises(ValidationError, match="same port"):
		domain_dns.parse_nameservers("10.0.0.2:53, 10.0.0.3:5353")
	with pytest.raises(ValidationError, match="press_selfhosted_dns_nameservers"):
		domain_dns.parse_nameservers("dns.example.com")
