"""Backup upload pipeline (container -> S3, sha256 while streaming) vs a plain boto3 ``upload_file``.

For 100 MB and 1 GB of random bytes: the same bytes sit in a local file and in a container of the
``base`` image; each upload runs in its own subprocess so its peak memory (ru_maxrss) is its own.
Goals: pipeline throughput >= 0.9 x boto3's from a local file; the 1 GB pipeline run peaks at most
64 MB above the 100 MB run.

The host is shared (dockerd, the S3 server and other work compete for the cores), so each side runs
``--repeat`` times, interleaved and in alternating order, and the medians are compared. boto3's
``upload_file`` neither hashes nor verifies; the pipeline hashes while streaming (counted) and the
backup step then reads the object back to verify it, so the ratio is printed both without and with
that read-back.

Run: python3 benchmarks/backup_upload.py [--sizes 100,1000] [--repeat 5]  (MB; needs scripts/services up)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from press_selfhosted.engine import transfer
from press_selfhosted.engine.storage import S3Target, open_client

MB = 1000 * 1000


def endpoints() -> dict:
	return json.loads((ROOT / ".services" / "endpoints.json").read_text())


def target(bucket: str) -> S3Target:
	s3 = endpoints()["s3"]
	return S3Target(
		s3["endpoint_url"], s3["access_key"], s3["secret_key"], s3["region"], bucket, read_timeout=120
	)


def cpu_seconds() -> float:
	usage = resource.getrusage(resource.RUSAGE_SELF)
	return usage.ru_utime + usage.ru_stime


def child(mode: str, bucket: str, key: str, source: str) -> None:
	"""One measured upload; prints seconds, this process's CPU seconds and peak RSS as JSON."""
	import docker

	where = target(bucket)
	with open_client(where) as s3:
		if mode == "boto3":
			cpu_started, started = cpu_seconds(), time.perf_counter()
			s3.upload_file(source, bucket, key)
			extra = {}
		else:
			client = docker.DockerClient(base_url=endpoints()["docker"]["base_url"], timeout=300)
			container = client.containers.get(source)
			cpu_started, started = cpu_seconds(), time.perf_counter()
			stored = transfer.upload_from_container(container, "/tmp/payload", s3, where, key)
			extra = {"sha256": stored.sha256}
		seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu_started
		if mode == "pipeline":
			verify_started = time.perf_counter()
			transfer.verify_object(s3, where, key, stored.size, stored.sha256)
			extra["verify_seconds"] = time.perf_counter() - verify_started
	peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
	print(json.dumps({"seconds": seconds, "cpu": cpu, "peak_mib": peak_kib / 1024, **extra}))


def measure(mode: str, bucket: str, key: str, source: str) -> dict:
	output = subprocess.run(
		[sys.executable, __file__, "--child", mode, bucket, key, source],
		check=True,
		capture_output=True,
		text=True,
	).stdout
	return json.loads(output.strip().splitlines()[-1])


def put_file(container, local: Path) -> None:
	"""Streams the local file into the container as /tmp/payload (a tar made on the fly, no copy in memory)."""
	read, write = os.pipe()
	pid = os.fork()
	if pid == 0:
		os.close(read)
		with os.fdopen(write, "wb") as pipe, tarfile.open(fileobj=pipe, mode="w|") as archive:
			archive.add(str(local), arcname="payload")
		os._exit(0)
	os.close(write)
	with os.fdopen(read, "rb") as pipe:
		container.put_archive("/tmp", iter(lambda: pipe.read(1 << 20), b""))
	os.waitpid(pid, 0)


