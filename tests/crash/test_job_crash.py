"""Crash test of every multi-step job type of the catalog that tests/crash/test_agent_crash.py and
tests/crash/test_site_crash.py do not cover, one case per job type (its id is Press's job type name).

Each case makes two subjects alike (sites, benches, servers): one gets an uninterrupted run (the
reference), the other one run killed at every step in turn (tests/crash_support.py: the worker is
SIGKILLed in step 0, the sweep's worker reruns it and is killed in step 1, and so on). The end states
must be equal with the subject's name made generic: Docker objects and their settings, the sites' files
and configs, databases, S3 objects, proxy routes and the job's data reported to Press. One cluster
(tests/platform_support.py: an app server with two benches, a Database Server, a Proxy Server, S3) is
shared by the module; every case uses subjects of its own.

The last test fails when a multi-step handler of the catalog has neither a crash case nor an exemption.
"""

from __future__ import annotations

import dataclasses
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import agent_support as support
import crash_support as crash
import pytest
import test_agent_crash
import test_site_crash
from backup_support import object_keys, scratch_bucket
from build_support import app_files, build_payload, frappe_files, make_app, press_dockerfile
from idempotence import read
from platform_support import (
	crash_world,
	new_site_payload,
	records,
	remove_platform,
	servers,
	start_platform,
	update_payload,
	upstream,
)
from proxy_helpers import proxy_settings

from press_selfhosted.engine import naming
from press_selfhosted.engine.agent.catalog import all_handlers
from press_selfhosted.engine.agent.router import Router
from press_selfhosted.engine.agent.store import JobStore
from press_selfhosted.engine.clients import platform_ca
from press_selfhosted.engine.clients.docker_exec import BENCH_DIRECTORY
from press_selfhosted.engine.clients.docker_hosts import DockerHosts
from press_selfhosted.engine.clients.mariadb import MariaDB, database_name
from press_selfhosted.engine.clients.proxy import Proxy, ProxySettings
from press_selfhosted.engine.clients.registry import RegistryTarget
from press_selfhosted.engine.clients.storage import open_client
from press_selfhosted.engine.clients.traefik import HostRoute
from press_selfhosted.engine.jobs.builds import BuilderSettings
from press_selfhosted.engine.jobs.handlers import index
from press_selfhosted.engine.policies.registry_cleanup import list_tags

BENCH, TARGET = "bench-a", "bench-b"  # the cluster's benches: sites start on BENCH, updates go to TARGET
SITES = "/home/frappe/frappe-bench/sites"


@dataclass
class World:
	platform: object  # platform_support.Platform
	quiet: Router  # Press's POST without the enqueue: the test hands the job to the worker it kills
	store: JobStore
	target: object  # the S3 bucket (backup_support.S3Target)
	docker: object
	image: str  # the bench image in the local registry
	backup: dict = field(default_factory=dict)  # New Site from Backup's URLs, once made
	repos: list = field(default_factory=list)  # Run Remote Builder's app repositories, once made

	def server(self, role: str):
		return getattr(self.platform.topology, role)

	def backend(self, bench: str):
		return self.docker.containers.get(naming.resource_name(self.platform.prefix, bench))


@pytest.fixture(scope="module")
def world(docker_client, endpoints, store_config, registry_images, tmp_path_factory):
	prefix = f"k{uuid.uuid4().hex[:8]}"
	with scratch_bucket(endpoints, f"jobcrash-{prefix}") as target:
		platform = None
		try:
			contexts = str(tmp_path_factory.mktemp("contexts"))
			platform = start_platform(docker_client, endpoints, store_config, prefix, contexts, target.bucket)
			for bench in (BENCH, TARGET):
				platform.run(
					platform.topology.app,
					"benches",
					support.new_bench_payload(bench, registry_images["plain"]),
				)
			store = JobStore(store_config)
			quiet = Router(
				platform.found, store, lambda job: None, platform.topology, DockerHosts(), platform.enrich
			)
			yield World(platform, quiet, store, target, docker_client, registry_images["plain"])
		finally:
			for image in docker_client.images.list(name=f"*/press/example.com/{prefix}-*"):
				docker_client.images.remove(image.id, force=True)
			if platform:
				for worker in platform.workers:
					worker.join(timeout=120)
			remove_platform(docker_client, prefix)


