"""Container servers set up from the desk, as Press's Setup Server sets up a VM.

``setup(doc)`` asks for the ``Setup Container Server`` Agent Job through Press's own Agent (so it is
recorded, delivered through the transport swap and shown with its steps on the desk like any other
job). When it ends, :func:`record_setup` marks the server Active (or Broken) and has Press apply the
job's result to its Agent Job at once: Press polls only Active servers, so a setup that failed would
otherwise never show its steps and output.

Press's Ansible and SSH actions make no sense on a container server (there is no VM to log in to):
:class:`ContainerAwareServer` and its siblings refuse them with a message naming the action and what
to use instead, and route Press's own ``setup_server`` to the container setup.
"""

from __future__ import annotations

from dataclasses import asdict

import frappe
from frappe import _
from press.agent import Agent
from press.press.doctype.agent_job.agent_job import handle_polled_job
from press.press.doctype.database_server.database_server import DatabaseServer
from press.press.doctype.proxy_server.proxy_server import ProxyServer
from press.press.doctype.server.server import Server

from press_selfhosted.engine.agent import jobs
from press_selfhosted.engine.errors import EngineError
from press_selfhosted.engine.jobs.handlers import JobRecord
from press_selfhosted.engine.jobs.servers import docker_report, server_containers
from press_selfhosted.glue import topology

SETUP_JOB_TYPE = "Setup Container Server"
SETUP_PATH = "server/container-setup"
SERVER_DOCTYPES = ("Server", "Proxy Server", "Database Server")

# Press's actions that work on a container server: they go through the agent protocol, which
# press_selfhosted answers, or only touch Press's records. Every other whitelisted action of a server
# runs Ansible, SSH or a cloud provider's API against a VM and is refused.
AGENT_ACTIONS = frozenset(
	{
		"setup_server",  # routed to the container setup below
		"container_status",
		"ping_agent",
		"ping_agent_job",
		"ping_mariadb",
		"cleanup_unused_files",
	}
)


def is_container_server(doc) -> bool:
	return bool(doc.get("container_prefix") and doc.get("docker_socket"))


def setup(doc) -> str:
	"""Asks for the server's setup job; returns Press's Agent Job name."""
	if not is_container_server(doc):
		frappe.throw(
			_("{0} {1} is not a container server: fill Container Prefix and Docker Socket first.").format(
				_(doc.doctype), doc.name
			)
		)
	if doc.status == "Archived":
		frappe.throw(_("{0} {1} is archived.").format(_(doc.doctype), doc.name))
	job = Agent(doc.name, server_type=doc.doctype).create_agent_job(
		SETUP_JOB_TYPE, SETUP_PATH, data={}, reference_doctype=doc.doctype, reference_name=doc.name
	)
	if doc.status != "Active":
		frappe.db.set_value(doc.doctype, doc.name, "status", "Installing")
	return job.name


def record_setup(job: JobRecord, status: str, polled: dict) -> None:
	"""A finished setup job: the server's status, then Press's own handling of the job's result."""
	if status == jobs.SUCCESS:
		frappe.db.set_value(job.server_type, job.server, {"status": "Active", "is_server_setup": 1})
	else:
		frappe.db.set_value(job.server_type, job.server, "status", "Broken")
	agent_job = frappe.db.get_value(
		"Agent Job", job.agent_job_id, ["name", "status", "callback_failure_count"], as_dict=True
	)
	if agent_job:
		handle_polled_job(polled, job=agent_job)
	frappe.db.commit()


def docker_status(doc) -> dict:
	"""What the server's Docker Engine says of itself and of this server's containers (for its form)."""
	server = topology.FrappeTopology().server(doc.doctype, doc.name)
	hosts = topology.docker_hosts
	report = hosts.call(server.docker, "checking the Docker Engine", lambda c: docker_report(c, server))
	containers = hosts.call(server.docker, "listing the containers", lambda c: server_containers(c, server))
	return {"docker": asdict(report), "containers": [asdict(item) for item in containers]}


class ContainerServerActions:
	"""Press's server actions on container servers (mixed into Press's three server classes)."""

	def run_method(self, method, *args, **kwargs):
		if is_container_server(self) and method not in AGENT_ACTIONS and _is_action(self, method):
			frappe.throw(
				_(
					"{0} is an action for a server Press reaches over SSH and Ansible; {1} is a container "
					"server that press_selfhosted runs through its Docker socket, so it does not apply. "
					"Use 'Set Up Container Server' to (re)create its containers."
				).format(frappe.bold(method), self.name),
				title=_("Not for container servers"),
			)
		return super().run_method(method, *args, **kwargs)

	@frappe.whitelist()
	def container_status(self):
		"""The desk's view of a container server: its Docker Engine and its containers with their health."""
		self.check_permission("read")
		frappe.only_for("System Manager")
		if not is_container_server(self):
			frappe.throw(_("{0} is not a container server.").format(self.name))
		try:
			return docker_status(self)
		except EngineError as error:
			frappe.throw(str(error), title=_("Docker not reachable"))

	@frappe.whitelist()
	def setup_server(self):
		if is_container_server(self):
			self.check_permission("write")
			return setup(self)
		return super().setup_server()


def _is_action(doc, method: str) -> bool:
	"""A whitelisted method of the document (what the desk's buttons and the REST API call)."""
	function = getattr(type(doc), method, None)
	return getattr(function, "__func__", function) in frappe.whitelisted


class ContainerAwareServer(ContainerServerActions, Server):
	pass


class ContainerAwareProxyServer(ContainerServerActions, ProxyServer):
	pass


class ContainerAwareDatabaseServer(ContainerServerActions, DatabaseServer):
	pass
