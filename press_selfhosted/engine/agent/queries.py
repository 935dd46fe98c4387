"""Press's direct (job-less) status and info queries, answered from the bench containers.

Press's periodic syncs call these on every Active bench and site (press-facts §4):
- ``GET benches/<b>/status`` → ``{"sites": {site: {"scheduler": bool, "web": bool}}, "timestamp"}``;
- ``POST benches/<b>/info`` (``{"since": ts}``, ``Bench.sync_info``) → ``{site: {"config", "usage": [..],
  "timezone"}}``, each usage entry ``{database, public, private, backups, timestamp}`` in MiB;
- ``GET benches/<b>/sites/<s>/info`` → ``{"data": {"config", "timezone", "usage"}}``;
- ``GET benches/<b>/sites/<s>/status`` → ``{"data": {"scheduler", "web", "timestamp"}}``.

The Agent keeps a usage log written by a cron; here usage is measured at the time of the query, so the
answer to ``info`` holds one measurement whatever ``since`` is. All facts of a bench come from one
``docker exec`` of :data:`FACTS` in its backend container: site configs and file sizes from the sites
volume, database size, time zone and scheduler flag from MariaDB with the site's own login (as the
Agent's ``Site.timezone`` does), and ``/api/method/ping`` through the bench's front with the site's Host.
``db_password`` never leaves the container: Press does not keep it and it is a secret.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from docker.models.containers import Container

from press_selfhosted.engine import naming
from press_selfhosted.engine.clients import docker_exec
from press_selfhosted.engine.clients.docker_hosts import DockerHosts
from press_selfhosted.engine.clients.mariadb import find_mariadb
from press_selfhosted.engine.errors import DatabaseError, QueryFailed
from press_selfhosted.engine.jobs.handlers import Topology
from press_selfhosted.engine.validation import validate_fqdn

MIB = 1024 * 1024

# Runs in the backend as the bench user: argv = front container name, then the sites (none: all).
FACTS = r"""
import json, os, subprocess, sys, tempfile, urllib.error, urllib.request

def load(path):
	try:
		with open(path) as handle:
			return json.load(handle)
	except (OSError, ValueError):
		return None

def size(top, skip=()):
	total = 0
	for folder, dirs, files in os.walk(top):
		dirs[:] = [d for d in dirs if os.path.join(folder, d) not in skip]
		for name in files:
			try:
				total += os.lstat(os.path.join(folder, name)).st_size
			except OSError:
				pass
	return total

def database(config, common):
	login = "[client]\nuser=%s\npassword=%s\nhost=%s\nport=%s\n" % (
		config.get("db_user") or config["db_name"], config["db_password"],
		config.get("db_host") or common.get("db_host") or "127.0.0.1",
		config.get("db_port") or common.get("db_port") or 3306)
	sql = ("SELECT COALESCE(SUM(DATA_LENGTH + INDEX_LENGTH), 0) FROM information_schema.TABLES "
		"WHERE TABLE_SCHEMA = DATABASE(); SELECT field, value FROM `tabSingles` "
		"WHERE doctype = 'System Settings' AND field IN ('enable_scheduler', 'time_zone')")
	with tempfile.NamedTemporaryFile("w", suffix=".cnf") as options:
		os.chmod(options.name, 0o600)
		options.write(login)
		options.flush()
		done = subprocess.run(["mariadb", "--defaults-extra-file=" + options.name, "--connect-timeout=5",
			"-N", "-B", config["db_name"], "-e", sql], capture_output=True, text=True, timeout=60)
	if done.returncode:
		return {"error": done.stderr.strip()[-500:]}
	lines = done.stdout.splitlines()
	return {"size": int(lines[0]), "settings": dict(line.split("\t", 1) for line in lines[1:] if "\t" in line)}

def ping(front, site):
	request = urllib.request.Request("http://%s/api/method/ping" % front, headers={"Host": site})
	try:
		return urllib.request.urlopen(request, timeout=5).status
	except urllib.error.HTTPError as error:
		return error.code
	except Exception:
		return 0

front, wanted = sys.argv[1], sys.argv[2:]
common = load("sites/common_site_config.json") or {}
facts = {}
for site in wanted or sorted(os.listdir("sites")):
	config = load(os.path.join("sites", site, "site_config.json"))
	if not isinstance(config, dict) or "db_name" not in config:
		continue
	private = os.path.join("sites", site, "private")
	backups = os.path.join(private, "backups")
	facts[site] = {
		"config": {key: value for key, value in config.items() if key != "db_password"},
		"common": {key: common.get(key) for key in ("maintenance_mode", "pause_scheduler")},
		"public": size(os.path.join("sites", site, "public")),
		"private": size(private, skip=(backups,)),
		"backups": size(backups),
		"database": database(config, common),
		"ping": ping(front, site),
	}
