"""Frappe glue for site usage and Site Plan limits on container servers.

Hooks the lead wires (hooks.py):
- ``scheduler_events["hourly_long"]``: ``press_selfhosted.glue.usage.measure_site_usages``;
- ``doc_events["Site"]["on_update"]``: ``press_selfhosted.glue.usage.on_site_update`` (a plan change
  measures the site again and applies the new plan's limits).

Press's own fields keep the policy's memory: ``site_usage_exceeded``/``site_usage_exceeded_on`` (over a
limit since), ``last_site_usage_warning_mail_sent_on`` (last notice), ``disable_site_usage_exceed_check``
(opt a site out); a suspension by this policy is recognised by its Site Activity reason.
"""

from __future__ import annotations

import frappe
from frappe.utils import now_datetime
from frappe.utils.password import get_decrypted_password

from press_selfhosted.engine import naming
from press_selfhosted.engine.clients.mariadb import MariaDB
from press_selfhosted.engine.policies import usage
from press_selfhosted.engine.policies.plan_limits import (
	MIB,
	Action,
	Decision,
	PlanLimits,
	decide,
	limit_state,
	plan_limits,
	site_fields,
	usage_percentages,
)
from press_selfhosted.glue import topology
from press_selfhosted.glue.topology import FrappeTopology

REASON = "Site usage over the plan's limits"
MEASURED_STATUSES = ("Active", "Inactive", "Suspended")


def _is_container_server(server: str) -> bool:
	values = frappe.db.get_value("Server", server, ["container_prefix", "docker_socket"])
	return bool(values and all(values))


def measure_site(site) -> usage.SiteUsage:
	press = FrappeTopology()
	app = press.server("Server", site.server)
	bench = topology.docker_hosts.call(
		app.docker,
		f"finding the bench container of {site.bench}",
		lambda client: client.containers.get(naming.resource_name(app.container_prefix, site.bench)),
	)
	endpoint = press.database_for(site.server)
	db_server = press.server("Database Server", endpoint.server)
	db_container = topology.docker_hosts.call(
		db_server.docker, "finding the MariaDB container", lambda client: client.containers.get(endpoint.host)
	)
	password = get_decrypted_password("Database Server", endpoint.server, "mariadb_root_password")
	return usage.measure(bench, MariaDB(db_server.name, db_container, password), site.name)


def record_usage(site, measured: usage.SiteUsage) -> None:
	if frappe.db.exists("DocType", "Site Usage"):
		frappe.get_doc(
			{
				"doctype": "Site Usage",
				"site": site.name,
				"database": measured.database // MIB,
				"public": measured.public // MIB,
				"private": measured.private // MIB,
				"backups": measured.backups // MIB,
			}
		).insert(ignore_permissions=True)
	limits = plan_limits(frappe.get_cached_doc("Site Plan", site.plan)) if site.plan else PlanLimits()
	frappe.db.set_value("Site", site.name, usage_percentages(limits, measured), update_modified=False)


def suspended_by_policy(site) -> bool:
	if site.status != "Suspended":
		return False
	reason = frappe.db.get_value(
		"Site Activity", {"site": site.name, "action": "Suspend Site"}, "reason", order_by="creation desc"
	)
	return bool(reason and reason.startswith(REASON))


def apply_limits(site, measured: usage.SiteUsage) -> Decision:
	limits = plan_limits(frappe.get_cached_doc("Site Plan", site.plan)) if site.plan else PlanLimits()
	decision = decide(limits, measured, limit_state(site, suspended_by_policy(site)), now_datetime())
	frappe.db.set_value("Site", site.name, site_fields(decision, now_datetime()), update_modified=False)
	if decision.action is Action.NOTIFY:
		_notify(site, decision)
	elif decision.action is Action.SUSPEND:
		site.suspend(reason=f"{REASON}: {decision.reason}")
	elif decision.action is Action.UNSUSPEND:
		site.unsuspend(reason="Site usage back within the plan's limits")
	return decision


def _notify(site, decision: Decision) -> None:
	recipient = frappe.db.get_value("Team", site.team, "user")
	text = (
		f"Site {site.name} uses more than its plan allows ({decision.reason}). "
		"Reduce its usage or move it to a bigger plan; otherwise it will be suspended at the end of "
		"the grace period."
	)
	site.add_comment("Info", text)
	if recipient:
		frappe.sendmail(recipients=[recipient], subject=f"{site.name}: over the plan's limits", message=text)


def check_site(name: str) -> Decision:
	"""Measure one site, record its usage and apply its plan's limits."""
	site = frappe.get_doc("Site", name)
	measured = measure_site(site)
	record_usage(site, measured)
	return apply_limits(site, measured)


def measure_site_usages() -> None:
	"""Scheduler: every site on a container server, one at a time, each in its own transaction."""
	sites = frappe.get_all(
		"Site",
		filters={"status": ("in", MEASURED_STATUSES), "disable_site_usage_exceed_check": 0},
		fields=["name", "server"],
	)
	for site in sites:
		if not _is_container_server(site.server):
			continue
		try:
			check_site(site.name)
			frappe.db.commit()
		except Exception:  # noqa: BLE001 one site's failure must not stop the others; it is logged
			frappe.db.rollback()
			frappe.log_error(title=f"press_selfhosted: usage of {site.name}")


def on_site_update(doc, method=None) -> None:
	"""A plan change of a running site re-evaluates the limits at once (measured afresh: the users count
	is live). A new site has nothing to measure yet: Press sets its first plan before its New Site ran."""
	if doc.flags.in_insert or doc.status not in MEASURED_STATUSES:
		return
	if doc.has_value_changed("plan") and _is_container_server(doc.server):
		frappe.enqueue("press_selfhosted.glue.usage.check_site", name=doc.name, enqueue_after_commit=True)
