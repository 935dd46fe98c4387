"""The platform end to end as Press drives it (issues 4 and 6, "done when").

One cluster on our dockerd: an app server (its bench made by New Bench from the TLS + auth registry),
a Database Server (MariaDB container) and a Proxy Server (Traefik), all container servers on one
cluster network. Every job goes through the real Router, JobStore (MariaDB service) and Executors,
with Press's payload shapes: POST, then poll ``jobs/<id>`` until the job ends. Every outcome is
checked from outside: docker inspect, SQL as root, S3 objects, HTTP through Traefik's published port.
Only the Frappe layer is played by stand-ins (tests/platform_support.py). The tests run in file order
and share the cluster; each one continues the lifecycle where the previous one left it.
"""

from __future__ import annotations

import datetime
import json
import uuid

import agent_support as support
import pytest
from backup_support import checksum_of, scratch_bucket
from build_support import app_files, build_payload, frappe_files, make_app, press_dockerfile
from platform_support import (
	create_site,
	new_site_payload,
	remove_platform,
	start_platform,
	through_traefik,
	upstream,
)

from press_selfhosted.engine import naming
from press_selfhosted.engine.clients.mariadb import database_name
from press_selfhosted.engine.clients.registry import RegistryTarget
from press_selfhosted.engine.clients.storage import open_client
from press_selfhosted.engine.jobs.backups import table_counts
from press_selfhosted.engine.policies.registry_cleanup import list_tags, manifest_digest

BENCH = "bench-1"
SITES = "/home/frappe/frappe-bench/sites"
TABLE = "tabPlatform Note"


@pytest.fixture(scope="module")
def world(docker_client, endpoints, store_config, registry_images, tmp_path_factory):
	prefix = f"p{uuid.uuid4().hex[:8]}"
	bucket = f"platform-{prefix}"
	with scratch_bucket(endpoints, bucket) as target:
		platform = None
		try:
			contexts = str(tmp_path_factory.mktemp("contexts"))
			platform = start_platform(docker_client, endpoints, store_config, prefix, contexts, bucket)
			tag = f"{prefix}.example.test"
			yield {
				"platform": platform,
				"target": target,
				"contexts": contexts,
				"site": f"a-{tag}",
				"other": f"b-{tag}",
				"restored": f"r-{tag}",
				"domain": f"shop-{tag}",
			}
		finally:
			if platform:
				for worker in platform.workers:
					worker.join(timeout=120)
			remove_platform(docker_client, prefix)


def backend(docker_client, platform, bench=BENCH):
	return docker_client.containers.get(naming.resource_name(platform.prefix, bench))


def site_config(docker_client, platform, site: str, folder: str = "") -> dict | None:
	path = f"{SITES}/{folder + '/' if folder else ''}{site}/site_config.json"
	code, out = backend(docker_client, platform).exec_run(["cat", path])
	return json.loads(out) if code == 0 else None


def test_new_bench_pulls_from_the_tls_registry(world, docker_client, registry_images, endpoints):
	platform = world["platform"]
	tls = endpoints["registry_tls"]
	payload = support.new_bench_payload(
		BENCH,
		registry_images["tls"],
		registry={"url": tls["url"], "username": tls["username"], "password": ""},
	)
	job = platform.run(platform.topology.app, "benches", payload)
	assert [step["name"] for step in job["steps"]] == [
		"Initialize Bench",
		"Update Bench Configuration",
		"Deploy Bench",
		"Bench Setup NGINX",
	]
	container = backend(docker_client, platform)
	assert container.status == "running"
	assert container.image.id == docker_client.images.get(registry_images["tls"]).id
	# its own network only (the cluster network holds the fronts and the proxy)
	assert list(container.attrs["NetworkSettings"]["Networks"]) == [f"{platform.prefix}-{BENCH}-net"]
	assert tls["password"] not in json.dumps(job) + json.dumps(container.attrs)
	# Press sent the Database Server's private_ip; the bench reaches its MariaDB container by name instead
	assert payload["common_site_config"]["db_host"] == "10.9.0.2"
	code, out = container.exec_run(["cat", f"{SITES}/common_site_config.json"])
	assert code == 0, out
	database = platform.topology.database_for("")
	assert (json.loads(out)["db_host"], json.loads(out)["db_port"]) == (database.host, database.port)