# --- what a case compares --------------------------------------------------------------------------


def masked(names: list[str], subject: str) -> list[str]:
	"""File names and keys with the subject's name and their digits made generic (backup timestamps)."""
	return sorted(re.sub(r"\d", "#", generic(name, subject)) for name in names)


# values of a site's config that differ between two sites made alike (random per site)
RANDOM_CONFIG = ("db_password", "encryption_key")


def site_on(world: World, bench: str, site: str) -> dict | None:
	"""The site's folder on ``bench`` (files, config), or None when the bench does not hold it."""
	backend = world.backend(bench)
	code, config = read(backend, ["cat", f"{SITES}/{site}/site_config.json"])
	if code != 0:
		return None
	_, found = read(backend, ["sh", "-c", f"cd {SITES}/{site} && find . | sort"])
	values = json.loads(config)
	return {
		"files": masked(found.splitlines(), site),
		"config": {key: "random" if key in RANDOM_CONFIG else value for key, value in values.items()},
	}


def route_of(world: World, site: str) -> dict | None:
	proxy = Proxy.existing(
		world.docker, world.platform.topology.proxy, proxy_settings(world.platform.endpoints)
	)
	route = proxy.site(site)
	return dataclasses.asdict(route) if route else None


def site_state(world: World, site: str) -> dict:
	"""Where the site is (both benches), its route, its database and what Press backed up of it."""
	db = world.platform.mariadb
	db_name = db.recorded_database(site)
	scheduler = (
		"SELECT value FROM `tabSingles` WHERE doctype = 'System Settings' AND field = 'enable_scheduler'"
	)
	with open_client(world.target) as s3:
		objects = object_keys(s3, world.target.bucket, f"{site}/")
	return {
		"benches": {bench: site_on(world, bench, site) for bench in (BENCH, TARGET)},
		"route": route_of(world, site),
		"database": db_name and db.database_exists(db_name),
		"tables": db_name and sorted(row[0] for row in db.sql("SHOW TABLES", database=db_name)),
		"scheduler": db_name and db.sql(scheduler, database=db_name),
		"objects": masked(objects, site),
		"archived": [name for bench in (BENCH, TARGET) for name in archived(world, bench) if site in name],
	}


def archived(world: World, bench: str) -> list[str]:
	_, out = read(world.backend(bench), ["sh", "-c", f"ls -A {SITES}/archived 2>/dev/null || true"])
	return out.split()


def proxy_state(world: World, site: str) -> dict:
	"""The site's route (also under its new name) and the hosts with certificates of their own."""
	proxy = Proxy.existing(
		world.docker, world.platform.topology.proxy, proxy_settings(world.platform.endpoints)
	)
	hosts = {}
	for name in (f"www-{site}", f"*.{site}"):
		host = proxy.read(HostRoute(name).file_name)
		if host is not None:
			_, files = read(proxy.traefik, ["ls", "-A", host.certificate_directory])
			hosts[name] = {**dataclasses.asdict(host), "files": sorted(files.split())}
	return {"route": route_of(world, site), "renamed": route_of(world, f"renamed-{site}"), "hosts": hosts}


AUTHORITY = platform_ca.Authority.create("press_selfhosted crash test CA")


def certificate(world: World, names: list[str], secret: str) -> dict:
	"""Press's certificate block for ``names``; its private key goes to the job's secrets as ``secret``
	(set before each run: the worker reads the platform's secrets when it starts)."""
	issued = AUTHORITY.issue(names)
	world.platform.secrets.values[secret] = issued.private_key
	return {"fullchain.pem": issued.full_chain, "chain.pem": issued.chain, "privkey.pem": "********"}


