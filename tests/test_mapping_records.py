"""Rules for Press records on container servers (validations/records.py) and the doc-event wrappers
(validations/doc_events.py) driven through a minimal stand-in for the ``frappe`` module."""

from __future__ import annotations

import importlib
import sys
import types

import pytest

from press_selfhosted.engine.errors import ValidationError
from press_selfhosted.engine.validation import INTERNAL_NETWORKS_CONFIG_KEY
from press_selfhosted.validations import records

CONTAINER_SERVER = {
	"container_prefix": "erp-saas-cloud-c16",
	"docker_socket": "unix:///var/run/docker.sock",
	"ip": "203.0.113.10",
	"private_ip": "10.0.0.5",
}


# --- pure rules ----------------------------------------------------------------------------------


def test_agent_server_is_left_to_press():
	assert records.check_server_record({"ip": "not even an ip", "private_ip": ""}) is None
	assert not records.is_container_server({"container_prefix": "", "docker_socket": None})


def test_container_server_values_are_validated_and_normalised():
	values = records.check_server_record(
		{**CONTAINER_SERVER, "ip": "2001:db8:0::1", "docker_socket": " tcp://10.0.0.5:2376 "}
	)
	assert values == {
		"container_prefix": "erp-saas-cloud-c16",
		"docker_socket": "tcp://10.0.0.5:2376",
		"ip": "2001:db8::1",
		"private_ip": "10.0.0.5",
	}


@pytest.mark.parametrize(
	("changes", "field"),
	[
		({"docker_socket": ""}, "docker_socket"),
		({"container_prefix": ""}, "container_prefix"),
		({"container_prefix": "ERP_Cloud"}, "container_prefix"),
		({"docker_socket": "/var/run/docker.sock"}, "docker_socket"),
		({"ip": "300.1.1.1"}, "ip"),
		({"private_ip": "8.8.8.8"}, "private_ip"),
		({"private_ip": ""}, "private_ip"),
	],
)
def test_container_server_refusals_name_the_field(changes, field):
	with pytest.raises(ValidationError) as info:
		records.check_server_record({**CONTAINER_SERVER, **changes})
	assert info.value.field == field
	assert "Fix:" in str(info.value)


def test_one_container_field_without_the_other_is_refused():
	with pytest.raises(ValidationError) as info:
		records.check_container_fields({"container_prefix": "erp"})
	assert info.value.field == "docker_socket"
	assert "both Container Prefix and Docker Socket" in info.value.rule
	with pytest.raises(ValidationError) as info:
		records.check_container_fields({"docker_socket": "unix:///var/run/docker.sock"})
	assert info.value.field == "container_prefix"


def test_private_ip_uses_the_given_networks():
	values = records.check_server_record(
		{**CONTAINER_SERVER, "private_ip": "203.0.113.20"}, ["203.0.113.0/24"]
	)
	assert values["private_ip"] == "203.0.113.20"


def test_new_site_rules():
	ok = {"bench": "bench-0001-000001-f1", "bench_status": "Active", "plan": "Unlimited", "name_taken": False}
	assert records.check_new_site("site1.platform.local", **ok) == "site1.platform.local"
	cases = [
		("site_1..local", {}, "name"),
		("Site1.platform.local", {}, "name"),
		("site1.platform.local", {"name_taken": True}, "name"),
		("site1.platform.local", {"bench_status": "Pending"}, "bench"),
		("site1.platform.local", {"bench_status": None}, "bench"),
		("site1.platform.local", {"plan": None}, "plan"),
	]
	for name, changes, field in cases:
		with pytest.raises(ValidationError) as info:
			records.check_new_site(name, **{**ok, **changes})
		assert info.value.field == field, (name, changes)


def test_new_site_backup_rules():
	assert records.check_new_site_backup("site1.platform.local", "Active") == "site1.platform.local"
	assert records.check_new_site_backup("site1.platform.local", "Suspended")
	for status in ("Pending", "Archived", "Broken", "Inactive"):
		with pytest.raises(ValidationError) as info:
			records.check_new_site_backup("site1.platform.local", status)
		assert info.value.field == "site"
		assert status in info.value.rule
	with pytest.raises(ValidationError, match="does not exist"):
		records.check_new_site_backup("gone.platform.local", None)


def test_only_requested_backups_are_checked():
	assert records.is_requested_backup("Pending", False)
	assert records.is_requested_backup(None, False)
	assert not records.is_requested_backup("Success", False)  # recorded after the fact
	assert not records.is_requested_backup("Pending", True)  # Press's archive-time record


