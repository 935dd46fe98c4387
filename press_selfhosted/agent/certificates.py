"""Frappe glue for the certificates Traefik obtains by ACME on container Proxy Servers.

Press does not know of them (it issues none for sites under a Generic root domain), so an ACME
failure would only show in Traefik's log. Every hour (``hourly_long``) each container Proxy Server
whose Traefik has an ACME resolver is read (``engine.proxy.Proxy.site_certificates``: its route files
and ``acme.json``, read in memory, keys never kept) and the sites without a certificate after the
grace period, or whose certificate is not being renewed, are written to one Error Log per proxy. The
same report answers ``press_selfhosted.api.site_certificates``.
"""

from __future__ import annotations

import datetime

import frappe

from press_selfhosted.agent import settings, topology
from press_selfhosted.engine import acme
from press_selfhosted.engine.proxy import Proxy

TITLE = "press_selfhosted: site certificates on {proxy}"


def site_certificates(proxy_server: str) -> list[dict]:
	"""The report of one container Proxy Server (empty when its Traefik has no ACME resolver)."""
	server = topology.FrappeTopology().server("Proxy Server", proxy_server)
	client = topology.docker_hosts.client(server.docker)
	proxy = Proxy.existing(client, server, settings.proxy_settings(server))
	if proxy is None:
		return []
	return acme.certificate_rows(proxy.site_certificates(), datetime.datetime.now(datetime.timezone.utc))


def report_site_certificates() -> None:
	"""Scheduler (hourly_long): one Error Log per container Proxy Server with certificate problems."""
	servers = frappe.get_all(
		"Proxy Server",
		filters={"status": "Active", "container_prefix": ("is", "set"), "docker_socket": ("is", "set")},
		pluck="name",
	)
	for name in servers:
		try:
			text = acme.problems_text(name, site_certificates(name))
		except Exception:  # noqa: BLE001 - one unreachable proxy must not hide the others' report
			frappe.log_error(title=TITLE.format(proxy=name))
			continue
		if text:
			frappe.log_error(title=TITLE.format(proxy=name), message=text)
