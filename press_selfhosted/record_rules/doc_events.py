"""Doc events on Press DocTypes (wired in hooks.py): the rules of ``records`` applied to records on
container servers. Records on agent servers keep Press's own rules.

Each wrapper reads what the pure rule needs from the database and turns the engine's
ValidationError into ``frappe.throw`` (``frappe.ValidationError``) with the engine's message, which
names the field, the bad value and the fix.
"""

from __future__ import annotations

import frappe
from frappe import _

from press_selfhosted.engine.errors import ValidationError as EngineValidationError
from press_selfhosted.engine.validation import INTERNAL_NETWORKS_CONFIG_KEY, parse_internal_networks
from press_selfhosted.record_rules import records


def throw(error: EngineValidationError) -> None:
	frappe.throw(str(error), exc=frappe.ValidationError, title=_("Invalid {0}").format(error.field))


def internal_networks() -> tuple:
	"""The site config key ``press_selfhosted_internal_networks`` (list of CIDRs), or the default."""
	try:
		return parse_internal_networks(frappe.conf.get(INTERNAL_NETWORKS_CONFIG_KEY))
	except EngineValidationError as error:
		throw(error)


def _is_new(doc) -> bool:
	return bool(doc.flags.in_insert or doc.is_new())


def server_is_container_server(doctype: str, name: str | None) -> bool:
	"""Whether the stored ``doctype`` record ``name`` has both container fields set."""
	if not name or not frappe.get_meta(doctype).has_field("docker_socket"):
		return False
	values = frappe.db.get_value(doctype, name, list(records.CONTAINER_FIELDS), as_dict=True)
	return bool(values) and records.is_container_server(values)


def site_on_container_server(site: str | None) -> bool:
	"""Whether the stored Site ``site`` lives on a container app server."""
	return bool(site) and server_is_container_server("Server", frappe.db.get_value("Site", site, "server"))


def validate_server_record(doc, method=None) -> None:
	"""Server, Proxy Server, Database Server: both container fields or neither; for a container server
	``container_prefix``, ``docker_socket``, ``ip`` and ``private_ip`` are valid, and the Docker TLS
	fields go with a tcp:// socket, all three or none (checked when the record is new or one changed)."""
	checked = (*records.SERVER_CHECKED_FIELDS, *records.DOCKER_TLS_FIELDS)
	if not _is_new(doc) and not any(doc.has_value_changed(field) for field in checked):
		return
	try:
		if not _is_new(doc) and doc.has_value_changed("container_prefix"):
			before = doc.get_doc_before_save()
			in_use, what = records_in_use(doc.doctype, doc.name)
			records.check_prefix_change(
				before.container_prefix if before else None, doc.container_prefix, in_use, what
			)
		records.check_docker_tls(doc)
		values = records.check_server_record(doc, internal_networks())
	except EngineValidationError as error:
		throw(error)
		return
	for field, value in (values or {}).items():
		if doc.get(field) != value:
			doc.set(field, value)


# what lives on each kind of server, and must not lose its containers to a prefix rename
IN_USE = {
	"Server": ("Bench", "server", "benches"),
	"Database Server": ("Bench", "database_server", "benches"),
	"Proxy Server": ("Server", "proxy_server", "app servers"),
}


def records_in_use(doctype: str, name: str) -> tuple[int, str]:
	dependent, field, what = IN_USE[doctype]
	return frappe.db.count(dependent, {field: name, "status": ("!=", "Archived")}), what


def validate_site(doc, method=None) -> None:
	"""A new Site on a container server: FQDN name, unique, Active bench, a plan; an existing one never
	leaves Archived."""
	if not _is_new(doc):
		validate_site_status_change(doc)
		return
	bench = frappe.db.get_value("Bench", doc.bench, ["server", "status"], as_dict=True) if doc.bench else None
	server = (bench and bench.server) or doc.server
	if not server_is_container_server("Server", server):
		return
	name_taken = bool(
		frappe.db.exists("Site", doc.name)
		or frappe.db.exists("Site Domain", {"domain": doc.name, "site": ("!=", doc.name)})
	)
	# Press sets the plan field after insert from ``subscription_plan`` (Site.after_insert)
	plan = doc.plan or getattr(doc, "subscription_plan", None)
	try:
		records.check_new_site(
			doc.name,
			bench=doc.bench,
			bench_status=bench.status if bench else None,
			plan=plan,
			name_taken=name_taken,
		)
	except EngineValidationError as error:
		throw(error)


def validate_site_status_change(doc) -> None:
	if not doc.has_value_changed("status") or not server_is_container_server("Server", doc.server):
		return
	before = doc.get_doc_before_save()
	try:
		records.check_site_status_change(before.status if before else None, doc.status)
	except EngineValidationError as error:
		throw(error)


def validate_site_backup(doc, method=None) -> None:
	"""A requested Site Backup of a site on a container server: the site exists and is Active or
	Suspended. Backups Press records after the fact (archive) are left alone."""
	if not _is_new(doc):
		return
	if not records.is_requested_backup(doc.status, bool(doc.flags.skip_backup_after_insert)):
		return
	site = frappe.db.get_value("Site", doc.site, ["status", "server"], as_dict=True) if doc.site else None
	if site and not server_is_container_server("Server", site.server):
		return
	try:
		records.check_new_site_backup(doc.site, site.status if site else None)
	except EngineValidationError as error:
		throw(error)
