"""The whole Backup Site job vs the Agent's sequence, on the same site of the same bench.

One site on a bench of the stand-in image (``tests/images/bench``), with ``--public-mib`` of random
public files (what dominates a real site's backup), its database and its private files. Each side
takes a fresh backup with files and leaves nothing behind in the site's folder:
- ``job``: the Backup Site handler as the executor runs it (``bench backup``, sizes and row counts,
  upload of every file to S3 with its checksum, verification, removal of the local copies);
- ``agent``: what Press's Agent does on its host (agent/site.py ``backup_job``): ``bench --site S
  backup --with-files`` in the bench, then boto3 ``upload_fileobj`` of each file from its own disk
  (here the sites volume's mountpoint) and ``os.remove``; no hash, no verification. Its client has
  the same configuration as ours (no CRC checksums on requests, which newer boto3 adds by default:
  the Agent's real client would do more work, not less).
Each run is a subprocess of its own so its peak memory (ru_maxrss) is its own; the sides run
``--repeat`` times interleaved in alternating order and the medians are compared.

Run: python3 benchmarks/backup_job.py [--public-mib 100] [--repeat 3]  (needs the services up)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
import uuid
from pathlib import Path

from child_run import report_figures, run_child

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

SITE = "bench.example.com"


def endpoints() -> dict:
	return json.loads((ROOT / ".services" / "endpoints.json").read_text())


def cpu_seconds() -> float:
	usage = resource.getrusage(resource.RUSAGE_SELF)
	return usage.ru_utime + usage.ru_stime


def cluster_of(client, prefix: str):
	"""The cluster a parent process started (its MariaDB adopted again, nothing created)."""
	from site_cluster import Cluster, server

	from press_selfhosted.engine import naming
	from press_selfhosted.engine.clients.mariadb import MariaDBSpec, ensure_mariadb

	info = endpoints()
	network = naming.resource_name(prefix, "net")
	app = server(info, f"{prefix}-app.local", "Server", prefix, network)
	dbs = server(info, f"{prefix}-db.local", "Database Server", prefix, network)
	password = f"root-{prefix}-secret"
	db = ensure_mariadb(client, MariaDBSpec(dbs, info["images"]["mariadb"]), password)
	return Cluster(prefix, network, app, dbs, db, password)


def run_job(client, cluster, target, date: str) -> int:
	from backup_support import JobRun, offsite_payload, site_secrets

	from press_selfhosted.engine.jobs.backups import BackupJobs
	from press_selfhosted.engine.jobs.handlers import index

	handler = index(BackupJobs().handlers())["Backup Site"]
	payload = {"with_files": True, **offsite_payload(target, SITE, date)}
	data = JobRun(client, cluster, handler, SITE, payload, site_secrets(cluster, target)).run()
	return sum(entry["size"] for entry in data["backups"].values())


def run_agent(client, cluster, target, date: str) -> int:
	"""Press Agent's Backup Site: the bench command, then each file from local disk to S3."""
	from backup_support import BENCH, bench_container

	from press_selfhosted.engine.clients import docker_exec
	from press_selfhosted.engine.clients.storage import open_client
	from press_selfhosted.engine.jobs import backups

	container = bench_container(client, cluster)
	argv = ["bench", "--site", SITE, "backup", "--with-files", "--verbose"]
	result = docker_exec.run(container, argv)
	paths = [path for _, path in backups._SUMMARY.findall(result.stdout)]
	mountpoint = client.volumes.get(f"{cluster.prefix}-{BENCH}-sites").attrs["Mountpoint"]
	total = 0
	with open_client(target) as s3:
		for path in paths:
			local = os.path.join(mountpoint, os.path.relpath(path, "/home/frappe/frappe-bench/sites"))
			with open(local, "rb") as data:
				s3.upload_fileobj(data, target.bucket, f"agent/{SITE}/{date}/{os.path.basename(path)}")
			total += os.path.getsize(local)
			os.remove(local)
	return total


def child(side: str, prefix: str, bucket: str, date: str) -> None:
	import docker
	from backup_support import s3_target

	info = endpoints()
	client = docker.DockerClient(base_url=info["docker"]["base_url"], timeout=300)
	cluster = cluster_of(client, prefix)
	target = s3_target(info, bucket)
	run = run_job if side == "job" else run_agent
	cpu_started, started = cpu_seconds(), time.perf_counter()
	size = run(client, cluster, target, date)
	seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu_started
	report_figures({"seconds": seconds, "cpu": cpu, "bytes": size})


def measure(side: str, prefix: str, bucket: str, date: str) -> dict:
	return run_child(__file__, side, side, prefix, bucket, date)


def compare(prefix: str, bucket: str, repeat: int) -> dict:
	runs = {"agent": [], "job": []}
	for number in range(repeat):
		order = ("agent", "job") if number % 2 == 0 else ("job", "agent")
		for side in order:
			runs[side].append(measure(side, prefix, bucket, f"2026-03-{number + 1:02d}"))
	return runs


def report(runs: dict, repeat: int, load: tuple[float, float, float]) -> None:
	agent, job = (statistics.median(run["seconds"] for run in runs[side]) for side in ("agent", "job"))
	size_mb = runs["job"][0]["bytes"] / 1e6
	print(f"whole Backup Site job, {size_mb:.0f} MB of backup files; medians of {repeat} interleaved runs")
	print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")
	for side, seconds in (("agent", agent), ("job", job)):
		cpu = statistics.median(run["cpu"] for run in runs[side])
		peak = max(run["peak_mib"] for run in runs[side])
		each = ", ".join(f"{run['seconds']:.2f}" for run in runs[side])
		print(
			f"  {side:>5}: {seconds:6.2f} s ({size_mb / seconds:6.1f} MB/s), CPU of the process {cpu:.2f} s, "
			f"peak memory {peak:.0f} MiB   runs: {each}"
		)
	ratio = agent / job
	print(f"  throughput ratio job / agent: {ratio:.2f} (the upload's goal, 0.90, applied to the whole job)")


def main() -> None:
	import docker
	from backup_support import make_site, scratch_bucket
	from site_cluster import remove_cluster, start_bench, start_cluster

	parser = argparse.ArgumentParser()
	parser.add_argument("--public-mib", type=int, default=100, help="size of the site's public files")
	parser.add_argument("--repeat", type=int, default=3, help="runs per side (medians)")
	parser.add_argument("--child", nargs=4, metavar=("SIDE", "PREFIX", "BUCKET", "DATE"))
	args = parser.parse_args()
	if args.child:
		child(*args.child)
		return

	info = endpoints()
	client = docker.DockerClient(base_url=info["docker"]["base_url"], timeout=300)
	prefix = f"b{uuid.uuid4().hex[:8]}"
	with scratch_bucket(info, f"bench-job-{prefix}") as target:
		try:
			cluster = start_cluster(client, info, prefix)
			start_bench(client, info, cluster, "bench-1", front=False)
			make_site(client, cluster, SITE, target, public_mib=args.public_mib)
			load = os.getloadavg()
			runs = compare(prefix, target.bucket, args.repeat)
		finally:
			remove_cluster(client, prefix)
	report(runs, args.repeat, load)


if __name__ == "__main__":
	main()
