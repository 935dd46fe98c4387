"""Job and step records in the Agent's JSON shape.

Press reads these dicts in ``handle_polled_job``: job keys ``id, status, start, end, duration, data,
steps``; step keys ``name, status, start, end, duration, data``. Status values are exactly the
Agent's (any other value breaks Press's callbacks), dates are naive UTC strings and ``data`` is
always a dict because Press calls ``data.get("output")`` on it.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass, field
from typing import Any

from press_selfhosted.engine.jobs.handlers import JobRecord

PENDING = "Pending"
RUNNING = "Running"
SUCCESS = "Success"
FAILURE = "Failure"
FINISHED = (SUCCESS, FAILURE)

REPORTED = "reported"
COMMANDS = "commands"


def step_data_column(data: Any, commands: list[dict[str, Any]] | None = None) -> str:
	"""A step's stored ``data``: ``{"reported": <data>}`` when its handler shaped it, ``{"commands": [...]}``
	when the step listed the commands it ran; else ``{}``."""
	column: dict[str, Any] = {}
	if data is not None:
		column[REPORTED] = data
	if commands:
		column[COMMANDS] = commands
	return json.dumps(column)


def utcnow() -> datetime.datetime:
	return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def format_time(moment: datetime.datetime | None) -> str | None:
	return moment.strftime("%Y-%m-%d %H:%M:%S.%f") if moment else None


def format_duration(start: datetime.datetime | None, end: datetime.datetime | None) -> str | None:
	"""``H:MM:SS.ffffff`` as the Agent writes it (``str(timedelta)``); None while unfinished."""
	if not (start and end):
		return None
	elapsed = end - start
	text = str(elapsed)
	return text if "." in text else text + ".000000"


@dataclass
class StepRow:
	id: int
	job_id: int
	idx: int
	name: str
	status: str
	output: str = ""
	traceback: str = ""
	data: dict[str, Any] = field(default_factory=dict)
	start: datetime.datetime | None = None
	end: datetime.datetime | None = None

	def as_agent(self) -> dict[str, Any]:
		if REPORTED in self.data:  # shaped by the handler for Press's parsers (a list, or a dict)
			data = self.data[REPORTED]
		else:
			data = {"output": self.output, "traceback": self.traceback}
		return {
			"id": self.id,
			"name": self.name,
			"status": self.status,
			"data": data,
			"start": format_time(self.start),
			"end": format_time(self.end),
			"duration": format_duration(self.start, self.end),
			# Press reads a running Build Image's output from its first command, as the Agent lists them
			"commands": self.data.get(COMMANDS, []),
		}


@dataclass(frozen=True, kw_only=True)
class JobRow(JobRecord):
	"""A job as the store keeps it: its record, its status, times and steps, and the lease on it."""

	status: str
	enqueued: datetime.datetime
	start: datetime.datetime | None = None
	end: datetime.datetime | None = None
	steps: list[StepRow] = field(default_factory=list)
	resume_after: datetime.datetime | None = None  # a waiting step runs again from then on
	owner: str | None = None  # the worker running it (its lease)
	lease_free: bool = True  # no worker's lease runs on it

	def as_agent(self) -> dict[str, Any]:
		# Pending steps are never reported: Press marks the ones left as Skipped when the job ends
		return {
			"id": self.id,
			"name": self.job_type,
			"status": self.status,
			"agent_job_id": self.agent_job_id,
			"data": dict(self.data or {}),
			"enqueue": format_time(self.enqueued),
			"start": format_time(self.start),
			"end": format_time(self.end),
			"duration": format_duration(self.start, self.end),
			"steps": [step.as_agent() for step in self.steps if step.status != PENDING],
			"commands": [],
		}
