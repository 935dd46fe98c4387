"""The site router of a container Proxy Server: an nginx whose host map says where each site goes.

Why not one Traefik router per site: Traefik rebuilds its whole configuration on any change of any
provider, so per-site routers make every change cost in proportion to the fleet, whatever the file
format or provider (benchmarks/traefik_routes.py: 10,000 sites, one change served after ≈60 s and
≈43 Traefik CPU-seconds, 1.2 GB). Traefik keeps what it does well (TLS: ACME, operators' and wildcard
certificates) with two catch-all routers to this router (engine.clients.traefik.sites_document), and nginx maps
``$host`` to the site with a hash lookup, re-reading the map on SIGHUP in well under a second.

The map is one file per host name, ``routes/<route_id>.map``, holding one line
``<host> "<status> <site> <front host:port>";``. The file of a site's own name starts with a comment
holding the :class:`SiteRoute` it was rendered from, so the proxy jobs read a site's state back from the
file nginx reads (Press's payloads only carry what changes). Everything here is pure.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass

from press_selfhosted.engine.clients.traefik import HEADER, route_id
from press_selfhosted.engine.errors import RouteStateUnreadable, ValidationError
from press_selfhosted.engine.validation import validate_fqdn

DIRECTORY = "/srv/router"
ROUTES = "routes"  # under DIRECTORY
CONF = f"{DIRECTORY}/nginx.conf"
PORT = 80
CHECK_ADDRESS = "127.0.0.1:8081"  # answers what the map holds for ?host= (the reload check); never published
DOCKER_DNS = "127.0.0.11"  # resolves the benches' fronts on the cluster network

ACTIVE = "activated"
# Status → (page, HTTP status). Suspensions are temporary (503 tells crawlers and monitors to come
# back); a deactivated site was switched off by its owner, so its page is an ordinary answer.
PAGES = {
	"suspended": ("suspended", 503),
	"suspended_saas": ("suspended_saas", 503),
	"deactivated": ("deactivated", 200),
}
STATUSES = (ACTIVE, *PAGES)
PAGE_TEXT = {
	"suspended": (
		"Site suspended",
		"This site has been suspended. Its owner can restore it from the dashboard.",
	),
	"suspended_saas": (
		"Site suspended",
		"This site has been suspended. Please contact the provider of this service.",
	),
	"deactivated": ("Site deactivated", "This site has been deactivated by its owner."),
}
# host:port of a container on the cluster network: nothing that could end an nginx map value
FRONT = re.compile(r"^[a-z0-9][a-z0-9.-]{0,252}:[0-9]{1,5}$")


def validate_status(value: object, field: str = "status") -> str:
	if value not in STATUSES:
		raise ValidationError(
			field, value, f"the status must be one of {', '.join(STATUSES)}", "send one of them"
		)
	return value


@dataclass(frozen=True)
class SiteRoute:
	"""Where a site's requests go: ``front`` is its bench's front on the cluster network (``host:port``;
	it passes ``/socket.io`` on to the bench's socketio port)."""

	site: str
	upstream: str  # the app server's IP, as in Press's path
	app_server: str
	bench: str
	front: str  # <app prefix>-<bench>-front:80
	status: str = ACTIVE
	domains: tuple[str, ...] = ()
	cert_resolver: str | None = (
		None  # the proxy's ACME resolver (engine.clients.acme) that certifies ``site``
	)
	# the custom domains (of ``domains``) that resolver certifies too: Press sent them without a certificate
	acme_domains: tuple[str, ...] = ()

	def __post_init__(self):
		validate_fqdn(self.site, "name")
		validate_status(self.status)
		for domain in self.domains:
			# A wildcard is a certificate (HostRoute), never a site's domain: Press's Site Domains are
			# single names, and the map matches exact names only.
			validate_fqdn(domain, "domain")
		if stray := set(self.acme_domains) - set(self.domains):
			raise ValidationError(
				"acme_domains",
				sorted(stray),
				"a domain certified by ACME must be one of the site's domains",
				"add the domain to the site (Add Host to Proxy) before it is certified",
			)
		if not isinstance(self.front, str) or not FRONT.match(self.front):
			raise ValidationError("front", self.front, "not a container host:port", "check the bench's name")

	@property
	def hosts(self) -> tuple[str, ...]:
		return (self.site, *(domain for domain in self.domains if domain != self.site))

	@property
	def value(self) -> str:
		"""What the map holds for each of the site's hosts (and the check server answers)."""
		return f"{self.status} {self.site} {self.front}"

	def with_status(self, status: str, extra_domains: tuple[str, ...] = ()) -> SiteRoute:
		return dataclasses.replace(self, status=status, domains=_merged(self.domains, extra_domains))

	def with_domains(
		self, added: tuple[str, ...] = (), removed: tuple[str, ...] = (), acme: bool | None = None
	) -> SiteRoute:
		"""``acme``: whether the proxy's resolver certifies ``added`` (True) or they carry certificates
		of their own (False); None leaves that as it was."""
		kept = tuple(domain for domain in self.domains if domain not in removed)
		certified = tuple(domain for domain in self.acme_domains if domain not in removed)
		if acme is not None:
			certified = tuple(domain for domain in certified if domain not in added)
		return dataclasses.replace(
			self,
			domains=_merged(kept, added),
			acme_domains=_merged(certified, added) if acme else certified,
		)

	@classmethod
	def from_state(cls, state: dict) -> SiteRoute:
		"""A route from its header's JSON. Headers of the former per-site Traefik files carry
		``socketio`` and ``pages`` URLs and a ``front`` URL: read too, so they can be adopted."""
		fields = {f.name for f in dataclasses.fields(cls)}
		kept = {key: value for key, value in state.items() if key in fields}
		kept["domains"] = tuple(kept.get("domains") or ())
		kept["acme_domains"] = tuple(kept.get("acme_domains") or ())
		kept["front"] = str(kept.get("front", "")).removeprefix("http://")
		return cls(**kept)


def _merged(first: tuple[str, ...], more: tuple[str, ...]) -> tuple[str, ...]:
	return tuple(dict.fromkeys((*first, *more)))


def map_file(host: str) -> str:
	"""The map file of a host name, relative to the router's directory."""
	return f"{ROUTES}/{route_id(host)}.map"


def map_line(host: str, value: str) -> str:
	return f'{validate_fqdn(host, "host")} "{value}";\n'


def header(route: SiteRoute) -> str:
	state = json.dumps({"kind": "SiteRoute", **dataclasses.asdict(route)}, sort_keys=True)
	return f"{HEADER}{state}\n"


def render(route: SiteRoute) -> dict[str, str]:
	"""``{map file: text}`` of every host of the site; the site's own file carries the header."""
	files = {map_file(host): map_line(host, route.value) for host in route.hosts}
	files[map_file(route.site)] = header(route) + files[map_file(route.site)]
	return files


def parse(text: str, file_name: str) -> SiteRoute:
	"""The route a site's own file was rendered from (see :func:`render`)."""
	first = text.split("\n", 1)[0]
	if not first.startswith(HEADER):
		raise RouteStateUnreadable(
			f"Route file {file_name} on the proxy was not written by press_selfhosted (no state header). "
			"Remove it and run the job again."
		)
	return SiteRoute.from_state(json.loads(first[len(HEADER) :]))


def served_value(text: str) -> str | None:
	"""What a map file routes its host to (the quoted value of its map line), None without one."""
	for line in text.splitlines():
		if line and not line.startswith("#"):
			found = re.search(r'"([^"]*)";$', line)
			return found.group(1) if found else None
	return None


def owner(value: str | None) -> str | None:
	"""The site of a map value."""
	return value.split(" ")[1] if value else None


def expected(route: SiteRoute, gone: tuple[str, ...] = ()) -> dict[str, str | None]:
	"""What the check server must answer once ``route`` is served: each host → its value, each host
	in ``gone`` → None (no route)."""
	return {**dict.fromkeys(gone), **dict.fromkeys(route.hosts, route.value)}


# --- nginx ---------------------------------------------------------------------------------------------


def page_html(page: str) -> str:
	title, text = PAGE_TEXT[page]
	return (
		f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>\n'
		f"<body><h1>{title}</h1><p>{text}</p></body></html>\n"
	)


def _proxied(read_timeout: int) -> str:
	"""The directives of a proxied location. The site name travels in X-Frappe-Site-Name whatever
	Host the visitor used (custom domains), overwriting one the visitor sent; Upgrade/Connection
	carry websockets through."""
	return (
		"\t\t\tproxy_pass http://$press_front;\n"
		"\t\t\tproxy_http_version 1.1;\n"
		"\t\t\tproxy_set_header Host $host;\n"
		"\t\t\tproxy_set_header X-Frappe-Site-Name $press_site;\n"
		"\t\t\tproxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
		"\t\t\tproxy_set_header Upgrade $http_upgrade;\n"
		"\t\t\tproxy_set_header Connection $press_connection;\n"
		f"\t\t\tproxy_read_timeout {read_timeout};\n"
		"\t\t\tproxy_redirect off;\n"
	)


def nginx_conf() -> str:
	"""The router's configuration. ``$press_host`` is the visitor's Host, or ``?host=`` on the check
	server (only reachable from inside the container), so both read the one map."""
	pages = []
	for status, (page, code) in PAGES.items():
		# inside a single-quoted nginx string: the pages hold no quote or backslash (tested)
		pages.append(f"\t\tif ($press_status = {status}) {{ return {code} '{page_html(page)}'; }}\n")
	check_host, check_port = CHECK_ADDRESS.split(":")
	return (
		"# written by press_selfhosted: the site router of this proxy (engine/site_router.py)\n"
		"worker_processes 1;\npid /tmp/nginx.pid;\nerror_log stderr;\n"
		# websockets keep a reloaded worker alive; clients reconnect after this
		"worker_shutdown_timeout 120s;\n"
		"events { worker_connections 4096; }\n"
		"http {\n\taccess_log off;\n\tdefault_type text/html;\n\tserver_tokens off;\n"
		"\tclient_max_body_size 100m;\n"
		# a host name is up to 253 characters; tens of thousands of them fit
		"\tmap_hash_bucket_size 256;\n\tmap_hash_max_size 1048576;\n"
		f"\tresolver {DOCKER_DNS} valid=10s ipv6=off;\n"
		f'\tmap $server_port $press_host {{ default $host; "{check_port}" $arg_host; }}\n'
		f"\tmap $press_host $press_route {{ include {DIRECTORY}/{ROUTES}/*.map; }}\n"
		'\tmap $press_route $press_status { default unknown; "~^([a-z_]+) " $1; }\n'
		'\tmap $press_route $press_site { default ""; "~^[a-z_]+ ([^ ]+) " $1; }\n'
		'\tmap $press_route $press_front { default ""; "~ ([^ ]+)$" $1; }\n'
		'\tmap $http_upgrade $press_connection { default upgrade; "" close; }\n'
		f"\tserver {{\n\t\tlisten {PORT} default_server;\n"
		+ "".join(pages)
		+ "\t\tif ($press_status != activated) { return 404 '<!doctype html>\\n<h1>No site here</h1>\\n'; }\n"
		"\t\tlocation / {\n" + _proxied(120) + "\t\t}\n"
		# socket.io: websockets stay open between messages
		"\t\tlocation /socket.io {\n" + _proxied(3600) + "\t\t}\n"
		"\t}\n"
		f"\tserver {{\n\t\tlisten {check_host}:{check_port};\n"
		'\t\tlocation = /route { default_type text/plain; return 200 "$press_route\\n"; }\n'
		"\t\tlocation / { return 404; }\n\t}\n}\n"
	)