print(json.dumps(facts))
"""


@dataclass(frozen=True)
class SiteFacts:
	"""What the backend container says of one site; ``database_error`` when MariaDB refused the login."""

	site: str
	config: dict[str, Any]
	common: dict[str, Any]
	public: int
	private: int
	backups: int
	ping: int
	database: int | None = None
	settings: dict[str, str] | None = None
	database_error: str | None = None

	@classmethod
	def of(cls, site: str, raw: dict[str, Any]) -> SiteFacts:
		db = raw["database"]
		return cls(
			site=site,
			config=raw["config"],
			common=raw["common"],
			public=raw["public"],
			private=raw["private"],
			backups=raw["backups"],
			ping=raw["ping"],
			database=db.get("size"),
			settings=db.get("settings"),
			database_error=db.get("error"),
		)

	@property
	def web(self) -> bool:
		"""The site answers through the front: any answer but a missing route or a gateway error."""
		return 200 <= self.ping < 400

	@property
	def scheduler(self) -> bool:
		"""Frappe's own rule: enabled in System Settings and neither paused nor in maintenance."""
		if self.settings is None or str(self.settings.get("enable_scheduler")) != "1":
			return False
		flags = ("maintenance_mode", "pause_scheduler")
		return not any(self.config.get(flag) or self.common.get(flag) for flag in flags)

	@property
	def timezone(self) -> str | None:
		return (self.settings or {}).get("time_zone") or None

	def usage(self) -> dict[str, float]:
		if self.database is None:
			raise QueryFailed(
				503,
				f"the database of site {self.site} did not answer its own login ({self.database_error}); "
				"check the Database Server's MariaDB container and the site's db_* keys in site_config.json",
			)
		sizes = {
			"database": self.database,
			"public": self.public,
			"private": self.private,
			"backups": self.backups,
		}
		return {key: round(value / MIB, 2) for key, value in sizes.items()}


def _stamp(now: datetime) -> str:
	return now.strftime("%Y-%m-%d %H:%M:%S.%f")


def bench_status(facts: list[SiteFacts], now: datetime) -> dict[str, Any]:
	return {
		"sites": {fact.site: {"scheduler": fact.scheduler, "web": fact.web} for fact in facts},
		"timestamp": _stamp(now),
	}


def sites_info(facts: list[SiteFacts], now: datetime) -> dict[str, Any]:
	"""A site whose database does not answer gets no usage entry: Press then keeps its last one."""
	info = {}
	for fact in facts:
		usage = [{**fact.usage(), "timestamp": _stamp(now)}] if fact.database is not None else []
		info[fact.site] = {"config": fact.config, "usage": usage, "timezone": fact.timezone}
	return info


def site_info(fact: SiteFacts) -> dict[str, Any]:
	return {"data": {"config": fact.config, "timezone": fact.timezone, "usage": fact.usage()}}


def site_status(fact: SiteFacts, now: datetime) -> dict[str, Any]:
	return {"data": {"scheduler": fact.scheduler, "web": fact.web, "timestamp": _stamp(now)}}


@dataclass(frozen=True)
class Answer:
	json: Any


_BENCH = r"benches/(?P<bench>[^/]+)"
_ROUTES: tuple[tuple[str, re.Pattern[str], str], ...] = (
	("GET", re.compile(rf"^{_BENCH}/status$"), "bench_status"),
	("POST", re.compile(rf"^{_BENCH}/info$"), "sites_info"),
	("GET", re.compile(rf"^{_BENCH}/sites/(?P<site>[^/]+)/info$"), "site_info"),
	("GET", re.compile(rf"^{_BENCH}/sites/(?P<site>[^/]+)/status$"), "site_status"),
)
# Press's "Login as Administrator" (Site.get_login_sid -> Agent.get_site_sid): GET, or POST {"user"}
_SID = re.compile(rf"^{_BENCH}/sites/(?P<site>[^/]+)/sid$")
_ANALYTICS = re.compile(rf"^{_BENCH}/analytics$")
_LOGIN_URL = re.compile(r"\?sid=([0-9a-zA-Z]+)")