def host_payload(world: World, site: str) -> dict:
	return {
		"name": f"www-{site}",
		"target": site,
		"certificate": certificate(world, [f"www-{site}"], "privkey.pem"),
	}


def wildcard_payload(world: World, domain: str) -> dict:
	block = certificate(world, platform_ca.root_domain_names(domain), "0.certificate.privkey.pem")
	return {"items": [{"domain": domain, "certificate": block, "code_server": False}]}


SOURCE = "source.example.test"  # the site whose backup New Site from Backup restores


def backup_urls(world: World) -> dict:
	"""Press's presigned URLs of one backup of SOURCE (made once for the module)."""
	if not world.backup:
		make_site(world, SOURCE)
		offsite = {
			"bucket": world.target.bucket,
			"auth": {
				"ACCESS_KEY": world.target.access_key,
				"SECRET_KEY": world.target.secret_key,
				"REGION": world.target.region,
				"ENDPOINT_URL": world.target.endpoint_url,
			},
			"path": f"{SOURCE}/backup",
		}
		payload = {"with_files": True, "offsite": offsite, "keep_files_locally_after_offsite_backup": False}
		app = world.platform.topology.app
		data = world.platform.run(app, f"benches/{BENCH}/sites/{SOURCE}/backup", payload)["data"]
		world.platform.record_backup(data)
		with open_client(world.target) as s3:
			world.backup.update(
				{
					kind: s3.generate_presigned_url(
						"get_object",
						Params={
							"Bucket": world.target.bucket,
							"Key": data["offsite"][data["backups"][kind]["file"]],
						},
					)
					for kind in ("database", "public", "private")
				}
			)
	return world.backup


def from_backup_payload(world: World, site: str) -> dict:
	world.platform.topology.site_benches[site] = BENCH
	return {
		**new_site_payload(world.platform, site, apps=("frappe", "testapp")),
		"site_config": json.dumps({"maintenance_mode": 0}),
		"skip_failing_patches": False,
		**backup_urls(world),
	}


def server_state(world: World, _subject: str) -> dict:
	"""The cluster's servers' Docker objects (server-wide jobs change none of them)."""
	t = world.platform.topology
	return {
		server.name: sorted(
			(c.name, c.status, c.image.id) for c in support.labelled(world.docker, server.name)
		)
		for server in (t.app, t.db, t.proxy)
	}


def bench_state(world: World, bench: str) -> dict:
	"""The bench's Docker objects with their limits and environment, and its common site config."""
	server = world.platform.topology.app.name

	def settings(container) -> dict:
		host = container.attrs["HostConfig"]
		return {
			"name": container.name,
			"status": container.status,
			"image": container.image.id,
			"limits": [host.get(key) for key in ("Memory", "MemoryReservation", "MemorySwap", "CpuQuota")],
			"env": sorted(e for e in container.attrs["Config"]["Env"] if e.startswith("PRESS_")),
		}

	containers = support.labelled(world.docker, server, bench=bench)
	running = [c for c in containers if c.name == naming.resource_name(world.platform.prefix, bench)]
	config = (
		read(running[0], ["cat", f"{BENCH_DIRECTORY}/sites/common_site_config.json"])[1]
		if running
		else "null"
	)
	return {
		"containers": sorted((settings(c) for c in containers), key=lambda found: found["name"]),
		"volumes": sorted(v.name for v in support.labelled(world.docker, server, "volumes", bench=bench)),
		"networks": sorted(n.name for n in support.labelled(world.docker, server, "networks", bench=bench)),
		"config": json.loads(config),
	}


def generic(found: object, subject: str) -> object:
	"""``found`` with the subject's names (and the database names made from them) made generic."""
	text = json.dumps(found, sort_keys=True, default=str).replace(database_name(BENCH, subject), "DB")
	return json.loads(text.replace(subject, "SUBJECT").replace(subject.replace(".", "_"), "SUBJECT"))