def test_new_site_and_upstream_route_through_traefik(world, docker_client):
	platform, site, other = world["platform"], world["site"], world["other"]
	for name in (site, other):
		new_site, upstream_job = create_site(platform, name, BENCH)
		assert new_site["status"] == upstream_job["status"] == "Success", (new_site, upstream_job)
		assert [s["name"] for s in new_site["steps"]] == [
			"New Site",
			"Install Apps",
			"Update Site Configuration",
			"Enable Scheduler",
			"Create User",
			"Bench Setup NGINX",
			"Reload NGINX",
		]
		assert [s["name"] for s in upstream_job["steps"]] == [
			"Add Site File to Upstream Directory",
			"Reload NGINX",
		]
		assert platform.secrets.values["admin_password"] not in json.dumps(new_site)

	# the request reaches the bench through Traefik's published port and the bench's front
	status, body = through_traefik(docker_client, platform, site)
	assert (status, json.loads(body)) == (200, {"site": site})
	status, body = through_traefik(docker_client, platform, site, "/api/method/ping")
	assert (status, json.loads(body)) == (200, {"message": "pong"})

	# what Press's sync_apps reads after the site is Active
	answer = platform.router.handle(platform.topology.app.name, "GET", f"benches/{BENCH}/sites/{site}/apps")
	assert answer.status_code == 200
	assert [line.split()[0] for line in answer.json["data"].splitlines()] == ["frappe"]

	# one database and one user per site, as root sees it; no temporary users left
	db = platform.mariadb
	for name in (site, other):
		db_name = database_name(BENCH, name)
		assert db.database_exists(db_name)
		assert db.users(db_name) == [db_name]
		assert site_config(docker_client, platform, name)["plan"] == "starter"
	assert db.users("%\\_limited") == []
	assert [row[0] for row in db.sql("SELECT Host FROM mysql.user WHERE User = 'root'")] == ["localhost"]


def test_a_site_user_cannot_read_another_sites_database(world, docker_client):
	platform = world["platform"]
	mine = site_config(docker_client, platform, world["site"])
	theirs = database_name(BENCH, world["other"])
	code, out = backend(docker_client, platform).exec_run(
		[
			"mariadb",
			f"--user={mine['db_name']}",
			f"--host={platform.topology.database_for('').host}",
			"-e",
			f"SELECT COUNT(*) FROM `{theirs}`.`tabDefaultValue`",
		],
		environment={"MYSQL_PWD": mine["db_password"]},
	)
	assert code != 0 and "denied" in out.decode(), out
	code, out = backend(docker_client, platform).exec_run(
		[
			"mariadb",
			f"--user={mine['db_name']}",
			f"--host={platform.topology.database_for('').host}",
			"-e",
			"SHOW DATABASES",
		],
		environment={"MYSQL_PWD": mine["db_password"]},
	)
	assert code == 0 and theirs not in out.decode() and mine["db_name"] in out.decode()


def test_login_as_administrator_gives_a_working_session(world, docker_client):
	"""Press's Login as Administrator falls back to the agent's sid: the session must open the desk."""
	platform, site = world["platform"], world["site"]
	app = platform.topology.app
	answer = platform.router.handle(app.name, "GET", f"benches/{BENCH}/sites/{site}/sid")
	assert answer.status_code == 200, answer.json
	sid = answer.json["sid"]
	status, body = through_traefik(
		docker_client, platform, site, "/api/method/frappe.auth.get_logged_user", {"Cookie": f"sid={sid}"}
	)
	assert (status, json.loads(body)) == (200, {"message": "Administrator"})
	# the session is the site's own: another site does not know it
	status, _ = through_traefik(
		docker_client,
		platform,
		world["other"],
		"/api/method/frappe.auth.get_logged_user",
		{"Cookie": f"sid={sid}"},
	)
	assert status == 401
	posted = platform.router.handle(
		app.name, "POST", f"benches/{BENCH}/sites/{site}/sid", {"user": "Administrator"}
	)
	assert posted.status_code == 200 and posted.json["sid"] != sid
	other_user = platform.router.handle(
		app.name, "POST", f"benches/{BENCH}/sites/{site}/sid", {"user": "owner@example.com"}
	)
	assert other_user.status_code == 501 and "Administrator only" in other_user.json["output"]
	missing = platform.router.handle(app.name, "GET", f"benches/{BENCH}/sites/nope.example.test/sid")
	assert missing.status_code == 500 and "nope.example.test" in missing.json["output"]


