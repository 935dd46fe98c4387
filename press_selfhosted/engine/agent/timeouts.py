"""How long a worker may run a job before its queue kills it, sized to the work.

RQ kills a job after its timeout (25 minutes by default) while the command it started goes on in the
container; the job then resumes (after its lease runs out) and could run that step again beside the
first. So the timeout is longer than the longest run of the job's work: hours for backups, restores,
builds and migrations (Press's own ``agent_job_timeout`` of a backup, Site.backup_timeout, is 5 hours
by default and wins when longer).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

HOUR = 3600
DEFAULT = 1 * HOUR
# work that copies, dumps, loads or builds data whose size is the tenant's
LONG = {
	"Backup Site": 6 * HOUR,
	"Archive Site": 6 * HOUR,
	"Uninstall App from Site": 6 * HOUR,
	"Restore Site": 8 * HOUR,
	"New Site from Backup": 8 * HOUR,
	"Restore Site Tables": 8 * HOUR,
	"Update Site Migrate": 8 * HOUR,
	"Update Site Pull": 6 * HOUR,
	"Recover Failed Site Migrate": 8 * HOUR,
	"Recover Failed Site Pull": 6 * HOUR,
	"Move Site to Bench": 8 * HOUR,
	"Migrate Site": 6 * HOUR,
	"Reinstall Site": 2 * HOUR,
	"Optimize Tables": 6 * HOUR,
	"Rename Site": 2 * HOUR,
	"Run Remote Builder": 6 * HOUR,
	"New Bench": 2 * HOUR,  # pulls images of several GB
	"Update Bench Configuration": 2 * HOUR,
	"Rebuild Bench Assets": 2 * HOUR,
}
MARGIN = 1800  # beyond Press's own timeout: the job also uploads and checks what it made


def job_timeout(job_type: str, payload: Mapping[str, Any] | None = None) -> int:
	"""Seconds the queue lets a worker run a job of ``job_type``."""
	found = LONG.get(job_type, DEFAULT)
	asked = (payload or {}).get("agent_job_timeout")
	if isinstance(asked, int | float) and not isinstance(asked, bool) and asked > 0:
		found = max(found, int(asked) + MARGIN)
	return found