def differences(found: object, expected: object, where: str = "") -> list[str]:
	"""Where ``found`` differs from ``expected`` (the assertion's message: pytest's diff cuts deep dicts)."""
	if isinstance(found, dict) and isinstance(expected, dict):
		return [
			line
			for key in sorted(set(found) | set(expected), key=str)
			for line in differences(found.get(key, "(none)"), expected.get(key, "(none)"), f"{where}/{key}")
		]
	return [] if found == expected else [f"{where}: {found!r} != {expected!r}"]


def stages_sorted(data: dict) -> dict:
	"""Run Remote Builder's data with its stages in one order (BuildKit reports parallel stages in the order
	they end), a stage BuildKit took from its cache counted as done: the reference build runs them, the
	crashed one after it finds them cached (both end the stage)."""
	stages = [
		{**stage, "status": "Done" if stage["status"] == "Cached" else stage["status"]}
		for stage in data["stages"]
	]
	return {**data, "stages": sorted(stages, key=lambda stage: json.dumps(stage, sort_keys=True))}


def reported(data: dict, subject: str) -> object:
	"""The job's data Press reads but its output and traceback (a rerun's output repeats lines), generic in
	the subject, checksums and numbers (a backup's file names hold its time, its sizes vary by a few bytes)."""

	def scrub(value: object) -> object:
		if isinstance(value, dict):
			return {scrub(key): scrub(item) for key, item in value.items()}
		if isinstance(value, list):
			return [scrub(item) for item in value]
		if isinstance(value, str):
			return re.sub(r"\d", "#", re.sub(r"[0-9a-f]{32,}", "HEX", value))
		return "number" if isinstance(value, int | float) and not isinstance(value, bool) else value

	return scrub(generic({k: v for k, v in data.items() if k not in ("output", "traceback")}, subject))


# --- how a case makes its subjects ------------------------------------------------------------------


def make_site(world: World, site: str, apps=("frappe",)) -> None:
	"""Press's site insert: New Site on the app server, Add Site to Upstream on the proxy."""
	platform = world.platform
	platform.topology.site_benches[site] = BENCH
	platform.run(platform.topology.app, f"benches/{BENCH}/sites", new_site_payload(platform, site, apps))
	platform.run(platform.topology.proxy, f"{upstream(platform)}/sites", {"name": site})


def routed(world: World, site: str) -> None:
	"""A route on the proxy for a site Press knows on BENCH."""
	world.platform.topology.site_benches[site] = BENCH
	world.platform.run(world.platform.topology.proxy, f"{upstream(world.platform)}/sites", {"name": site})


def with_domain(world: World, site: str) -> None:
	make_site(world, site)
	world.platform.run(
		world.platform.topology.app, f"benches/{BENCH}/sites/{site}/domains", {"domain": f"shop-{site}"}
	)


def in_maintenance(world: World, site: str) -> None:
	make_site(world, site)
	world.backend(BENCH).exec_run(["bench", "--site", site, "set-maintenance-mode", "on"], user="frappe")


def migrated(world: World, site: str) -> None:
	"""A site Update Site Migrate moved from BENCH to TARGET (its tables backed up on the way)."""
	make_site(world, site)
	world.platform.run(
		world.platform.topology.app, f"benches/{BENCH}/sites/{site}/update/migrate", update_payload(TARGET)
	)
	world.platform.topology.site_benches[site] = TARGET


def new_bench(world: World, bench: str) -> None:
	world.platform.run(world.platform.topology.app, "benches", support.new_bench_payload(bench, world.image))


def bench_config(world: World, bench: str) -> dict:
	payload = support.new_bench_payload(
		bench,
		world.image,
		vcpu=1,
		memory_max=768,
		memory_high=384,
		memory_swap=1536,
		environment_variables={"PRESS_TEST": "1"},
	)
	payload["common_site_config"]["db_port"] = 3307
	del payload["registry"]
	return payload


