"""First vs second build of the same bench image build context on the build server's dockerd.

The second build should come from the layer cache (Run Remote Builder keeps it on by default).
Usage: python benchmarks/build_cache.py [--repeat N]  (needs scripts/services up)
"""

from __future__ import annotations

import argparse
import io
import json
import time
import uuid
from pathlib import Path

import docker

from press_selfhosted.engine import builds
from press_selfhosted.engine.docker_hosts import DockerHost

ROOT = Path(__file__).resolve().parent.parent
CONTEXT_DIR = ROOT / "tests" / "images" / "build-context"


def timed_build(
	host: DockerHost, client, context: bytes, spec: builds.BuildSpec
) -> tuple[float, builds.BuildResult]:
	started = time.perf_counter()
	result = builds.build_image(host, client, io.BytesIO(context), spec, builds.BuildProgress())
	return time.perf_counter() - started, result


def main() -> None:
	parser = argparse.ArgumentParser(description=__doc__)
	parser.add_argument("--repeat", type=int, default=3, help="pairs of builds, each with a new context")
	args = parser.parse_args()
	endpoints = json.loads((ROOT / ".services" / "endpoints.json").read_text())
	socket = endpoints["docker"]["base_url"]
	client = docker.DockerClient(base_url=socket, timeout=600)
	host = DockerHost("benchmark", socket)
	repository = f"press-benchmark/build-cache-{uuid.uuid4().hex[:8]}"
	firsts, seconds = [], []
	try:
		for run in range(args.repeat):
			# a new build-id: the first build of each pair starts without cache
			context = builds.context_from_directory(CONTEXT_DIR, {"build-id": uuid.uuid4().hex.encode()})
			base = {"BASE": endpoints["images"]["base"]}
			first, cold = timed_build(
				host, client, context, builds.BuildSpec(repository, f"first-{run}", build_args=base)
			)
			second, warm = timed_build(
				host, client, context, builds.BuildSpec(repository, f"second-{run}", build_args=base)
			)
			assert warm.cached_steps == warm.run_steps, "the second build missed the cache"
			assert cold.cached_steps == 0, "the first build was not cold"
			firsts.append(first)
			seconds.append(second)
			print(
				f"run {run + 1}: first {first:.2f} s ({cold.cached_steps}/{cold.run_steps} RUN steps cached), "
				f"second {second:.2f} s ({warm.cached_steps}/{warm.run_steps} cached)"
			)
	finally:
		for image in client.images.list(name=repository):
			for tag in image.tags:
				client.images.remove(tag, force=True)
	first, second = min(firsts), min(seconds)
	print(f"best first build:  {first:.2f} s")
	print(f"best second build: {second:.2f} s")
	print(
		f"second / first:    {second / first:.3f}  (first is {first / second:.1f}x slower than a cached build)"
	)


if __name__ == "__main__":
	main()
