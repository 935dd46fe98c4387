"""Traefik dynamic configuration for a container Proxy Server: one document per site and per host.

A site document routes the site name and its extra domains to the site's bench (the static-file front
for everything, ``/socket.io`` included: the front passes it on to the bench's socketio port), or to
the proxy's static page service while the site is suspended or deactivated. A host document carries a custom domain's certificate.
Everything here is pure: dataclasses in, ``{file name: text}`` out.

Each document starts with a comment line holding the dataclass it was rendered from, so the proxy
jobs can read back what a site's routes are (Press's payloads only carry what changes) from the one
file Traefik reads; the file is replaced atomically, so the state and the routes never disagree.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from press_selfhosted.engine.errors import EngineError
from press_selfhosted.engine.validation import ValidationError, validate_fqdn

DYNAMIC_DIRECTORY = "/etc/traefik/dynamic"
CERTIFICATES_DIRECTORY = f"{DYNAMIC_DIRECTORY}/certs"
HEADER = "# press-selfhosted route: "
WEB = "web"
WEBSECURE = "websecure"

ACTIVE = "activated"
# Status → (page, HTTP status). Suspensions are temporary (503 tells crawlers and monitors to come
# back); a deactivated site was switched off by its owner, so its page is an ordinary answer.
PAGES = {
	"suspended": ("suspended", 503),
	"suspended_saas": ("suspended_saas", 503),
	"deactivated": ("deactivated", 200),
}
STATUSES = (ACTIVE, *PAGES)

# Traefik sorts routers by priority: a site's socket.io route must win over its catch-all route.
PRIORITY_SITE = 100
PRIORITY_SOCKETIO = 200


class RouteStateUnreadable(EngineError):
	"""A route file on the proxy does not carry the header this engine writes."""


def validate_host_name(value: object, field: str) -> str:
	"""A domain name, or a wildcard ``*.example.com`` (the certificate of every site under it)."""
	if isinstance(value, str) and value.startswith("*."):
		validate_fqdn(value[2:], field)
		return value
	return validate_fqdn(value, field)


def validate_status(value: object, field: str = "status") -> str:
	if value not in STATUSES:
		raise ValidationError(
			field, value, f"the status must be one of {', '.join(STATUSES)}", "send one of them"
		)
	return value


def route_id(name: str) -> str:
	"""A Traefik object and file name for a host name. '_' never occurs in a host name, so mapping '.'
	to '_' (and the wildcard's '*' to '_wildcard') keeps distinct hosts distinct."""
	return name.replace("*", "_wildcard").replace(".", "_")


@dataclass(frozen=True)
class SiteRoute:
	"""Where a site's requests go. ``front``/``socketio``/``pages`` are URLs on the cluster network."""

	site: str
	upstream: str  # the app server's IP, as in Press's path
	app_server: str
	bench: str
	front: str  # http://<prefix>-<bench>-front:80
	socketio: str  # http://<prefix>-<bench>-front:80 (the front passes /socket.io to the backend)
	pages: str  # http://<proxy prefix>-pages:80
	status: str = ACTIVE
	domains: tuple[str, ...] = ()
	cert_resolver: str | None = None  # the proxy's ACME resolver (engine.acme) that certifies ``site``

	def __post_init__(self):
		validate_fqdn(self.site, "name")
		validate_status(self.status)
		for domain in self.domains:
			# A wildcard is a certificate (HostRoute), never a site's domain: Press's Site Domains are
			# single names, and an exact and a wildcard rule at one priority would race.
			validate_fqdn(domain, "domain")

	@property
	def file_name(self) -> str:
		return f"site_{route_id(self.site)}.yml"

	@property
	def hosts(self) -> tuple[str, ...]:
		return (self.site, *(domain for domain in self.domains if domain != self.site))

	def with_status(self, status: str, extra_domains: tuple[str, ...] = ()) -> SiteRoute:
		return dataclasses.replace(self, status=status, domains=_merged(self.domains, extra_domains))

	def with_domains(self, added: tuple[str, ...] = (), removed: tuple[str, ...] = ()) -> SiteRoute:
		kept = tuple(domain for domain in self.domains if domain not in removed)
		return dataclasses.replace(self, domains=_merged(kept, added))


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


def _merged(first: tuple[str, ...], more: tuple[str, ...]) -> tuple[str, ...]:
	return tuple(dict.fromkeys((*first, *more)))


def _rule(hosts: tuple[str, ...]) -> str:
	return " || ".join(f"Host(`{host}`)" for host in hosts)


def _service(url: str) -> dict[str, Any]:
	return {"loadBalancer": {"servers": [{"url": url}], "passHostHeader": True}}


def _tls(route: SiteRoute) -> dict[str, Any]:
	"""``{}``: Traefik terminates TLS with whichever certificate matches the SNI, its default one
	otherwise. With a resolver, it also obtains one for the site name; only that name is asked for,
	because custom domains carry Press's certificates (host files) and may not point here yet."""
	if not route.cert_resolver:
		return {}
	return {"certResolver": route.cert_resolver, "domains": [{"main": route.site}]}


def _routers(
	name: str, rule: str, priority: int, service: str, middlewares: dict[str, str], tls: dict[str, Any]
) -> dict:
	"""The same route on the plain and the TLS entry point."""
	return {
		name: {
			"entryPoints": [WEB],
			"rule": rule,
			"priority": priority,
			"service": service,
			"middlewares": [middlewares[WEB]],
		},
		f"{name}-tls": {
			"entryPoints": [WEBSECURE],
			"rule": rule,
			"priority": priority,
			"service": service,
			"middlewares": [middlewares[WEBSECURE]],
			"tls": tls,
		},
	}


def site_document(route: SiteRoute) -> dict[str, Any]:
	"""The dynamic configuration of one site (Traefik's file provider merges all documents)."""
	key = route_id(route.site)
	hosts = route.hosts
	if route.status == ACTIVE:
		# Custom domains map to their site like the Agent's nginx does: the site name travels in
		# X-Frappe-Site-Name whatever Host the visitor used.
		middlewares = {entry: f"{key}-{entry}-headers" for entry in (WEB, WEBSECURE)}
		definitions = {
			middlewares[entry]: {
				"headers": {
					"customRequestHeaders": {
						"X-Frappe-Site-Name": route.site,
						"X-Forwarded-Proto": "https" if entry == WEBSECURE else "http",
					}
				}
			}
			for entry in (WEB, WEBSECURE)
		}
		routers = _routers(key, _rule(hosts), PRIORITY_SITE, key, middlewares, _tls(route))
		socketio_rule = f"({_rule(hosts)}) && PathPrefix(`/socket.io`)"
		routers.update(
			_routers(
				f"{key}-socketio",
				socketio_rule,
				PRIORITY_SOCKETIO,
				f"{key}-socketio",
				middlewares,
				_tls(route),
			)
		)
		services = {key: _service(route.front), f"{key}-socketio": _service(route.socketio)}
	else:
		page, _code = PAGES[route.status]
		page_middleware = f"{key}-page-{page}"
		definitions = {page_middleware: {"replacePath": {"path": f"/status/{page}"}}}
		routers = _routers(
			key,
			_rule(hosts),
			PRIORITY_SITE,
			f"{key}-page",
			{WEB: page_middleware, WEBSECURE: page_middleware},
			_tls(route),
		)
		services = {f"{key}-page": _service(route.pages)}
	return {"http": {"routers": routers, "services": services, "middlewares": definitions}}


def router_signature(rule: str, service: str, middlewares: list[str]) -> str:
	"""What tells one version of a router from another: its rule, service and middlewares (names
	without the ``@provider`` suffix Traefik's API adds)."""
	return "|".join([rule, *(name.split("@")[0] for name in (service, *middlewares))])


def expected_state(route: SiteRoute) -> dict[str, str]:
	"""What Traefik's API shows once ``route`` is loaded (to verify a reload): ``routers/<name>`` → its
	signature, and ``services/<name>`` → the URL it forwards to (a site moved to another bench keeps its
	routers and changes only that)."""
	http = site_document(route)["http"]
	state = {
		f"routers/{name}": router_signature(router["rule"], router["service"], router["middlewares"])
		for name, router in http["routers"].items()
	}
	for name, service in http["services"].items():
		state[f"services/{name}"] = service["loadBalancer"]["servers"][0]["url"]
	return state


def certificate_files(host: HostRoute) -> dict[str, str]:
	"""Paths of a host's certificate files inside the Traefik container, by Press's payload key."""
	return {
		key: f"{host.certificate_directory}/{key}" for key in ("fullchain.pem", "privkey.pem", "chain.pem")
	}


def host_document(host: HostRoute) -> dict[str, Any]:
	files = certificate_files(host)
	return {"tls": {"certificates": [{"certFile": files["fullchain.pem"], "keyFile": files["privkey.pem"]}]}}


def compact_json(document: dict[str, Any]) -> str:
	"""JSON is YAML: one line without indentation is the least Traefik re-parses, for every file in
	the directory, on each change (benchmarks/traefik_routes.py compares it with indented forms).
	json's default separators are kept so the file reads as before to grep and to people."""
	return json.dumps(document, sort_keys=True)


def render(source: SiteRoute | HostRoute, dump: Callable[[dict[str, Any]], str] = compact_json) -> str:
	"""The file's text: the header with the source dataclass, then the document."""
	document = site_document(source) if isinstance(source, SiteRoute) else host_document(source)
	state = json.dumps({"kind": type(source).__name__, **dataclasses.asdict(source)}, sort_keys=True)
	return f"{HEADER}{state}\n{dump(document)}\n"


def parse(text: str, file_name: str) -> SiteRoute | HostRoute:
	"""The dataclass a file was rendered from (see :func:`render`)."""
	first = text.split("\n", 1)[0]
	if not first.startswith(HEADER):
		raise RouteStateUnreadable(
			f"Route file {file_name} on the proxy was not written by press_selfhosted (no state header). "
			"Remove it from the Traefik dynamic directory and run the job again."
		)
	state = json.loads(first[len(HEADER) :])
	kind = state.pop("kind")
	if kind == "SiteRoute":
		state["domains"] = tuple(state["domains"])
		return SiteRoute(**state)
	return HostRoute(**state)
