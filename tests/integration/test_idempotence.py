"""Every job type of the catalog (engine.agent.catalog.all_handlers), each step run twice in a row on the
real services, changes nothing the second time (tests/idempotence.py says what is compared).

One case per job type in ``CASES`` (the test id is Press's job type name); a job type that cannot run
here is in ``EXEMPT`` with the reason, and a handler in neither fails ``test_every_job_type_has_a_case``.
Each case makes what its job needs (a site, a route, a backup) with the engine's own jobs, run once, then
checks the job. The cases share one module cluster (tests/platform_support.py: an app server with two
benches from the local registry, the Database Server's MariaDB, a Traefik Proxy Server, an S3 bucket);
each case probes what its job type touches: Docker objects of the servers it works on, the benches'
sites folders, the site's database and accounts, the proxy's route and certificate files, S3 objects.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import agent_support as support
import pytest
from backup_support import BENCH, offsite_payload, restore_payload, scratch_bucket
from build_support import build_payload, frappe_files, make_app, press_dockerfile
from fakes import PressRecords, Secrets, job_record
from idempotence import (
	assert_idempotent,
	database,
	docker_objects,
	files,
	proxy_files,
	run_job,
	s3_objects,
)
from platform_support import APP_IP, records, remove_platform, servers, settings_of, update_payload
from proxy_helpers import remove_servers, self_signed
from site_cluster import SITES, new_site_payload

from press_selfhosted.engine import naming
from press_selfhosted.engine.agent.catalog import all_handlers
from press_selfhosted.engine.agent.runner import Contexts
from press_selfhosted.engine.clients.docker_hosts import DockerHosts
from press_selfhosted.engine.clients.mariadb import MariaDBSpec, database_name, ensure_mariadb
from press_selfhosted.engine.clients.proxy import Proxy, ProxySettings
from press_selfhosted.engine.clients.registry import RegistryTarget
from press_selfhosted.engine.clients.servers import ContainerServer
from press_selfhosted.engine.clients.storage import open_client
from press_selfhosted.engine.jobs import handlers, restore
from press_selfhosted.engine.jobs.builds import BuilderSettings
from press_selfhosted.engine.jobs.handlers import JobRecord
from press_selfhosted.engine.policies.registry_cleanup import list_tags, manifest_digest

OTHER = "bench-2"  # the target of site updates, and the bench the bench jobs change
UPSTREAM = {"upstream": APP_IP}
# the bench's own log grows with every command: not the job's work
LOGS = ["./*/logs", "./*/*/logs", "./logs"]
# the stand-in bench's migrate logs a patch on every run (Frappe's, each new patch once)
PATCH_LOG = ["tabPatch Log"]


def proxy_jobs_ended(job_type: str, site: str) -> str | None:
	"""Press's records of the proxy: its Remove Site from Upstream ended, so Archive Site goes ahead."""
	return "Success"


