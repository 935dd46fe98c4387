"""20 sites created and 20 backups asked at once across 4 benches of one server, vs the same work one job
at a time; when each bench's jobs ran, so that a starved bench shows.

One cluster (one MariaDB), 4 benches of the stand-in image; 20 sites, 5 per bench, each given
``--public-mib`` of random public files. Press's 20 New Site requests and then its 20 Backup Site
requests all go through the router at once (``POST benches/{bench}/sites`` and ``…/sites/{site}/backup``),
and ``--workers`` threads, each with an executor of its own (its own store connection, as each RQ
worker has), run the queued jobs: the executor's bench and site locks run one job at a time per bench
and per site, in the order Press asked, and a job whose bench is busy goes back to the queue when the
job before it ends. ``serial`` is the same with one worker: the same 40 jobs one after the other.

Each mode runs in a subprocess of its own on a fresh cluster (its peak memory is its own) and prints
its wall time (from the first request recorded to the last job's end, as the job store has them), the
ratio of the two, and per bench: when its jobs ended and how long it had jobs queued and none of them
running. Starvation would show as one bench idle while the others work.

Run: python3 benchmarks/backup_concurrency.py [--sites 20] [--benches 4] [--workers 4] [--public-mib 10]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import queue
import sys
import threading
import time
import uuid
from pathlib import Path

from child_run import report_figures, run_child

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def endpoints() -> dict:
	return json.loads((ROOT / ".services" / "endpoints.json").read_text())


def handlers(public_mib: int) -> list:
	"""New Site up to its scheduler (the rest is the proxy's part, as tests' make_site runs it) plus a
	step writing the site's public files, and Backup Site."""
	from press_selfhosted.engine.jobs import site_steps
	from press_selfhosted.engine.jobs.backups import BackupJobs
	from press_selfhosted.engine.jobs.handlers import Step
	from press_selfhosted.engine.jobs.sites import SiteJobs

	def write_public_files(ctx) -> None:
		files = f"{site_steps.SITES}/{site_steps.site_name(ctx)}/public/files"
		script = f"head -c {public_mib * 1048576} /dev/urandom > {files}/big.bin"
		ctx.run(site_steps.backend(ctx), ["sh", "-c", script])

	new_site = next(h for h in SiteJobs().handlers() if h.job_type == "New Site")
	backup = next(h for h in BackupJobs().handlers() if h.job_type == "Backup Site")
	return [
		dataclasses.replace(
			new_site, steps=(*new_site.steps[:4], Step("Write Public Files", write_public_files))
		),
		backup,
	]


def requests_of(benches: int, sites: int, target) -> list[tuple[str, dict]]:
	"""(path, body) in the order Press asks: every New Site, then every Backup Site."""
	from backup_support import offsite_payload

	placed = [(f"bench-{n % benches + 1}", f"s{n + 1}.example.com") for n in range(sites)]
	new_site = {"apps": ["frappe"], "config": {}, "managed_database_config": {}}
	return [(f"benches/{bench}/sites", {"name": site, **new_site}) for bench, site in placed] + [
		(f"benches/{bench}/sites/{site}/backup", {"with_files": True, **offsite_payload(target, site)})
		for bench, site in placed
	]


