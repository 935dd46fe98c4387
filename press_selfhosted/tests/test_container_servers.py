"""Container servers set up from the desk's action, through Press's Agent Job, on the real Docker host."""

from __future__ import annotations

import re

import frappe
from frappe.tests import IntegrationTestCase
from frappe.utils import now_datetime

from press_selfhosted.glue import cluster
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

	def test_1_setup_makes_every_server_active_and_a_second_run_changes_nothing(self):
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

	def test_2_press_reaches_a_container_server_from_a_web_request_and_a_background_job(self):
		"""The transport swap in both places Press calls agents from: a desk request (Ping Agent) and an RQ
		job (the delivery of an Agent Job)."""
		server = self.servers["Server"]
		self.assertEqual(support.desk_call("Server", server, "ping_agent")["message"], "pong")
		job = support.desk_call("Server", server, "ping_agent_job")["message"]
		done = support.wait_until(
			lambda: (j := support.agent_job(job)) and j.status == "Success" and j, self.servers, what=f"{job}"
		)
		self.assertEqual(done.job_type, "Ping Job")

	def test_3_ansible_actions_are_refused_on_a_container_server_with_the_fix(self):
		doc = frappe.get_doc("Proxy Server", self.servers["Proxy Server"])
		with self.assertRaises(frappe.ValidationError) as refused:
			doc.run_method("update_agent_ansible")
		self.assertIn("Set Up Container Server", str(refused.exception))


class TestSetUpClusterCommand(IntegrationTestCase):
	"""``bench --site S press-selfhosted set-up-cluster``: an operator's one command for a Docker host."""

	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		cls.endpoints = support.prepare()
		cls.spec = support.new_cluster(cls.endpoints)
		cls.servers = {doctype: cls.spec.server_name(doctype) for doctype in cluster.HOSTNAMES}

	@classmethod
	def tearDownClass(cls):
		support.remove_cluster_containers(cls.endpoints, cls.servers)
		super().tearDownClass()

	def set_up_cluster(self, **changes) -> object:
		options = {
			"cluster": self.spec.cluster,
			"domain": self.spec.domain,
			"docker-socket": self.spec.docker_socket,
			"private-ip": self.spec.private_ip,
			"container-prefix": self.spec.container_prefix,
			"timeout": "300",
			**changes,
		}
		argv = [part for key, value in options.items() for part in (f"--{key}", value)]
		return support.bench_command("press-selfhosted", "set-up-cluster", *argv)

	def test_1_one_command_makes_the_cluster_active_and_a_second_run_changes_nothing(self):
		first = self.set_up_cluster()
		self.assertEqual(first.returncode, 0, first.stdout + first.stderr)
		for name in self.servers.values():
			self.assertIn(f"{name}: setting up (Agent Job ", first.stdout)
			self.assertIn(f"{name}: Active", first.stdout)
		frappe.db.rollback()
		self.assertEqual({support.status_of(d, n) for d, n in self.servers.items()}, {"Active"})
		again = self.set_up_cluster()
		self.assertEqual(again.returncode, 0, again.stdout + again.stderr)
		for name in self.servers.values():
			self.assertIn(f"{name}: Active already", again.stdout)
		self.assertIn(f"cluster {self.spec.cluster} is Active", again.stdout)

	def test_2_a_bad_value_is_named_with_its_fix_and_nothing_is_made(self):
		refused = self.set_up_cluster(domain="not a domain", cluster=f"{self.spec.cluster}x")
		self.assertNotEqual(refused.returncode, 0)
		self.assertIn("domain", refused.stderr)
		self.assertFalse(frappe.db.exists("Cluster", f"{self.spec.cluster}x"))

	def test_3_a_host_whose_docker_does_not_answer_ends_the_command_with_where_to_look(self):
		spec = support.new_cluster(self.endpoints)
		failed = self.set_up_cluster(
			cluster=spec.cluster,
			domain=spec.domain,
			**{
				"docker-socket": "unix:///tmp/press-selfhosted-no-docker.sock",
				"container-prefix": spec.container_prefix,
			},
		)
		self.assertNotEqual(failed.returncode, 0)
		# the command stops at the first server whose setup failed, and says where to read why
		broken = re.search(r"(\S+) Broken", failed.stderr)
		self.assertTrue(broken, failed.stderr)
		self.assertIn("press-selfhosted jobs SERVER", failed.stderr)
		frappe.db.rollback()
		jobs = frappe.get_all(
			"Agent Job",
			filters={"server": broken[1], "job_type": "Setup Container Server"},
			fields=["status"],
		)
		self.assertEqual([row.status for row in jobs], ["Failure"])