@dataclass
class World:
	client: object
	endpoints: dict
	prefix: str
	topology: PressRecords
	secrets: Secrets
	found: dict
	target: object  # the S3 bucket of the backups
	mariadb: object
	image: str  # the bench image in the local registry
	proxy_settings: ProxySettings
	tmp: object  # a pytest tmp_path_factory
	backups: dict = field(default_factory=dict)  # Backup Site's data by site
	shared: str | None = None  # the site of the cases that leave it in place

	@property
	def app(self) -> ContainerServer:
		return self.topology.app

	@property
	def proxy_server(self) -> ContainerServer:
		return self.topology.proxy

	def job(self, job_type: str, payload: dict, server=None, bench=None, site=None) -> JobRecord:
		return job_record(self.found[job_type], server or self.app, payload, bench, site)

	def context(self, job: JobRecord, topology: PressRecords | None = None):
		hosts = DockerHosts(lambda host: self.client)
		return Contexts(topology or self.topology, self.secrets, hosts).for_job(job)

	def run(self, job_type: str, payload: dict, steps: tuple[str, ...] = (), **where) -> JobRecord:
		"""``job_type`` run once (only the steps named in ``steps``, if any): what a case needs first."""
		job = self.job(job_type, payload, **where)
		chosen = [s for s in self.found[job_type].steps if not steps or s.name in steps]
		run_job(job, chosen, self.context(job))
		return job

	def check(
		self,
		job_type: str,
		payload: dict,
		probe: Callable[[], object],
		topology=None,
		reports_anew=(),
		**where,
	) -> JobRecord:
		job = self.job(job_type, payload, **where)
		steps = self.found[job_type].steps
		assert_idempotent(job, steps, self.context(job, topology), probe, reports_anew)
		return job

	# --- what the cases need first ---------------------------------------------------------------------

	def backend(self, bench: str = BENCH):
		return self.client.containers.get(naming.resource_name(self.prefix, bench))

	def bench(self, bench: str) -> None:
		if not self.client.containers.list(
			all=True, filters={"name": naming.resource_name(self.prefix, bench)}
		):
			self.run("New Bench", support.new_bench_payload(bench, self.image), bench=bench)

	def site(self, tag: str, routed: bool = False) -> str:
		"""A new site on BENCH (with its route on the proxy when ``routed``)."""
		site = f"{tag}-{uuid.uuid4().hex[:6]}.example.test"
		self.run("New Site", new_site_payload(site), bench=BENCH)
		self.topology.site_benches[site] = BENCH
		if routed:
			self.route(site)
		return site

	def route(self, site: str, bench: str = BENCH) -> None:
		self.topology.site_benches[site] = bench
		self.run("Add Site to Upstream", {"name": site, "path_args": UPSTREAM}, server=self.proxy_server)

	def backup(self, site: str) -> dict:
		if site not in self.backups:
			job = self.run("Backup Site", backup_payload(self, site), bench=BENCH, site=site)
			self.backups[site] = job.data
		return self.backups[site]

	# --- probes ----------------------------------------------------------------------------------------

	def probe(
		self,
		servers: tuple[ContainerServer, ...] = (),
		benches: tuple[str, ...] = (),
		sites: tuple[tuple[str, str], ...] = (),
		proxy: bool = False,
		s3: bool = False,
		skip: tuple[str, ...] = (),
	) -> Callable[[], dict]:
		"""What a job may change: the Docker objects of ``servers``, the sites folder of each running
		bench of ``benches``, the databases and accounts of ``sites`` ((bench, site) pairs: a site's
		database is named after the bench that made it), the proxy's files, the S3 bucket."""

		def state() -> dict:
			found: dict = {"docker": [docker_objects(self.client, s.name) for s in servers]}
			for bench in benches:
				running = self.client.containers.list(
					filters={"name": naming.resource_name(self.prefix, bench)}
				)
				for container in (c for c in running if c.name == naming.resource_name(self.prefix, bench)):
					found[bench] = files(container, SITES, skip=[*LOGS, *skip])
			for bench, site in sites:
				found[site] = database(self.mariadb, f"{database_name(bench, site)}%", skip_tables=PATCH_LOG)
			if proxy:
				running = Proxy.existing(self.client, self.proxy_server, self.proxy_settings)
				found["proxy"] = proxy_files(running.traefik, running.router)
			if s3:
				with open_client(self.target) as client:
					found["s3"] = s3_objects(client, self.target.bucket, "")
			return found

		return state

	def site_probe(self, site: str, benches=(BENCH,), proxy: bool = False, s3: bool = False):
		return self.probe((self.app,), benches, ((BENCH, site),), proxy, s3)


def backup_payload(world: World, site: str) -> dict:
	return {"with_files": True, **offsite_payload(world.target, site)}


def certificate_of(world: World, domain: str, secret_key: str) -> dict:
	"""Press's certificate block for ``domain`` (the key masked, as the job store keeps it)."""
	chain, key = self_signed(domain)
	world.secrets.values[secret_key] = key
	return {"fullchain.pem": chain, "chain.pem": chain, "privkey.pem": "********"}


