"""Rules for Press records on container servers (record_rules/records.py), on plain values; the doc-event
wrappers that apply them to Press's documents run in the in-bench suite (test_record_rules)."""

from __future__ import annotations

import pytest

from press_selfhosted.engine.errors import ValidationError
from press_selfhosted.record_rules import records

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