def compare(bucket: str, s3, size_mb: int, local: str, container: str, repeat: int) -> dict:
	"""Medians of ``repeat`` interleaved runs of each side, in alternating order so neither side
	always gets the warmer server."""
	runs = {"boto3": [], "pipeline": []}
	for round_number in range(repeat):
		order = ("boto3", "pipeline") if round_number % 2 == 0 else ("pipeline", "boto3")
		for mode in order:
			key = f"{mode}-{size_mb}-{round_number}"
			runs[mode].append(measure(mode, bucket, key, local if mode == "boto3" else container))
			s3.delete_object(Bucket=bucket, Key=key)
	piped = runs["pipeline"]
	return {
		"boto3": statistics.median(run["seconds"] for run in runs["boto3"]),
		"pipeline": statistics.median(run["seconds"] for run in piped),
		"verified": statistics.median(run["seconds"] + run["verify_seconds"] for run in piped),
		"boto3_cpu": statistics.median(run["cpu"] for run in runs["boto3"]),
		"pipeline_cpu": statistics.median(run["cpu"] for run in piped),
		"boto3_peak": max(run["peak_mib"] for run in runs["boto3"]),
		"pipeline_peak": max(run["peak_mib"] for run in piped),
	}


def report(results: dict, repeat: int) -> None:
	print(f"medians of {repeat} interleaved runs per side")
	print(
		f"{'size':>7} {'boto3 MB/s':>11} {'pipeline MB/s':>14} {'ratio':>6} "
		f"{'+verify MB/s':>13} {'ratio':>6} {'boto3 peak':>11} {'pipeline peak':>14}"
	)
	for size_mb, figures in results.items():
		ratio = figures["boto3"] / figures["pipeline"]
		verified_ratio = figures["boto3"] / figures["verified"]
		print(
			f"{size_mb:>5}MB {size_mb / figures['boto3']:>11.1f} {size_mb / figures['pipeline']:>14.1f} "
			f"{ratio:>6.2f} {size_mb / figures['verified']:>13.1f} {verified_ratio:>6.2f} "
			f"{figures['boto3_peak']:>9.1f}MiB {figures['pipeline_peak']:>12.1f}MiB"
		)
		print(
			f"        upload ratio goal >= 0.90: {'met' if ratio >= 0.9 else 'NOT met'} "
			f"(with the read-back verification, which boto3 does not do: {verified_ratio:.2f})"
		)
		print(
			f"        CPU seconds of the uploading process: boto3 {figures['boto3_cpu']:.2f}, "
			f"pipeline {figures['pipeline_cpu']:.2f} (read from Docker + sha256 included)"
		)
	if len(results) >= 2:
		small, large = min(results), max(results)
		growth = results[large]["pipeline_peak"] - results[small]["pipeline_peak"]
		print(
			f"pipeline peak memory {large}MB run - {small}MB run: {growth:.1f} MiB "
			f"(goal <= 64 MiB: {'met' if growth <= 64 else 'NOT met'})"
		)


def main() -> None:
	import docker

	parser = argparse.ArgumentParser()
	parser.add_argument("--sizes", default="100,1000", help="sizes in MB, comma-separated")
	parser.add_argument("--repeat", type=int, default=5, help="runs per side and size (medians)")
	parser.add_argument("--child", nargs=4, metavar=("MODE", "BUCKET", "KEY", "SOURCE"))
	args = parser.parse_args()
	if args.child:
		child(*args.child)
		return

	info = endpoints()
	client = docker.DockerClient(base_url=info["docker"]["base_url"], timeout=300)
	bucket = f"bench-upload-{uuid.uuid4().hex[:8]}"
	tag = f"bench{uuid.uuid4().hex[:8]}"
	container = client.containers.run(
		info["images"]["base"],
		["sleep", "infinity"],
		detach=True,
		name=f"{tag}-upload",
		labels={"press.managed": "1", "press.benchmark": tag},
	)
	results = {}
	with open_client(target(bucket)) as s3:
		s3.create_bucket(Bucket=bucket)
		try:
			for size_mb in (int(s) for s in args.sizes.split(",")):
				with tempfile.NamedTemporaryFile(prefix="backup-upload-") as local:
					for _ in range(size_mb):
						local.write(os.urandom(MB))
					local.flush()
					put_file(container, Path(local.name))
					results[size_mb] = compare(bucket, s3, size_mb, local.name, container.name, args.repeat)
		finally:
			container.remove(force=True)
			s3.delete_bucket(Bucket=bucket)
	report(results, args.repeat)


if __name__ == "__main__":
	main()