@pytest.fixture(scope="module")
def world(docker_client, endpoints, registry_images, tmp_path_factory):
	prefix = f"i{uuid.uuid4().hex[:8]}"
	with scratch_bucket(endpoints, f"idem-{prefix}") as target:
		try:
			app, db, proxy = servers(endpoints, prefix)
			docker_client.networks.create(app.network, labels=naming.labels(app.name, "network"))
			root_password = f"root-{uuid.uuid4().hex}"
			mariadb = ensure_mariadb(
				docker_client, MariaDBSpec(db, endpoints["images"]["mariadb"]), root_password
			)
			secrets = Secrets(
				{
					"mariadb_root_password": root_password,
					"admin_password": f"adm-{uuid.uuid4().hex[:12]}",
					"offsite_access_key": target.access_key,
					"offsite_secret_key": target.secret_key,
					"password": "Pw-9-clerk",
					"registry_password": endpoints["registry_tls"]["password"],
				}
			)
			settings = settings_of(endpoints, str(tmp_path_factory.mktemp("contexts")))
			found = handlers.index(all_handlers(**settings))
			made = World(
				docker_client,
				endpoints,
				prefix,
				dataclasses.replace(records(app, db, proxy), job_status=proxy_jobs_ended),
				secrets,
				found,
				target,
				mariadb,
				registry_images["plain"],
				settings["proxy"],
				tmp_path_factory,
			)
			made.run("Setup Container Server", {}, server=proxy)
			for bench in (BENCH, OTHER):
				made.bench(bench)
			yield made
		finally:
			remove_platform(docker_client, prefix)


# --- the cases: one function per job type ----------------------------------------------------------------


def setup_container_server(world: World) -> None:
	"""A Database Server and a Proxy Server of their own, set up from nothing (the cluster's proxy is
	made by this job before the cases)."""
	_, db, proxy = servers(world.endpoints, f"{world.prefix}s")
	topology = dataclasses.replace(world.topology, servers=[world.app, db, proxy], proxy=proxy)
	try:
		for server in (db, proxy):
			world.check("Setup Container Server", {}, world.probe((server,)), topology, server=server)
	finally:
		remove_servers(world.client, [db.name, proxy.name], proxy.network)


def new_bench(world: World) -> None:
	bench = f"bench-{uuid.uuid4().hex[:4]}"
	world.check(
		"New Bench",
		support.new_bench_payload(bench, world.image),
		world.probe((world.app,), (bench,)),
		bench=bench,
	)
	world.run("Archive Bench", {}, bench=bench)


def archive_bench(world: World) -> None:
	bench = f"bench-{uuid.uuid4().hex[:4]}"
	world.bench(bench)
	world.check("Archive Bench", {}, world.probe((world.app, world.topology.db), (bench,)), bench=bench)


def update_bench_configuration(world: World) -> None:
	"""Press's Bench.update_bench_config after a plan change: limits set on a bench made without any,
	memory_max without memory_swap."""
	payload = support.new_bench_payload(OTHER, world.image, vcpu=1, memory_max=768, memory_high=384)
	payload["common_site_config"]["monitor"] = False
	del payload["registry"]
	world.check("Update Bench Configuration", payload, world.probe((world.app,), (OTHER,)), bench=OTHER)


def bench_job(job_type: str, payload: dict, skip: tuple[str, ...] = ()) -> Callable[[World], None]:
	"""``skip``: files the job writes anew by design, left out of the sites folder's probe."""

	def case(world: World) -> None:
		world.check(job_type, payload, world.probe((world.app,), (OTHER,), skip=skip), bench=OTHER)

	return case


def site_job(job_type: str, payload: Callable[[World, str], dict], fresh: str = "", **probe) -> Callable:
	"""``job_type`` on the shared site (or, with ``fresh``, on a new site of its own), after
	``payload(world, site)`` made what the job needs and gave its payload."""

	def case(world: World) -> None:
		site = world.site(fresh) if fresh else shared_site(world)
		world.check(job_type, payload(world, site), world.site_probe(site, **probe), bench=BENCH, site=site)

	return case


def shared_site(world: World) -> str:
	if world.shared is None:
		world.shared = world.site("shared", routed=True)
	return world.shared


def new_site(world: World) -> None:
	site = f"new-{uuid.uuid4().hex[:6]}.example.test"
	payload = {
		**new_site_payload(site),
		"create_user": {"email": "owner@example.com", "first_name": "Site", "last_name": "Owner"},
	}
	world.check("New Site", payload, world.site_probe(site), bench=BENCH, site=site)


def with_testapp(world: World, site: str) -> dict:
	world.run("Install App on Site", {"name": "testapp"}, bench=BENCH, site=site)
	return {"path_args": {"app": "testapp"}}


