"""Traefik dynamic configuration for a container Proxy Server: TLS, and two catch-all routers to the
site router.

Traefik rebuilds its whole configuration on any change of any provider, so one router per site would
make every site's change cost in proportion to the fleet (see engine.clients.site_router). Here Traefik holds:
- ``sites.yml`` (:func:`sites_document`): routers ``sites`` (``web``) and ``sites-tls`` (``websecure``)
  matching every host at the lowest priority, to the site router, which maps each host to its site. With
  an ACME resolver, ``sites-tls`` lists every certified site name, and every custom domain Press sent
  without a certificate, under ``tls.domains``, so Traefik obtains one certificate per name by HTTP-01.
  Its middleware ``sites-generation`` carries a number bumped
  whenever Traefik's files change: certificates show nowhere in Traefik's API, so a job knows Traefik has
  applied its change once the API shows that number.
- a document per host with its own certificate (custom domains, wildcards: ``host_<name>.yml``).
Everything here is pure: dataclasses in, ``{file name: text}`` out.

Each document starts with a comment line holding the dataclass it was rendered from, so the proxy
jobs read back what is on the proxy from the file Traefik reads; a file is replaced atomically, so the
state and the configuration never disagree.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from press_selfhosted.engine.errors import RouteStateUnreadable
from press_selfhosted.engine.validation import validate_fqdn

DYNAMIC_DIRECTORY = "/etc/traefik/dynamic"
CERTIFICATES_DIRECTORY = f"{DYNAMIC_DIRECTORY}/certs"
HEADER = "# press-selfhosted route: "
WEB = "web"
WEBSECURE = "websecure"
SITES_FILE = "sites.yml"
SITES = "sites"  # the routers' and the router service's name
GENERATION = "sites-generation"  # the middleware whose header carries the generation
GENERATION_HEADER = "X-Press-Generation"
# Host documents have no routers; ACME's HTTP-01 router and nothing else outranks the catch-all.
PRIORITY_SITES = 1


def validate_host_name(value: object, field: str) -> str:
	"""A domain name, or a wildcard ``*.example.com`` (the certificate of every site under it)."""
	if isinstance(value, str) and value.startswith("*."):
		validate_fqdn(value[2:], field)
		return value
	return validate_fqdn(value, field)


def route_id(name: str) -> str:
	"""A Traefik object and file name for a host name. '_' never occurs in a host name, so mapping '.'
	to '_' (and the wildcard's '*' to '_wildcard') keeps distinct hosts distinct."""
	return name.replace("*", "_wildcard").replace(".", "_")


@dataclass(frozen=True)
class HostRoute:
	"""A custom domain (or a wildcard) with its certificate files on the proxy; ``site`` it serves."""

	name: str
	site: str | None = None

	def __post_init__(self):
		validate_host_name(self.name, "name")
		if self.site is not None:
			validate_fqdn(self.site, "target")

	@property
	def file_name(self) -> str:
		return f"host_{route_id(self.name)}.yml"

	@property
	def certificate_directory(self) -> str:
		return f"{CERTIFICATES_DIRECTORY}/{route_id(self.name)}"


def certificate_files(host: HostRoute) -> dict[str, str]:
	"""Paths of a host's certificate files inside the Traefik container, by Press's payload key."""
	return {
		key: f"{host.certificate_directory}/{key}" for key in ("fullchain.pem", "privkey.pem", "chain.pem")
	}


def host_document(host: HostRoute) -> dict[str, Any]:
	files = certificate_files(host)
	return {"tls": {"certificates": [{"certFile": files["fullchain.pem"], "keyFile": files["privkey.pem"]}]}}


@dataclass(frozen=True)
class Sites:
	"""What ``sites.yml`` says: where the site router is, the ACME resolver and the names it certifies
	(site names, and custom domains Press sent without a certificate), and the generation of Traefik's
	files."""

	router_url: str  # http://<proxy prefix>-router:80
	cert_resolver: str | None = None
	acme_sites: tuple[str, ...] = ()
	generation: int = 0
	acme_domains: tuple[str, ...] = ()  # custom domains (SiteRoute.acme_domains of every site)

	def __post_init__(self):
		for site in self.acme_sites:
			validate_fqdn(site, "acme_sites")
		for domain in self.acme_domains:
			validate_fqdn(domain, "acme_domains")

	@property
	def acme_names(self) -> tuple[str, ...]:
		"""Every name the resolver is asked for, sorted."""
		return tuple(sorted({*self.acme_sites, *self.acme_domains}))


def sites_document(
	router_url: str, cert_resolver: str | None, acme_names: tuple[str, ...], generation: int
) -> dict[str, Any]:
	"""Every host to the site router, on both entry points. TLS is terminated with the certificate
	matching the SNI (a host document's, one obtained by the resolver, the default one otherwise); the
	resolver is asked for ``acme_names`` only: site names, and the custom domains Press sent without a
	certificate (those with one carry Press's certificate and may not point here yet)."""
	tls: dict[str, Any] = {}
	if cert_resolver:
		tls["certResolver"] = cert_resolver
		if acme_names:
			tls["domains"] = [{"main": name} for name in sorted(acme_names)]
	router = {
		"rule": "HostRegexp(`.+`)",
		"priority": PRIORITY_SITES,
		"service": SITES,
		"middlewares": [GENERATION],
	}
	return {
		"http": {
			"routers": {
				SITES: {"entryPoints": [WEB], **router},
				f"{SITES}-tls": {"entryPoints": [WEBSECURE], **router, "tls": tls},
			},
			"services": {SITES: {"loadBalancer": {"servers": [{"url": router_url}], "passHostHeader": True}}},
			"middlewares": {
				GENERATION: {"headers": {"customRequestHeaders": {GENERATION_HEADER: str(generation)}}}
			},
		}
	}


def compact_json(document: dict[str, Any]) -> str:
	"""JSON is YAML: one line without indentation (benchmarks/traefik_routes.py compared the formats).
	json's default separators are kept so the file reads well to grep and to people."""
	return json.dumps(document, sort_keys=True)


def render(source: Sites | HostRoute) -> str:
	"""The file's text: the header with the source dataclass, then the document."""
	if isinstance(source, Sites):
		document = sites_document(
			source.router_url, source.cert_resolver, source.acme_names, source.generation
		)
	else:
		document = host_document(source)
	state = json.dumps({"kind": type(source).__name__, **dataclasses.asdict(source)}, sort_keys=True)
	return f"{HEADER}{state}\n{compact_json(document)}\n"


def parse(text: str, file_name: str) -> Sites | HostRoute:
	"""The dataclass a file was rendered from (see :func:`render`)."""
	first = text.split("\n", 1)[0]
	if not first.startswith(HEADER):
		raise RouteStateUnreadable(
			f"Route file {file_name} on the proxy was not written by press_selfhosted (no state header). "
			"Remove it from the Traefik dynamic directory and run the job again."
		)
	state = json.loads(first[len(HEADER) :])
	kind = state.pop("kind")
	if kind == "Sites":
		# files written before custom domains were certified by ACME have no acme_domains
		names = {
			"acme_sites": tuple(state["acme_sites"]),
			"acme_domains": tuple(state.get("acme_domains") or ()),
		}
		return Sites(**{**state, **names})
	return HostRoute(**state)
