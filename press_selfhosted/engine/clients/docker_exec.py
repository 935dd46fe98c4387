"""Commands run inside containers with ``docker exec``, as the Agent runs them on its hosts.

Exit code, stdout and stderr are kept; a non-zero exit raises :class:`CommandFailed` carrying them.
Secrets that appear in a command line or its output are masked before anything is kept.

A secret never travels in a command line or an exec's environment: any process of the container
reads both (``/proc/<pid>/cmdline``, ``/proc/<pid>/environ`` of its own user), the host's ``ps``
shows the first and Docker's ``exec_create`` event carries it. Secrets reach a command on its
standard input (``Exec.stdin``: e.g. the password ``getpass`` reads, as Frappe's ``set-password``
does without a terminal) or in a file the engine copies in (mode 0600 or 0400, removed after use).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import docker.errors
import docker.utils.socket
from docker.models.containers import Container

from press_selfhosted.engine.errors import CommandFailed, CommandOutputLost, ContainerNotRunning
from press_selfhosted.engine.masking import MASK

BENCH_DIRECTORY = "/home/frappe/frappe-bench"

# Docker's exec stream can end before the command's output has all come through: exit code 0 and an
# empty or cut stdout (docker/docker-py#2042, moby/moby#27289; about one exec in 300 on a loaded host).
# So every command runs under sh, which prints this marker and the exit code after its output: a
# result without it is known to be cut, never mistaken for an empty answer.
END_OF_OUTPUT = "press-selfhosted-end-of-output"
_WRAPPED = 'c=0; "$@" || c=$?; printf "\\n%s %d\\n" "$0" "$c"; exit "$c"'
READ_ATTEMPTS = 3


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
	output_lost: bool = False  # Docker cut the output: stdout and stderr may lack their end

	@property
	def output(self) -> str:
		return "\n".join(part for part in (self.stdout.rstrip("\n"), self.stderr.rstrip("\n")) if part)


@dataclass
class Exec:
	"""How to run a command: as which user, where, with which environment, masking which secrets.

	``stdin`` is written to the command's standard input (never closed: a command given input reads
	what it needs, e.g. one line, and exits). ``reads_only``: the command changes nothing, so when
	Docker cuts its output it is run again (up to ``READ_ATTEMPTS`` times) rather than misread."""

	user: str = "frappe"
	workdir: str = BENCH_DIRECTORY
	environment: dict[str, str] = field(default_factory=dict)
	secrets: Sequence[str] = ()
	stdin: bytes | None = None
	reads_only: bool = False


class Transcript(Protocol):
	"""Where a caller's commands and messages are written down (a job step's output, whose context is
	one): clients that act for a job take one, so what they did shows in the job."""

	def log(self, text: str) -> None: ...

	def run(
		self, container: Container, argv: Sequence[str], how: Exec | None = None, check: bool = True
	) -> CommandResult: ...


def run(
	container: Container, argv: Sequence[str], how: Exec | None = None, check: bool = True
) -> CommandResult:
	"""``argv`` in ``container``; a nonzero exit raises CommandFailed when ``check``. A command whose
	output Docker cut is run again when it only reads (``how.reads_only``), else its result says so
	(``output_lost``): the command did run, only what it printed is partly unknown."""
	how = how or Exec()
	command = redact(" ".join(argv), how.secrets)
	for _attempt in range(READ_ATTEMPTS if how.reads_only else 1):
		exit_code, stdout, stderr = _exec(
			container, ["sh", "-c", _WRAPPED, END_OF_OUTPUT, *argv], how, command
		)
		stdout, complete = _without_marker(stdout, exit_code)
		if complete:
			break
	result = CommandResult(
		command=command,
		exit_code=exit_code,
		stdout=redact(stdout.decode(errors="replace"), how.secrets),
		stderr=redact(stderr.decode(errors="replace"), how.secrets),
		output_lost=not complete,
	)
	if how.reads_only and not complete:
		raise CommandOutputLost(container.name, result)
	if check and exit_code != 0:
		raise CommandFailed(container.name, result)
	return result


def _without_marker(stdout: bytes, exit_code: int) -> tuple[bytes, bool]:
	"""The command's own stdout, and whether the marker showed it complete."""
	marker = f"\n{END_OF_OUTPUT} {exit_code}\n".encode()
	if stdout.endswith(marker):
		return stdout[: -len(marker)], True
	return stdout, False


def _exec(container: Container, argv: list[str], how: Exec, command: str) -> tuple[int, bytes, bytes]:
	try:
		if how.stdin is None:
			exit_code, (stdout, stderr) = container.exec_run(
				argv,
				user=how.user,
				workdir=how.workdir,
				environment=how.environment or None,
				demux=True,
			)
			return exit_code, stdout or b"", stderr or b""
		return _run_with_input(container, argv, how)
	except docker.errors.APIError as error:
		# Docker answers 409 (or 500 on older engines) when the container stopped before the exec began
		if "is not running" not in str(error):
			raise
		state = error.explanation or str(error)
		raise ContainerNotRunning(container.name, command, state) from error


def _run_with_input(container: Container, argv: Sequence[str], how: Exec) -> tuple[int, bytes, bytes]:
	"""``docker exec -i``: the input goes through the exec's attached stream, not its definition."""
	api = container.client.api
	exec_id = api.exec_create(
		container.id,
		list(argv),
		stdin=True,
		user=how.user,
		workdir=how.workdir,
		environment=how.environment or None,
	)["Id"]
	sock = api.exec_start(exec_id, socket=True)
	raw = getattr(sock, "_sock", sock)

	def feed() -> None:
		# in its own thread: a command that exits before reading all of its input must not block us
		with contextlib.suppress(OSError, ValueError):
			raw.sendall(how.stdin)

	writer = threading.Thread(target=feed, daemon=True)
	writer.start()
	out, err = [], []
	try:
		for stream, data in docker.utils.socket.frames_iter(sock, tty=False):
			(err if stream == docker.utils.socket.STDERR else out).append(data)
	except (OSError, struct.error):
		pass  # the stream ended with the command
	finally:
		with contextlib.suppress(OSError):
			raw.shutdown(socket.SHUT_RDWR)
		sock.close()
		writer.join(timeout=5)
	state = api.exec_inspect(exec_id)
	for _ in range(50):  # the stream can end a moment before Docker records the exit code
		if not state.get("Running") and state.get("ExitCode") is not None:
			break
		time.sleep(0.1)
		state = api.exec_inspect(exec_id)
	exit_code = state.get("ExitCode")
	return exit_code if exit_code is not None else -1, b"".join(out), b"".join(err)