def builder_payload(world: World, group: str) -> dict:
	"""Press's build of two apps cloned from git repositories (made once), pushed to the TLS registry."""
	endpoints = world.platform.endpoints
	if not world.repos:
		root = Path(world.platform.contexts).parent / "repos"
		root.mkdir()
		world.repos[:] = [make_app(root, "frappe", frappe_files()), make_app(root, "shop", app_files("shop"))]
	tls = endpoints["registry_tls"]
	repository = f"{tls['url']}/press/example.com/{world.platform.prefix}-{group}"
	dockerfile = press_dockerfile(endpoints["images"]["bench"], ["frappe", "shop"])
	payload = build_payload("dcb-crash", group, world.repos, dockerfile, tls, repository)
	# The job store keeps the build token masked and the glue reads it back from Press's Agent Job; here the
	# platform's secrets hold it (the workers get them too). Without it the Dockerfile's token stage fails,
	# unless BuildKit has that stage cached from an earlier build: the case passed on a warm builder only.
	world.platform.secrets.values["build_token"] = payload["build_token"]
	return payload


def build_state(world: World, group: str) -> dict:
	"""The tags pushed for the group's repository and what the group's builds left in the builder's work
	directory: its build directories and its cached clones (kept for the next build). A worker killed
	mid-clone leaves its scratch folder in ``clones/.partial`` (never taken for a cached clone), which the
	glue's prune of the work directory (builds.prune_workdir) removes once stale: not compared here."""
	tls = world.platform.endpoints["registry_tls"]
	registry = RegistryTarget(tls["url"], "", tls["username"], tls["password"], ca_bundle=tls["ca_file"])
	root = Path(world.platform.contexts)

	def found(folder: Path) -> list[str]:
		return sorted(str(path.relative_to(root)) for path in folder.rglob("*") if group in str(path))

	return {
		"tags": list_tags(registry, f"press/example.com/{world.platform.prefix}-{group}"),
		"builds": found(root / "builds"),
		"clones": sorted(path.name for path in (root / "clones").iterdir() if group in path.name),
	}


@dataclass(frozen=True)
class Case:
	job_type: str
	path: str  # Press's path; ``{s}`` is the subject, ``{up}`` the proxy's upstream of the app server
	state: Callable[[World, str], object]
	payload: Callable[[World, str], dict] = lambda world, subject: {}
	prepare: Callable[[World, str], None] = lambda world, subject: None
	role: str = "app"  # the server Press sends the job to: app, db or proxy
	method: str = "POST"
	subject: Callable[[str], str] = lambda tag: f"{tag}.example.test"
	# the job's data made comparable where it may rightly differ between two runs
	data_of: Callable[[dict], dict] = lambda data: data