def test_install_app_then_apps_answer(world):
	platform, site = world["platform"], world["site"]
	job = platform.run(platform.topology.app, f"benches/{BENCH}/sites/{site}/apps", {"name": "testapp"})
	assert [s["name"] for s in job["steps"]] == ["Install App on Site"]
	answer = platform.router.handle(platform.topology.app.name, "GET", f"benches/{BENCH}/sites/{site}/apps")
	assert [line.split()[0] for line in answer.json["data"].splitlines()] == ["frappe", "testapp"]


def set_status(platform, site: str, maintenance: int, status: str) -> None:
	"""Press's Site.suspend / unsuspend: the site's maintenance mode and the proxy's site status."""
	app, proxy = platform.topology.app, platform.topology.proxy
	config = platform.post(
		app,
		f"benches/{BENCH}/sites/{site}/config",
		{"config": {"maintenance_mode": maintenance}, "remove": []},
	)
	route = platform.post(
		proxy,
		f"{upstream(platform)}/sites/{site}/status",
		{"status": status, "extra_domains": [], "skip_reload": False},
	)
	for server, job in ((app, config), (proxy, route)):
		assert platform.poll(server, job)["status"] == "Success"


def test_suspend_and_unsuspend(world, docker_client):
	platform, site = world["platform"], world["site"]
	set_status(platform, site, 1, "suspended")
	status, body = through_traefik(docker_client, platform, site)
	assert status == 503 and "Site suspended" in body
	assert site_config(docker_client, platform, site)["maintenance_mode"] == 1

	set_status(platform, site, 0, "activated")
	status, body = through_traefik(docker_client, platform, site)
	assert (status, json.loads(body)) == (200, {"site": site})
	assert site_config(docker_client, platform, site)["maintenance_mode"] == 0


def test_domain_added_routes_then_removed(world, docker_client):
	platform, site, domain = world["platform"], world["site"], world["domain"]
	app, proxy = platform.topology.app, platform.topology.proxy
	platform.run(proxy, f"{upstream(platform)}/domains", {"name": site, "domain": domain})
	platform.run(app, f"benches/{BENCH}/sites/{site}/domains", {"domain": domain})
	assert domain in site_config(docker_client, platform, site)["domains"]
	status, body = through_traefik(docker_client, platform, domain)
	assert (status, json.loads(body)) == (200, {"site": site})

	platform.run(app, f"benches/{BENCH}/sites/{site}/domains/{domain}", {}, method="DELETE")
	assert domain not in site_config(docker_client, platform, site).get("domains", [])


def test_migrate(world, docker_client):
	platform, site = world["platform"], world["site"]
	job = platform.run(
		platform.topology.app,
		f"benches/{BENCH}/sites/{site}/migrate",
		{"skip_failing_patches": False, "activate": True},
	)
	assert f"bench --site {site} migrate" in job["steps"][0]["data"]["output"]
	assert site_config(docker_client, platform, site).get("maintenance_mode", 0) == 0


def offsite(world, site: str) -> dict:
	"""Press's offsite block (Site.backup → Agent.backup_site), keys in clear as Press sends them."""
	target = world["target"]
	return {
		"bucket": target.bucket,
		"auth": {
			"ACCESS_KEY": target.access_key,
			"SECRET_KEY": target.secret_key,
			"REGION": target.region,
			"PROVIDER": "Minio",
			"ENDPOINT_URL": target.endpoint_url,
		},
		"path": f"{site}/{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d}",
	}


