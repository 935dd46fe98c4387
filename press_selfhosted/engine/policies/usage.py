"""What a site uses, measured where it lives: its database in the Database Server's MariaDB container,
its files in its bench container.

- database: data + index bytes of the site's schema (``information_schema.TABLES``), as Press counts it;
- files: bytes under ``sites/<site>/public``, ``private/files`` and ``private/backups`` (``du``, apparent
  size), kept apart because Press's storage limit covers public and private files, not backups;
- users: enabled System Users other than Administrator and Guest, what a per-plan user limit counts.

The site's database is the one the engine recorded for it on the database server, never the name in
its ``site_config.json`` (code in the bench can rewrite that file).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from docker.models.containers import Container

from press_selfhosted.engine import naming
from press_selfhosted.engine.clients import docker_exec
from press_selfhosted.engine.clients.mariadb import MariaDB, checked_name, quote
from press_selfhosted.engine.errors import SiteNotInBench
from press_selfhosted.engine.validation import validate_fqdn

USERS_QUERY = (
	"SELECT COUNT(*) FROM `tabUser` WHERE enabled = 1 AND user_type = 'System User' "
	"AND name NOT IN ('Administrator', 'Guest')"
)
# Sizes of the given directories, 0 for one that does not exist (a site without private files).
READ = docker_exec.Exec(reads_only=True)
DU = 'for d in "$@"; do if [ -d "$d" ]; then du -sb -- "$d"; else printf "0\\t%s\\n" "$d"; fi; done'


@dataclass(frozen=True)
class SiteUsage:
	site: str
	database: int  # bytes
	public: int  # bytes
	private: int  # bytes, without backups
	backups: int  # bytes
	users: int

	@property
	def storage(self) -> int:
		"""Bytes that count against Press's storage limit (public + private files)."""
		return self.public + self.private


def site_config(bench: Container, site: str) -> dict:
	validate_fqdn(site, "site")
	result = docker_exec.run(bench, ["cat", f"sites/{site}/site_config.json"], READ, check=False)
	if result.exit_code != 0:
		raise SiteNotInBench(
			f"Site {site} has no site_config.json in bench container {bench.name}: {result.stderr.strip()}. "
			"Check that the site lives on this bench (Site.bench) and was created."
		)
	return json.loads(result.stdout)


def file_sizes(bench: Container, site: str) -> tuple[int, int, int]:
	"""Bytes of (public, private files, backups) of ``site`` in its bench container."""
	validate_fqdn(site, "site")
	base = f"sites/{site}"
	directories = [f"{base}/public", f"{base}/private/files", f"{base}/private/backups"]
	result = docker_exec.run(bench, ["sh", "-c", DU, "sh", *directories], READ)
	sizes = dict(reversed(line.split("\t", 1)) for line in result.stdout.splitlines())
	return tuple(int(sizes[directory]) for directory in directories)


def database_usage(db: MariaDB, db_name: str) -> tuple[int, int]:
	"""Bytes of the site's database and its count of enabled system users."""
	size = db.sql(
		"SELECT COALESCE(SUM(DATA_LENGTH + INDEX_LENGTH), 0) FROM information_schema.TABLES "
		f"WHERE TABLE_SCHEMA = {quote(db_name)}"
	)
	users = db.sql(USERS_QUERY, database=checked_name(db_name))
	return int(size[0][0]), int(users[0][0])


def measure(bench: Container, db: MariaDB, site: str) -> SiteUsage:
	site_config(bench, site)  # the site lives on this bench
	db_name = db.database_of(site, bench.labels.get(naming.BENCH, ""), bench.labels.get(naming.SERVER, ""))
	if db_name is None:
		raise SiteNotInBench(
			f"No database is recorded for site {site} on database server {db.server}. Fix: record it (README, "
			"Security model); its site_config.json is not trusted for this."
		)
	public, private, backups = file_sizes(bench, site)
	database, users = database_usage(db, db_name)
	return SiteUsage(site, database, public, private, backups, users)
