"""Backup upload (container's file -> S3, checksummed on the way, verified) vs a plain boto3 ``upload_file``.

For 100 MB and 1 GB of random bytes: the same bytes sit in a local file and in a volume mounted in a
container of the ``base`` image; each upload runs in its own subprocess so its peak memory
(ru_maxrss) is its own. Two routes of the backup step are measured, each with the verification the
step does (HEAD: size and S3's SHA256 checksum):
- ``host``: the Docker host is this machine, so the file is read from the volume's mountpoint
  (volume_files: checked to be the container's file, no link followed);
- ``stream``: the route of a remote Docker host, the file streamed out of Docker's archive API.
Goals: host route >= 0.9 x boto3's throughput from a local file (boto3 neither hashes nor
verifies); the 1 GB runs peak at most 64 MB above the 100 MB runs.

The host is shared (dockerd, the S3 server and other work compete for the cores), so each side runs
``--repeat`` times, interleaved and in rotating order, and the medians are compared.

Run: python3 benchmarks/backup_upload.py [--sizes 100,1000] [--repeat 5]  (MB; needs scripts/services up)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tarfile
import tempfile
import time
import uuid
from pathlib import Path

from child_run import report_figures, run_child

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from press_selfhosted.engine.clients import transfer, volume_files
from press_selfhosted.engine.clients.storage import S3Target, open_client

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


MODES = ("boto3", "host", "stream")
PAYLOAD = "/data/payload"


def child(mode: str, bucket: str, key: str, source: str) -> None:
	"""One measured upload; prints seconds, this process's CPU seconds and peak RSS as JSON."""
	import docker

	where = target(bucket)
	with open_client(where, checksummed_bodies=mode != "boto3") as s3:
		if mode == "boto3":
			cpu_started, started = cpu_seconds(), time.perf_counter()
			s3.upload_file(source, bucket, key)
			extra = {}
		else:
			client = docker.DockerClient(base_url=endpoints()["docker"]["base_url"], timeout=300)
			container = client.containers.get(source)
			cpu_started, started = cpu_seconds(), time.perf_counter()
			stored = upload(mode, container, s3, where, key)
			transfer.verify_object(s3, where, key, stored.size, stored.checksum)
			extra = {"checksum": str(stored.checksum)}
		seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu_started
	report_figures({"seconds": seconds, "cpu": cpu, **extra})


def upload(mode: str, container, s3, where: S3Target, key: str) -> transfer.StoredObject:
	"""What the backup step does for one file on each route (backups._upload_file)."""
	if mode == "stream":
		return transfer.upload_from_container(container, PAYLOAD, s3, where, key)
	volume = volume_files.host_volume(container, PAYLOAD)
	assert volume is not None, "the Docker host is not this machine: no host route to measure"
	identities = volume_files.identities_meanwhile(container, [PAYLOAD])
	stored = volume_files.upload_from_host(volume, PAYLOAD, identities, s3, where, key)
	assert stored is not None, "the file in the volume is not the container's"
	return stored


def measure(mode: str, bucket: str, key: str, source: str) -> dict:
	return run_child(__file__, mode, mode, bucket, key, source)


def put_file(container, local: Path) -> None:
	"""Streams the local file into the container as /data/payload (a tar made on the fly, no copy in memory)."""
	read, write = os.pipe()
	pid = os.fork()
	if pid == 0:
		os.close(read)
		with os.fdopen(write, "wb") as pipe, tarfile.open(fileobj=pipe, mode="w|") as archive:
			archive.add(str(local), arcname="payload")
		os._exit(0)
	os.close(write)
	with os.fdopen(read, "rb") as pipe:
		container.put_archive("/data", iter(lambda: pipe.read(1 << 20), b""))
	os.waitpid(pid, 0)


def compare(bucket: str, s3, size_mb: int, local: str, container: str, repeat: int) -> dict:
	"""Medians of ``repeat`` interleaved runs of each side, in rotating order so no side always gets
	the warmer server."""
	runs = {mode: [] for mode in MODES}
	for round_number in range(repeat):
		order = MODES[round_number % 3 :] + MODES[: round_number % 3]
		for mode in order:
			key = f"{mode}-{size_mb}-{round_number}"
			runs[mode].append(measure(mode, bucket, key, local if mode == "boto3" else container))
			s3.delete_object(Bucket=bucket, Key=key)
	return {
		mode: {
			"seconds": statistics.median(run["seconds"] for run in found),
			"cpu": statistics.median(run["cpu"] for run in found),
			"peak": max(run["peak_mib"] for run in found),
			"runs": [size_mb / run["seconds"] for run in found],
		}
		for mode, found in runs.items()
	}


def report(results: dict, repeat: int) -> None:
	print(f"medians of {repeat} interleaved runs per side; routes include the step's verification")
	print(
		f"{'size':>7} {'boto3 MB/s':>11} {'host MB/s':>10} {'ratio':>6} {'stream MB/s':>12} {'ratio':>6} "
		f"{'peak boto3/host/stream MiB':>27}"
	)
	for size_mb, figures in results.items():
		boto3, host, stream = (figures[mode] for mode in MODES)
		host_ratio = boto3["seconds"] / host["seconds"]
		print(
			f"{size_mb:>5}MB {size_mb / boto3['seconds']:>11.1f} {size_mb / host['seconds']:>10.1f} "
			f"{host_ratio:>6.2f} {size_mb / stream['seconds']:>12.1f} "
			f"{boto3['seconds'] / stream['seconds']:>6.2f} "
			f"{boto3['peak']:>9.1f}/{host['peak']:.1f}/{stream['peak']:.1f}"
		)
		print(f"        host route ratio goal >= 0.90: {'met' if host_ratio >= 0.9 else 'NOT met'}")
		each = "; ".join(
			f"{mode} " + ", ".join(f"{rate:.0f}" for rate in figures[mode]["runs"]) for mode in MODES
		)
		print(f"        MB/s of each run, in the order they ran: {each}")
		print(
			f"        CPU seconds of the uploading process: boto3 {boto3['cpu']:.2f}, host {host['cpu']:.2f}, "
			f"stream {stream['cpu']:.2f} (the sha256 of each part, which S3 checks and the recorded checksum is made of, included)"
		)
	if len(results) >= 2:
		small, large = min(results), max(results)
		for mode in ("host", "stream"):
			growth = results[large][mode]["peak"] - results[small][mode]["peak"]
			print(
				f"{mode} route peak memory {large}MB run - {small}MB run: {growth:.1f} MiB "
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
	volume = client.volumes.create(f"{tag}-data", labels={"press.managed": "1", "press.benchmark": tag})
	container = client.containers.run(
		info["images"]["base"],
		["sleep", "infinity"],
		detach=True,
		name=f"{tag}-upload",
		labels={"press.managed": "1", "press.benchmark": tag},
		volumes={volume.name: {"bind": "/data", "mode": "rw"}},
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
			volume.remove(force=True)
			s3.delete_bucket(Bucket=bucket)
	report(results, args.repeat)


if __name__ == "__main__":
	main()
