"""The one way a job's steps run: in order, each on a fresh :class:`StepContext`, recorded as it goes,
stopped by the first failure with its typed error.

The executor runs a recorded job with it (its :class:`Journal` writes each step to the job store under
the job's lease); the restore drill runs New Site from Backup's steps with it under the bench lock; the
tests run handlers with it. None of them builds a StepContext or interprets a step's outcome itself.

A step ends in one of four ways:
- it returns: Success;
- it raises :class:`StepWaiting`: the run stops :data:`WAITING` (the step's condition is not met yet);
- it raises :class:`EndJob`: the step is a Failure, only the steps it names still run, the job succeeds;
- it raises anything else: the step and the run are a Failure; Docker's errors arrive as the engine's
  (:func:`docker_errors` names the server and the step).
"""

from __future__ import annotations

import traceback as tracebacks
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import docker

from press_selfhosted.engine.agent import jobs
from press_selfhosted.engine.clients.docker_hosts import DockerHosts, docker_errors
from press_selfhosted.engine.clients.servers import ContainerServer
from press_selfhosted.engine.errors import EngineError
from press_selfhosted.engine.jobs.handlers import (
	EndJob,
	JobRecord,
	SecretSource,
	Step,
	StepContext,
	StepWaiting,
	Topology,
)

WAITING = "Waiting"  # a run (and its step) stopped until the step's condition is met

Log = Callable[[str], None]


class Contexts:
	"""Builds a job's StepContexts: its server from the topology, that server's Docker client, the secrets.

	``for_job`` resolves the server and its client once, before any step (a job whose server is unknown or
	unreachable fails before its first step); each step then gets a context of its own."""

	def __init__(self, topology: Topology, secrets: SecretSource, docker_hosts: DockerHosts):
		self.topology = topology
		self.secrets = secrets
		self.docker_hosts = docker_hosts

	def for_job(self, job: JobRecord) -> Callable[[Log], StepContext]:
		server = self.topology.server(job.server_type, job.server)
		client = self.docker_hosts.client(server.docker)

		def context(log: Log) -> StepContext:
			return StepContext(job, server, client, self.topology, self.secrets, log, self._docker_for)

		return context

	def _docker_for(self, server: ContainerServer) -> docker.DockerClient:
		return self.docker_hosts.client(server.docker)


class StepLines:
	"""A running step's output lines; a context around the step's run. ``echo`` sees each line too."""

	def __init__(self, echo: Log | None = None):
		self.lines: list[str] = []
		self._echo = echo
		self.context: StepContext | None = None  # the step's, once made (the executor writes its commands)

	def __enter__(self) -> None:
		return None

	def __exit__(self, *exc_info) -> None:
		return None

	def append(self, text: str) -> None:
		self.lines.append(text)
		if self._echo:
			self._echo(text)


@dataclass
class StepResult:
	idx: int  # the step's place in its handler
	name: str
	status: str  # jobs.SUCCESS, jobs.FAILURE, or WAITING
	output: str = ""  # the step's lines, then the message that ended it (if any)
	traceback: str = ""
	data: Any = None  # ctx.step_data: the step's data when its handler shapes it for Press
	commands: list[dict[str, Any]] | None = None  # ctx.commands
	error: BaseException | None = None  # what ended the step: StepWaiting, EndJob or its failure
	retry_after: float | None = None  # a waiting step's time to look again, in seconds


@dataclass
class RunResult:
	status: str  # jobs.SUCCESS, jobs.FAILURE or WAITING
	steps: list[StepResult] = field(default_factory=list)

	@property
	def failure(self) -> StepResult | None:
		"""The step that failed the run (an EndJob's step does not fail it)."""
		last = self.steps[-1] if self.steps else None
		return last if self.status == jobs.FAILURE and last else None

	def check(self) -> RunResult:
		"""Raises the failed step's own error (typed, with its traceback); the result otherwise."""
		if self.failure and self.failure.error is not None:
			raise self.failure.error
		return self


class Journal:
	"""Where a run records its steps as they go; by default nowhere but the result (the drill, tests).

	The executor's journal writes to the job store: ``start`` before a step runs, ``end`` once it ended."""

	def __init__(self, echo: Log | None = None):
		self.echo = echo

	def start(self, idx: int, step: Step) -> StepLines:
		"""The step's output, a context around its run (the executor's writes while the step runs)."""
		return StepLines(self.echo)

	def end(self, result: StepResult) -> None:
		"""The step ended (its result holds the error that ended it, if any)."""


def run_steps(
	job: JobRecord,
	steps: Sequence[Step],
	context: Callable[[Log], StepContext],
	journal: Journal | None = None,
	done: Collection[int] = (),
) -> RunResult:
	"""Runs ``steps`` of ``job`` in order, each on ``context(log)``, skipping the indexes in ``done`` (the
	steps a resumed job has already recorded Success). The run stops at the first failure or wait."""
	journal = journal or Journal()
	result = RunResult(jobs.SUCCESS)
	still_run: set[str] | None = None  # after an EndJob: the steps that run all the same
	for idx, step in enumerate(steps):
		if idx in done or (still_run is not None and step.name not in still_run):
			continue
		lines = journal.start(idx, step)
		ctx = lines.context = context(lines.append)
		outcome = StepResult(idx, step.name, jobs.SUCCESS)
		try:
			with lines, docker_errors(ctx.server.docker, f"running step {step.name!r} of job {job.id}"):
				step.run(ctx)
		except StepWaiting as waiting:
			outcome.status, outcome.error, outcome.retry_after = WAITING, waiting, waiting.retry_after
			outcome.output = "\n".join([*lines.lines, ctx.redact(str(waiting))])
		except EndJob as end:
			outcome.status, outcome.error = jobs.FAILURE, end
			outcome.output = "\n".join([*lines.lines, ctx.redact(str(end))])
			still_run = set(end.run_after)
		except Exception as error:  # noqa: BLE001 - a step's failure, whatever it is, is the run's
			outcome.status, outcome.error = jobs.FAILURE, error
			outcome.output = "\n".join([*lines.lines, ctx.redact(describe(error))])
			outcome.traceback = ctx.redact(tracebacks.format_exc())
		else:
			outcome.output = "\n".join(lines.lines)
		outcome.data, outcome.commands = ctx.step_data, ctx.commands
		journal.end(outcome)
		result.steps.append(outcome)
		if outcome.status == WAITING or (
			outcome.status == jobs.FAILURE and not isinstance(outcome.error, EndJob)
		):
			result.status = outcome.status
			return result
	return result


def describe(error: BaseException) -> str:
	"""An error as a step's output shows it: the engine's own message, else its type and text."""
	if isinstance(error, EngineError):
		return str(error)
	return f"{type(error).__name__}: {error}"
