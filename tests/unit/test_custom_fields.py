"""CUSTOM_FIELDS (press_selfhosted/custom_fields.py) held to Press's real DocType JSON and to Frappe's
Custom Field meta, read without importing Frappe; and the install module that applies them."""

from __future__ import annotations

import ast
import copy
from pathlib import Path

import pytest
from references import ROOT, frappe_meta, known_doctype_names, press_doctypes

from press_selfhosted import install

CUSTOM_FIELDS_FILE = ROOT / "press_selfhosted" / "custom_fields.py"
STANDARD_COLUMNS = {"name", "creation", "modified", "modified_by", "owner", "docstatus", "idx"}
NO_VALUE_TYPES = {"Section Break", "Column Break", "Tab Break", "HTML", "Button", "Heading", "Fold"}


def read_custom_fields(path: Path = CUSTOM_FIELDS_FILE) -> dict:
	"""The CUSTOM_FIELDS literal, by ``ast.literal_eval`` (no import)."""
	tree = ast.parse(path.read_text())
	for node in tree.body:
		if isinstance(node, ast.Assign) and any(
			getattr(t, "id", None) == "CUSTOM_FIELDS" for t in node.targets
		):
			return ast.literal_eval(node.value)
	raise AssertionError("CUSTOM_FIELDS not found")


def _fieldtypes() -> set[str]:
	docfield = frappe_meta("docfield")
	(fieldtype,) = [f for f in docfield["fields"] if f["fieldname"] == "fieldtype"]
	return set(fieldtype["options"].split("\n")) - {""}


def custom_field_problems(custom_fields: dict, doctypes: dict[str, dict]) -> list[str]:
	"""Everything wrong with ``custom_fields`` against Press's DocTypes (empty when all is well)."""
	problems = []
	allowed_keys = {f["fieldname"] for f in frappe_meta("custom_field")["fields"]}
	fieldtypes = _fieldtypes()
	if not isinstance(custom_fields, dict) or not custom_fields:
		return ["CUSTOM_FIELDS must be a non-empty dict keyed by DocType"]
	for doctype, fields in custom_fields.items():
		meta = doctypes.get(doctype)
		if meta is None:
			problems.append(f"{doctype}: no such DocType in Press")
			continue
		existing = {f["fieldname"] for f in meta["fields"]}
		placed: set[str] = set()
		for field in fields:
			name = field.get("fieldname", "")
			where = f"{doctype}.{name or '?'}"
			unknown = set(field) - allowed_keys
			if unknown:
				problems.append(f"{where}: keys Custom Field does not have: {sorted(unknown)}")
			if not name or not name.isidentifier() or name != name.lower():
				problems.append(f"{where}: fieldname must be a lowercase identifier")
			if name in existing:
				problems.append(f"{where}: Press already has this field")
			if name in placed:
				problems.append(f"{where}: declared twice")
			if field.get("fieldtype") not in fieldtypes:
				problems.append(f"{where}: unknown fieldtype {field.get('fieldtype')!r}")
			if field.get("fieldtype") not in NO_VALUE_TYPES and not field.get("label"):
				problems.append(f"{where}: a label is required")
			if (
				field.get("fieldtype") in ("Link", "Table", "Table MultiSelect")
				and field.get("options") not in known_doctype_names()
			):
				problems.append(f"{where}: links to unknown DocType {field.get('options')!r}")
			after = field.get("insert_after")
			if not after:
				problems.append(f"{where}: insert_after is required")
			elif after not in existing and after not in placed:
				problems.append(f"{where}: insert_after {after!r} is not a field of Press's {doctype}")
			placed.add(name)
	return problems


@pytest.fixture(scope="module")
def custom_fields() -> dict:
	return read_custom_fields()


def test_custom_fields_are_plain_data_identical_to_the_module(custom_fields):
	from press_selfhosted.custom_fields import CUSTOM_FIELDS

	assert custom_fields == CUSTOM_FIELDS


def test_custom_fields_match_press(custom_fields):
	assert custom_field_problems(custom_fields, press_doctypes()) == []


def test_the_check_fails_for_a_field_press_does_not_have(custom_fields):
	mutated = copy.deepcopy(custom_fields)
	mutated["Server"][0]["insert_after"] = "no_such_press_field"
	problems = custom_field_problems(mutated, press_doctypes())
	assert problems == [
		"Server.container_prefix: insert_after 'no_such_press_field' is not a field of Press's Server"
	]


