"""Traefik dynamic configuration: every variant validates against the Traefik v3 file-provider schema
and routes where it must. Pure functions: no service needed."""

from __future__ import annotations

import json

import jsonschema
import pytest
import yaml
from references import schema

from press_selfhosted.engine import traefik
from press_selfhosted.engine.traefik import HostRoute, SiteRoute
from press_selfhosted.engine.validation import ValidationError

SCHEMA = schema("traefik-v3-file-provider.json")
BASE = SiteRoute(
	site="site1.example.com",
	upstream="10.0.0.5",
	app_server="app1.example.com",
	bench="bench-0001",
	front="http://p1-bench-0001-front:80",
	socketio="http://p1-bench-0001:9000",
	pages="http://px-pages:80",
)

VARIANTS = {
	"active": BASE,
	"suspended": BASE.with_status("suspended"),
	"suspended_saas": BASE.with_status("suspended_saas"),
	"deactivated": BASE.with_status("deactivated"),
	"extra domains": BASE.with_domains(added=("shop.example.org", "www.example.org")),
	"host with cert": HostRoute("shop.example.org", site="site1.example.com"),
	"wildcard host": HostRoute("*.example.com"),
}


def loaded(route) -> dict:
	"""The file as Traefik's YAML reader sees it (the header is a comment)."""
	return yaml.safe_load(traefik.render(route))


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_validates_against_the_traefik_schema(variant):
	document = loaded(VARIANTS[variant])
	jsonschema.validate(document, SCHEMA)
	assert document  # never an empty file


def test_active_site_routes_every_host_to_the_bench_front_and_socketio_to_the_backend():
	route = VARIANTS["extra domains"]
	http = loaded(route)["http"]
	main = http["routers"]["site1_example_com"]
	assert main["rule"] == (
		"Host(`site1.example.com`) || Host(`shop.example.org`) || Host(`www.example.org`)"
	)
	assert main["entryPoints"] == ["web"] and "tls" not in main
	assert http["routers"]["site1_example_com-tls"]["entryPoints"] == ["websecure"]
	assert http["routers"]["site1_example_com-tls"]["tls"] == {}
	assert http["services"]["site1_example_com"]["loadBalancer"]["servers"] == [
		{"url": "http://p1-bench-0001-front:80"}
	]
	socketio = http["routers"]["site1_example_com-socketio"]
	assert socketio["rule"].endswith("&& PathPrefix(`/socket.io`)")
	assert socketio["priority"] > main["priority"]
	assert http["services"][socketio["service"]]["loadBalancer"]["servers"] == [
		{"url": "http://p1-bench-0001:9000"}
	]
	# custom domains reach their site: the site name travels in X-Frappe-Site-Name whatever the Host
	for name, proto in (("site1_example_com", "http"), ("site1_example_com-tls", "https")):
		middleware = http["middlewares"][http["routers"][name]["middlewares"][0]]
		assert middleware["headers"]["customRequestHeaders"] == {
			"X-Frappe-Site-Name": "site1.example.com",
			"X-Forwarded-Proto": proto,
		}


@pytest.mark.parametrize("status", ["suspended", "suspended_saas", "deactivated"])
def test_a_site_that_is_not_active_routes_to_its_page_and_never_to_the_bench(status):
	http = loaded(BASE.with_status(status))["http"]
	text = json.dumps(http)
	assert "bench-0001" not in text and "socket.io" not in text
	router = http["routers"]["site1_example_com"]
	assert http["services"][router["service"]]["loadBalancer"]["servers"] == [{"url": "http://px-pages:80"}]
	assert http["middlewares"][router["middlewares"][0]] == {"replacePath": {"path": f"/status/{status}"}}


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


@pytest.mark.parametrize("route", list(VARIANTS.values()), ids=list(VARIANTS))
def test_the_file_gives_back_the_route_it_was_rendered_from(route):
	assert traefik.parse(traefik.render(route), route.file_name) == route


def test_a_foreign_file_is_refused_with_the_fix():
	with pytest.raises(
		traefik.RouteStateUnreadable, match="site_x.yml.*not written by press_selfhosted.*Remove it"
	):
		traefik.parse("http: {}\n", "site_x.yml")


def test_distinct_hosts_get_distinct_names():
	names = ["a.b.example.com", "a-b.example.com", "*.b.example.com", "wildcard.b.example.com"]
	assert len({traefik.route_id(name) for name in names}) == len(names)


@pytest.mark.parametrize(
	("change", "field", "message"),
	[
		({"site": "Site1.example.com"}, "name", "lowercase"),
		({"site": "a`) || Host(`evil.com"}, "name", "no spaces"),
		({"status": "paused"}, "status", "must be one of activated, suspended"),
		({"domains": ("bad_domain.example.com",)}, "domain", "characters other than"),
		({"domains": ("*.example.org",)}, "domain", "characters other than"),
	],
)
def test_bad_input_is_refused_with_the_field(change, field, message):
	with pytest.raises(ValidationError, match=message) as refused:
		SiteRoute(**{**BASE.__dict__, **change})
	assert refused.value.field == field
