"""What a finished agent job leaves in Press besides what Press's own callbacks record.

The executor calls :func:`record` once a job has ended (``Executor.on_finished``), in the worker that
ran it. Press applies a job's result when it polls, through callbacks that write with
``frappe.db.set_value``, so no document event of this app runs then; what the app needs is recorded
here instead, where the job's result is known.
"""

from __future__ import annotations

import frappe

from press_selfhosted.engine.agent import jobs
from press_selfhosted.engine.agent.store import JobStore
from press_selfhosted.engine.jobs.handlers import JobRecord
from press_selfhosted.glue import backups, servers


def recorder(store: JobStore):
	"""The ``on_finished`` listener of an executor working on ``store``."""

	def record(job: JobRecord, status: str) -> None:
		if job.job_type == servers.SETUP_JOB_TYPE:
			servers.record_setup(job, status, store.get(job.id).as_agent())
		elif job.job_type == "Backup Site" and status == jobs.SUCCESS:
			backups.record_backup_objects(job.agent_job_id, job.data)
			frappe.db.commit()

	return record