def run_mode(workers: int, benches: int, sites: int, public_mib: int) -> dict:
	import docker
	import pymysql
	from backup_support import scratch_bucket, site_secrets
	from fakes import Secrets
	from site_cluster import records, remove_cluster, start_bench, start_cluster

	from press_selfhosted.engine.agent import jobs
	from press_selfhosted.engine.agent.executor import Executor
	from press_selfhosted.engine.agent.router import Router
	from press_selfhosted.engine.agent.store import JobStore, StoreConfig
	from press_selfhosted.engine.clients.docker_hosts import DockerHosts
	from press_selfhosted.engine.jobs import handlers as agent_handlers

	info = endpoints()
	client = docker.DockerClient(base_url=info["docker"]["base_url"], timeout=600)
	prefix = f"c{uuid.uuid4().hex[:8]}"
	db = info["mariadb"]
	root = pymysql.connect(host=db["host"], port=db["port"], user=db["user"], password=db["password"])
	store_name = f"psa_conc_{prefix}"
	with root.cursor() as cursor:
		cursor.execute(f"CREATE DATABASE `{store_name}`")
	config = StoreConfig(db["host"], db["port"], db["user"], db["password"], store_name)
	JobStore(config).ensure_schema()
	try:
		with scratch_bucket(info, f"bench-conc-{prefix}") as target:
			try:
				cluster = start_cluster(client, info, prefix)
				for n in range(benches):
					start_bench(client, info, cluster, f"bench-{n + 1}", front=False)
				topology = records(cluster)
				secrets = Secrets(site_secrets(cluster, target))
				found = handlers(public_mib)
				queued: queue.Queue = queue.Queue()

				def worker() -> None:  # one RQ worker: its own executor, store connection and Docker client
					executor = Executor(
						JobStore(config),
						agent_handlers.index(found),
						topology,
						secrets,
						DockerHosts(),
						enqueue=queued.put,
					)
					while (job_id := queued.get()) is not None:
						executor.run(job_id)

				router = Router(found, JobStore(config), queued.put, topology, DockerHosts())
				threads = [threading.Thread(target=worker) for _ in range(workers)]
				for thread in threads:
					thread.start()
				load = os.getloadavg()
				placed = []
				for path, body in requests_of(benches, sites, target):
					response = router.handle(
						cluster.app_server.name, "POST", path, body, agent_job_id=uuid.uuid4().hex
					)
					assert response.status_code == 200, response.json
					placed.append(response.json["job"])
				store = JobStore(config)
				deadline = time.monotonic() + 3600
				while True:
					rows = [store.get(job_id) for job_id in placed]
					if all(row.status in jobs.FINISHED for row in rows) or time.monotonic() > deadline:
						break
					time.sleep(0.5)
			finally:
				for _ in range(workers):
					queued.put(None)
				remove_cluster(client, prefix)
	finally:
		with root.cursor() as cursor:
			cursor.execute(f"DROP DATABASE `{store_name}`")
		root.close()
	failed = [
		f"{row.job_type} {row.site}: {row.status} {str(row.data.get('output', ''))[-600:]}"
		for row in rows
		if row.status != jobs.SUCCESS
	]
	if failed:
		raise SystemExit(f"jobs that did not succeed (within the hour): {failed}")
	asked = min(row.enqueued for row in rows)
	seconds = (max(row.end for row in rows) - asked).total_seconds()
	return {"seconds": seconds, "load": load, "benches": per_bench(rows, asked)}


def per_bench(rows: list, asked) -> dict:
	"""For each bench: its jobs, when the first and last ended, and how long it had work queued but
	none of its jobs running (its jobs run one at a time, all queued from ``asked`` on), in seconds."""
	found = {}
	for bench in sorted({row.bench for row in rows}):
		own = sorted((row.start, row.end) for row in rows if row.bench == bench)
		idle, free_from = 0.0, asked
		for start, end in own:
			idle += max(0.0, (start - free_from).total_seconds())
			free_from = end
		found[bench] = {
			"jobs": len(own),
			"first_end": (own[0][1] - asked).total_seconds(),
			"last_end": (own[-1][1] - asked).total_seconds(),
			"idle": idle,
		}
	return found


def main() -> None:
	parser = argparse.ArgumentParser()
	parser.add_argument("--sites", type=int, default=20)
	parser.add_argument("--benches", type=int, default=4)
	parser.add_argument("--workers", type=int, default=4, help="workers running jobs at once (RQ workers)")
	parser.add_argument("--public-mib", type=int, default=10)
	parser.add_argument("--child", type=int, metavar="WORKERS")
	args = parser.parse_args()
	if args.child:
		report_figures(run_mode(args.child, args.benches, args.sites, args.public_mib))
		return
	results = {}
	for mode, workers in (("parallel", args.workers), ("serial", 1)):
		options = [
			"--sites",
			str(args.sites),
			"--benches",
			str(args.benches),
			"--public-mib",
			str(args.public_mib),
		]
		results[mode] = run_child(__file__, mode, str(workers), *options)
	print(
		f"{args.sites} New Site + {args.sites} Backup Site jobs asked at once ({args.public_mib} MiB of public "
		f"files each) on {args.benches} benches of one server, {args.workers} workers vs 1; {os.cpu_count()} cores"
	)
	for mode, figures in results.items():
		load = " ".join(f"{value:.2f}" for value in figures["load"])
		print(
			f"  {mode:>8}: {figures['seconds']:7.1f} s, peak memory {figures['peak_mib']:.0f} MiB "
			f"(load average before: {load})"
		)
	print(
		f"  wall time concurrent / one at a time: {results['parallel']['seconds'] / results['serial']['seconds']:.2f}"
	)
	print("  concurrent, per bench (seconds from the moment Press asked for all the jobs):")
	benches = results["parallel"]["benches"]
	for bench, seen in benches.items():
		print(
			f"    {bench}: {seen['jobs']} jobs, first ended at {seen['first_end']:6.1f}, last at "
			f"{seen['last_end']:6.1f}; idle with jobs queued {seen['idle']:5.1f}"
		)
	last = [seen["last_end"] for seen in benches.values()]
	print(f"    the benches' last jobs ended within {max(last) - min(last):.1f} s of each other")


if __name__ == "__main__":
	main()
