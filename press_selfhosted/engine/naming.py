"""Names and labels of everything the engine creates on a container server.

Every container, volume and network starts with the server's ``container_prefix`` and carries the
``press.*`` labels, so the engine can always find again what exists (one filtered Docker query) and
repair or remove it.
"""

from __future__ import annotations

MANAGED = "press.managed"
SERVER = "press.server"
ROLE = "press.role"
BENCH = "press.bench"
SITE = "press.site"


def labels(server: str, role: str, bench: str | None = None, site: str | None = None) -> dict[str, str]:
	found = {MANAGED: "1", SERVER: server, ROLE: role}
	if bench:
		found[BENCH] = bench
	if site:
		found[SITE] = site
	return found


def label_filters(server: str, **match: str) -> list[str]:
	"""Docker ``label`` filters for what belongs to ``server`` (and e.g. ``bench=...``, ``role=...``)."""
	found = [f"{MANAGED}=1", f"{SERVER}={server}"]
	found += [f"press.{key}={value}" for key, value in match.items()]
	return found


def resource_name(prefix: str, *parts: str) -> str:
	return "-".join((prefix, *parts))
