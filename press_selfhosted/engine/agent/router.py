"""Press's agent REST API answered in-process for container servers.

``Router.handle`` never raises: Press treats an exception in its transport as a dead agent (an
Agent Request Failure row that blocks the server). Every outcome is a :class:`Response`:
- a job-creating request is recorded, enqueued, and answered ``{"job": <id>}``;
- a job-creating request this agent does not implement is answered 404 (a 4xx makes Press fail the
  Agent Job at once instead of retrying a request that can never work);
- a malformed request (a body that is no JSON object, a bench, site, domain, app or upstream that is
  not one) is answered 400 naming the field: retrying it could never work either;
- only an outage of the job store is answered 503 (Press retries the delivery later); any other
  failure is 500 with its message;
- a direct query we do not answer is 501 with a message saying so.
Polls (``jobs/...``, ``agent-jobs/...``) only read the store: a poll never advances a job.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from press_selfhosted.engine import naming
from press_selfhosted.engine.agent.queries import Queries
from press_selfhosted.engine.agent.store import JobStore
from press_selfhosted.engine.clients import docker_exec
from press_selfhosted.engine.clients.docker_exec import Exec
from press_selfhosted.engine.clients.docker_hosts import DockerHosts
from press_selfhosted.engine.clients.traefik import validate_host_name
from press_selfhosted.engine.errors import EngineError, JobStoreUnavailable, QueryFailed, ValidationError
from press_selfhosted.engine.jobs.handlers import Handler, JobRequest, Topology
from press_selfhosted.engine.validation import (
	validate_app_name,
	validate_bench_name,
	validate_fqdn,
	validate_ip,
)

REASONS = {
	200: "OK",
	400: "Bad Request",
	404: "Not Found",
	500: "Internal Server Error",
	501: "Not Implemented",
	503: "Service Unavailable",
}

# Direct queries Press's periodic syncs make that this agent does not answer: a clean 501. Status and
# info are answered by engine/agent/queries.py; analytics and monitor data come from the Agent's own
# log files and crons, which container benches do not have.
NOT_IMPLEMENTED = (
	re.compile(r"^benches/[^/]+/monitor$"),
	re.compile(r"^benches/[^/]+/sites/[^/]+/analytics$"),
	re.compile(r"^(server/status|version|process-snapshot/.+)$"),
)


# What each segment of a job's path must be: it names containers, folders and route files.
PATH_ARGS: dict[str, Callable[[object, str], str]] = {
	"bench": validate_bench_name,
	"site": validate_fqdn,
	"domain": validate_fqdn,
	"host": validate_host_name,
	"app": validate_app_name,
	"upstream": validate_ip,
}


@dataclass
class Response:
	status_code: int
	json: Any = field(default_factory=dict)

	@property
	def reason(self) -> str:
		return REASONS.get(self.status_code, "Error")

	@property
	def text(self) -> str:
		return json.dumps(self.json)


def error(status_code: int, message: str, trace: str = "") -> Response:
	# Press builds its failure text from "output" and "traceback"
	return Response(status_code, {"error": message, "output": message, "traceback": trace})


@dataclass(frozen=True)
class _Route:
	handler: Handler
	pattern: re.Pattern[str]


def _no_check(value: object, field: str) -> str:
	return value  # type: ignore[return-value]


def _compile(handler: Handler) -> _Route:
	parts = []
	for segment in handler.path.strip("/").split("/"):
		match = re.fullmatch(r"\{(\w+)\}", segment)
		parts.append(f"(?P<{match.group(1)}>[^/]+)" if match else re.escape(segment))
	return _Route(handler, re.compile("^" + "/".join(parts) + "$"))


class Router:
	def __init__(
		self,
		handlers: Sequence[Handler],
		store: JobStore | Callable[[], JobStore],
		enqueue: Callable[[int], object],
		topology: Topology,
		docker_hosts: DockerHosts,
		enrich: Callable[[str, str | None, dict[str, Any]], dict[str, Any]] | None = None,
	):
		"""``enrich(job_type, site, payload)`` returns keys to add to a job's payload before it is
		recorded: what the job needs that Press does not send (e.g. the S3 storage of backups).
		``store`` may be a function opening the store: then an outage while opening it is a 503 too."""
		self._routes = [_compile(handler) for handler in handlers]
		self._store = store
		self.enqueue = enqueue
		self.topology = topology
		self.docker_hosts = docker_hosts
		self.enrich = enrich
		self.queries = Queries(topology, docker_hosts)

	def handle(
		self,
		server: str,
		method: str,
		path: str,
		data: Any = None,
		agent_job_id: str | None = None,
		server_type: str = "Server",
	) -> Response:
		try:
			if not isinstance(path, str) or not isinstance(method, str):
				raise ValidationError("path", path, "the request has no path and method", "send both")
			if agent_job_id is not None and not isinstance(agent_job_id, str):
				raise ValidationError(
					"X-Agent-Job-Id", agent_job_id, "the Agent Job's name is text", "send its name"
				)
			return self._dispatch(server, server_type, method.upper(), path.strip("/"), data, agent_job_id)
		except ValidationError as failure:
			return error(400, str(failure))
		except JobStoreUnavailable as failure:
			return error(503, str(failure))
		except EngineError as failure:
			return error(500, str(failure))
		except Exception as failure:  # noqa: BLE001 - the router must never raise (module docstring)
			return error(500, f"press_selfhosted agent router: {type(failure).__name__}: {failure}")

	@property
	def store(self) -> JobStore:
		if not isinstance(self._store, JobStore):
			self._store = self._store()
		return self._store

	def _dispatch(self, server, server_type, method, path, data, agent_job_id) -> Response:
		if agent_job_id is None:
			try:
				found = self.queries.answer(server, server_type, method, path, data)
			except QueryFailed as failure:
				return error(failure.status_code, str(failure))
			if found is not None:
				return Response(200, found.json)
		if method == "GET":
			answer = self._query(server, server_type, path)
			if answer is not None:
				return answer
		for route in self._routes:
			match = route.pattern.match(path)
			if match and route.handler.method == method:
				return self._create(
					server, server_type, route.handler, path, match.groupdict(), data, agent_job_id
				)
		if any(pattern.match(path) for pattern in NOT_IMPLEMENTED) or agent_job_id is None:
			return error(501, f"press_selfhosted does not implement {method} {path} for container servers")
		return error(
			404, f"press_selfhosted does not implement the agent job {method} {path} for container servers"
		)

	def _create(
		self, server, server_type, handler: Handler, path, args: Mapping[str, str], data, agent_job_id
	) -> Response:
		if isinstance(data, list):  # Press sends some bodies as a JSON array (Add Wildcard Hosts to Proxy)
			data = {"items": data}
		if data is not None and not isinstance(data, dict):
			return error(400, f"{handler.job_type}: the request body must be a JSON object or array")
		for key, value in args.items():
			PATH_ARGS.get(key, _no_check)(value, key)
		payload = dict(data or {})
		payload["path_args"] = dict(args)
		bench = args.get("bench")
		site = args.get("site")
		# the bench or site being created is named in the body, not in the path
		if handler.path == "benches":
			bench = validate_bench_name(payload.get("name"), "name")
		elif handler.path.endswith(("/sites", "/sites/restore")):
			site = validate_fqdn(payload.get("name"), "name")
		if self.enrich:
			payload.update(self.enrich(handler.job_type, site, payload))
		job_id = self.store.create(
			JobRequest(
				job_type=handler.job_type,
				server=server,
				server_type=server_type,
				method=handler.method,
				path=path,
				bench=bench,
				site=site,
				payload=payload,
				agent_job_id=agent_job_id,
			)
		)
		try:
			self.enqueue(job_id)
		except Exception:  # noqa: BLE001, S110 - recorded and Pending: the sweep enqueues it again
			pass
		return Response(200, {"job": job_id})

	def _query(self, server, server_type, path) -> Response | None:
		if path == "ping":
			return Response(200, {"message": "pong"})
		if match := re.fullmatch(r"jobs/([\d,]+)", path):
			ids = [int(part) for part in match.group(1).split(",") if part]
			found = [job.as_agent() for job in self.store.get_many(server, ids)]
			if len(ids) == 1:
				return Response(200, found[0]) if found else error(404, f"job {ids[0]} not found on {server}")
			return Response(200, found)
		if match := re.fullmatch(r"agent-jobs/(.+)", path):
			names = [name for name in match.group(1).split(",") if name]
			return Response(200, [job.as_agent() for job in self.store.by_agent_job_ids(server, names)])
		if match := re.fullmatch(r"benches/([^/]+)/sites/([^/]+)/apps", path):
			return self._site_apps(server_type, server, match.group(1), match.group(2))
		return None

	def _site_apps(self, server_type, server, bench, site) -> Response:
		host = self.topology.server(server_type, server)
		name = naming.BenchNames.of(host.container_prefix, bench).backend

		def list_apps(client):
			container = client.containers.get(name)
			return docker_exec.run(container, ["bench", "--site", site, "list-apps"], Exec(), check=False)

		result = self.docker_hosts.call(host.docker, f"listing the apps of {site}", list_apps)
		if result.exit_code != 0:
			return error(500, f"`{result.command}` exited with code {result.exit_code}: {result.output}")
		return Response(200, {"data": result.stdout})