def test_backup_to_s3_with_checksums(world):
	platform, site = world["platform"], world["site"]
	db_name = database_name(BENCH, site)
	platform.mariadb.sql(
		f"CREATE TABLE `{TABLE}` (name VARCHAR(140) PRIMARY KEY, note TEXT); "
		+ "".join(f"INSERT INTO `{TABLE}` VALUES ('n{i}', 'note {i}'); " for i in range(25)),
		database=db_name,
	)
	payload = {
		"with_files": True,
		"agent_job_timeout": 3600,
		"offsite": offsite(world, site),
		"keep_files_locally_after_offsite_backup": False,
	}
	job = platform.run(platform.topology.app, f"benches/{BENCH}/sites/{site}/backup", payload)
	data = job["data"]
	assert set(data["backups"]) == {"database", "site_config", "public", "private"}
	assert world["target"].secret_key not in json.dumps(job)
	with open_client(world["target"]) as s3:
		for name, key in data["offsite"].items():
			assert key.startswith(payload["offsite"]["path"] + "/")
			body = s3.get_object(Bucket=world["target"].bucket, Key=key)["Body"].read()
			assert checksum_of(body, data["checksums"][name]) == data["checksums"][name], name
	assert data["tables"][TABLE] == 25
	world["backup"] = platform.record_backup(data)
	world["backup_data"] = data


def test_archive_completes_after_the_proxy_removes_the_site(world, docker_client):
	platform, site = world["platform"], world["site"]
	app, proxy = platform.topology.app, platform.topology.proxy
	db_name = database_name(BENCH, site)
	archive = platform.post(
		app,
		f"benches/{BENCH}/sites/{site}/archive",
		{
			"mariadb_root_password": "press-sends-this-in-clear",
			"force": False,
			"offsite": offsite(world, site),
		},
	)
	removal = platform.post(
		proxy, f"{upstream(platform)}/sites/{site}", {"extra_domains": []}, method="DELETE"
	)
	removal_job, archive_job = platform.poll(proxy, removal), platform.poll(app, archive)
	assert removal_job["status"] == archive_job["status"] == "Success", archive_job["data"]
	assert archive_job["end"] >= removal_job["end"]
	assert archive_job["data"]["offsite"], "the archive's backup is in S3"
	assert not platform.mariadb.database_exists(db_name)
	assert platform.mariadb.users(db_name) == []
	assert platform.mariadb.users("%\\_limited") == []
	assert site_config(docker_client, platform, site) is None
	assert site_config(docker_client, platform, site, "archived")["db_name"] == db_name
	status, _ = through_traefik(docker_client, platform, site)
	assert status == 404


def test_new_site_from_backup_has_the_same_data(world, docker_client):
	platform, source, site = world["platform"], world["site"], world["restored"]
	data, target = world["backup_data"], world["target"]
	with open_client(target) as s3:
		urls = {
			kind: s3.generate_presigned_url(
				"get_object",
				Params={"Bucket": target.bucket, "Key": data["offsite"][data["backups"][kind]["file"]]},
			)
			for kind in ("database", "public", "private")
		}
	payload = {
		**new_site_payload(platform, site, apps=("frappe", "testapp")),
		"site_config": json.dumps({"maintenance_mode": 0}),
		"skip_failing_patches": False,
		**urls,
	}
	platform.topology.site_benches[site] = BENCH
	job_id = platform.post(platform.topology.app, f"benches/{BENCH}/sites/restore", payload)
	upstream_job = platform.post(platform.topology.proxy, f"{upstream(platform)}/sites", {"name": site})
	job = platform.poll(platform.topology.app, job_id)
	assert job["status"] == "Success", job["data"]["traceback"]
	assert platform.poll(platform.topology.proxy, upstream_job)["status"] == "Success"
	assert job["steps"][0]["name"] == "Download Backup Files"
	# Press resets the site's apps from the job's output
	assert [line.split()[0] for line in job["data"]["output"].splitlines()] == ["frappe", "testapp"]
	counts = table_counts(platform.mariadb, database_name(BENCH, site))
	expected = {t: n for t, n in data["tables"].items() if t != "tabPatch Log"}
	assert {t: n for t, n in counts.items() if t != "tabPatch Log"} == expected
	assert counts[TABLE] == 25
	status, body = through_traefik(docker_client, platform, site)
	assert (status, json.loads(body)) == (200, {"site": site})
	assert source != site


