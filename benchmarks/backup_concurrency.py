"""20 sites created and 20 backups asked at once across 4 benches of one server, vs the same work one job
at a time.

One cluster (one MariaDB), 4 benches of the stand-in image; 20 sites, 5 per bench, each with
``--public-mib`` of random public files. Press asks for the 20 New Site jobs and then the 20 Backup
Site jobs at once; the executor runs one job at a time per bench, in the order Press asked for them,
and the benches in parallel (engine.agent.executor's bench and site locks): here one thread per
bench plays the executor's workers, running the handlers' steps directly. ``serial`` runs the same
40 jobs one after the other. Each mode runs in a subprocess of its own on a fresh cluster (so its
peak memory is its own) and prints its wall time; the ratio says what running benches in parallel
gives on this host.

Run: python3 benchmarks/backup_concurrency.py [--sites 20] [--benches 4] [--public-mib 10]
"""

from __future__ import annotations

import argparse
import json
import os
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


def new_site(client, cluster, target, bench: str, site: str, public_mib: int) -> None:
	import dataclasses

	from backup_support import JobRun, site_secrets

	from press_selfhosted.engine.agent.handlers import index
	from press_selfhosted.engine.sites import site_handlers

	payload = {"name": site, "apps": ["frappe"], "config": {}, "managed_database_config": {}}
	handler = index(site_handlers())["New Site"]
	# the steps up to the scheduler, as tests' make_site runs them (the rest is the proxy's part)
	handler = dataclasses.replace(handler, steps=handler.steps[:4])
	run = JobRun(client, cluster, handler, site, payload, site_secrets(cluster, target))
	run.job.bench = bench
	run.run()
	backend = client.containers.get(f"{cluster.prefix}-{bench}")
	files = f"/home/frappe/frappe-bench/sites/{site}/public/files"
	script = f"head -c {public_mib * 1048576} /dev/urandom > {files}/big.bin"
	assert backend.exec_run(["sh", "-c", script], user="frappe").exit_code == 0


def backup(client, cluster, target, bench: str, site: str) -> None:
	from backup_support import JobRun, offsite_payload, site_secrets

	from press_selfhosted.engine.agent.handlers import index
	from press_selfhosted.engine.backups import backup_handlers

	handler = index(backup_handlers())["Backup Site"]
	payload = {"with_files": True, **offsite_payload(target, site)}
	run = JobRun(client, cluster, handler, site, payload, site_secrets(cluster, target))
	run.job.bench = bench
	data = run.run()
	assert len(data["checksums"]) == 4


def jobs_of(benches: int, sites: int) -> list[tuple[str, str, str]]:
	"""(kind, bench, site) in the order Press asks for them: every New Site, then every Backup Site."""
	placed = [(f"bench-{n % benches + 1}", f"s{n + 1}.example.com") for n in range(sites)]
	return [("new", *item) for item in placed] + [("backup", *item) for item in placed]


def run_mode(mode: str, benches: int, sites: int, public_mib: int) -> dict:
	import docker
	from backup_support import scratch_bucket
	from site_cluster import remove_cluster, start_bench, start_cluster

	info = endpoints()
	client = docker.DockerClient(base_url=info["docker"]["base_url"], timeout=600)
	prefix = f"c{uuid.uuid4().hex[:8]}"
	with scratch_bucket(info, f"bench-conc-{prefix}") as target:
		try:
			cluster = start_cluster(client, info, prefix)
			for n in range(benches):
				start_bench(client, info, cluster, f"bench-{n + 1}", front=False)
			work = jobs_of(benches, sites)

			def run(kind: str, bench: str, site: str) -> None:
				if kind == "new":
					new_site(client, cluster, target, bench, site, public_mib)
				else:
					backup(client, cluster, target, bench, site)

			load = os.getloadavg()
			started = time.perf_counter()
			if mode == "serial":
				for item in work:
					run(*item)
			else:
				failures: list[BaseException] = []

				def worker(bench: str) -> None:  # the executor's one-job-at-a-time on this bench
					try:
						for item in work:
							if item[1] == bench:
								run(*item)
					except BaseException as error:  # noqa: BLE001 - reported below
						failures.append(error)

				threads = [threading.Thread(target=worker, args=(f"bench-{n + 1}",)) for n in range(benches)]
				for thread in threads:
					thread.start()
				for thread in threads:
					thread.join()
				if failures:
					raise failures[0]
			seconds = time.perf_counter() - started
		finally:
			remove_cluster(client, prefix)
	return {"seconds": seconds, "load": load}


def main() -> None:
	parser = argparse.ArgumentParser()
	parser.add_argument("--sites", type=int, default=20)
	parser.add_argument("--benches", type=int, default=4)
	parser.add_argument("--public-mib", type=int, default=10)
	parser.add_argument("--child", choices=("parallel", "serial"))
	args = parser.parse_args()
	if args.child:
		report_figures(run_mode(args.child, args.benches, args.sites, args.public_mib))
		return
	results = {}
	for mode in ("parallel", "serial"):
		options = [
			"--sites",
			str(args.sites),
			"--benches",
			str(args.benches),
			"--public-mib",
			str(args.public_mib),
		]
		results[mode] = run_child(__file__, mode, mode, *options)
	print(
		f"{args.sites} New Site + {args.sites} Backup Site jobs ({args.public_mib} MiB of public files each) "
		f"on {args.benches} benches of one server, {os.cpu_count()} cores"
	)
	for mode, figures in results.items():
		load = " ".join(f"{value:.2f}" for value in figures["load"])
		print(
			f"  {mode:>8}: {figures['seconds']:7.1f} s, peak memory {figures['peak_mib']:.0f} MiB "
			f"(load average before: {load})"
		)
	ratio = results["parallel"]["seconds"] / results["serial"]["seconds"]
	print(f"  wall time parallel / one at a time: {ratio:.2f}")


if __name__ == "__main__":
	main()