# --- doc-event wrappers with a stand-in frappe -----------------------------------------------------


class Thrown(Exception):
	pass


class FakeDB:
	def __init__(self, tables):
		self.tables = tables

	def get_value(self, doctype, name, fields, as_dict=False):
		row = self.tables.get(doctype, {}).get(name)
		if row is None:
			return None
		return types.SimpleNamespace(**{f: row.get(f) for f in fields}) if as_dict else row.get(fields)

	def count(self, doctype, filters):
		# equality filters, and ("!=", value)
		def matches(row):
			return all(
				row.get(k) != v[1] if isinstance(v, tuple) and v[0] == "!=" else row.get(k) == v
				for k, v in filters.items()
			)

		return sum(1 for row in self.tables.get(doctype, {}).values() if matches(row))

	def exists(self, doctype, filters):
		rows = self.tables.get(doctype, {})
		if isinstance(filters, str):
			return filters in rows
		return any(
			all(row.get(k) == v for k, v in filters.items() if not isinstance(v, tuple))
			for row in rows.values()
		)


class FakeDoc(dict):
	def __init__(self, values, *, new=True, changed=()):
		super().__init__(values)
		self.flags = types.SimpleNamespace(in_insert=new, skip_backup_after_insert=False)
		self._new = new
		self._changed = set(changed)

	def __getattr__(self, name):
		return self.get(name)

	def set(self, field, value):
		self[field] = value

	def is_new(self):
		return self._new

	def has_value_changed(self, field):
		return field in self._changed

	def get_doc_before_save(self):
		return FakeDoc(self.get("_before", {}), new=False)


@pytest.fixture
def fake_frappe(monkeypatch):
	module = types.ModuleType("frappe")
	module.ValidationError = type("ValidationError", (Exception,), {})
	module.conf = {}
	module.db = FakeDB({})

	def throw(message, exc=None, title=None):
		raise Thrown(message)

	module.throw = throw
	module._ = lambda text: text
	module.get_meta = lambda doctype: types.SimpleNamespace(has_field=lambda field: True)
	monkeypatch.setitem(sys.modules, "frappe", module)
	monkeypatch.delitem(sys.modules, "press_selfhosted.validations.doc_events", raising=False)
	doc_events = importlib.import_module("press_selfhosted.validations.doc_events")
	yield module, doc_events
	sys.modules.pop("press_selfhosted.validations.doc_events", None)


def test_server_wrapper_normalises_and_refuses(fake_frappe):
	_frappe, doc_events = fake_frappe
	doc = FakeDoc({**CONTAINER_SERVER, "docker_socket": "ssh://root@host.internal:22"})
	doc_events.validate_server_record(doc)
	assert doc["docker_socket"] == "ssh://root@host.internal:22"
	with pytest.raises(Thrown, match="private_ip"):
		doc_events.validate_server_record(FakeDoc({**CONTAINER_SERVER, "private_ip": "8.8.8.8"}))
	with pytest.raises(Thrown, match="docker_socket"):
		doc_events.validate_server_record(FakeDoc({"container_prefix": "erp"}))


def test_server_wrapper_reads_the_internal_networks_from_site_config(fake_frappe):
	frappe, doc_events = fake_frappe
	frappe.conf = {INTERNAL_NETWORKS_CONFIG_KEY: ["203.0.113.0/24"]}
	doc_events.validate_server_record(FakeDoc({**CONTAINER_SERVER, "private_ip": "203.0.113.9"}))
	frappe.conf = {INTERNAL_NETWORKS_CONFIG_KEY: ["not-a-network"]}
	with pytest.raises(Thrown, match=INTERNAL_NETWORKS_CONFIG_KEY):
		doc_events.validate_server_record(FakeDoc(dict(CONTAINER_SERVER)))


def test_server_wrapper_skips_unchanged_saves(fake_frappe):
	_frappe, doc_events = fake_frappe
	legacy = FakeDoc({**CONTAINER_SERVER, "private_ip": "8.8.8.8"}, new=False, changed={"status"})
	doc_events.validate_server_record(legacy)  # a status save by Press is not blocked
	with pytest.raises(Thrown):
		doc_events.validate_server_record(FakeDoc(dict(legacy), new=False, changed={"private_ip"}))


