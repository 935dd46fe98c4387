"""The only stand-ins of the engine's tests: Press's records and the secrets the Frappe layer reads from
them, and jobs as Press's router stores them (``press_selfhosted/glue/topology.py``: ``FrappeTopology``, ``FrappeSecrets``), which cannot run
without Frappe and Press. They answer as the Frappe layer does: a server, IP or site that Press does not
know is an error naming it, and so is a secret that is nowhere. Everything else the tests use is real.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from press_selfhosted.engine import masking
from press_selfhosted.engine.clients.servers import ContainerServer, DatabaseEndpoint
from press_selfhosted.engine.jobs.handlers import Handler, JobRecord, JobRequest


class NotInPress(LookupError):
	"""What the Frappe layer throws for a record Press does not have."""


def job_record(
	handler: Handler,
	server: ContainerServer,
	payload: dict,
	bench: str | None = None,
	site: str | None = None,
	data: dict | None = None,
) -> JobRecord:
	"""A job of ``handler`` on ``server`` as the router stores it and the executor hands it to the steps,
	made without them (a fresh id: each job its own scratch)."""
	request = JobRequest(
		handler.job_type, server.name, server.server_type, handler.method, handler.path, bench, site, payload
	)
	return JobRecord.of(request, int(uuid.uuid4().int % 10**9), data)


def no_press_jobs(job_type: str, site: str) -> str | None:
	return None


@dataclass
class PressRecords:
	"""Press's records as the engine's Topology reads them.

	``servers``: every Server, Database Server and Proxy Server of the test's cluster; ``database`` and
	``proxy``: the container Database Server and Proxy Server of its app servers (None: not container
	servers); ``site_benches``: each site's bench; ``press_job_status(job_type, site)``: the status of
	Press's latest Agent Job of that type for that site (what Archive Site waits on)."""

	servers: list[ContainerServer] = field(default_factory=list)
	database: DatabaseEndpoint | None = None
	proxy: ContainerServer | None = None
	site_benches: dict[str, str] = field(default_factory=dict)
	job_status: Callable[[str, str], str | None] = no_press_jobs

	def server(self, server_type: str, name: str) -> ContainerServer:
		for known in self.servers:
			if (known.server_type, known.name) == (server_type, name):
				return known
		raise NotInPress(f"Press has no {server_type} {name} (the test knows {self._names()})")

	def app_server_by_ip(self, ip: str) -> ContainerServer:
		for known in self.servers:
			if known.server_type == "Server" and ip in (known.private_ip, known.ip):
				return known
		raise NotInPress(f"No app server has the IP {ip} (the test knows {self._names()})")

	def database_for(self, app_server: str) -> DatabaseEndpoint | None:
		return self.database

	def proxy_for(self, app_server: str) -> ContainerServer | None:
		return self.proxy

	def bench_for_site(self, site: str) -> str:
		if site not in self.site_benches:
			raise NotInPress(f"Press has no Site {site} (the test knows {sorted(self.site_benches)})")
		return self.site_benches[site]

	def press_job_status(self, job_type: str, site: str) -> str | None:
		return self.job_status(job_type, site)

	@property
	def app(self) -> ContainerServer:
		return self._only("Server")

	@property
	def db(self) -> ContainerServer:
		return self._only("Database Server")

	def _only(self, server_type: str) -> ContainerServer:
		(found,) = (s for s in self.servers if s.server_type == server_type)
		return found

	def _names(self) -> list[str]:
		return [f"{s.server_type} {s.name}" for s in self.servers]


@dataclass
class Secrets:
	"""The Frappe layer's secret source: ``values`` stand for the Password fields it reads (a Database
	Server's root password, the Local Registry's password…), ``requests`` for the request Press recorded
	on each Agent Job (by ``agent_job_id``), read when a key is in no Password field. ``asked`` lists the
	keys in the order steps asked for them; ``rotate_after`` changes a key's value after that many reads
	(an operator changing a password while a job runs)."""

	values: dict[str, str] = field(default_factory=dict)
	requests: dict[str, dict] = field(default_factory=dict)
	asked: list[str] = field(default_factory=list)
	rotate_after: dict[str, int] = field(default_factory=dict)

	def secret(self, job: JobRecord, key: str) -> str:
		self.asked.append(key)
		if key in self.values:
			if key in self.rotate_after:
				self.rotate_after[key] -= 1
				if self.rotate_after[key] < 0:
					return "rotated-" + self.values[key]
			return self.values[key]
		value = masking.lookup(self.requests.get(job.agent_job_id or "", {}), key)
		if not isinstance(value, str) or not value:
			raise NotInPress(
				f"no {key!r} for job {job.id} ({job.job_type}) in the test's secrets or Press's request"
			)
		return value


@dataclass
class PressJobs:
	"""What Press has recorded of the proxy's ``Remove Site from Upstream``: one status per look (the
	last one repeats), as Press's records change between the looks of a waiting step."""

	statuses: dict = field(default_factory=dict)
	looks: int = 0

	def status(self, job_type: str, site: str) -> str | None:
		assert job_type == "Remove Site from Upstream"
		self.looks += 1
		sequence = self.statuses.get(site) or [None]
		return sequence.pop(0) if len(sequence) > 1 else sequence[0]
