"""Job and step records in the Agent's JSON shape, and the scrubbing of secrets out of payloads.

Press reads these dicts in ``handle_polled_job``: job keys ``id, status, start, end, duration, data,
steps``; step keys ``name, status, start, end, duration, data``. Status values are exactly the
Agent's (any other value breaks Press's callbacks), dates are naive UTC strings and ``data`` is
always a dict because Press calls ``data.get("output")`` on it.
"""

from __future__ import annotations

import datetime
import json
import re
from dataclasses import dataclass, field
from typing import Any

PENDING = "Pending"
RUNNING = "Running"
SUCCESS = "Success"
FAILURE = "Failure"
FINISHED = (SUCCESS, FAILURE)

MASK = "********"
# Press puts root DB passwords, admin passwords, registry passwords and S3 keys in payloads;
# none of them is kept: handlers read secrets from Password fields when they run. A key named like a
# secret (``*_KEY`` environment variables, ``encryption_key``) has its value masked; so has, in any
# text, the password of a URL (``redis://:pw@host``) and the signature parts of a presigned URL.
_SECRET_KEY = re.compile(
	r"pass|secret|token|access_key|private|privkey|credential|encryption|_key$|signature",
	re.IGNORECASE,
)
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^\s:/@]*:)[^\s@/]+(?=@)", re.IGNORECASE)
_SIGNED_QUERY = re.compile(
	r"(?P<head>[?&](?:X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token|Signature|AWSAccessKeyId"
	r"|x-goog-signature|sig)=)[^&#\s\"]+",
	re.IGNORECASE,
)


# a URL's credentials (``https://x-access-token:<token>@github.com/...``, Press's private app sources)
_URL_CREDENTIALS = re.compile(
	r"^(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/@\s:]*:)(?P<secret>[^/@\s]+)(?P<tail>@.*)$", re.DOTALL
)


def lookup(payload: Any, path: str) -> Any:
	"""The value at a dotted ``path`` (``create_user.password``, ``config.smtp_password``,
	``clone_instructions.0.url``) of a payload, None when absent. Keys may hold dots themselves, so the
	longest matching key wins; a number indexes a list."""
	if isinstance(payload, list):
		head, _, rest = path.partition(".")
		if not head.isdigit() or int(head) >= len(payload):
			return None
		return lookup(payload[int(head)], rest) if rest else payload[int(head)]
	if not isinstance(payload, dict):
		return None
	if path in payload:
		return payload[path]
	for cut in range(len(path) - 1, 0, -1):
		if path[cut] == "." and path[:cut] in payload:
			return lookup(payload[path[:cut]], path[cut + 1 :])
	return None


def scrub(value: Any) -> Any:
	"""A copy of ``value`` with the value of every secret-looking key replaced by a mask, at any depth;
	in text, URL passwords and presigned signatures are masked, and a JSON object held as text (a
	site_config Press sends as a string) is scrubbed inside. A handler that needs a masked value
	reads it from its SecretSource under the value's dotted path."""
	if isinstance(value, str):
		return _scrub_text(value)
	if isinstance(value, dict):
		# a secret is a scalar: a secret-looking key holding a dict or list (the glue's
		# ``storage.backup.private`` = {key, sha256}) is scrubbed inside, not thrown away
		return {
			key: (
				MASK
				if _SECRET_KEY.search(str(key))
				and item not in (None, "")
				and not isinstance(item, dict | list)
				else scrub(item)
			)
			for key, item in value.items()
		}
	if isinstance(value, list):
		return [scrub(item) for item in value]
	return value


def _scrub_text(text: str) -> str:
	if text.lstrip().startswith("{"):
		try:
			found = json.loads(text)
		except ValueError:
			found = None
		if isinstance(found, dict):
			cleaned = scrub(found)
			return text if cleaned == found else json.dumps(cleaned)
	if credentials := _URL_CREDENTIALS.match(text):
		text = credentials["head"] + MASK + credentials["tail"]
	text = _URL_PASSWORD.sub(lambda match: match.group("head") + MASK, text)
	return _SIGNED_QUERY.sub(lambda match: match.group("head") + MASK, text)


def masked(value: Any) -> bool:
	"""Does ``value`` (as the store kept it) hold a masked secret?"""
	return isinstance(value, str) and MASK in value


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


@dataclass
class JobRow:
	id: int
	server: str
	server_type: str
	job_type: str
	method: str
	path: str
	bench: str | None
	site: str | None
	agent_job_id: str | None
	payload: dict[str, Any]
	status: str
	data: dict[str, Any]
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
