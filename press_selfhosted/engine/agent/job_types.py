"""Agent Job Types (step names, paths): Press's own, and the few this app adds.

Press's from the installed press app when it is importable (``press/fixtures/agent_job_type.json``),
else from ``$PRESS_FIXTURES_DIR/agent_job_type.json`` (a copy of that fixture, for tests without
Press); this app's from ``press_selfhosted/fixtures/agent_job_type.json``, which Frappe also syncs
into Press's Agent Job Type records on install and migrate (the ``fixtures`` hook).
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path

from press_selfhosted.engine.errors import JobTypesUnavailable

FIXTURE = "agent_job_type.json"


@dataclass(frozen=True)
class JobType:
	name: str
	method: str
	path: str
	steps: tuple[str, ...]


def fixture_path() -> Path:
	spec = importlib.util.find_spec("press")
	if spec and spec.submodule_search_locations:
		for location in spec.submodule_search_locations:
			candidate = Path(location) / "fixtures" / FIXTURE
			if candidate.exists():
				return candidate
	directory = os.environ.get("PRESS_FIXTURES_DIR")
	if directory and (Path(directory) / FIXTURE).exists():
		return Path(directory) / FIXTURE
	raise JobTypesUnavailable(
		"Press's Agent Job Type fixture was not found: install the press app, or set PRESS_FIXTURES_DIR "
		f"to a directory holding {FIXTURE}."
	)


# the job types this app adds to Press's (e.g. Setup Container Server)
APP_FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / FIXTURE


def load(path: Path | None = None) -> dict[str, JobType]:
	"""Press's job types (from ``path`` or Press's fixture) and this app's."""
	rows = [*json.loads((path or fixture_path()).read_text()), *json.loads(APP_FIXTURE.read_text())]
	return {
		row["name"]: JobType(
			name=row["name"],
			method=row.get("request_method") or "POST",
			path=(row.get("request_path") or "").strip("/"),
			steps=tuple(step["step_name"] for step in row.get("steps") or []),
		)
		for row in rows
	}
