"""Every TLS Certificate with its days left, issuer and status, the soonest to lapse first: Press's own,
the platform CA's and those the container proxies obtain by ACME (kept hourly by
press_selfhosted.glue.certificates.watch_site_certificates)."""

from __future__ import annotations

import frappe
from frappe import _
from frappe.utils import now_datetime


def execute(filters=None):
	columns = [
		{
			"fieldname": "name",
			"label": _("TLS Certificate"),
			"fieldtype": "Link",
			"options": "TLS Certificate",
			"width": 240,
		},
		{"fieldname": "status", "label": _("Status"), "fieldtype": "Data", "width": 90},
		{"fieldname": "days_left", "label": _("Days Left"), "fieldtype": "Int", "width": 90},
		{"fieldname": "expires_on", "label": _("Expires On"), "fieldtype": "Datetime", "width": 170},
		{"fieldname": "issuer", "label": _("Issuer"), "fieldtype": "Data", "width": 220},
		{
			"fieldname": "acme_proxy_server",
			"label": _("ACME Proxy Server"),
			"fieldtype": "Link",
			"options": "Proxy Server",
			"width": 200,
		},
		{"fieldname": "error", "label": _("Error"), "fieldtype": "Data", "width": 360},
	]
	now = now_datetime()
	rows = frappe.get_all(
		"TLS Certificate",
		fields=[
			"name",
			"status",
			"expires_on",
			"certificate_issuer",
			"provider",
			"acme_proxy_server",
			"error",
		],
		order_by="expires_on asc",
	)
	data = [
		{
			"name": row.name,
			"status": row.status,
			"days_left": (row.expires_on - now).days if row.expires_on else None,
			"expires_on": row.expires_on,
			# Press's own records (certbot) name no issuer: their provider says who it is
			"issuer": row.certificate_issuer or row.provider,
			"acme_proxy_server": row.acme_proxy_server,
			"error": (row.error or "").splitlines()[0] if row.error else None,
		}
		for row in rows
	]
	return columns, data
