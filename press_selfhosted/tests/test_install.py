"""What install and migrate leave in a real Press site: custom fields, the app's DocTypes and Agent Job
Types, indexes, scheduled jobs and the agent's job tables."""

from __future__ import annotations

import json

import frappe
from frappe.tests import IntegrationTestCase

from press_selfhosted import hooks
from press_selfhosted.custom_fields import CUSTOM_FIELDS
from press_selfhosted.engine.agent import job_types
from press_selfhosted.engine.agent.store import JOB_TABLE, STEP_TABLE
from press_selfhosted.install import INDEXES, index_covered
from press_selfhosted.tests import support


class TestInstall(IntegrationTestCase):
	def test_custom_fields_are_on_press_doctypes(self):
		for doctype, fields in CUSTOM_FIELDS.items():
			meta = frappe.get_meta(doctype)
			for field in fields:
				found = meta.get_field(field["fieldname"])
				self.assertIsNotNone(found, f"{doctype}.{field['fieldname']}")
				self.assertEqual(found.fieldtype, field["fieldtype"], f"{doctype}.{field['fieldname']}")

	def test_app_doctypes_exist(self):
		for doctype in ("Storage Configuration", "Local Registry", "Platform Certificate Authority"):
			self.assertEqual(frappe.db.get_value("DocType", doctype, "module"), "Press Selfhosted")

	def test_the_queries_the_app_makes_are_indexed(self):
		"""Each index is there, or one of Press's already leads with the same columns."""
		for doctype, index_name, columns in INDEXES:
			rows = frappe.db.sql(f"SHOW INDEX FROM `tab{doctype}`", as_dict=True)
			self.assertTrue(index_covered(rows, index_name, columns), f"{doctype} {columns}")

	def test_the_apps_agent_job_types_are_press_records_with_their_steps(self):
		ours = json.loads(job_types.APP_FIXTURE.read_text())
		self.assertTrue(ours)
		for row in ours:
			steps = frappe.get_all(
				"Agent Job Type Step", filters={"parent": row["name"]}, pluck="step_name", order_by="idx"
			)
			self.assertEqual(steps, [step["step_name"] for step in row["steps"]], row["name"])

	def test_scheduled_jobs_are_registered(self):
		methods = set(frappe.get_all("Scheduled Job Type", filters={"stopped": 0}, pluck="method"))
		wired = {method for entries in hooks.scheduler_events.values() for method in _methods(entries)}
		self.assertTrue(wired)
		self.assertLessEqual(wired, methods)

	def test_job_store_tables_exist_after_install(self):
		tables = {row[0] for row in frappe.db.sql("SHOW TABLES LIKE 'press_selfhosted%%'")}
		self.assertEqual(tables, {JOB_TABLE, STEP_TABLE})


def _methods(entries) -> list[str]:
	if isinstance(entries, dict):
		return [method for values in entries.values() for method in values]
	return list(entries)


class TestBenchCommands(IntegrationTestCase):
	def test_every_command_is_offered_by_bench(self):
		listed = support.bench_command("press-selfhosted", "--help")
		self.assertEqual(listed.returncode, 0, listed.stderr)
		for command in (
			"set-up-cluster",
			"use-registry",
			"use-storage",
			"certify-root-domain",
			"platform-ca-certificate",
			"sweep",
			"run-job",
			"retention",
			"registry-cleanup",
			"verify-backups",
			"restore-drill",
			"jobs",
		):
			self.assertIn(command, listed.stdout)
