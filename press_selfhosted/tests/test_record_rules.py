"""The rules for records on container servers, as Press's documents meet them (doc_events in hooks.py):
refusals name the field and the fix, values are normalised, Press's own saves are not blocked."""

from __future__ import annotations

import frappe
from frappe.installer import update_site_config
from frappe.tests import IntegrationTestCase

from press_selfhosted.engine.validation import INTERNAL_NETWORKS_CONFIG_KEY
from press_selfhosted.glue import cluster
from press_selfhosted.tests import support


class TestRecordRules(IntegrationTestCase):
	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		cls.endpoints = support.prepare()
		cls.spec = support.new_cluster(cls.endpoints)
		cls.servers = cluster.register(cls.spec)
		frappe.db.commit()

	def server(self, **values):
		return frappe.get_doc(
			{
				"doctype": "Server",
				"hostname": f"r{frappe.generate_hash(length=6)}",
				"domain": self.spec.domain,
				"cluster": self.spec.cluster,
				"team": cluster.operator_team(),
				"status": "Pending",
				"private_ip": "10.9.8.7",
				"container_prefix": "rules",
				"docker_socket": self.spec.docker_socket,
				**values,
			}
		)

	def assert_refused(self, doc, field: str):
		with self.assertRaises(frappe.ValidationError) as refused:
			doc.insert() if doc.is_new() else doc.save()
		self.assertIn(f"{field}:", str(refused.exception))
		self.assertIn("Fix:", str(refused.exception))

	def test_a_container_server_is_checked_and_normalised(self):
		doc = self.server(docker_socket=" ssh://root@host.internal:22 ").insert()
		self.assertEqual(doc.docker_socket, "ssh://root@host.internal:22")
		self.assert_refused(self.server(private_ip="8.8.8.8"), "private_ip")
		self.assert_refused(self.server(docker_socket=""), "docker_socket")
		self.assert_refused(self.server(container_prefix="Bad_Prefix"), "container_prefix")

	def test_internal_networks_come_from_the_site_config(self):
		try:
			update_site_config(INTERNAL_NETWORKS_CONFIG_KEY, ["203.0.113.0/24"])
			frappe.local.conf[INTERNAL_NETWORKS_CONFIG_KEY] = ["203.0.113.0/24"]
			self.server(private_ip="203.0.113.9").insert()
			frappe.local.conf[INTERNAL_NETWORKS_CONFIG_KEY] = ["not-a-network"]
			self.assert_refused(self.server(), INTERNAL_NETWORKS_CONFIG_KEY)
		finally:
			update_site_config(INTERNAL_NETWORKS_CONFIG_KEY, "None")
			frappe.local.conf.pop(INTERNAL_NETWORKS_CONFIG_KEY, None)

	def test_press_saving_a_status_is_not_blocked_by_an_old_value(self):
		doc = self.server().insert()
		frappe.db.set_value("Server", doc.name, "private_ip", "8.8.8.8")  # a value from before the rules
		doc.reload()
		doc.status = "Broken"
		doc.save()
		doc.private_ip = "8.8.4.4"
		self.assert_refused(doc, "private_ip")

	def test_the_prefix_of_a_server_with_live_benches_cannot_be_renamed(self):
		app = frappe.get_doc("Server", self.servers["Server"])
		bench = frappe.get_doc(
			{
				"doctype": "Bench",
				"name": f"bench-rules-{frappe.generate_hash(length=4)}",
				"server": app.name,
				"status": "Active",
			}
		)
		bench.db_insert()  # only its record matters here: no New Bench job is wanted
		app.container_prefix = "renamed"
		with self.assertRaises(frappe.ValidationError) as refused:
			app.save()
		self.assertIn(f"keep the prefix {self.spec.container_prefix!r}", str(refused.exception))
		frappe.db.set_value("Bench", bench.name, "status", "Archived")
		app.reload()
		app.container_prefix = "renamed"
		app.save()

	def test_a_site_backup_is_refused_unless_its_site_is_active_or_suspended(self):
		site = frappe.get_doc(
			{
				"doctype": "Site",
				"name": f"pending-{frappe.generate_hash(length=6)}.{self.spec.domain}",
				"server": self.servers["Server"],
				"status": "Pending",
			}
		)
		site.db_insert()
		backup = frappe.get_doc({"doctype": "Site Backup", "site": site.name, "status": "Pending"})
		with self.assertRaises(frappe.ValidationError) as refused:
			backup.insert()
		self.assertIn("Pending", str(refused.exception))
		# Press's own record of a finished backup (the archive backup) is left alone
		finished = frappe.get_doc({"doctype": "Site Backup", "site": site.name, "status": "Success"})
		finished.flags.skip_backup_after_insert = True
		finished.insert()