SITE = f"benches/{BENCH}/sites/{{s}}"
UP = "{up}/sites"
CASES = [
	Case(
		"Add Site to Upstream",
		UP,
		proxy_state,
		lambda w, s: {"name": s},
		lambda w, s: w.platform.topology.site_benches.__setitem__(s, BENCH),
		"proxy",
	),
	Case(
		"Update Site Status",
		f"{UP}/{{s}}/status",
		proxy_state,
		lambda w, s: {"status": "suspended"},
		routed,
		"proxy",
	),
	Case(
		"Add Domain to Upstream",
		"{up}/domains",
		proxy_state,
		lambda w, s: {"name": s, "domain": f"shop-{s}"},
		routed,
		"proxy",
	),
	Case(
		"Rename Site on Upstream",
		f"{UP}/{{s}}/rename",
		proxy_state,
		lambda w, s: {"new_name": f"renamed-{s}", "domains": [s]},
		routed,
		"proxy",
	),
	Case("Add Host to Proxy", "proxy/hosts", proxy_state, host_payload, routed, "proxy"),
	Case("Add Wildcard Hosts to Proxy", "proxy/wildcards", proxy_state, wildcard_payload, role="proxy"),
	Case("New Site from Backup", f"benches/{BENCH}/sites/restore", site_state, from_backup_payload),
	Case(
		"Run Remote Builder",
		"builder/build",
		build_state,
		builder_payload,
		subject=lambda tag: f"g{tag}",
		data_of=stages_sorted,
	),
	Case("Clear Cache", f"{SITE}/cache", site_state, prepare=make_site, method="DELETE"),
	Case("Deactivate Site", f"{SITE}/deactivate", site_state, prepare=make_site),
	Case("Add Domain", f"{SITE}/domains", site_state, lambda w, s: {"domain": f"shop-{s}"}, make_site),
	Case("Remove Domain", f"{SITE}/domains/shop-{{s}}", site_state, prepare=with_domain, method="DELETE"),
	Case(
		"Run After Migrate Steps",
		f"{SITE}/run_after_migrate_steps",
		site_state,
		lambda w, s: {"admin_password": "********"},
		in_maintenance,
	),
	Case(
		"Uninstall App from Site",
		f"{SITE}/apps/testapp",
		site_state,
		prepare=lambda w, s: make_site(w, s, ("frappe", "testapp")),
		method="DELETE",
	),
	Case(
		"Update Site Pull", f"{SITE}/update/pull", site_state, lambda w, s: update_payload(TARGET), make_site
	),
	Case(
		"Recover Failed Site Pull",
		f"{SITE}/update/pull/recover",
		site_state,
		lambda w, s: update_payload(TARGET),
		in_maintenance,
	),
	Case(
		"Move Site to Bench",
		f"{SITE}/move_to_bench",
		site_state,
		lambda w, s: {"target": TARGET, "deactivate": True, "activate": True, "skip_failing_patches": False},
		make_site,
	),
	Case(
		"Restore Site Tables",
		f"benches/{TARGET}/sites/{{s}}/update/migrate/restore",
		site_state,
		lambda w, s: {"activate": True},
		migrated,
	),
	Case(
		"Recover Failed Site Migrate",
		f"benches/{TARGET}/sites/{{s}}/update/migrate/recover",
		site_state,
		lambda w, s: update_payload(BENCH, rollback_scripts={}, restore_touched_tables=True),
		migrated,
	),
	Case(
		"Add User to Proxy",
		"ssh/users",
		server_state,
		lambda w, s: {"name": s},
		role="proxy",
		subject=lambda tag: f"bench-{tag}",
	),
	Case(
		"Remove User from Proxy",
		"ssh/users/{s}",
		server_state,
		role="proxy",
		method="DELETE",
		subject=lambda tag: f"bench-{tag}",
	),
	Case("Update Database Schema Sizes", "database/update-schema-sizes", server_state, role="db"),
	Case("Cleanup Unused Files", "server/cleanup", server_state),
	Case(
		"Update Bench Configuration",
		"benches/{s}/config",
		bench_state,
		bench_config,
		new_bench,
		subject=lambda tag: f"bench-{tag}",
	),
	Case(
		"Archive Bench",
		"benches/{s}/archive",
		bench_state,
		prepare=new_bench,
		subject=lambda tag: f"bench-{tag}",
	),
]


def at(state: dict, bench: str) -> dict:
	"""The site's folder on ``bench`` in a site_state, as {} when the bench does not hold it."""
	return state["benches"][bench] or {}


def moved_to(bench: str, other: str) -> Callable[[dict], bool]:
	return lambda state: (
		at(state, bench)["config"]["maintenance_mode"] == 0
		and not at(state, other)
		and state["route"]["bench"] == bench
	)


