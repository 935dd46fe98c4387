"""Names and labels of everything the engine creates on a container server.

Every container, volume and network starts with the server's ``container_prefix`` and carries the
``press.*`` labels, so the engine can always find again what exists (one filtered Docker query) and
repair or remove it.
"""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class BenchNames:
	"""What a bench is made of on an app server: the backend (the bench image), the static-file front,
	the sites and logs volumes, and the scratch container that seeds volumes from the image."""

	backend: str
	front: str
	sites: str
	logs: str
	scratch: str

	@classmethod
	def of(cls, prefix: str, bench: str) -> BenchNames:
		return cls(
			backend=resource_name(prefix, bench),
			front=resource_name(prefix, bench, "front"),
			sites=resource_name(prefix, bench, "sites"),
			logs=resource_name(prefix, bench, "logs"),
			scratch=resource_name(prefix, bench, "scratch"),
		)
