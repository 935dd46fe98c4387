"""bench CLI wiring (press_selfhosted/commands.py) with click's CliRunner.

Frappe cannot run here: ``_connect`` (frappe.init/connect + the swap) and the glue functions the
commands call are replaced by recording stand-ins; the commands themselves run for real."""

from __future__ import annotations

import sys
import types

import pytest
from click.testing import CliRunner

from press_selfhosted import commands


@pytest.fixture
def calls(monkeypatch):
	seen = []
	monkeypatch.setattr(commands, "_connect", lambda context: seen.append(("connect", context.sites)))
	monkeypatch.setattr(commands, "_commit", lambda dry_run: seen.append(("commit", dry_run)))
	glue = {
		"press_selfhosted.agent.backups": {
			"apply_retention": lambda dry_run: seen.append(("retention", dry_run)) or ["a/k1", "a/k2"],
			"recheck_backups": lambda days: (
				seen.append(("recheck", days))
				or [
					{"backup": "B1", "ok": True, "failed": []},
					{"backup": "B2", "ok": False, "failed": ["bad sum"]},
				]
			),
			"run_restore_drills": lambda site_name: seen.append(("drill", site_name)),
		},
		"press_selfhosted.api": {
			"registry_cleanup": lambda dry_run: (
				seen.append(("cleanup", dry_run))
				or {"repositories": [{"message": "fc/bench: kept 1 tag(s), would delete 0."}]}
			),
			"agent_jobs": lambda server, limit: (
				seen.append(("jobs", server, limit))
				or [{"id": 7, "status": "Success", "job_type": "New Bench", "start": "2024-01-01 00:00:00"}]
			),
		},
	}
	frappe = types.ModuleType("frappe")
	frappe.db = types.SimpleNamespace(get_value=lambda *args: "restored 12 tables: same row counts")
	monkeypatch.setitem(sys.modules, "frappe", frappe)
	for name, functions in glue.items():
		module = types.ModuleType(name)
		module.__dict__.update(functions)
		monkeypatch.setitem(sys.modules, name, module)
	return seen


def invoke(*args):
	return CliRunner().invoke(commands.press_selfhosted, list(args), obj=types.SimpleNamespace(sites=["s1"]))


def test_retention_dry_run_and_real(calls):
	dry = invoke("retention", "--dry-run")
	assert dry.exit_code == 0 and "would delete: 2 object(s)" in dry.output and "a/k1" in dry.output
	assert invoke("retention").exit_code == 0
	assert calls == [
		("connect", ["s1"]),
		("retention", True),
		("commit", True),
		("connect", ["s1"]),
		("retention", False),
		("commit", False),
	]


def test_registry_cleanup_verify_drill_and_jobs(calls):
	assert "would delete 0" in invoke("registry-cleanup", "--dry-run").output
	verify = invoke("verify-backups", "--days", "5")
	assert verify.exit_code == 1 and "B1: ok" in verify.output and "B2: FAILED bad sum" in verify.output
	drill = invoke("restore-drill", "site.example.com")
	assert drill.exit_code == 0 and "same row counts" in drill.output
	jobs = invoke("jobs", "app.example.com", "--limit", "3")
	assert jobs.exit_code == 0 and "New Bench" in jobs.output and "Success" in jobs.output
	assert ("cleanup", 1) in calls and ("recheck", 5) in calls and ("drill", "site.example.com") in calls
	assert ("jobs", "app.example.com", 3) in calls
	assert calls.count(("connect", ["s1"])) == 4  # every command applies the swap first


def test_every_command_is_registered():
	assert set(commands.press_selfhosted.commands) == {
		"sweep",
		"run-job",
		"retention",
		"registry-cleanup",
		"verify-backups",
		"restore-drill",
		"jobs",
	}