# What the uninterrupted run must have done, so that a crashed run equal to it proves something.
REFERENCE_DID = {
	"Add Site to Upstream": lambda state: state["route"]["bench"] == BENCH,
	"Update Site Status": lambda state: state["route"]["status"] == "suspended",
	"Add Domain to Upstream": lambda state: state["route"]["domains"] == ["shop-SUBJECT"],
	"Rename Site on Upstream": lambda state: state["route"] is None and state["renamed"]["bench"] == BENCH,
	"Add Host to Proxy": lambda state: "privkey.pem" in state["hosts"]["www-SUBJECT"]["files"],
	"Add Wildcard Hosts to Proxy": lambda state: "privkey.pem" in state["hosts"]["*.SUBJECT"]["files"],
	"New Site from Backup": lambda state: state["database"] and at(state, BENCH)["config"]["db_name"] == "DB",
	"Run Remote Builder": lambda state: (
		state["tags"] == ["dcb-crash"] and state["builds"] == ["builds/SUBJECT"]
	),
	"Deactivate Site": lambda state: at(state, BENCH)["config"]["maintenance_mode"] == 1,
	"Add Domain": lambda state: at(state, BENCH)["config"]["domains"] == ["shop-SUBJECT"],
	"Remove Domain": lambda state: at(state, BENCH)["config"]["domains"] == [],
	"Run After Migrate Steps": lambda state: at(state, BENCH)["config"]["maintenance_mode"] == 0,
	"Uninstall App from Site": lambda state: len(state["objects"]) == 4,  # its backup, uploaded once
	"Update Site Pull": moved_to(TARGET, BENCH),
	"Recover Failed Site Pull": moved_to(TARGET, BENCH),
	"Move Site to Bench": moved_to(TARGET, BENCH),
	"Restore Site Tables": lambda state: at(state, TARGET)["config"]["maintenance_mode"] == 0,
	"Recover Failed Site Migrate": moved_to(BENCH, TARGET),
	"Update Bench Configuration": lambda state: state["containers"][0]["limits"][0] == 768 * 2**20,
	# a bench with no archived site leaves nothing (tests/test_bench_lifecycle.py: one with keeps its volume)
	"Archive Bench": lambda state: state == {"config": None, "containers": [], "networks": [], "volumes": []},
}


def spawn(world: World, job_id: int, hold: int | None, servers=None):
	"""A worker of the platform's handlers held in step ``hold`` until killed (crash_support.lingering);
	``servers`` (app, db, proxy) instead of the platform's."""
	found = crash_world(world.platform)
	if servers:
		found["servers"] = [{**vars(s), "docker": vars(s.docker)} for s in servers]
	return crash.spawn_worker(
		"platform_support:crash_executor",
		job_id,
		PSA_PLATFORM_WORLD=json.dumps(found),
		PSA_HOLD_STEP="" if hold is None else str(hold),
	)


def killed_at_every_step(
	world: World, router: Router, server, method: str, path: str, payload: dict, servers=None
) -> dict:
	"""Press's request of the job through ``router`` (which enqueues nothing), then one run of it killed at
	every step (crash_support.kill_at_every_step); the job must end Success with every step Success."""
	response = router.handle(
		server.name, method, path, payload, f"AJ-{uuid.uuid4().hex[:6]}", server.server_type
	)
	assert response.status_code == 200, response.json
	job_id = response.json["job"]
	steps = len(index(world.platform.found)[world.store.get(job_id).job_type].steps)
	crash.kill_at_every_step(world.store, job_id, steps, lambda job, hold: spawn(world, job, hold, servers))
	job = router.handle(server.name, "GET", f"jobs/{job_id}", server_type=server.server_type).json
	assert job["status"] == "Success", json.dumps(job, indent=1)[-3000:]
	assert [s["status"] for s in job["steps"]] == ["Success"] * steps
	return job