def test_container_prefix_cannot_be_renamed_under_live_benches(fake_frappe):
	frappe, doc_events = fake_frappe
	frappe.db = FakeDB(
		{"Bench": {"b1": {"server": "f1", "status": "Active"}, "b0": {"server": "f1", "status": "Archived"}}}
	)
	renamed = {**CONTAINER_SERVER, "doctype": "Server", "name": "f1", "container_prefix": "erp-new"}
	renamed["_before"] = {"container_prefix": "erp-saas-cloud-c16"}
	with pytest.raises(Thrown, match=r"1 benches still run here .*keep the prefix 'erp-saas-cloud-c16'"):
		doc_events.validate_server_record(FakeDoc(renamed, new=False, changed={"container_prefix"}))
	frappe.db = FakeDB({"Bench": {"b0": {"server": "f1", "status": "Archived"}}})
	doc_events.validate_server_record(FakeDoc(renamed, new=False, changed={"container_prefix"}))
	# the first prefix of a server that had none is no rename
	first = {**renamed, "_before": {"container_prefix": None}}
	frappe.db = FakeDB({"Bench": {"b1": {"server": "f1", "status": "Active"}}})
	doc_events.validate_server_record(FakeDoc(first, new=False, changed={"container_prefix"}))


def _site_tables(bench_status="Active", socket="unix:///var/run/docker.sock"):
	return {
		"Bench": {"bench-1": {"server": "f1.platform.local", "status": bench_status}},
		"Server": {"f1.platform.local": {"container_prefix": "erp", "docker_socket": socket}},
		"Site": {"old.platform.local": {"status": "Active", "server": "f1.platform.local"}},
		"Site Domain": {},
	}


def test_site_wrapper(fake_frappe):
	frappe, doc_events = fake_frappe
	frappe.db = FakeDB(_site_tables())
	site = {"name": "site1.platform.local", "bench": "bench-1", "plan": None}
	new_site = FakeDoc(site)
	new_site.subscription_plan = "Unlimited"  # Press sets the plan field only after insert
	doc_events.validate_site(new_site)
	with pytest.raises(Thrown, match="plan"):
		doc_events.validate_site(FakeDoc(site))
	with pytest.raises(Thrown, match="another site"):
		doc_events.validate_site(FakeDoc({**site, "name": "old.platform.local", "plan": "Unlimited"}))
	with pytest.raises(Thrown, match="name"):
		doc_events.validate_site(FakeDoc({**site, "name": "site_1..local", "plan": "Unlimited"}))
	frappe.db = FakeDB(_site_tables(bench_status="Installing"))
	with pytest.raises(Thrown, match="Active bench"):
		doc_events.validate_site(FakeDoc({**site, "plan": "Unlimited"}))
	# an existing site is not checked again; a site on an agent server keeps Press's rules
	doc_events.validate_site(FakeDoc({**site, "plan": None}, new=False))
	# ... except that Archived is final
	archived = {**site, "server": "f1.platform.local", "_before": {"status": "Archived"}}
	with pytest.raises(Thrown, match="Archived site cannot change status"):
		doc_events.validate_site(FakeDoc({**archived, "status": "Active"}, new=False, changed={"status"}))
	doc_events.validate_site(FakeDoc({**archived, "status": "Archived"}, new=False, changed=()))
	active = {**archived, "_before": {"status": "Suspended"}, "status": "Active"}
	doc_events.validate_site(FakeDoc(active, new=False, changed={"status"}))
	frappe.db = FakeDB(_site_tables(bench_status="Installing", socket=""))
	doc_events.validate_site(FakeDoc({**site, "name": "Whatever_Press_Allows"}))


def test_site_backup_wrapper(fake_frappe):
	frappe, doc_events = fake_frappe
	tables = _site_tables()
	tables["Site"]["suspended.platform.local"] = {"status": "Suspended", "server": "f1.platform.local"}
	tables["Site"]["pending.platform.local"] = {"status": "Pending", "server": "f1.platform.local"}
	frappe.db = FakeDB(tables)
	doc_events.validate_site_backup(FakeDoc({"site": "old.platform.local", "status": "Pending"}))
	doc_events.validate_site_backup(FakeDoc({"site": "suspended.platform.local", "status": "Pending"}))
	with pytest.raises(Thrown, match="Pending"):
		doc_events.validate_site_backup(FakeDoc({"site": "pending.platform.local", "status": "Pending"}))
	archived_record = FakeDoc({"site": "pending.platform.local", "status": "Success"})
	doc_events.validate_site_backup(archived_record)
	flagged = FakeDoc({"site": "pending.platform.local", "status": "Pending"})
	flagged.flags.skip_backup_after_insert = True
	doc_events.validate_site_backup(flagged)
