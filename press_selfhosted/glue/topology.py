"""Press's records as the engine sees them: container servers (Topology) and the secrets a step asks
for (SecretSource), read from documents when a job runs; and the process's Docker clients.
"""

from __future__ import annotations

import json
from pathlib import Path

import frappe
from frappe.utils.password import get_decrypted_password

from press_selfhosted.engine import masking, naming
from press_selfhosted.engine.clients.docker_hosts import DockerHost, DockerHosts
from press_selfhosted.engine.clients.docker_tls import DockerTLS, materialize
from press_selfhosted.engine.clients.servers import ContainerServer, DatabaseEndpoint
from press_selfhosted.engine.jobs.handlers import JobRecord
from press_selfhosted.press_selfhosted.doctype.storage_configuration import storage_configuration

# one Docker client per server for the life of the process, shared by everything the glue does here
docker_hosts = DockerHosts()


def docker_host(doc) -> DockerHost:
	"""Where the server's Docker answers; for tcp:// with the Docker TLS fields set, the PEMs are written
	to ``<site>/private/press_selfhosted/docker-tls/<server>/`` (0600) for docker-py to read."""
	host = DockerHost(server=doc.name, socket=doc.docker_socket)
	if not (doc.get("docker_tls_ca") and doc.get("docker_tls_cert") and doc.get("docker_tls_key")):
		return host
	base = Path(frappe.get_site_path("private", "press_selfhosted", "docker-tls")).resolve()
	key = doc.get_password("docker_tls_key")
	return materialize(base, host, DockerTLS(doc.docker_tls_ca, doc.docker_tls_cert, key))


class FrappeTopology:
	def server(self, server_type: str, name: str) -> ContainerServer:
		doc = frappe.get_cached_doc(server_type, name)
		return ContainerServer(
			name=doc.name,
			server_type=server_type,
			container_prefix=doc.container_prefix,
			docker=docker_host(doc),
			network=naming.cluster_network(doc.cluster),
			private_ip=doc.private_ip,
			ip=doc.ip,
			front_image=frappe.conf.get("press_selfhosted_front_image"),
		)

	def app_server_by_ip(self, ip: str) -> ContainerServer:
		name = frappe.db.get_value("Server", {"private_ip": ip}) or frappe.db.get_value("Server", {"ip": ip})
		if not name:
			frappe.throw(f"No app server has the IP {ip}")
		return self.server("Server", name)

	def bench_for_site(self, site: str) -> str:
		return frappe.db.get_value("Site", site, "bench")

	def press_job_status(self, job_type: str, site: str) -> str | None:
		# each run of a waiting step is a job of its own, so it reads what Press committed meanwhile
		return frappe.db.get_value(
			"Agent Job", {"job_type": job_type, "site": site}, "status", order_by="creation desc"
		)

	def proxy_for(self, app_server: str) -> ContainerServer | None:
		doc = _container_server_doc("Proxy Server", frappe.db.get_value("Server", app_server, "proxy_server"))
		return self.server("Proxy Server", doc.name) if doc else None

	def database_for(self, app_server: str) -> DatabaseEndpoint | None:
		database = frappe.db.get_value("Server", app_server, "database_server")
		doc = _container_server_doc("Database Server", database)
		if not doc:
			return None
		return DatabaseEndpoint(
			server=doc.name, host=naming.mariadb_container(doc.container_prefix), port=3306
		)


def _container_server_doc(doctype: str, name: str | None):
	"""The ``doctype`` record ``name`` when it is a container server (both container fields set)."""
	doc = frappe.get_cached_doc(doctype, name) if name else None
	return doc if doc and doc.get("container_prefix") and doc.get("docker_socket") else None


class FrappeSecrets:
	"""Secrets read when a step asks, never stored with a job: from Password fields where Press or this
	app keeps one, else from the request Press recorded on its own Agent Job (``request_data`` already
	holds the payload in clear), so the job store never needs a copy."""

	def secret(self, job: JobRecord, key: str) -> str:
		if key == "mariadb_root_password":
			server = job.server if job.server_type == "Database Server" else None
			server = server or frappe.db.get_value("Server", job.server, "database_server")
			return get_decrypted_password("Database Server", server, "mariadb_root_password")
		if key == "admin_password":
			return get_decrypted_password("Site", job.site, "admin_password")
		if key == "registry_password":
			default = frappe.db.get_value("Local Registry", {"is_default": 1}, "name")
			if default:
				return get_decrypted_password("Local Registry", default, "password")
			return frappe.db.get_single_value("Press Settings", "docker_registry_password")
		if key in ("offsite_access_key", "offsite_secret_key"):
			return storage_configuration.get_default().get_password(key.removeprefix("offsite_"))
		if key == "privkey.pem":  # Add Host to Proxy: the host's certificate, named after the domain
			return get_decrypted_password("TLS Certificate", job.payload.get("name"), "private_key")
		return self.from_press_request(job, key)

	@staticmethod
	def from_press_request(job: JobRecord, key: str) -> str:
		request = (
			frappe.db.get_value("Agent Job", job.agent_job_id, "request_data") if job.agent_job_id else None
		)
		value = masking.lookup(json.loads(request or "{}"), key)
		if not isinstance(value, str) or not value:
			frappe.throw(
				f"press_selfhosted found no {key!r} for agent job {job.id} in Press's Agent Job "
				f"{job.agent_job_id or '(none)'}: retry the action in Press so that it sends the request again"
			)
		return value
