"""Backup upload pipeline (container -> S3, sha256 while streaming) vs a plain boto3 ``upload_file``.

For 100 MB and 1 GB of random bytes: the same bytes sit in a local file and in a container of the
``base`` image; each upload runs in its own subprocess so its peak memory (ru_maxrss) is its own.
Goals: pipeline throughput >= 0.9 x boto3's from a local file; the 1 GB pipeline run peaks at most
64 MB above the 100 MB run. The read-back verification the backup step adds is timed separately.

Run: python3 benchmarks/backup_upload.py [--sizes 100,1000]  (MB; needs scripts/services up)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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


def child(mode: str, bucket: str, key: str, source: str) -> None:
	"""One measured upload; prints seconds and peak RSS as JSON."""
	import docker

	where = target(bucket)
	with open_client(where) as s3:
		started = time.perf_counter()
		if mode == "boto3":
			s3.upload_file(source, bucket, key)
			extra = {}
		else:
			client = docker.DockerClient(base_url=endpoints()["docker"]["base_url"], timeout=300)
			stored = transfer.upload_from_container(
				client.containers.get(source), "/tmp/payload", s3, where, key
			)
			extra = {"sha256": stored.sha256}
		seconds = time.perf_counter() - started
		if mode == "pipeline":
			verify_started = time.perf_counter()
			transfer.verify_object(s3, where, key, stored.size, stored.sha256)
			extra["verify_seconds"] = time.perf_counter() - verify_started
	peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
	print(json.dumps({"seconds": seconds, "peak_mib": peak_kib / 1024, **extra}))


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


def main() -> None:
	import docker

	parser = argparse.ArgumentParser()
	parser.add_argument("--sizes", default="100,1000", help="sizes in MB, comma-separated")
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
					# alternate the order so neither side always gets the warmer server
					plain = measure("boto3", bucket, f"plain-{size_mb}", local.name)
					piped = measure("pipeline", bucket, f"pipeline-{size_mb}", container.name)
					plain2 = measure("boto3", bucket, f"plain2-{size_mb}", local.name)
				plain_seconds = min(plain["seconds"], plain2["seconds"])
				results[size_mb] = (plain_seconds, piped, max(plain["peak_mib"], plain2["peak_mib"]))
				for key in (f"plain-{size_mb}", f"pipeline-{size_mb}", f"plain2-{size_mb}"):
					s3.delete_object(Bucket=bucket, Key=key)
		finally:
			container.remove(force=True)
			s3.delete_bucket(Bucket=bucket)

	print(
		f"{'size':>7} {'boto3 MB/s':>11} {'pipeline MB/s':>14} {'ratio':>6} {'verify s':>9} {'boto3 peak':>11} {'pipeline peak':>14}"
	)
	for size_mb, (plain_seconds, piped, plain_peak) in results.items():
		ratio = plain_seconds / piped["seconds"]
		print(
			f"{size_mb:>5}MB {size_mb / plain_seconds:>11.1f} {size_mb / piped['seconds']:>14.1f} {ratio:>6.2f} "
			f"{piped['verify_seconds']:>9.2f} {plain_peak:>9.1f}MiB {piped['peak_mib']:>12.1f}MiB"
		)
		print(f"        throughput ratio goal >= 0.90: {'met' if ratio >= 0.9 else 'NOT met'}")
	if len(results) >= 2:
		small, large = min(results), max(results)
		growth = results[large][1]["peak_mib"] - results[small][1]["peak_mib"]
		print(
			f"pipeline peak memory {large}MB run - {small}MB run: {growth:.1f} MiB (goal <= 64 MiB: {'met' if growth <= 64 else 'NOT met'})"
		)


if __name__ == "__main__":
	main()
