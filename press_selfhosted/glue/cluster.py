"""An all-in-one container cluster: one Docker host that is a Press cluster's app, database and proxy server.

:func:`register` makes (or finds) the Press records such a cluster needs, all ordinary Press data: a
Cluster (Generic provider), a Root Domain with Generic DNS (Press then leaves DNS alone), a Database
Server, a Proxy Server and a Server on that host with the container fields, and Press Settings' fields a
fresh Press lacks. Each part returns early when its record exists, so a second run changes nothing.
:func:`set_up` then asks for each server's Setup Container Server job; the servers turn Active as the
jobs succeed (press_selfhosted.glue.servers).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import frappe

from press_selfhosted.engine import validation
from press_selfhosted.engine.errors import ValidationError
from press_selfhosted.glue import servers

PLATFORMS = ("x86_64", "arm64")
# hostnames of the three servers under the cluster's domain (Press names a server <hostname>.<domain>)
HOSTNAMES = {"Database Server": "db", "Proxy Server": "proxy", "Server": "app"}


@dataclass(frozen=True)
class AllInOne:
	cluster: str  # the Press Cluster, e.g. "local"
	domain: str  # the root domain sites are named under, e.g. "platform.local"
	docker_socket: str  # where the host's Docker Engine answers
	container_prefix: str  # every container, volume and network of the cluster starts with it
	private_ip: str  # the host's address on the internal network (proxy routes name the app server by it)
	ram: int = 4096  # MiB, what Press plans benches against
	platform: str = "x86_64"  # of the host: Press deploys the build made for it (x86_64 or arm64)

	def validated(self) -> AllInOne:
		validation.validate_fqdn(self.domain, "domain")
		validation.parse_docker_socket(self.docker_socket, "docker_socket")
		validation.validate_container_prefix(self.container_prefix, "container_prefix")
		if self.platform not in PLATFORMS:
			raise ValidationError(
				"platform", self.platform, "not a platform Press builds for", "use x86_64 or arm64"
			)
		return self

	def server_name(self, doctype: str) -> str:
		return f"{HOSTNAMES[doctype]}.{self.domain}"


def register(spec: AllInOne) -> dict[str, str]:
	"""The cluster's records, made when missing; returns ``{doctype: name}`` of its three servers."""
	spec = spec.validated()
	ensure_press_settings(spec)
	ensure_cluster(spec)
	ensure_root_domain(spec)
	team = operator_team()
	names = {}
	for doctype in ("Database Server", "Proxy Server", "Server"):
		names[doctype] = ensure_server(spec, doctype, team, names)
	return names


def set_up(names: dict[str, str]) -> dict[str, str | None]:
	"""Asks for the setup job of each server not Active yet; returns ``{server: Agent Job or None}``."""
	jobs = {}
	for doctype, name in names.items():
		doc = frappe.get_doc(doctype, name)
		jobs[name] = None if doc.status == "Active" else servers.setup(doc)
	return jobs


def ensure_press_settings(spec: AllInOne) -> None:
	"""Fields Press needs before its settings can be saved at all, and the default domain; only filled
	when empty (an operator's values are kept)."""
	wanted = {
		"domain": spec.domain,
		"certbot_directory": frappe.get_site_path("private", "certbot"),
		"eff_registration_email": frappe.db.get_value("User", "Administrator", "email")
		or "admin@example.com",
	}
	for field, value in wanted.items():
		if not frappe.db.get_single_value("Press Settings", field):
			frappe.db.set_single_value("Press Settings", field, value)


def ensure_cluster(spec: AllInOne) -> None:
	if not frappe.db.exists("Cluster", spec.cluster):
		frappe.get_doc(
			{"doctype": "Cluster", "name": spec.cluster, "cloud_provider": "Generic", "public": 1}
		).insert(ignore_permissions=True)


def ensure_root_domain(spec: AllInOne) -> None:
	if not frappe.db.exists("Root Domain", spec.domain):
		frappe.get_doc(
			{
				"doctype": "Root Domain",
				"name": spec.domain,
				"dns_provider": "Generic",
				"default_cluster": spec.cluster,
			}
		).insert(ignore_permissions=True)


def operator_team() -> str:
	"""The team of the Administrator, who owns the platform's own servers."""
	team = frappe.db.get_value("Team", {"user": "Administrator", "enabled": 1})
	if not team:
		frappe.throw(
			"Press has no team for Administrator. Fix: complete Press's setup (it makes one), then retry."
		)
	return team


def ensure_server(spec: AllInOne, doctype: str, team: str, others: dict[str, str]) -> str:
	name = spec.server_name(doctype)
	if frappe.db.exists(doctype, name):
		return name
	values = {
		"doctype": doctype,
		"hostname": HOSTNAMES[doctype],
		"domain": spec.domain,
		"cluster": spec.cluster,
		"team": team,
		"provider": "Generic",
		"status": "Pending",
		"private_ip": spec.private_ip,
		"container_prefix": spec.container_prefix,
		"docker_socket": spec.docker_socket,
	}
	if doctype == "Database Server":
		values["mariadb_root_password"] = secrets.token_urlsafe(24)
	if doctype == "Server":
		values.update(
			proxy_server=others["Proxy Server"],
			database_server=others["Database Server"],
			ram=spec.ram,
			platform=spec.platform,
		)
	return frappe.get_doc(values).insert(ignore_permissions=True).name