def test_built_image_becomes_a_bench_with_a_site(world, docker_client, endpoints, tmp_path):
	"""Issues 6 and 15: Run Remote Builder as Press asks for it (apps cloned from git repositories,
	BuildKit, pushed to the TLS registry); New Bench runs exactly that image; a site gets the built app."""
	platform, tls = world["platform"], endpoints["registry_tls"]
	build = f"dcb-{platform.prefix}"
	group = f"{platform.prefix}-group"
	repository = f"{tls['url']}/press/example.com/{group}"
	repos = [make_app(tmp_path, "frappe", frappe_files()), make_app(tmp_path, "shop", app_files("shop"))]
	dockerfile = press_dockerfile(endpoints["images"]["bench"], ["frappe", "shop"])
	payload = build_payload(build, group, repos, dockerfile, tls, repository)
	try:
		job = platform.poll(
			platform.topology.app, platform.post(platform.topology.app, "builder/build", payload)
		)
		assert job["status"] == "Success", json.dumps(job, indent=1)[-3000:]
		assert job["data"]["build_failed"] is False
		image = job["data"]["image"]
		assert image == f"{repository}:{build}"
		registry = RegistryTarget(tls["url"], "", tls["username"], tls["password"], ca_bundle=tls["ca_file"])
		path = repository.split("/", 1)[1]
		assert list_tags(registry, path) == [build]
		assert manifest_digest(registry, path, build) == job["data"]["image_digest"]

		docker_client.images.remove(image, force=True)
		bench = "bench-built"
		payload = support.new_bench_payload(
			bench, image, registry={"url": tls["url"], "username": tls["username"], "password": ""}
		)
		platform.run(platform.topology.app, "benches", payload)
		pulled = docker_client.images.get(image)
		assert f"{repository}@{job['data']['image_digest']}" in pulled.attrs["RepoDigests"]
		container = backend(docker_client, platform, bench)
		assert container.image.id == pulled.id == job["data"]["image_id"]

		site = f"built-{platform.prefix}.example.test"
		platform.topology.site_benches[site] = bench
		new_site = platform.post(
			platform.topology.app,
			f"benches/{bench}/sites",
			new_site_payload(platform, site, ("frappe", "shop")),
		)
		upstream_job = platform.post(platform.topology.proxy, f"{upstream(platform)}/sites", {"name": site})
		assert platform.poll(platform.topology.app, new_site)["status"] == "Success"
		assert platform.poll(platform.topology.proxy, upstream_job)["status"] == "Success"
		apps = platform.router.handle(
			platform.topology.app.name, "GET", f"benches/{bench}/sites/{site}/apps"
		).json
		assert "shop" in apps["data"], apps
		code, out = container.exec_run(["cat", "apps/shop/.git/refs/heads/develop"])
		assert code == 0 and out.decode().strip() == repos[1].commits[-1]
	finally:
		for tag in [t for i in docker_client.images.list(name=repository) for t in i.tags]:
			docker_client.images.remove(tag, force=True)


def test_archive_bench_takes_its_network_away_from_the_database_server(world, docker_client, registry_images):
	"""MariaDB joins every bench's own network: archiving the bench must take it out again, or Docker
	refuses to remove the network (seen with Press's docker-py 6.1, whose listed networks hold no containers)."""
	platform = world["platform"]
	bench = "bench-gone"
	platform.run(platform.topology.app, "benches", support.new_bench_payload(bench, registry_images["plain"]))
	network = naming.BenchNames.of(platform.prefix, bench).network
	mariadb = platform.mariadb.container
	mariadb.reload()
	assert network in mariadb.attrs["NetworkSettings"]["Networks"]
	job = platform.run(platform.topology.app, f"benches/{bench}/archive", {})
	assert job["status"] == "Success"
	assert docker_client.networks.list(names=[network]) == []
	mariadb.reload()
	assert mariadb.status == "running" and network not in mariadb.attrs["NetworkSettings"]["Networks"]
