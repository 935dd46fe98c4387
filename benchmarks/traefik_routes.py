"""One site's change on a proxy holding many sites: the former layout (one Traefik file of routers per
site) against the site router (Traefik's two catch-all routers to an nginx whose map has one file per
host), side by side in one run, on real containers.

For each number of sites, each layout gets a fresh proxy holding that many sites; then ``--changes``
sites are suspended one after the other (a status change, as Press's Update Site Status) and the
benchmark prints, as medians:
- served after: seconds from the job's write until the proxy serves the change (the former layout: the
  site's router in Traefik's API; the site router: the proxy's own reload check, which also waits for
  Traefik's generation);
- proxy CPU-seconds of the change: the CPU time of the proxy's containers from the write until they are
  idle again (a reload that goes on after the change is served is counted);
- memory of the proxy's containers (usage less the inactive page cache, as ``docker stats`` shows it);
then the ratios, and each figure projected to 100,000 sites by a least-squares line through the
measured sizes. The former layout's page service (a few MiB of nginx) is left out of its memory.

Run: python3 benchmarks/traefik_routes.py [--sites 1000 10000 30000] [--changes 3] [--former-max 10000]
(needs the services up; --former-max: the largest size the former layout is measured at, as it needs
about 1.2 GB and a minute per change at 10,000 sites)
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from press_selfhosted.engine import naming
from press_selfhosted.engine.clients import docker_exec, site_router, traefik
from press_selfhosted.engine.clients.containers import tar_archive
from press_selfhosted.engine.clients.docker_hosts import DockerHost
from press_selfhosted.engine.clients.proxy import (
	API_ADDRESS,
	Proxy,
	ProxySettings,
	_ensure_container,
	traefik_spec,
)
from press_selfhosted.engine.clients.servers import ContainerServer
from press_selfhosted.engine.jobs.handlers import JobRecord, JobRequest, StepContext

AS_ROOT = docker_exec.Exec(user="root", workdir="/")
MiB = 1024 * 1024


def route(index: int) -> site_router.SiteRoute:
	return site_router.SiteRoute(
		site=f"site{index}.example.com",
		upstream="10.0.0.5",
		app_server="app.example.com",
		bench="bench-0001",
		front="p-bench-0001-front:80",
	)


# --- the former layout: what engine/clients/traefik.py rendered for a site before the site router ----------


def former_document(site: site_router.SiteRoute) -> dict:
	"""4 routers, 2 services and 2 middlewares for an active site; 2 routers, 1 service and 1
	middleware while it is suspended (the routes of the former engine, names and rules alike)."""
	key = traefik.route_id(site.site)
	rule = " || ".join(f"Host(`{host}`)" for host in site.hosts)
	entries = (traefik.WEB, traefik.WEBSECURE)

	def routers(name: str, rule: str, priority: int, service: str, middleware: dict) -> dict:
		return {
			(name if entry == traefik.WEB else f"{name}-tls"): {
				"entryPoints": [entry],
				"rule": rule,
				"priority": priority,
				"service": service,
				"middlewares": [middleware[entry]],
				**({"tls": {}} if entry == traefik.WEBSECURE else {}),
			}
			for entry in entries
		}

	front = f"http://{site.front}"
	if site.status == site_router.ACTIVE:
		middleware = {entry: f"{key}-{entry}-headers" for entry in entries}
		definitions = {
			middleware[entry]: {
				"headers": {
					"customRequestHeaders": {
						"X-Frappe-Site-Name": site.site,
						"X-Forwarded-Proto": "https" if entry == traefik.WEBSECURE else "http",
					}
				}
			}
			for entry in entries
		}
		found = routers(key, rule, 100, key, middleware)
		found.update(
			routers(
				f"{key}-socketio", f"({rule}) && PathPrefix(`/socket.io`)", 200, f"{key}-socketio", middleware
			)
		)
		services = {key: front, f"{key}-socketio": front}
	else:
		page = f"{key}-page-{site.status}"
		definitions = {page: {"replacePath": {"path": f"/status/{site.status}"}}}
		found = routers(key, rule, 100, f"{key}-page", dict.fromkeys(entries, page))
		services = {f"{key}-page": "http://p-pages:80"}
	loaded = {
		name: {"loadBalancer": {"servers": [{"url": url}], "passHostHeader": True}}
		for name, url in services.items()
	}
	return {"http": {"routers": found, "services": loaded, "middlewares": definitions}}


def former_file(site: site_router.SiteRoute) -> tuple[str, tuple[bytes, int]]:
	path = f"{traefik.DYNAMIC_DIRECTORY}/site_{traefik.route_id(site.site)}.yml"
	return path, ((traefik.compact_json(former_document(site)) + "\n").encode(), 0o644)


def former_served(proxy: Proxy, site: site_router.SiteRoute) -> bool:
	"""Whether Traefik's API shows the site's router going where ``site`` says."""
	key = traefik.route_id(site.site)
	url = f"http://{API_ADDRESS}/api/http/routers/{key}@file"
	result = docker_exec.run(proxy.traefik, ["wget", "-q", "-O", "-", url], AS_ROOT, check=False)
	if result.exit_code != 0:
		return False
	want = key if site.status == site_router.ACTIVE else f"{key}-page"
	return json.loads(result.stdout).get("service", "").split("@")[0] == want


# --- measuring ---------------------------------------------------------------------------------------


def cpu_seconds(client, containers) -> float:
	return sum(
		client.api.stats(c.id, stream=False, one_shot=True)["cpu_stats"]["cpu_usage"]["total_usage"] / 1e9
		for c in containers
	)


def memory(client, containers) -> float:
	"""MiB in use, less the inactive page cache (as docker stats shows it)."""
	total = 0
	for container in containers:
		found = client.api.stats(container.id, stream=False, one_shot=True)["memory_stats"]
		stats = found.get("stats") or {}
		total += found.get("usage", 0) - stats.get("inactive_file", stats.get("total_inactive_file", 0))
	return total / MiB


def until_idle(client, containers, timeout: float = 900) -> float:
	"""CPU-seconds used until two consecutive half-seconds use less than 0.02 CPU-seconds each."""
	start = cpu_seconds(client, containers)
	last, quiet, deadline = start, 0, time.monotonic() + timeout
	while quiet < 2 and time.monotonic() < deadline:
		time.sleep(0.5)
		now = cpu_seconds(client, containers)
		quiet = quiet + 1 if now - last < 0.02 else 0
		last = now
	return last - start


def wait(condition, timeout: float = 1800) -> None:
	deadline = time.monotonic() + timeout
	while not condition():
		if time.monotonic() > deadline:
			raise TimeoutError("the proxy did not serve the change")
		time.sleep(0.1)


@dataclasses.dataclass
class Figures:
	served: float  # seconds
	cpu: float  # CPU-seconds
	memory: float  # MiB


class Layout:
	"""A fresh proxy server holding ``sites`` sites in one layout."""

	name = ""

	def __init__(self, client, endpoints: dict, sites: int):
		self.client = client
		prefix = f"b{uuid.uuid4().hex[:8]}"
		host = DockerHost(server=f"{prefix}-proxy.local", socket=endpoints["docker"]["base_url"])
		self.server = ContainerServer(host.server, "Proxy Server", prefix, host, f"{prefix}-net")
		self.settings = ProxySettings(
			endpoints["images"]["traefik"],
			endpoints["images"]["front"],
			"127.0.0.1",
			0,
			0,
			reload_timeout=1800,
		)
		request = JobRequest("Update Site Status", host.server, "Proxy Server", "POST", "", None, None, {})
		job = JobRecord.of(request, 1)
		self.ctx = StepContext(job, self.server, client, None, None, lambda text: None, lambda s: client)
		self.routes = [route(i) for i in range(sites)]

	def load(self) -> None:
		"""Make the proxy and put the sites on it."""
		raise NotImplementedError

	def containers(self) -> list:
		raise NotImplementedError

	def change(self, site: site_router.SiteRoute, previous: site_router.SiteRoute) -> None:
		"""Write the change and return once the proxy serves it."""
		raise NotImplementedError

	def measure(self, changes: int) -> Figures:
		until_idle(self.client, self.containers())  # the bulk load settled
		served, cpu = [], []
		for number in range(changes):
			previous = self.routes[-1 - number]
			changed = previous.with_status("suspended")
			before, started = cpu_seconds(self.client, self.containers()), time.perf_counter()
			self.change(changed, previous)
			served.append(time.perf_counter() - started)
			cpu.append(
				cpu_seconds(self.client, self.containers())
				- before
				+ until_idle(self.client, self.containers())
			)
		return Figures(
			statistics.median(served), statistics.median(cpu), memory(self.client, self.containers())
		)

	def remove(self) -> None:
		filters = {"label": f"{naming.SERVER}={self.server.name}"}
		for container in self.client.containers.list(all=True, filters=filters):
			container.remove(force=True, v=True)
		for volume in self.client.volumes.list(filters=filters):
			volume.remove(force=True)
		for network in self.client.networks.list(names=[self.server.network]):
			network.remove()


class Former(Layout):
	name = "per-site Traefik routers (former)"

	def load(self) -> None:
		def write_sites(container) -> None:
			# Written before Traefik starts: its file provider re-reads the whole directory on every
			# file event, so writing thousands of files into a running Traefik takes hours.
			files = {path.rpartition("/")[2]: content for path, content in map(former_file, self.routes)}
			container.put_archive(traefik.DYNAMIC_DIRECTORY, tar_archive(files))

		spec = traefik_spec(self.server, self.settings)
		container = _ensure_container(self.client, self.server, spec, write_sites)
		# Proxy's file writing and Traefik API access; no site router is made
		self.proxy = Proxy(self.server, container, None, self.settings)
		wait(lambda: former_served(self.proxy, self.routes[-1]))

	def containers(self) -> list:
		return [self.proxy.traefik]

	def change(self, site, previous) -> None:
		self.proxy.write(None, dict([former_file(site)]))
		wait(lambda: former_served(self.proxy, site))


class SiteRouter(Layout):
	name = "site router (now)"

	def load(self) -> None:
		self.proxy = Proxy.ensure(self.client, self.server, self.settings)
		maps = {path: text for r in self.routes for path, text in site_router.render(r).items()}
		self.proxy._write_router(None, maps, ())
		self.proxy.verify(None, site_router.expected(self.routes[-1]))

	def containers(self) -> list:
		return [self.proxy.traefik, self.proxy.router]

	def change(self, site, previous) -> None:
		self.proxy.publish(self.ctx, site, previous)  # what the job's step does
		self.proxy.verify(self.ctx, site_router.expected(site))  # its Reload NGINX step


def projected(sizes: list[int], values: list[float], at: int) -> float | None:
	"""The least-squares line through (size, value), at ``at``; None from fewer than two sizes."""
	if len(sizes) < 2:
		return None
	mean_x, mean_y = statistics.mean(sizes), statistics.mean(values)
	slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(sizes, values)) / sum(
		(x - mean_x) ** 2 for x in sizes
	)
	return mean_y + slope * (at - mean_x)


def main() -> None:
	parser = argparse.ArgumentParser()
	parser.add_argument("--sites", type=int, nargs="+", default=[1_000, 10_000, 30_000])
	parser.add_argument("--changes", type=int, default=3, help="changes measured per layout (median)")
	parser.add_argument("--former-max", type=int, default=10_000, help="largest size for the former layout")
	parser.add_argument("--project", type=int, default=100_000)
	args = parser.parse_args()
	endpoints = json.loads((ROOT / ".services" / "endpoints.json").read_text())
	client = docker.DockerClient(base_url=endpoints["docker"]["base_url"], timeout=600)
	results: dict[str, dict[int, Figures]] = {Former.name: {}, SiteRouter.name: {}}
	for sites in args.sites:
		for layout_class in (Former, SiteRouter):
			if layout_class is Former and sites > args.former_max:
				continue
			started = time.perf_counter()
			layout = layout_class(client, endpoints, sites)
			try:
				layout.load()
				loaded = time.perf_counter() - started
				figures = layout.measure(args.changes)
			finally:
				layout.remove()
			results[layout_class.name][sites] = figures
			print(
				f"{sites:>6} sites, {layout_class.name}: loaded in {loaded:.0f} s; one change served after "
				f"{figures.served:.2f} s, proxy CPU {figures.cpu:.2f} s, memory {figures.memory:.0f} MiB",
				flush=True,
			)
	print(
		f"\none site's change, median of {args.changes} (load average {Path('/proc/loadavg').read_text().split()[0]}):"
	)
	print(f"{'sites':>7} | {'layout':<34} | {'served after':>12} | {'proxy CPU':>9} | {'memory':>8}")
	for sites in args.sites:
		for name, by_size in results.items():
			if sites in by_size:
				f = by_size[sites]
				print(
					f"{sites:>7} | {name:<34} | {f.served:>10.2f} s | {f.cpu:>7.2f} s | {f.memory:>4.0f} MiB"
				)
		former, now = results[Former.name].get(sites), results[SiteRouter.name].get(sites)
		if former and now:
			print(
				f"{sites:>7} | {'ratio former / now':<34} | {former.served / now.served:>11.0f}x | "
				f"{former.cpu / max(now.cpu, 0.01):>8.0f}x | {former.memory / now.memory:>7.1f}x"
			)
	for name, by_size in results.items():
		sizes = sorted(by_size)
		figures = [by_size[size] for size in sizes]
		served = projected(sizes, [f.served for f in figures], args.project)
		if served is None:
			continue
		cpu = projected(sizes, [f.cpu for f in figures], args.project)
		mib = projected(sizes, [f.memory for f in figures], args.project)
		print(
			f"projected to {args.project} sites (line through {sizes}), {name}: served after {served:.2f} s, "
			f"proxy CPU {cpu:.2f} s, memory {mib:.0f} MiB"
		)


if __name__ == "__main__":
	main()
