"""Routes for many sites: rendering 10,000 site documents vs one, and publishing them into a real
Traefik container's dynamic directory (one archive + one rename exec for all, vs one changed site),
then the time until Traefik serves the changed site's router.

Why it matters: one document per site means a change rewrites one small file, whatever the number of
sites; a single-file design would rewrite (and Traefik re-parse) everything on every change. Traefik's
file provider still re-reads the whole directory on each change, so the files' format is measured too:
indented JSON (the former output), block YAML and compact JSON (traefik.render's output), each as the
median of ``--changes`` changes once Traefik has settled, with the Traefik container's CPU seconds.

Run: python3 benchmarks/traefik_routes.py [--sites 10000] [--changes 3]  (needs scripts/services up)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
import uuid
from pathlib import Path

import docker
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from press_selfhosted.engine import naming, traefik
from press_selfhosted.engine.agent.handlers import ContainerServer, JobRecord, StepContext
from press_selfhosted.engine.docker_hosts import DockerHost
from press_selfhosted.engine.proxy import Proxy, ProxySettings

FORMATS = {
	"indented JSON (before)": lambda document: json.dumps(document, indent=1, sort_keys=True),
	"block YAML": lambda document: yaml.safe_dump(document, sort_keys=True),
	"compact JSON (now)": traefik.compact_json,
}


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


def cpu_seconds(container) -> float:
	return container.stats(stream=False)["cpu_stats"]["cpu_usage"]["total_usage"] / 1e9


def change_costs(proxy: Proxy, ctx: StepContext, routes: list, changes: int) -> tuple[float, float]:
	"""Median seconds until Traefik serves one changed site, and its CPU seconds per change."""
	waits, cpu = [], []
	for number in range(changes):
		status = ("suspended", "deactivated")[number % 2]
		changed = dataclasses.replace(routes[-1 - number], status=status)
		cpu_before, started = cpu_seconds(proxy.traefik), time.perf_counter()
		proxy.publish(ctx, changed)
		proxy.verify(ctx, traefik.expected_state(changed))
		waits.append(time.perf_counter() - started)
		cpu.append(cpu_seconds(proxy.traefik) - cpu_before)
	return statistics.median(waits), statistics.median(cpu)


def main() -> None:
	parser = argparse.ArgumentParser()
	parser.add_argument("--sites", type=int, default=10_000)
	parser.add_argument("--changes", type=int, default=3, help="changes measured per format (median)")
	args = parser.parse_args()
	endpoints = json.loads((ROOT / ".services" / "endpoints.json").read_text())
	routes = [route(i) for i in range(args.sites)]
	texts = {}
	for name, dump in FORMATS.items():
		render_all, texts[name] = timed(
			lambda dump=dump: {r.file_name: traefik.render(r, dump).encode() for r in routes}
		)
		size = sum(len(text) for text in texts[name].values())
		print(f"{name}: render {args.sites} site documents {render_all * 1000:.0f} ms ({size / 1e6:.1f} MB)")
	render_one, _ = timed(lambda: traefik.render(routes[0]))
	print(f"render 1 site document: {render_one * 1e6:.0f} µs")

	prefix = f"b{uuid.uuid4().hex[:8]}"
	client = docker.DockerClient(base_url=endpoints["docker"]["base_url"], timeout=300)
	host = DockerHost(server=f"{prefix}-proxy.local", socket=endpoints["docker"]["base_url"])
	server = ContainerServer(host.server, "Proxy Server", prefix, host, f"{prefix}-net")
	settings = ProxySettings(
		endpoints["images"]["traefik"], endpoints["images"]["front"], "127.0.0.1", 0, 0, reload_timeout=300
	)
	figures = {}
	try:
		proxy = Proxy.ensure(client, server, settings)
		job = JobRecord(
			1, "Add Site to Upstream", server.name, server.server_type, "POST", "", None, None, {}
		)
		ctx = StepContext(job, server, client, None, None, lambda text: None, lambda s: client)
		for name, rendered in texts.items():
			files = {f"{traefik.DYNAMIC_DIRECTORY}/{file}": (text, 0o644) for file, text in rendered.items()}
			publish_all, _ = timed(lambda files=files: proxy.write(ctx, files))
			# The first change after the bulk write also waits for Traefik to settle on it.
			settle, _ = change_costs(proxy, ctx, routes, 1)
			figures[name] = change_costs(proxy, ctx, routes, args.changes)
			print(
				f"{name}: publish {args.sites} files {publish_all:.2f} s, settled after {settle:.2f} s; "
				f"one change served after {figures[name][0]:.2f} s, Traefik CPU {figures[name][1]:.2f} s"
			)
			for original in routes[-args.changes :]:
				proxy.publish(ctx, original)
	finally:
		filters = {"label": f"{naming.SERVER}={server.name}"}
		for container in client.containers.list(all=True, filters=filters):
			container.remove(force=True, v=True)
		for volume in client.volumes.list(filters=filters):
			volume.remove(force=True)
		for network in client.networks.list(names=[server.network]):
			network.remove()
	before = figures[next(iter(FORMATS))]
	print(f"one change with {args.sites} sites on the proxy (median of {args.changes}):")
	for name, (wait, cpu) in figures.items():
		print(f"  {name:<24} served after {wait:6.2f} s ({wait / before[0]:.2f} x), Traefik CPU {cpu:6.2f} s")


if __name__ == "__main__":
	main()