@pytest.mark.parametrize("case", [pytest.param(case, id=case.job_type) for case in CASES])
def test_job_killed_at_every_step_ends_as_an_uninterrupted_run(case, world):
	platform = world.platform
	tag = uuid.uuid4().hex[:6]
	reference, subject = case.subject(f"r{tag}"), case.subject(f"c{tag}")
	for each in (reference, subject):
		case.prepare(world, each)
	server = world.server(case.role)

	def path(each: str) -> str:
		return case.path.format(s=each, up=upstream(platform))

	done = platform.run(server, path(reference), case.payload(world, reference), case.method)
	expected = {
		"state": generic(case.state(world, reference), reference),
		"data": reported(case.data_of(done["data"]), reference),
	}
	assert REFERENCE_DID.get(case.job_type, bool)(expected["state"]), expected["state"]
	job = killed_at_every_step(
		world, world.quiet, server, case.method, path(subject), case.payload(world, subject)
	)
	assert [s["name"] for s in job["steps"]] == [s["name"] for s in done["steps"]]
	found = {
		"state": generic(case.state(world, subject), subject),
		"data": reported(case.data_of(job["data"]), subject),
	}
	assert found == expected, "\n".join(differences(found, expected))


def test_setup_container_server_killed_at_every_step_ends_as_an_uninterrupted_run(world, endpoints):
	"""A new Database Server (its network, its MariaDB answering the root password), set up twice: once
	uninterrupted, once killed at every step. Its servers are not the platform's, so its jobs go through a
	router (and workers) that know them."""
	platform, made = world.platform, []

	def state(db) -> dict:
		containers = support.labelled(world.docker, db.name)
		mariadb = MariaDB(db.name, containers[0], platform.secrets.values["mariadb_root_password"])
		return generic(
			{
				"containers": sorted((c.name, c.status, c.image.id) for c in containers),
				"networks": sorted(n.name for n in support.labelled(world.docker, db.name, "networks")),
				"answers": mariadb.sql("SELECT 1"),
			},
			db.container_prefix,
		)

	try:
		found = []
		for run in ("reference", "crashed"):
			prefix = f"z{uuid.uuid4().hex[:7]}"
			made.append(prefix)
			trio = servers(endpoints, prefix)
			topology = records(*trio, store=world.store.config)
			executor = support.executor_for(
				world.store.config, platform.found, topology, secrets=platform.secrets
			)
			enqueue = executor.run if run == "reference" else (lambda job: None)
			router = Router(platform.found, world.store, enqueue, topology, DockerHosts())
			db = trio[1]
			if run == "reference":
				job_id = router.handle(
					db.name, "POST", "server/container-setup", {}, "AJ-setup", db.server_type
				).json["job"]
				job = router.handle(db.name, "GET", f"jobs/{job_id}", server_type=db.server_type).json
				assert job["status"] == "Success", json.dumps(job, indent=1)[-3000:]
			else:
				job = killed_at_every_step(world, router, db, "POST", "server/container-setup", {}, trio)
			found.append({"state": state(db), "data": reported(job["data"], prefix)})
		assert found[1] == found[0], "\n".join(differences(found[1], found[0]))
	finally:
		for prefix in made:
			remove_platform(world.docker, prefix)


# --- coverage ---------------------------------------------------------------------------------------

# multi-step job types crash-tested in the other crash modules, and those that are not (job type: why)
ELSEWHERE = [*test_agent_crash.JOB_TYPES, *test_site_crash.JOB_TYPES]
EXEMPT: dict[str, str] = {}


def test_every_multi_step_job_type_has_a_crash_test_or_an_exemption(tmp_path):
	found = all_handlers(ProxySettings("traefik", "router"), BuilderSettings(workdir=str(tmp_path)))
	multi_step = {h.job_type for h in found if len(h.steps) > 1}
	covered = {case.job_type for case in CASES} | set(ELSEWHERE) | {"Setup Container Server"}  # its own test
	assert multi_step - covered - set(EXEMPT) == set()
	assert all(EXEMPT.values()), "an exemption says why"
	assert (covered | set(EXEMPT)) <= multi_step, "a case or exemption of a job type that is not multi-step"
