"""Install, migrate and uninstall hooks: custom fields on Press DocTypes and a few indexes.

Everything here is idempotent: ``after_migrate`` runs on every ``bench migrate``. Frappe is
imported inside the functions so the pure helpers (:func:`index_covered`) load without it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from press_selfhosted.custom_fields import CUSTOM_FIELDS

# (DocType, index name, columns). Named explicitly so they can be found again and dropped.
INDEXES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
	("Site", "press_selfhosted_status", ("status",)),
	("Site Backup", "press_selfhosted_site_creation", ("site", "creation")),
	("Server", "press_selfhosted_cluster_status", ("cluster", "status")),
	("Bench", "press_selfhosted_server_status", ("server", "status")),
)


def after_install() -> None:
	apply_custom_fields()
	add_indexes()
	create_job_store()


def after_migrate() -> None:
	apply_custom_fields()
	add_indexes()
	create_job_store()


def after_sync() -> None:
	"""At the end of install-app. Frappe's install keeps the hooks of the apps installed before this one in
	its caches and writes them back to the shared cache after its own clear (seen on Frappe 16.0.0-dev of
	2024-12-24): its sync of scheduled jobs then registers none of this app's, and every process reading
	the shared cache would run without this app's hooks (no transport swap) until the key is deleted by
	hand. Delete it, and sync the scheduled jobs again from every app's hooks."""
	import frappe
	from frappe.core.doctype.scheduled_job_type.scheduled_job_type import sync_jobs

	frappe.cache.delete_value("app_hooks")
	sync_jobs()


def create_job_store() -> None:
	"""The agent's job tables, so that the first job (or ``press-selfhosted run-job``) finds them."""
	from press_selfhosted.glue.runtime import job_store

	job_store().ensure_schema()


def before_uninstall() -> None:
	remove_custom_fields()
	drop_indexes()


def apply_custom_fields() -> None:
	from frappe.custom.doctype.custom_field.custom_field import create_custom_fields

	create_custom_fields(CUSTOM_FIELDS, update=True)


def remove_custom_fields() -> None:
	import frappe

	for doctype, fields in CUSTOM_FIELDS.items():
		for field in fields:
			name = frappe.db.get_value("Custom Field", {"dt": doctype, "fieldname": field["fieldname"]})
			if name:
				frappe.delete_doc("Custom Field", name, ignore_permissions=True, force=True)
		frappe.clear_cache(doctype=doctype)


def index_covered(rows: Iterable[Mapping], index_name: str, columns: Sequence[str]) -> bool:
	"""Whether ``SHOW INDEX`` rows already hold ``index_name``, or an index whose leading columns are
	``columns`` (then a second one would only cost writes)."""
	by_index: dict[str, list[tuple[int, str]]] = {}
	for row in rows:
		by_index.setdefault(row["Key_name"], []).append((int(row["Seq_in_index"]), row["Column_name"]))
	if index_name in by_index:
		return True
	wanted = list(columns)
	for entries in by_index.values():
		ordered = [column for _, column in sorted(entries)]
		if ordered[: len(wanted)] == wanted:
			return True
	return False


def add_indexes() -> None:
	import frappe

	for doctype, index_name, columns in INDEXES:
		table = f"tab{doctype}"
		if not frappe.db.table_exists(doctype):
			continue
		rows = frappe.db.sql(f"SHOW INDEX FROM `{table}`", as_dict=True)
		if index_covered(rows, index_name, columns):
			continue
		frappe.db.add_index(doctype, list(columns), index_name=index_name)


def drop_indexes() -> None:
	import frappe

	for doctype, index_name, _columns in INDEXES:
		table = f"tab{doctype}"
		if frappe.db.table_exists(doctype) and frappe.db.has_index(table, index_name):
			frappe.db.sql_ddl(f"ALTER TABLE `{table}` DROP INDEX `{index_name}`")
