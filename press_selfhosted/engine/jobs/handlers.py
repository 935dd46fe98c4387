"""The contract between the executor and the job handlers.

A handler executes one Press Agent Job Type. It is a list of steps named exactly as that job type's
steps in Press's ``Agent Job Type`` fixture; each step is a function of a :class:`StepContext` that
is idempotent: it looks at what exists (labelled containers, volumes, files, databases) and does only
what is missing, so running a job again after a crash converges. A step fails by raising
(an :class:`~press_selfhosted.engine.errors.EngineError` carries the operator's message); it may
append to its output with ``ctx.log`` and record results for Press in ``ctx.data``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

import docker

from press_selfhosted.engine.clients import docker_exec
from press_selfhosted.engine.clients.servers import ContainerServer, DatabaseEndpoint
from press_selfhosted.engine.errors import CommandFailed
from press_selfhosted.engine.masking import masked


class Topology(Protocol):
	"""What the executor knows of Press's records; the Frappe layer reads them from documents."""

	def server(self, server_type: str, name: str) -> ContainerServer: ...

	def app_server_by_ip(self, ip: str) -> ContainerServer: ...

	def database_for(self, app_server: str) -> DatabaseEndpoint | None:
		"""The container Database Server of ``app_server``; None when it is not a container server."""
		...

	def bench_for_site(self, site: str) -> str:
		"""The bench serving ``site`` (Press's Site.bench): proxy payloads do not carry it."""
		...

	def press_job_status(self, job_type: str, site: str) -> str | None:
		"""The status Press has recorded for its latest Agent Job of ``job_type`` for ``site`` (None: none).

		Press applies a job's result when it polls; some of its callbacks read another job's result
		from its own records (Archive Site reads the proxy's), so a job may have to wait for that."""
		...

	def proxy_for(self, app_server: str) -> ContainerServer | None:
		"""The container Proxy Server routing ``app_server``'s sites; None when it is not a container server."""
		...


class SecretSource(Protocol):
	"""Secrets are never stored with a job: handlers ask for them when they run.

	Keys are the payload keys Press sends (``mariadb_root_password``, ``admin_password``,
	``registry_password``, ``offsite_secret_key``…); the Frappe layer reads the matching Password field.
	"""

	def secret(self, job: JobRecord, key: str) -> str: ...


@dataclass(frozen=True)
class JobRequest:
	"""What Press asked for: one Agent Job of ``job_type`` on a server, its bench and site, and the request
	body (``payload``, stored with every secret masked out). One shape of a job in every layer: the job
	store keeps it, a step reads it as :class:`JobRecord`, the agent reports it as a ``JobRow``."""

	job_type: str
	server: str
	server_type: str
	method: str
	path: str
	bench: str | None
	site: str | None
	payload: dict[str, Any]
	agent_job_id: str | None = None  # Press's Agent Job name (X-Agent-Job-Id)

	def request_fields(self) -> dict[str, Any]:
		"""The request's own fields (a record's or a row's too, without what the store added)."""
		return {found.name: getattr(self, found.name) for found in fields(JobRequest)}


@dataclass(frozen=True, kw_only=True)
class JobRecord(JobRequest):
	"""A job the store accepted: its request, its id and the data its steps share (``ctx.data``)."""

	id: int
	data: dict[str, Any] = field(default_factory=dict)

	@classmethod
	def of(cls, request: JobRequest, id: int, data: dict[str, Any] | None = None) -> JobRecord:
		return cls(**request.request_fields(), id=id, data={} if data is None else data)