def with_domain(world: World, site: str) -> dict:
	domain = f"www.{site}"
	world.run("Add Domain", {"domain": domain}, bench=BENCH, site=site)
	return {"path_args": {"domain": domain}}


def with_table_dumps(world: World, site: str) -> dict:
	"""The tables dumped as Update Site Migrate dumps them before migrating."""
	world.run(
		"Update Site Migrate",
		update_payload(OTHER),
		steps=("Clear Backup Directory", "Backup Site Tables"),
		bench=BENCH,
		site=site,
	)
	# a row the restore takes away again
	world.mariadb.sql(
		"INSERT INTO `tabSingles` VALUES ('Idempotence', 'note', '1')", database=database_name(BENCH, site)
	)
	return {"activate": True}


def archive_site(world: World, site: str) -> dict:
	return {"mariadb_root_password": "********", "force": False, **offsite_payload(world.target, site)}


def restore_site(world: World) -> None:
	site = shared_site(world)
	payload = restore_payload(world.target, world.backup(site))
	world.check("Restore Site", payload, world.site_probe(site, s3=True), bench=BENCH, site=site)


def new_site_from_backup(world: World) -> None:
	data = world.backup(shared_site(world))
	site = f"copy-{uuid.uuid4().hex[:6]}.example.test"
	payload = restore_payload(
		world.target,
		data,
		use_keys=restore.FILE_KINDS,
		name=site,
		config={},
		managed_database_config={},
		site_config="{}",
	)
	world.check("New Site from Backup", payload, world.site_probe(site, s3=True), bench=BENCH, site=site)


def update_job(job_type: str, payload: dict, recover: str = "") -> Callable[[World], None]:
	"""A site update from BENCH to OTHER (a recovery: after ``recover`` moved it, back from OTHER)."""

	def case(world: World) -> None:
		site, source, target = world.site("update", routed=True), BENCH, OTHER
		if recover:
			world.run(recover, update_payload(OTHER), bench=BENCH, site=site)
			source, target = OTHER, BENCH
			world.topology.site_benches[site] = source
		probe = world.probe((world.app,), (BENCH, OTHER), ((BENCH, site),), proxy=True)
		world.check(job_type, {**payload, "target": target}, probe, bench=source, site=site)

	return case


def rename_site(world: World) -> None:
	site = world.site("rename", routed=True)
	new = f"renamed-{site}"
	owner = {"email": "owner@renamed.test", "first_name": "Re", "last_name": "Named"}
	payload = {"new_name": new, "config": {"host_name": f"https://{new}"}, "create_user": owner}
	probe = world.probe((world.app,), (BENCH,), ((BENCH, site),))
	world.check("Rename Site", payload, probe, bench=BENCH, site=site)


def server_job(job_type: str, payload: dict, server: str) -> Callable[[World], None]:
	def case(world: World) -> None:
		on = getattr(world.topology, server)
		world.check(job_type, payload, world.probe((on,)), server=on)

	return case


def proxy_job(job_type: str, payload: Callable[[World, str], dict], site: bool = False) -> Callable:
	"""``job_type`` on the proxy, about a site routed to BENCH (made by ``payload(world, site)``, which
	gives the job's payload)."""

	def case(world: World) -> None:
		name = f"p-{uuid.uuid4().hex[:6]}.example.test"
		world.topology.site_benches[name] = BENCH
		probe = world.probe((world.proxy_server,), proxy=True)
		world.check(
			job_type, payload(world, name), probe, server=world.proxy_server, site=name if site else None
		)

	return case


def routed(world: World, site: str) -> None:
	world.route(site)


def add_host(world: World, site: str) -> dict:
	routed(world, site)
	return {
		"name": f"www.{site}",
		"target": site,
		"certificate": certificate_of(world, f"www.{site}", "privkey.pem"),
	}


def wildcard_hosts(world: World, site: str) -> dict:
	root = site.split(".", 1)[1]
	certificate = certificate_of(world, f"*.{root}", "0.certificate.privkey.pem")
	return {"items": [{"domain": root, "certificate": certificate, "code_server": False}]}


