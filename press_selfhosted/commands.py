"""Bench commands: ``bench --site S press-selfhosted sweep`` / ``run-job <id>``.

They apply the transport swap explicitly: bench commands run neither ``before_request`` nor ``before_job``.
"""

from __future__ import annotations

import click


@click.group("press-selfhosted")
def press_selfhosted():
	"""press_selfhosted's in-process agent."""


def _connect(context):
	import frappe

	frappe.init(site=context.sites[0])
	frappe.connect()
	from press_selfhosted.agent.runtime import apply_swap

	apply_swap()


@press_selfhosted.command("sweep")
@click.pass_obj
def sweep_command(context):
	"""Re-enqueue agent jobs whose worker died."""
	from press_selfhosted.agent.runtime import sweep_jobs

	_connect(context)
	click.echo(f"re-enqueued: {sweep_jobs()}")


@press_selfhosted.command("run-job")
@click.argument("job_id", type=int)
@click.pass_obj
def run_job_command(context, job_id):
	"""Run (or resume) one agent job in this process."""
	from press_selfhosted.agent.runtime import run_job

	_connect(context)
	click.echo(run_job(job_id) or "held by another worker")


commands = [press_selfhosted]
