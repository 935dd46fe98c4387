"""Move Site keeps the newest copy of a site (issue 10).

Two benches of one app server, each with its own sites volume; the site is made by New Site, then
an earlier, failed move is played by copying its folder to the other bench as Move Site does
(Docker's archive, complete, renamed into place). What a retry of Move Site keeps is checked in
both benches' volumes.
"""

from __future__ import annotations

import time
import uuid

import pytest
from fakes import Secrets
from site_cluster import (
	SITES,
	contexts,
	put_file,
	records,
	remove_cluster,
	run_steps,
	start_bench,
	start_cluster,
)

from press_selfhosted.engine.clients import transfer
from press_selfhosted.engine.jobs.handlers import JobRecord, JobRequest
from press_selfhosted.engine.jobs.site_updates import move_site
from press_selfhosted.engine.jobs.sites import SiteJobs

OLD, NEW = "bench-old", "bench-new"


@pytest.fixture(scope="module")
def env(docker_client, endpoints):
	prefix = f"t{uuid.uuid4().hex[:8]}"
	try:
		cluster = start_cluster(docker_client, endpoints, prefix)
		benches = {bench: start_bench(docker_client, endpoints, cluster, bench) for bench in (OLD, NEW)}
		yield cluster, benches
	finally:
		remove_cluster(docker_client, prefix)


def secrets(cluster) -> dict:
	return {"mariadb_root_password": cluster.root_password, "admin_password": "adm-Move-1"}


def make_site(docker_client, env, site: str) -> None:
	cluster, _ = env
	handler = next(h for h in SiteJobs().handlers() if h.job_type == "New Site")
	payload = {"name": site, "apps": ["frappe"], "config": {}}
	run_steps(docker_client, cluster, handler, OLD, None, payload, secrets(cluster), steps=1)


def move(docker_client, env, site: str, job_id: int = 7) -> list[str]:
	cluster, _ = env
	output: list[str] = []
	request = JobRequest(
		"Update Site Pull", cluster.app_server.name, "Server", "POST", "", OLD, site, {"target": NEW}
	)
	job = JobRecord.of(request, job_id)
	move_site(
		contexts(docker_client, records(cluster), Secrets(secrets(cluster))).for_job(job)(output.append)
	)
	return output


def earlier_failed_move(env, site: str) -> None:
	"""What a move that failed after its copy was renamed into place leaves: both benches hold the site."""
	_, benches = env
	transfer.copy_between_containers(benches[OLD], f"{SITES}/{site}", benches[NEW], SITES)


def files(container, site: str, folder: str = "") -> list[str] | None:
	path = "/".join(part for part in (SITES, folder, site, "public/files") if part)
	code, out = container.exec_run(["ls", "-A", path])
	return sorted(out.decode().split()) if code == 0 else None


def archived(container) -> list[str]:
	return container.exec_run(["ls", "-A", f"{SITES}/archived"]).output.decode().split()


def test_a_retry_keeps_a_file_uploaded_after_an_earlier_move_failed(docker_client, env):
	cluster, benches = env
	site = f"upload-{uuid.uuid4().hex[:6]}.example.com"
	make_site(docker_client, env, site)
	put_file(benches[OLD], f"{SITES}/{site}/public/files", "first.txt", "before the move")
	earlier_failed_move(env, site)
	time.sleep(1.1)  # the upload happens later than anything in the stale copy (whole seconds)
	put_file(benches[OLD], f"{SITES}/{site}/public/files", "later.txt", "uploaded after the failed move")
	output = "\n".join(move(docker_client, env, site))
	assert files(benches[NEW], site) == ["first.txt", "later.txt"], output
	assert files(benches[OLD], site) is None
	# the stale copy is set aside, not deleted
	assert f"{site}-superseded-7" in archived(benches[NEW])
	assert files(benches[NEW], f"{site}-superseded-7", "archived") == ["first.txt"]
	assert "is older than the site on bench bench-old" in output
	assert cluster.db.recorded_database(site) is not None


def test_a_retry_after_a_complete_copy_removes_the_source_copy(docker_client, env):
	_, benches = env
	site = f"same-{uuid.uuid4().hex[:6]}.example.com"
	make_site(docker_client, env, site)
	put_file(benches[OLD], f"{SITES}/{site}/public/files", "a.txt", "a")
	earlier_failed_move(env, site)
	output = "\n".join(move(docker_client, env, site))
	assert "copied to bench bench-new by an earlier run; removing the source copy" in output
	assert files(benches[NEW], site) == ["a.txt"] and files(benches[OLD], site) is None
	assert not [entry for entry in archived(benches[NEW]) if entry.startswith(site)]


def test_a_newer_copy_on_the_target_is_kept_and_the_source_set_aside(docker_client, env):
	_, benches = env
	site = f"newer-{uuid.uuid4().hex[:6]}.example.com"
	make_site(docker_client, env, site)
	earlier_failed_move(env, site)
	time.sleep(1.1)
	put_file(benches[NEW], f"{SITES}/{site}/public/files", "on-target.txt", "written on the new bench")
	output = "\n".join(move(docker_client, env, site, job_id=8))
	assert files(benches[NEW], site) == ["on-target.txt"], output
	assert files(benches[OLD], site) is None
	assert f"{site}-superseded-8" in archived(benches[OLD])
