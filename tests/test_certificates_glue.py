"""The Frappe glue of the ACME certificate report, through its pure mapping functions. Only Frappe
itself is replaced (a stub module: Frappe cannot be installed here); the engine parts are real."""

from __future__ import annotations

import datetime
import importlib
import sys
import types

import pytest

from press_selfhosted.engine.acme import ISSUE_GRACE, SiteCertificate

NOW = datetime.datetime(2026, 11, 26, 12, 0, tzinfo=datetime.timezone.utc)


@pytest.fixture
def glue(monkeypatch):
	frappe = types.ModuleType("frappe")
	utils = types.ModuleType("frappe.utils")
	password = types.ModuleType("frappe.utils.password")
	frappe.utils = utils
	for name, module in (("frappe", frappe), ("frappe.utils", utils), ("frappe.utils.password", password)):
		monkeypatch.setitem(sys.modules, name, module)
	modules = ("press_selfhosted.agent.certificates", "press_selfhosted.agent.runtime")
	for name in modules:
		monkeypatch.delitem(sys.modules, name, raising=False)
	yield importlib.import_module("press_selfhosted.agent.certificates")
	for name in modules:
		sys.modules.pop(name, None)


def test_rows_name_each_sites_problem_and_the_log_lists_only_problems(glue):
	found = [
		SiteCertificate("b.example.com", NOW - ISSUE_GRACE * 2, None),
		SiteCertificate(
			"a.example.com", NOW - datetime.timedelta(days=60), NOW + datetime.timedelta(days=50)
		),
		SiteCertificate("c.example.com", NOW - datetime.timedelta(minutes=5), None),
	]
	rows = glue.as_rows(found, NOW)
	assert [row["site"] for row in rows] == ["a.example.com", "b.example.com", "c.example.com"]
	assert rows[0] == {
		"site": "a.example.com",
		"routed_since": "2026-09-27T12:00:00+00:00",
		"not_after": "2027-01-15T12:00:00+00:00",
		"problem": None,
	}
	assert rows[1]["problem"].startswith("b.example.com: no certificate") and rows[2]["problem"] is None
	text = glue.problems_text("proxy-1.local", rows)
	assert text.splitlines()[0] == "1 of 3 site(s) certified by ACME on proxy server proxy-1.local:"
	assert text.splitlines()[1] == rows[1]["problem"]
	assert glue.problems_text("proxy-1.local", [rows[0], rows[2]]) is None