def remove_host(world: World, site: str) -> dict:
	payload = add_host(world, site)
	world.run("Add Host to Proxy", payload, server=world.proxy_server)
	return {"path_args": {"host": payload["name"]}}


def with_route(payload: dict) -> Callable[[World, str], dict]:
	def made(world: World, site: str) -> dict:
		routed(world, site)
		return {**payload, "path_args": UPSTREAM}

	return made


def run_remote_builder(world: World) -> None:
	"""The project's stand-in build: apps from bare git repositories made here, Press's Dockerfile
	shape on the stand-in bench image, pushed to the TLS registry."""
	tls = world.endpoints["registry_tls"]
	build = f"dcb-{uuid.uuid4().hex[:6]}"
	group = f"{world.prefix}-group"
	repository = f"{tls['url']}/press/example.com/{group}"
	root = world.tmp.mktemp("apps")
	repos = [make_app(root, "frappe", frappe_files())]
	payload = build_payload(
		build, group, repos, press_dockerfile(world.endpoints["images"]["bench"], ["frappe"]), tls, repository
	)
	registry = RegistryTarget(tls["url"], "", tls["username"], tls["password"], ca_bundle=tls["ca_file"])
	path = repository.split("/", 1)[1]

	def probe() -> dict:
		tags = list_tags(registry, path)
		images = sorted(i.id for i in world.client.images.list(name=repository))
		return {"tags": {tag: manifest_digest(registry, path, tag) for tag in tags}, "images": images}

	try:
		# a second clone finds the commit in the clone cache, and says so to Press
		world.check("Run Remote Builder", payload, probe, reports_anew=("Clone Repositories",))
	finally:
		for tag in [t for i in world.client.images.list(name=repository) for t in i.tags]:
			world.client.images.remove(tag, force=True)


CASES: dict[str, Callable[[World], None]] = {
	"Setup Container Server": setup_container_server,
	"New Bench": new_bench,
	"Update Bench Configuration": update_bench_configuration,
	"Bench Restart": bench_job("Bench Restart", {"web_only": False}),
	# a rebuild is what Press asks for: the stand-in bench stamps each bundle with its build time
	# (Frappe's bundles are the same for the same sources), so the bundles' content is not compared
	"Rebuild Bench Assets": bench_job("Rebuild Bench Assets", {}, skip=("./assets/*/bundle.js",)),
	"Archive Bench": archive_bench,
	"New Site": new_site,
	"Install App on Site": site_job("Install App on Site", lambda w, s: {"name": "testapp"}),
	"Uninstall App from Site": site_job("Uninstall App from Site", with_testapp),
	"Migrate Site": site_job("Migrate Site", lambda w, s: {"skip_failing_patches": False, "activate": True}),
	"Create User": site_job(
		"Create User",
		lambda w, s: {
			"email": "clerk@example.test",
			"first_name": "C",
			"last_name": "L",
			"password": "********",
		},
	),
	"Run After Migrate Steps": site_job(
		"Run After Migrate Steps", lambda w, s: {"admin_password": "********"}
	),
	"Clear Cache": site_job("Clear Cache", lambda w, s: {}),
	"Reinstall Site": site_job(
		"Reinstall Site", lambda w, s: {"admin_password": "********"}, fresh="reinstall"
	),
	"Update Site Configuration": site_job(
		"Update Site Configuration",
		lambda w, s: {"config": {"plan": "business"}, "remove": ["developer_mode"]},
	),
	"Activate Site": site_job("Activate Site", lambda w, s: {}),
	"Deactivate Site": site_job("Deactivate Site", lambda w, s: {}, fresh="deactivate"),
	"Add Domain": site_job("Add Domain", lambda w, s: {"domain": f"shop.{s}"}),
	"Remove Domain": site_job("Remove Domain", with_domain),
	"Archive Site": site_job("Archive Site", archive_site, fresh="archive", s3=True),
	"Backup Site": site_job("Backup Site", backup_payload, s3=True),
	"Restore Site": restore_site,
	"New Site from Backup": new_site_from_backup,
	"Restore Site Tables": site_job("Restore Site Tables", with_table_dumps),
	"Optimize Tables": site_job("Optimize Tables", lambda w, s: {"tables": ["tabDefaultValue"]}),
	"Rename Site": rename_site,
	"Update Site Pull": update_job("Update Site Pull", update_payload(OTHER)),
	"Update Site Migrate": update_job("Update Site Migrate", update_payload(OTHER)),
	"Move Site to Bench": update_job(
		"Move Site to Bench", {"deactivate": True, "activate": True, "skip_failing_patches": False}
	),
	"Recover Failed Site Pull": update_job("Recover Failed Site Pull", {}, recover="Update Site Pull"),
	"Recover Failed Site Migrate": update_job(
		"Recover Failed Site Migrate",
		{"rollback_scripts": {}, "restore_touched_tables": True},
		recover="Update Site Migrate",
	),
	"Recover Failed Site Update": update_job("Recover Failed Site Update", {}, recover="Update Site Pull"),
	"Ping Job": server_job("Ping Job", {}, "app"),
	"Cleanup Unused Files": server_job("Cleanup Unused Files", {}, "app"),
	"Update Database Schema Sizes": server_job("Update Database Schema Sizes", {}, "db"),
	"Add User to Proxy": server_job("Add User to Proxy", {"name": BENCH}, "proxy"),
	"Remove User from Proxy": server_job("Remove User from Proxy", {"path_args": {"user": BENCH}}, "proxy"),
	"Add Site to Upstream": proxy_job(
		"Add Site to Upstream", lambda w, s: {"name": s, "path_args": UPSTREAM}
	),
	"Remove Site from Upstream": proxy_job(
		"Remove Site from Upstream", with_route({"extra_domains": []}), site=True
	),
	"Update Site Status": proxy_job(
		"Update Site Status",
		with_route({"status": "suspended", "extra_domains": [], "skip_reload": False}),
		site=True,
	),
	"Add Domain to Upstream": proxy_job(
		"Add Domain to Upstream", lambda w, s: {**with_route({})(w, s), "name": s, "domain": f"shop.{s}"}
	),
	"Rename Site on Upstream": proxy_job(
		"Rename Site on Upstream",
		lambda w, s: {**with_route({})(w, s), "new_name": f"renamed-{s}", "domains": [s]},
		site=True,
	),
	"Add Host to Proxy": proxy_job("Add Host to Proxy", add_host),
	"Add Wildcard Hosts to Proxy": proxy_job("Add Wildcard Hosts to Proxy", wildcard_hosts),
	"Remove Host from Proxy": proxy_job("Remove Host from Proxy", remove_host),
	"Run Remote Builder": run_remote_builder,
}