class StepContext:
	"""What a step may use: the job, its server's Docker, the topology, secrets, output and data."""

	def __init__(
		self,
		job: JobRecord,
		server: ContainerServer,
		docker_client: docker.DockerClient,
		topology: Topology,
		secrets: SecretSource,
		log: Callable[[str], None],
		docker_for: Callable[[ContainerServer], docker.DockerClient],
	):
		self.job = job
		self.server = server
		self.docker = docker_client
		self.topology = topology
		self._secrets = secrets
		self._log = log
		self._docker_for = docker_for
		self._known_secrets: list[str] = []
		# the step's ``data`` as Press reads it, when the handler owns its shape (Run Remote Builder's
		# clone list and validation report); None reports the step's output and traceback
		self.step_data: Any = None
		# the commands the step ran with their output, as the Agent lists a step's commands: Press reads
		# a running Build Image's output from the first; None lists none
		self.commands: list[dict[str, Any]] | None = None

	@property
	def payload(self) -> dict[str, Any]:
		return self.job.payload

	@property
	def data(self) -> dict[str, Any]:
		"""The job's ``data`` as Press reads it (e.g. ``backups``/``offsite``); saved after each step."""
		return self.job.data

	def secret(self, key: str) -> str:
		value = self._secrets.secret(self.job, key)
		if value:
			self._known_secrets.append(value)
		return value

	def unmasked(self, path: str, value: Any) -> Any:
		"""``value`` as Press sent it: the store keeps payloads with secrets masked (masking.scrub), so a
		masked one is read from the SecretSource under its dotted ``path`` in the payload."""
		return self.secret(path) if masked(value) else value

	def log(self, text: str) -> None:
		self._log(self.redact(text))

	def redact(self, text: str) -> str:
		"""``text`` with every secret this job has read masked (for tracebacks and messages)."""
		return docker_exec.redact(text, self._known_secrets)

	def docker_of(self, server: ContainerServer) -> docker.DockerClient:
		"""The Docker client of another server (e.g. the proxy or database server of this job)."""
		return self._docker_for(server)

	def run(
		self, container, argv: Sequence[str], how: docker_exec.Exec | None = None, check: bool = True
	) -> docker_exec.CommandResult:
		"""``docker exec`` with the output kept in the step (secrets this job used are masked)."""
		how = how or docker_exec.Exec()
		how.secrets = [*how.secrets, *self._known_secrets]
		try:
			result = docker_exec.run(container, argv, how, check=check)
		except CommandFailed as failure:
			self.log(f"$ {failure.result.command}\n{failure.result.output}")
			raise
		self.log(f"$ {result.command}\n{result.output}".rstrip())
		return result


StepFunction = Callable[[StepContext], None]


class EndJob(Exception):
	"""Raised by a step whose outcome ends the job early without failing it.

	The step is recorded Failure with this message in its output; of the steps after it only those
	named in ``run_after`` still run (the others stay unreported: Press marks them Skipped) and the job
	ends Success. Run Remote Builder ends this way when a Dockerfile stage fails, as the Agent does:
	Press reads such a build's failure from the job's data (``build_failed`` and the build output),
	which it ignores in a failed job."""

	def __init__(self, message: str, run_after: Sequence[str] = ()):
		super().__init__(message)
		self.run_after = tuple(run_after)


class StepWaiting(Exception):
	"""Raised by a step whose condition is not met yet (another job must finish first).

	The worker does not wait: the step stays Running with ``reason`` in its output, the job stays
	Running, its bench and site are free again, and the scheduler's sweep runs the step again after
	``retry_after`` seconds. With one worker for every queue (Frappe's default), a step that slept
	instead would keep the job it waits for from ever running."""

	def __init__(self, reason: str, retry_after: float = 20.0):
		super().__init__(reason)
		self.retry_after = retry_after


@dataclass(frozen=True)
class Step:
	name: str  # exactly Press's step name for this job type
	run: StepFunction


@dataclass(frozen=True)
class Handler:
	"""Executes Press's ``job_type``, requested as ``method`` on ``path``.

	``path`` is the Agent route relative to ``/agent/``, with ``{bench}``, ``{site}``, ``{upstream}``,
	``{domain}``, ``{app}`` or ``{host}`` standing for one path segment, e.g.
	``benches/{bench}/sites/{site}/backup``. The router gives the segments to the job as its
	``bench``/``site`` and in ``payload["path_args"]``.
	"""

	job_type: str
	method: str
	path: str
	steps: tuple[Step, ...]
	# the job's data before its first step: a handler whose ``output`` Press parses as JSON starts
	# with one, so that even a failure before any step leaves Press something it can read
	initial_data: Mapping[str, Any] = field(default_factory=dict)

	@property
	def step_names(self) -> list[str]:
		return [step.name for step in self.steps]


def handler(
	job_type: str,
	method: str,
	path: str,
	steps: Sequence[tuple[str, StepFunction]],
	initial_data: Mapping[str, Any] | None = None,
) -> Handler:
	return Handler(
		job_type, method, path, tuple(Step(name, run) for name, run in steps), dict(initial_data or {})
	)


def index(handlers: Sequence[Handler]) -> Mapping[str, Handler]:
	found: dict[str, Handler] = {}
	for item in handlers:
		if item.job_type in found:
			raise ValueError(f"two handlers for {item.job_type!r}")
		found[item.job_type] = item
	return found