class Queries:
	def __init__(
		self,
		topology: Topology,
		docker_hosts: DockerHosts,
		clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc).replace(tzinfo=None),
	):
		self.topology = topology
		self.docker_hosts = docker_hosts
		self.clock = clock  # naive UTC, as Press reads agent times

	def answer(
		self, server: str, server_type: str, method: str, path: str, data: Any = None
	) -> Answer | None:
		"""The answer to a direct query, or None when ``method path`` is not one of these queries."""
		if (method, path) == ("GET", "server/running-benches"):
			return Answer({"benches": self.running_benches(server_type, server)})
		if (method, path) == ("POST", "database/ping"):
			return Answer({"reachable": self.database_answers(server_type, server, data)})
		if method == "GET" and _ANALYTICS.match(path):
			# the Agent's analytics come from log files and crons a container bench does not have;
			# an empty answer tells Press's daily sync there is nothing to record
			return Answer({})
		match = _SID.match(path)
		if match and method in ("GET", "POST"):
			user = (data or {}).get("user") if isinstance(data, dict) else None
			return Answer({"sid": self.login_sid(server_type, server, match["bench"], match["site"], user)})
		for route_method, pattern, kind in _ROUTES:
			match = pattern.match(path)
			if match and method == route_method:
				site = match.groupdict().get("site")
				facts = self.facts(server_type, server, match["bench"], site)
				if site is None:
					build = bench_status if kind == "bench_status" else sites_info
					return Answer(build(facts, self.clock()))
				if not facts:
					raise QueryFailed(
						404,
						f"site {site} has no site_config.json in bench {match['bench']} on server {server}",
					)
				if kind == "site_info":
					return Answer(site_info(facts[0]))
				return Answer(site_status(facts[0], self.clock()))
		return None

	def _in_backend(
		self,
		server_type: str,
		server: str,
		bench: str,
		what: str,
		argv: Callable[[naming.BenchNames], list[str]],
	) -> docker_exec.CommandResult:
		"""``argv`` run in the bench's running backend container (its exit code is the caller's to judge)."""
		host = self.topology.server(server_type, server)
		names = naming.BenchNames.of(host.container_prefix, bench)

		def run(client) -> docker_exec.CommandResult:
			containers = client.containers.list(all=True, filters={"name": f"^{names.backend}$"})
			if not containers:
				raise QueryFailed(404, f"bench {bench} has no container {names.backend} on server {server}")
			backend: Container = containers[0]
			if backend.status != "running":
				raise QueryFailed(
					503,
					f"bench {bench} on server {server}: container {names.backend} is {backend.status}; "
					"start it (Bench Restart in Press) and ask again",
				)
			return docker_exec.run(backend, argv(names), check=False)

		return self.docker_hosts.call(host.docker, what, run)

	def running_benches(self, server_type: str, server: str) -> list[str]:
		"""Benches whose backend container runs on the server (Press looks for zombies among them)."""
		host = self.topology.server(server_type, server)

		def listed(client) -> list[str]:
			filters = {"label": naming.label_filters(server, role="bench"), "status": "running"}
			return sorted(
				{c.labels.get(naming.BENCH) for c in client.containers.list(filters=filters)} - {None}
			)

		return self.docker_hosts.call(host.docker, "listing the running benches", listed)

	def database_answers(self, server_type: str, server: str, data: Any) -> bool:
		"""Whether the Database Server's MariaDB answers root with the password Press sends."""
		host = self.topology.server(server_type, server)
		password = (data or {}).get("mariadb_root_password") if isinstance(data, dict) else None
		if not password:
			raise QueryFailed(400, "database/ping: mariadb_root_password is missing from the request")
		name = naming.mariadb_container(host.container_prefix)

		def ping(client) -> bool:
			try:
				find_mariadb(client, host, name, password).sql("SELECT 1")
			except DatabaseError:
				return False
			return True

		return self.docker_hosts.call(host.docker, "pinging MariaDB", ping)

	def login_sid(self, server_type: str, server: str, bench: str, site: str, user: str | None) -> str:
		"""A session of Administrator on the site, from ``bench browse`` as the Agent's fallback does.

		Other users need Frappe's developer mode for ``browse`` (the Agent runs Python in the bench
		console for them); press_selfhosted signs in as Administrator only."""
		if user not in (None, "", "Administrator"):
			raise QueryFailed(
				501, f"press_selfhosted signs in to container sites as Administrator only, not as {user}"
			)
		site = validate_fqdn(site, "site")
		result = self._in_backend(
			server_type,
			server,
			bench,
			f"signing in to {site}",
			lambda _names: ["bench", "--site", site, "browse", "--user", "Administrator"],
		)
		found = _LOGIN_URL.search(result.stdout) if result.exit_code == 0 else None
		if not found:
			detail = "no session in its answer" if result.exit_code == 0 else result.stderr.strip()[-500:]
			raise QueryFailed(500, f"bench browse could not sign in to {site} on bench {bench}: {detail}")
		return found.group(1)

	def facts(self, server_type: str, server: str, bench: str, site: str | None) -> list[SiteFacts]:
		result = self._in_backend(
			server_type,
			server,
			bench,
			f"reading the sites of bench {bench}",
			lambda names: ["python3", "-c", FACTS, names.front, *([site] if site else [])],
		)
		if result.exit_code != 0:
			raise QueryFailed(
				500, f"reading the sites of bench {bench} on server {server} failed: {result.output[-1500:]}"
			)
		return [SiteFacts.of(name, raw) for name, raw in json.loads(result.stdout).items()]
