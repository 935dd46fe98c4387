"""Commands run inside containers with ``docker exec``, as the Agent runs them on its hosts.

Exit code, stdout and stderr are kept; a non-zero exit raises :class:`CommandFailed` carrying them.
Secrets that appear in a command line or its output are masked before anything is kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import docker.errors
from docker.models.containers import Container

from press_selfhosted.engine.errors import EngineError

BENCH_DIRECTORY = "/home/frappe/frappe-bench"
MASK = "********"


def redact(text: str, secrets: Iterable[str]) -> str:
	for secret in secrets:
		if secret:
			text = text.replace(secret, MASK)
	return text


@dataclass
class CommandResult:
	command: str
	exit_code: int
	stdout: str
	stderr: str

	@property
	def output(self) -> str:
		return "\n".join(part for part in (self.stdout.rstrip("\n"), self.stderr.rstrip("\n")) if part)


class CommandFailed(EngineError):
	def __init__(self, container: str, result: CommandResult):
		self.container = container
		self.result = result
		tail = "\n".join(result.output.splitlines()[-20:])
		super().__init__(
			f"`{result.command}` exited with code {result.exit_code} in container {container}:\n{tail}"
		)


class ContainerNotRunning(EngineError):
	def __init__(self, container: str, command: str, detail: str):
		self.container = container
		super().__init__(
			f"`{command}` could not start: container {container} is not running ({detail}). "
			"Fix: start it (Press: Bench Restart for a bench), then retry the job."
		)


@dataclass
class Exec:
	"""How to run a command: as which user, where, with which environment, masking which secrets."""

	user: str = "frappe"
	workdir: str = BENCH_DIRECTORY
	environment: dict[str, str] = field(default_factory=dict)
	secrets: Sequence[str] = ()


def run(
	container: Container, argv: Sequence[str], how: Exec | None = None, check: bool = True
) -> CommandResult:
	how = how or Exec()
	try:
		exit_code, (stdout, stderr) = container.exec_run(
			list(argv), user=how.user, workdir=how.workdir, environment=how.environment or None, demux=True
		)
	except docker.errors.APIError as error:
		# Docker answers 409 (or 500 on older engines) when the container stopped before the exec began
		if "is not running" not in str(error):
			raise
		state = error.explanation or str(error)
		raise ContainerNotRunning(container.name, redact(" ".join(argv), how.secrets), state) from error
	result = CommandResult(
		command=redact(" ".join(argv), how.secrets),
		exit_code=exit_code,
		stdout=redact((stdout or b"").decode(errors="replace"), how.secrets),
		stderr=redact((stderr or b"").decode(errors="replace"), how.secrets),
	)
	if check and exit_code != 0:
		raise CommandFailed(container.name, result)
	return result
