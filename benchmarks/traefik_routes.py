"""Routes for many sites: rendering 10,000 site documents vs one, and publishing them into a real
Traefik container's dynamic directory (one archive + one rename exec for all, vs one changed site),
then the time until Traefik serves the changed site's router.

Why it matters: one document per site means a change rewrites one small file, whatever the number of
sites; a single-file design would rewrite (and Traefik re-parse) everything on every change.

Run: python3 benchmarks/traefik_routes.py  (needs scripts/services up)
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
import uuid
from pathlib import Path

import docker

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from press_selfhosted.engine import naming, traefik
from press_selfhosted.engine.agent.handlers import ContainerServer, JobRecord, StepContext
from press_selfhosted.engine.docker_hosts import DockerHost
from press_selfhosted.engine.proxy import Proxy, ProxySettings

SITES = 10_000


def route(index: int) -> traefik.SiteRoute:
	return traefik.SiteRoute(
		site=f"site{index}.example.com",
		upstream="10.0.0.5",
		app_server="app.example.com",
		bench="bench-0001",
		front="http://p-bench-0001-front:80",
		socketio="http://p-bench-0001:9000",
		pages="http://p-pages:80",
	)


def timed(function):
	start = time.perf_counter()
	result = function()
	return time.perf_counter() - start, result


def main() -> None:
	endpoints = json.loads((ROOT / ".services" / "endpoints.json").read_text())
	routes = [route(i) for i in range(SITES)]
	render_all, texts = timed(lambda: {r.file_name: traefik.render(r).encode() for r in routes})
	render_one, _ = timed(lambda: traefik.render(routes[0]))
	size = sum(len(text) for text in texts.values())
	print(f"render {SITES} site documents: {render_all * 1000:.0f} ms ({size / 1e6:.1f} MB)")
	print(f"render 1 site document:       {render_one * 1e6:.0f} µs")

	prefix = f"b{uuid.uuid4().hex[:8]}"
	client = docker.DockerClient(base_url=endpoints["docker"]["base_url"], timeout=300)
	host = DockerHost(server=f"{prefix}-proxy.local", socket=endpoints["docker"]["base_url"])
	server = ContainerServer(host.server, "Proxy Server", prefix, host, f"{prefix}-net")
	settings = ProxySettings(
		endpoints["images"]["traefik"], endpoints["images"]["front"], "127.0.0.1", 0, 0, reload_timeout=120
	)
	try:
		proxy = Proxy.ensure(client, server, settings)
		job = JobRecord(
			1, "Add Site to Upstream", server.name, server.server_type, "POST", "", None, None, {}
		)
		ctx = StepContext(job, server, client, None, None, lambda text: None, lambda s: client)
		files = {f"{traefik.DYNAMIC_DIRECTORY}/{name}": (text, 0o644) for name, text in texts.items()}
		publish_all, _ = timed(lambda: proxy.write(ctx, files))
		print(f"publish {SITES} files (one archive, one rename exec): {publish_all:.2f} s")
		changed = dataclasses.replace(routes[-1], status="suspended")
		publish_one, _ = timed(lambda: proxy.publish(ctx, changed))
		loaded, _ = timed(lambda: proxy.verify(ctx, traefik.expected_routers(changed)))
		print(f"publish 1 changed site: {publish_one * 1000:.0f} ms; Traefik serving it after {loaded:.2f} s")
		# Traefik's file provider re-reads the whole directory on every change: once it has settled
		# after the bulk write, this is the cost of one change with 10,000 sites on the proxy.
		settled = dataclasses.replace(routes[-2], status="deactivated")
		publish_one, _ = timed(lambda: proxy.publish(ctx, settled))
		loaded, _ = timed(lambda: proxy.verify(ctx, traefik.expected_routers(settled)))
		print(
			f"another change, Traefik settled: publish {publish_one * 1000:.0f} ms, serving after {loaded:.2f} s"
		)
		print(f"one change costs {publish_one / publish_all * 100:.2f}% of republishing every site")
	finally:
		filters = {"label": f"{naming.SERVER}={server.name}"}
		for container in client.containers.list(all=True, filters=filters):
			container.remove(force=True, v=True)
		for volume in client.volumes.list(filters=filters):
			volume.remove(force=True)
		for network in client.networks.list(names=[server.network]):
			network.remove()


if __name__ == "__main__":
	main()
