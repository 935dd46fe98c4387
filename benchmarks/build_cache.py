"""First vs second BuildKit build of the same Press-shaped bench image on the build server's dockerd.

The context is laid out as Run Remote Builder lays it out (apps cloned from local git repositories);
the second build should come from BuildKit's layer cache (no_cache off, as Press asks by default).
Usage: python benchmarks/build_cache.py [--repeat N]  (needs scripts/services up)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

import docker

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from build_support import app_files, build_payload, frappe_files, make_app, press_dockerfile

from press_selfhosted.engine.clients.docker_hosts import DockerHost
from press_selfhosted.engine.jobs import builds


def timed_build(settings, host, request) -> tuple[float, builds.BuildKitLog]:
	for clone in request.clones:
		builds.clone_app(settings, clone, clone.url)
	directory, _ = builds.lay_out_context(settings, request)
	tarball = settings.context_tar(request)
	builds.tar_context(directory, tarball)
	token = settings.root / "benchmark-token"
	token.write_text("benchmark")
	log = builds.BuildKitLog()
	started = time.perf_counter()
	code, _ = builds.run_buildkit(settings, host, request, tarball, {}, token, log.feed)
	assert code == 0, "".join(log.lines[-20:])
	return time.perf_counter() - started, log


def main() -> None:
	parser = argparse.ArgumentParser(description=__doc__)
	parser.add_argument("--repeat", type=int, default=3, help="pairs of builds, each with new layers")
	args = parser.parse_args()
	endpoints = json.loads((ROOT / ".services" / "endpoints.json").read_text())
	socket = endpoints["docker"]["base_url"]
	client = docker.DockerClient(base_url=socket, timeout=600)
	host = DockerHost("benchmark", socket)
	repository = f"press-benchmark/build-cache-{uuid.uuid4().hex[:8]}"
	firsts, seconds = [], []
	with tempfile.TemporaryDirectory() as work:
		repos = [
			make_app(Path(work), "frappe", frappe_files()),
			make_app(Path(work), "shop", app_files("shop")),
		]
		settings = builds.BuilderSettings(workdir=Path(work) / "builder")
		try:
			for run in range(args.repeat):
				dockerfile = press_dockerfile(
					endpoints["images"]["bench"], ["frappe", "shop"], fresh=uuid.uuid4().hex
				)
				requests = [
					builds.BuildRequest.from_payload(
						build_payload(
							f"{kind}-{run}",
							"bench",
							repos,
							dockerfile,
							{"url": "x"},
							repository,
							build_token="",
						)
					)
					for kind in ("first", "second")
				]
				first, _ = timed_build(settings, host, requests[0])
				second, warm = timed_build(settings, host, requests[1])
				marked = [v for v in warm.vertices.values() if v.marker]
				assert all(v.status == "Cached" for v in marked), "the second build missed the cache"
				firsts.append(first)
				seconds.append(second)
				print(
					f"run {run + 1}: first {first:.2f} s, second {second:.2f} s ({len(marked)} marked steps cached)"
				)
		finally:
			for image in client.images.list(name=repository):
				for tag in image.tags:
					client.images.remove(tag, force=True)
	first, second = min(firsts), min(seconds)
	print(f"best first build:  {first:.2f} s")
	print(f"best second build: {second:.2f} s")
	print(f"second / first:    {second / first:.3f}")


if __name__ == "__main__":
	main()
