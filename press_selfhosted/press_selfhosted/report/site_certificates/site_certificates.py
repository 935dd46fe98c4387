"""The certificates each container proxy's Traefik holds by ACME for its sites and their custom domains, with days left and what is
wrong (none after the grace period, renewal overdue); a proxy that cannot be read says so in its row."""

from __future__ import annotations

import datetime

import frappe
from frappe import _

from press_selfhosted.engine.errors import EngineError
from press_selfhosted.glue.certificates import site_certificates


def execute(filters=None):
	columns = [
		{
			"fieldname": "proxy_server",
			"label": _("Proxy Server"),
			"fieldtype": "Link",
			"options": "Proxy Server",
			"width": 200,
		},
		{"fieldname": "site", "label": _("Site"), "fieldtype": "Data", "width": 240},
		{"fieldname": "domain", "label": _("Custom Domain"), "fieldtype": "Data", "width": 200},
		{"fieldname": "not_after", "label": _("Expires"), "fieldtype": "Datetime", "width": 170},
		{"fieldname": "days_left", "label": _("Days Left"), "fieldtype": "Int", "width": 90},
		{"fieldname": "problem", "label": _("Problem"), "fieldtype": "Data", "width": 420},
	]
	now = datetime.datetime.now(datetime.timezone.utc)
	data = []
	proxies = frappe.get_all(
		"Proxy Server",
		filters={"container_prefix": ("is", "set"), "docker_socket": ("is", "set")},
		pluck="name",
	)
	for proxy in proxies:
		try:
			rows = site_certificates(proxy)
		except EngineError as error:
			data.append({"proxy_server": proxy, "problem": str(error)})
			continue
		for row in rows:
			expires = datetime.datetime.fromisoformat(row["not_after"]) if row["not_after"] else None
			data.append(
				{
					"proxy_server": proxy,
					"site": row["site"],
					"domain": row["domain"],
					"not_after": expires.replace(tzinfo=None) if expires else None,
					"days_left": (expires - now).days if expires else None,
					"problem": row["problem"],
				}
			)
	return columns, data