# job types that cannot run here: job type -> why (none so far; Run Remote Builder runs on the stand-in
# build of tests/build_support.py)
EXEMPT: dict[str, str] = {}


def test_every_job_type_has_a_case():
	"""A job type added to the catalog without its idempotence case (or an exemption with the reason)
	fails here; so does a case of a job type the catalog no longer has."""
	catalog = all_handlers(ProxySettings("traefik", "nginx"), BuilderSettings("/nonexistent"))
	job_types = {handler.job_type for handler in catalog}
	assert set(CASES).isdisjoint(EXEMPT)
	assert sorted(job_types - set(CASES) - set(EXEMPT)) == [], "job types without an idempotence case"
	assert sorted(set(CASES) | set(EXEMPT)) == sorted(job_types)
	assert all(reason.strip() for reason in EXEMPT.values()), "an exemption says why"


@pytest.mark.parametrize("job_type", list(CASES))
def test_a_rerun_of_each_step_changes_nothing(world, job_type):
	CASES[job_type](world)


def test_the_check_catches_a_step_that_repeats_its_work(world):
	"""A step that appends instead of looking first: its second run shows in the probe."""
	backend = world.backend()
	note = f"{SITES}/idempotence-{uuid.uuid4().hex[:6]}.txt"

	def appends(ctx):
		ctx.run(backend, ["sh", "-c", f"echo again >> {note}"])

	found = handlers.handler("Bench Restart", "POST", "benches/{bench}/restart", [("Append", appends)])
	job = job_record(found, world.app, {}, BENCH)
	with pytest.raises(AssertionError, match=r"running step 'Append' again changed:(.|\n)*idempotence-"):
		assert_idempotent(job, found.steps, world.context(job), lambda: files(backend, SITES, skip=LOGS))
