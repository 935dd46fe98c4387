"""Container servers set up from the desk's action, through Press's Agent Job, on the real Docker host."""

from __future__ import annotations

import frappe
from frappe.tests import IntegrationTestCase
from frappe.utils import now_datetime

from press_selfhosted.agent import cluster
from press_selfhosted.tests import support


class TestContainerServers(IntegrationTestCase):
	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		cls.endpoints = support.prepare()
		cls.spec = support.new_cluster(cls.endpoints)
		cls.started = now_datetime()
		cls.servers = cluster.register(cls.spec)
		frappe.db.commit()

	@classmethod
	def tearDownClass(cls):
		support.remove_cluster_containers(cls.endpoints, cls.servers)
		super().tearDownClass()

	def test_setup_makes_every_server_active_and_a_second_run_changes_nothing(self):
		jobs = cluster.set_up(self.servers)
		frappe.db.commit()
		self.assertEqual(set(jobs), set(self.servers.values()))
		support.wait_until(
			lambda: all(support.status_of(d, n) == "Active" for d, n in self.servers.items()),
			self.servers,
			what="the three servers Active",
		)
		for name in jobs.values():
			job = support.wait_until(
				lambda name=name: (j := support.agent_job(name)) and j.status == "Success" and j,
				self.servers,
				what=f"Agent Job {name} Success in Press",
			)
			steps = frappe.get_all(
				"Agent Job Step", filters={"agent_job": name}, fields=["step_name", "status"], order_by="idx"
			)
			self.assertEqual({step.status for step in steps}, {"Success"}, steps)
			self.assertEqual(job.job_type, "Setup Container Server")
		client = support.docker_client(self.endpoints)
		names = {
			c.name
			for c in client.containers.list(
				filters={"label": f"press.server={self.servers['Database Server']}"}
			)
		}
		self.assertEqual(names, {f"{self.spec.container_prefix}-mariadb"})
		self.assertEqual(cluster.set_up(self.servers), {name: None for name in self.servers.values()})
		self.assertEqual(cluster.register(self.spec), self.servers)
		self.assertEqual(support.problems_since(self.started, self.servers), [])
