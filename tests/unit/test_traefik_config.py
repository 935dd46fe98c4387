"""Traefik dynamic configuration: every document validates against the Traefik v3 file-provider schema
and says what it must (the catch-all routers to the site router, the generation, certificates).
Pure functions: no service needed."""

from __future__ import annotations

import jsonschema
import pytest
import yaml
from references import schema

from press_selfhosted.engine.clients import traefik
from press_selfhosted.engine.clients.traefik import HostRoute, Sites
from press_selfhosted.engine.errors import RouteStateUnreadable, ValidationError

SCHEMA = schema("traefik-v3-file-provider.json")
ROUTER = "http://px-router:80"

VARIANTS = {
	"sites": Sites(ROUTER, generation=1),
	"sites with ACME": Sites(ROUTER, "acme", ("a.example.com", "b.example.com"), 7),
	"ACME, no site yet": Sites(ROUTER, "acme", (), 2),
	"ACME with a custom domain": Sites(ROUTER, "acme", ("a.example.com",), 3, ("www.customer.test",)),
	"host with cert": HostRoute("shop.example.org", site="site1.example.com"),
	"wildcard host": HostRoute("*.example.com"),
}


def loaded(source) -> dict:
	"""The file as Traefik's YAML reader sees it (the header is a comment)."""
	return yaml.safe_load(traefik.render(source))


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_validates_against_the_traefik_schema(variant):
	document = loaded(VARIANTS[variant])
	jsonschema.validate(document, SCHEMA)
	assert document  # never an empty file


def test_every_host_goes_to_the_site_router_on_both_entry_points_at_the_lowest_priority():
	http = loaded(VARIANTS["sites"])["http"]
	assert set(http["routers"]) == {"sites", "sites-tls"}
	for name, entry in (("sites", "web"), ("sites-tls", "websecure")):
		router = http["routers"][name]
		assert router["entryPoints"] == [entry]
		assert router["rule"] == "HostRegexp(`.+`)" and router["priority"] == 1
		assert router["service"] == "sites" and router["middlewares"] == ["sites-generation"]
	assert "tls" not in http["routers"]["sites"]
	assert http["routers"]["sites-tls"]["tls"] == {}  # the certificate matching the SNI, the default else
	assert http["services"]["sites"]["loadBalancer"] == {"servers": [{"url": ROUTER}], "passHostHeader": True}


def test_the_generation_travels_in_a_header_traefiks_api_shows():
	middleware = loaded(VARIANTS["sites with ACME"])["http"]["middlewares"]["sites-generation"]
	assert middleware == {"headers": {"customRequestHeaders": {"X-Press-Generation": "7"}}}


def test_acme_is_asked_for_each_site_name_and_nothing_else():
	tls = loaded(VARIANTS["sites with ACME"])["http"]["routers"]["sites-tls"]["tls"]
	assert tls == {"certResolver": "acme", "domains": [{"main": "a.example.com"}, {"main": "b.example.com"}]}
	assert loaded(VARIANTS["ACME, no site yet"])["http"]["routers"]["sites-tls"]["tls"] == {
		"certResolver": "acme"
	}


def test_host_document_references_the_certificate_files_and_holds_no_key():
	host = VARIANTS["wildcard host"]
	text = traefik.render(host)
	document = yaml.safe_load(text)
	assert document == {
		"tls": {
			"certificates": [
				{
					"certFile": "/etc/traefik/dynamic/certs/_wildcard_example_com/fullchain.pem",
					"keyFile": "/etc/traefik/dynamic/certs/_wildcard_example_com/privkey.pem",
				}
			]
		}
	}
	assert "PRIVATE KEY" not in text


@pytest.mark.parametrize("source", list(VARIANTS.values()), ids=list(VARIANTS))
def test_the_file_gives_back_what_it_was_rendered_from(source):
	name = traefik.SITES_FILE if isinstance(source, Sites) else source.file_name
	assert traefik.parse(traefik.render(source), name) == source


def test_a_foreign_file_is_refused_with_the_fix():
	with pytest.raises(RouteStateUnreadable, match="host_x.yml.*not written by press_selfhosted.*Remove it"):
		traefik.parse("http: {}\n", "host_x.yml")


def test_distinct_hosts_get_distinct_names():
	names = ["a.b.example.com", "a-b.example.com", "*.b.example.com", "wildcard.b.example.com"]
	assert len({traefik.route_id(name) for name in names}) == len(names)


@pytest.mark.parametrize(
	("make", "field", "message"),
	[
		(lambda: HostRoute("Shop.example.org"), "name", "lowercase"),
		(lambda: HostRoute("a`) || Host(`evil.com"), "name", "no spaces"),
		(
			lambda: HostRoute("shop.example.org", site="bad_site.example.com"),
			"target",
			"characters other than",
		),
		(lambda: Sites(ROUTER, "acme", ("a.example.com`)",)), "acme_sites", "characters other than"),
		(lambda: Sites(ROUTER, "acme", (), 1, ("*.example.com",)), "acme_domains", "characters other than"),
	],
)
def test_bad_input_is_refused_with_the_field(make, field, message):
	with pytest.raises(ValidationError, match=message) as refused:
		make()
	assert refused.value.field == field


def test_the_resolver_is_asked_for_site_names_and_acme_custom_domains_alike():
	sites = VARIANTS["ACME with a custom domain"]
	assert loaded(sites)["http"]["routers"]["sites-tls"]["tls"]["domains"] == [
		{"main": "a.example.com"},
		{"main": "www.customer.test"},
	]
	assert traefik.parse(traefik.render(sites), traefik.SITES_FILE) == sites


def test_a_sites_file_written_before_acme_custom_domains_still_reads():
	header = traefik.HEADER + (
		'{"acme_sites": ["a.example.com"], "cert_resolver": "acme", "generation": 4, "kind": "Sites", '
		f'"router_url": "{ROUTER}"}}'
	)
	assert traefik.parse(header + "\n{}\n", traefik.SITES_FILE) == Sites(
		ROUTER, "acme", ("a.example.com",), 4
	)
