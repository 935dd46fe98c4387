"""Sites on container servers against their plans: database and disk use in percent of the plan's
limits (as measured hourly), whether a limit is exceeded, and the last verified restore of their backups."""

from __future__ import annotations

import frappe
from frappe import _


def execute(filters=None):
	columns = [
		{"fieldname": "name", "label": _("Site"), "fieldtype": "Link", "options": "Site", "width": 240},
		{"fieldname": "status", "label": _("Status"), "fieldtype": "Data", "width": 90},
		{"fieldname": "plan", "label": _("Plan"), "fieldtype": "Link", "options": "Site Plan", "width": 140},
		{
			"fieldname": "current_database_usage",
			"label": _("Database %"),
			"fieldtype": "Percent",
			"width": 100,
		},
		{"fieldname": "current_disk_usage", "label": _("Files %"), "fieldtype": "Percent", "width": 100},
		{"fieldname": "site_usage_exceeded", "label": _("Over Limit"), "fieldtype": "Check", "width": 90},
		{
			"fieldname": "last_verified_restore",
			"label": _("Last Verified Restore"),
			"fieldtype": "Datetime",
			"width": 170,
		},
		{
			"fieldname": "last_restore_drill_result",
			"label": _("Last Drill"),
			"fieldtype": "Data",
			"width": 320,
		},
	]
	servers = frappe.get_all(
		"Server", filters={"container_prefix": ("is", "set"), "docker_socket": ("is", "set")}, pluck="name"
	)
	data = frappe.get_all(
		"Site",
		filters={"server": ("in", servers or [""]), "status": ("!=", "Archived")},
		fields=[column["fieldname"] for column in columns],
		order_by="name",
	)
	return columns, data
