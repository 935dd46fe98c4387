"""What a tenant's code can reach from inside its bench (issue 10).

A whole cluster made by Press's jobs (tests/platform_support.py): two benches on one app server, the
Database Server's MariaDB, the Proxy Server's Traefik and site router, a site on each bench. A probe
then runs in bench A's backend as its user ``frappe`` (as a site's code would) and tries every
address and port of the cluster by name and by IP. Only its own front, the MariaDB port (with the
site's own login, never root's) and itself answer; nothing of bench B, nor the proxy.
"""

from __future__ import annotations

import json
import uuid

import agent_support as support
import pytest
from backup_support import scratch_bucket
from platform_support import create_site, remove_platform, start_platform, through_traefik

from press_selfhosted.engine import naming

MINE, THEIRS = "bench-a", "bench-b"

PROBE = r"""
import json, socket, sys
found = {}
for target in json.loads(sys.argv[1]):
	host, port = target.rsplit(":", 1)
	try:
		socket.create_connection((host, int(port)), timeout=2).close()
		found[target] = "open"
	except socket.gaierror:
		found[target] = "no such name"
	except OSError as error:
		found[target] = type(error).__name__
status = dict(line.split(":\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\t" in line)
found["CapEff"], found["NoNewPrivs"] = status["CapEff"].strip(), status["NoNewPrivs"].strip()
print(json.dumps(found))
"""


@pytest.fixture(scope="module")
def world(docker_client, endpoints, store_config, registry_images, tmp_path_factory):
	prefix = f"n{uuid.uuid4().hex[:8]}"
	with scratch_bucket(endpoints, f"network-{prefix}"):
		platform = None
		try:
			contexts = str(tmp_path_factory.mktemp("contexts"))
			platform = start_platform(
				docker_client, endpoints, store_config, prefix, contexts, f"network-{prefix}"
			)
			for bench in (MINE, THEIRS):
				platform.run(
					platform.topology.app,
					"benches",
					support.new_bench_payload(bench, registry_images["plain"]),
				)
			sites = {bench: f"{bench}-{prefix}.example.test" for bench in (MINE, THEIRS)}
			for bench, site in sites.items():
				new_site, upstream = create_site(platform, site, bench)
				assert (new_site["status"], upstream["status"]) == ("Success", "Success"), new_site["data"]
			yield platform, sites
		finally:
			if platform:
				for worker in platform.workers:
					worker.join(timeout=120)
			remove_platform(docker_client, prefix)


def addresses(container) -> list[str]:
	container.reload()
	return [
		net["IPAddress"]
		for net in container.attrs["NetworkSettings"]["Networks"].values()
		if net["IPAddress"]
	]


def probe(container, targets: list[str]) -> dict:
	code, out = container.exec_run(["python3", "-c", PROBE, json.dumps(targets)], user="frappe")
	assert code == 0, out
	return json.loads(out)


def test_a_tenant_reaches_its_database_and_front_and_nothing_of_other_benches(world, docker_client):
	platform, sites = world
	prefix = platform.prefix
	mine, theirs = (naming.BenchNames.of(prefix, bench) for bench in (MINE, THEIRS))
	containers = {
		name: docker_client.containers.get(name)
		for name in (
			theirs.backend,
			theirs.front,
			naming.resource_name(prefix, "traefik"),
			naming.resource_name(prefix, "router"),
		)
	}
	forbidden = [f"{theirs.backend}:{port}" for port in (8000, 9000)] + [
		f"{theirs.front}:80",
		f"{prefix}-traefik:80",
		f"{prefix}-traefik:8080",
		f"{prefix}-router:80",
		f"{prefix}-router:8081",
	]
	for name, container in containers.items():
		ports = (8000, 9000) if name == theirs.backend else (80, 443, 8080)
		forbidden += [f"{ip}:{port}" for ip in addresses(container) for port in ports]
	allowed = [f"{mine.front}:80", "127.0.0.1:8000", f"{prefix}-mariadb:3306"]
	found = probe(docker_client.containers.get(mine.backend), forbidden + allowed)
	assert {target: found[target] for target in allowed} == dict.fromkeys(allowed, "open")
	reached = [target for target in forbidden if found[target] == "open"]
	assert reached == [], f"bench {MINE} reached {reached}"
	# no capability, no way to gain one
	assert (found["CapEff"], found["NoNewPrivs"]) == ("0000000000000000", "1")
	host = docker_client.containers.get(mine.backend).attrs["HostConfig"]
	assert host["PidsLimit"] == 4096 and host["CapDrop"] == ["ALL"]
	# and the site still answers through the proxy, /socket.io included (through its front)
	for path in ("/api/method/ping", "/socket.io/?EIO=4&transport=polling"):
		status, body = through_traefik(docker_client, platform, sites[MINE], path)
		assert status == 200, body


def test_mariadb_root_is_refused_from_a_bench_and_a_site_login_works(world, docker_client):
	platform, sites = world
	backend = docker_client.containers.get(naming.BenchNames.of(platform.prefix, MINE).backend)
	config = json.loads(
		backend.exec_run(["cat", f"/home/frappe/frappe-bench/sites/{sites[MINE]}/site_config.json"]).output
	)
	host = f"{platform.prefix}-mariadb"
	root_password = platform.secrets.values["mariadb_root_password"]

	def login(user: str, password: str) -> tuple[int, str]:
		code, out = backend.exec_run(
			["mariadb", f"--host={host}", f"--user={user}", "-N", "-B", "-e", "SELECT CURRENT_USER()"],
			environment={"MYSQL_PWD": password},
			user="frappe",
		)
		return code, out.decode(errors="replace")

	code, out = login("root", root_password)
	assert code != 0 and ("denied" in out or "not allowed" in out), out
	code, out = login(config["db_name"], config["db_password"])
	assert code == 0 and out.strip() == f"{config['db_name']}@%", out