@pytest.mark.parametrize(
	("mutate", "expected"),
	[
		(
			lambda cf: cf.update(
				{
					"No Such DocType": [
						{"fieldname": "x", "fieldtype": "Data", "label": "X", "insert_after": "y"}
					]
				}
			),
			"no such DocType",
		),
		(lambda cf: cf["Site Backup"][0].update({"fieldtype": "Strange"}), "unknown fieldtype"),
		(lambda cf: cf["Site Backup"][0].update({"fieldname": "offsite"}), "Press already has this field"),
		(lambda cf: cf["Site Backup"][0].update({"no_such_key": 1}), "keys Custom Field does not have"),
		(lambda cf: cf["Site Plan"][0].update({"fieldtype": "Link", "options": "Nope"}), "unknown DocType"),
	],
)
def test_the_check_catches_other_mistakes(custom_fields, mutate, expected):
	mutated = copy.deepcopy(custom_fields)
	mutate(mutated)
	assert any(expected in p for p in custom_field_problems(mutated, press_doctypes()))


def test_container_fields_on_all_three_server_doctypes(custom_fields):
	for doctype in ("Server", "Proxy Server", "Database Server"):
		fields = {f["fieldname"]: f for f in custom_fields[doctype]}
		assert fields["container_prefix"]["fieldtype"] == "Data"
		assert fields["container_prefix"]["insert_after"] == "agent_password"
		assert fields["docker_socket"]["fieldtype"] == "Data"
		assert fields["docker_socket"]["insert_after"] == "container_prefix"
		for form in ("unix:///", "tcp://", "ssh://"):
			assert form in fields["docker_socket"]["description"]
		assert "lowercase" in fields["container_prefix"]["description"].lower()


def test_backup_fields_are_read_only(custom_fields):
	fields = {f["fieldname"]: f for f in custom_fields["Site Backup"]}
	assert fields["minio_bucket"]["insert_after"] == "offsite_backup"
	assert fields["minio_prefix"]["insert_after"] == "minio_bucket"
	assert fields["minio_checksums"]["insert_after"] == "minio_prefix"
	assert fields["minio_checksums"]["fieldtype"] == "Code"
	assert all(f["read_only"] == 1 for f in fields.values())


def test_site_plan_max_users(custom_fields):
	(field,) = custom_fields["Site Plan"]
	assert (field["fieldname"], field["fieldtype"]) == ("max_users", "Int")


def test_install_applies_custom_fields_with_update_and_removes_them():
	tree = ast.parse((ROOT / "press_selfhosted" / "install.py").read_text())
	calls = [
		n
		for n in ast.walk(tree)
		if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "create_custom_fields"
	]
	assert calls, "install.py must call create_custom_fields"
	for call in calls:
		assert [a.id for a in call.args if isinstance(a, ast.Name)] == ["CUSTOM_FIELDS"]
		assert any(k.arg == "update" and getattr(k.value, "value", None) is True for k in call.keywords)
	functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
	assert {"after_install", "after_migrate", "before_uninstall"} <= functions


def test_indexes_are_on_real_columns():
	doctypes = press_doctypes()
	for doctype, index_name, columns in install.INDEXES:
		fields = {f["fieldname"] for f in doctypes[doctype]["fields"]} | STANDARD_COLUMNS
		assert set(columns) <= fields, (doctype, columns)
		assert index_name.startswith("press_selfhosted_")
	assert {(d, c) for d, _, c in install.INDEXES} == {
		("Site", ("status",)),
		("Site Backup", ("site", "creation")),
		("Server", ("cluster", "status")),
		("Bench", ("server", "status")),
	}


def _rows(*indexes):
	return [
		{"Key_name": name, "Seq_in_index": seq, "Column_name": column}
		for name, columns in indexes
		for seq, column in enumerate(columns, start=1)
	]


def test_index_covered():
	assert not install.index_covered([], "press_selfhosted_site_creation", ("site", "creation"))
	assert install.index_covered(
		_rows(("press_selfhosted_site_creation", ["site", "creation"])),
		"press_selfhosted_site_creation",
		("site", "creation"),
	)
	# another index starting with the same columns already serves the queries
	assert install.index_covered(_rows(("other", ["site", "creation", "status"])), "x", ("site", "creation"))
	assert not install.index_covered(_rows(("site", ["site"])), "x", ("site", "creation"))
	assert not install.index_covered(_rows(("other", ["creation", "site"])), "x", ("site", "creation"))


def test_the_engine_names_the_root_domain_fields_of_dns01():
	"""Its refusals name the field the operator fills (engine.clients.acme's FIELD_*), shown by their labels."""
	from press_selfhosted.engine.clients import acme

	fields = {field["fieldname"]: field for field in read_custom_fields()["Root Domain"]}
	for name in (acme.FIELD_PROVIDER, acme.FIELD_CREDENTIALS, acme.FIELD_RESOLVERS, acme.FIELD_DELAY):
		assert name in fields
	assert fields[acme.FIELD_CREDENTIALS]["options"] == "ACME DNS Credential"
