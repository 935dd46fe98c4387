"""``docker exec`` through engine.clients.docker_exec in a real container: what a command prints comes back
exactly, and an answer Docker cut (its exec stream ended before the output, docker-py#2042) is told
from an empty one. Docker cannot be made to cut a stream on demand; a command that kills the shell
printing the end-of-output marker leaves the same trace (output without the marker), through Docker."""

from __future__ import annotations

import uuid

import pytest

from press_selfhosted.engine.clients import docker_exec
from press_selfhosted.engine.errors import CommandFailed, CommandOutputLost

# kills the shell that would print the end-of-output marker after the command: the answer ends early
CUT = "printf 'half an answer'; kill -9 $PPID"


ROOT = docker_exec.Exec(user="root", workdir="/")


@pytest.mark.parametrize("printed", ["", "one line\n", "no newline at the end", "\n\ntwo blank lines\n\n"])
def test_the_output_comes_back_exactly(idle_container, printed):
	result = docker_exec.run(idle_container, ["printf", "%s", printed], ROOT)
	assert (result.stdout, result.exit_code, result.output_lost) == (printed, 0, False)


def test_exit_codes_and_stderr_are_the_commands(idle_container):
	result = docker_exec.run(
		idle_container, ["sh", "-c", "echo out; echo err >&2; exit 7"], ROOT, check=False
	)
	assert (result.exit_code, result.stdout, result.stderr) == (7, "out\n", "err\n")
	with pytest.raises(CommandFailed, match="exited with code 7"):
		docker_exec.run(idle_container, ["sh", "-c", "exit 7"], ROOT)


def test_input_reaches_the_command_and_its_output_comes_back(idle_container):
	how = docker_exec.Exec(user="root", workdir="/", stdin=b"typed line\n")
	result = docker_exec.run(idle_container, ["sh", "-c", "read line; printf '%s' \"$line\""], how)
	assert (result.stdout, result.output_lost) == ("typed line", False)


def test_a_cut_answer_is_flagged_not_taken_for_the_whole_output(idle_container):
	result = docker_exec.run(idle_container, ["sh", "-c", CUT], ROOT, check=False)
	assert result.output_lost and result.stdout == "half an answer"


def test_a_reading_command_whose_answer_stays_cut_is_asked_again_then_refused(idle_container):
	counter = f"/tmp/asked-{uuid.uuid4().hex[:6]}"
	script = f'echo x >> {counter}; [ "$(wc -l < {counter})" -ge 2 ] && {{ echo whole; exit 0; }}; {CUT}'
	how = docker_exec.Exec(user="root", workdir="/", reads_only=True)
	result = docker_exec.run(idle_container, ["sh", "-c", script], how)
	assert (result.stdout, result.output_lost) == ("whole\n", False)  # cut once, whole the second time

	with pytest.raises(CommandOutputLost, match="Docker cut its output each time"):
		docker_exec.run(idle_container, ["sh", "-c", CUT], how, check=False)
	asked = docker_exec.run(idle_container, ["wc", "-l", counter], ROOT).stdout.split()[0]
	assert asked == "2"  # the first command ran exactly twice: cut once, then whole
