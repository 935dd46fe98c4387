"""The idempotence check: each step of a job runs, then runs again at once, and the second run must
change nothing observable.

A step is idempotent when it looks at what exists and does only what is missing; the executor relies on
it whenever a worker dies in a step (the resumed job runs that step again). "Observable" is what a
job type's work leaves behind, read from outside by a probe the test chooses (Docker objects and their
labels, files in volumes with their content, databases and grants, objects in S3) plus what the job
records for Press: its data and each step's data.
"""

from __future__ import annotations

import copy
import difflib
import json
import pprint
from collections.abc import Callable, Collection, Sequence

from press_selfhosted.engine import naming
from press_selfhosted.engine.agent import jobs, runner
from press_selfhosted.engine.clients import docker_exec, site_router, traefik
from press_selfhosted.engine.clients.mariadb import quote
from press_selfhosted.engine.jobs.handlers import JobRecord, Step, StepContext

Probe = Callable[[], object]


def assert_idempotent(
	job: JobRecord,
	steps: Sequence[Step],
	context: Callable[[runner.Log], StepContext],
	probe: Probe,
	reports_anew: Collection[str] = (),
) -> list[runner.StepResult]:
	"""Runs each of ``steps`` twice in a row with the executor's runner (a failure raises the step's
	error); after the second run of a step, ``probe()``, the job's data and the step's data equal what
	they were after its first run (but for the steps named in ``reports_anew``, whose data for Press says
	what the run found). Returns the first runs' results."""
	results = []
	for idx, step in enumerate(steps):
		others = set(range(len(steps))) - {idx}
		first = runner.run_steps(job, steps, context, done=others).check()
		assert first.status == jobs.SUCCESS, f"step {step.name!r} did not end: {first.steps[-1].output}"
		before, data = probe(), copy.deepcopy(job.data)
		again = runner.run_steps(job, steps, context, done=others).check()
		after = probe()
		assert after == before, f"running step {step.name!r} again changed:\n{difference(before, after)}"
		assert job.data == data, f"running step {step.name!r} again changed the job's data:\n" + difference(
			data, job.data
		)
		if step.name not in reports_anew:
			assert again.steps[0].data == first.steps[0].data, (
				f"step {step.name!r} reported other data:\n{difference(first.steps[0].data, again.steps[0].data)}"
			)
		results.append(first.steps[0])
	return results


def run_job(
	job: JobRecord, steps: Sequence[Step], context: Callable[[runner.Log], StepContext], waits: int = 10
) -> runner.RunResult:
	"""Every step of ``steps`` once, as the executor runs a job (a waiting step again, as the sweep
	would, up to ``waits`` times); a failed step raises its error. Prepares what a checked job needs."""
	done: set[int] = set()
	for _ in range(waits + 1):
		run = runner.run_steps(job, steps, context, done=done).check()
		if run.status != runner.WAITING:
			return run
		done |= {step.idx for step in run.steps if step.status == jobs.SUCCESS}
	raise AssertionError(f"{job.job_type} still waits: {run.steps[-1].output}")


def difference(before: object, after: object) -> str:
	lines = difflib.unified_diff(
		pprint.pformat(before, width=110).splitlines(),
		pprint.pformat(after, width=110).splitlines(),
		"after the first run",
		"after the second run",
		lineterm="",
	)
	return "\n".join(lines)


# --- probes ------------------------------------------------------------------------------------------


def docker_objects(client, server: str) -> dict:
	"""The server's labelled containers (id, state, image, every label: the spec hash among them),
	volumes and networks: a container made again has a new id, a changed spec other labels."""
	filters = {"label": naming.label_filters(server)}
	return {
		"containers": sorted(
			(c.name, c.id, c.status, c.attrs["Config"]["Image"], json.dumps(c.labels, sort_keys=True))
			for c in client.containers.list(all=True, filters=filters)
		),
		"volumes": sorted(
			(v.name, json.dumps(v.attrs.get("Labels") or {}, sort_keys=True))
			for v in client.volumes.list(filters=filters)
		),
		"networks": sorted((n.name, n.id) for n in client.networks.list(filters=filters)),
	}


def read(container, argv: Sequence[str], workdir: str = "/") -> tuple[int, str]:
	"""``argv`` run in ``container`` as its own user (a bench's site config is its user's alone, and the
	containers drop root's capabilities) to read state: its exit code and output. Through docker_exec,
	whose end-of-output marker has an answer Docker's exec stream cut asked again: a probe must never
	take a cut answer for an empty folder."""
	how = docker_exec.Exec(user="", workdir=workdir, reads_only=True)
	result = docker_exec.run(container, argv, how, check=False)
	return result.exit_code, result.stdout


def files(container, folder: str, skip: Sequence[str] = ()) -> list[str]:
	"""Every entry under ``folder`` in ``container``: its type, mode, owner and (for files) sha256.
	``skip``: find(1) path patterns left out (logs that a command appends to on every run)."""
	prune = " ".join(f"-path '{pattern}' -prune -o" for pattern in skip)
	script = (
		f"cd {folder} && find . {prune} -printf '%y %m %u %p\\n' | sort && "
		f"find . {prune} -type f -print0 | sort -z | xargs -0 -r sha256sum"
	)
	code, out = read(container, ["sh", "-c", script])
	assert code == 0, out
	return out.splitlines()


def database(db, like: str, skip_tables: Sequence[str] = ()) -> dict:
	"""Databases and accounts named like ``like`` (a SQL LIKE pattern), their grants and row counts
	(``skip_tables``: tables that a command adds a row to on every run by design)."""
	names = [row[0] for row in db.sql(f"SHOW DATABASES LIKE '{like}'")]
	return {
		"databases": {name: row_counts(db, name, skip_tables) for name in names},
		"users": {user: db.grants(user) for user in db.users(like)},
	}


def row_counts(db, name: str, skip_tables: Sequence[str] = ()) -> dict[str, int]:
	tables = [row[0] for row in db.sql("SHOW TABLES", database=name) if row[0] not in skip_tables]
	if not tables:
		return {}
	counts = " UNION ALL ".join(f"SELECT {quote(table)}, COUNT(*) FROM `{table}`" for table in tables)
	return {table: int(count) for table, count in db.sql(counts, database=name)}


def s3_objects(s3, bucket: str, prefix: str) -> list[tuple[str, str, int]]:
	"""Keys under ``prefix`` with their ETag and size: an object uploaded again has a new one only
	if its content changed, so the probe also sees a backup made anew."""
	found = []
	for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
		found += [(item["Key"], item["ETag"], item["Size"]) for item in page.get("Contents", [])]
	return sorted(found)


def proxy_files(traefik_container, router_container) -> dict:
	"""What a container proxy serves from: Traefik's dynamic files (routes, ``sites.yml`` with its
	generation, certificates) and the site router's map files, each with its content hash."""
	return {
		"traefik": files(traefik_container, traefik.DYNAMIC_DIRECTORY),
		"router": files(router_container, site_router.DIRECTORY),
	}
