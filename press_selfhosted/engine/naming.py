"""Names and labels of everything the engine creates on a container server.

Every container, volume and network starts with the server's ``container_prefix`` and carries the
``press.*`` labels, so the engine can always find again what exists (one filtered Docker query) and
repair or remove it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from press_selfhosted.engine.errors import NotOwned

MANAGED = "press.managed"
SERVER = "press.server"
ROLE = "press.role"
BENCH = "press.bench"
SITE = "press.site"
# digest of what a container was made from (image, environment, mounts, hardening): another one means
# the container is made again
SPEC = "press.spec"


def labels(server: str, role: str, bench: str | None = None, site: str | None = None) -> dict[str, str]:
	found = {MANAGED: "1", SERVER: server, ROLE: role}
	if bench:
		found[BENCH] = bench
	if site:
		found[SITE] = site
	return found


def owned(
	found: dict | None,
	server: str,
	role: str | None = None,
	bench: str | None = None,
	site: str | None = None,
) -> bool:
	"""Do the labels ``found`` say the engine made this object for ``server`` (and the role, bench and
	site given)? Nothing is removed or replaced without it: an object of the same name the operator
	made, or another server's, is left alone."""
	found = found or {}
	wanted = {MANAGED: "1", SERVER: server, ROLE: role, BENCH: bench, SITE: site}
	return all(found.get(key) == value for key, value in wanted.items() if value is not None)


def require_owned(
	obj, kind: str, server: str, role: str | None = None, bench: str | None = None, site: str | None = None
) -> None:
	"""Raises NotOwned (naming the object, its labels and the fix) unless ``obj`` is ours."""
	labels = (obj.labels if kind == "container" else obj.attrs.get("Labels")) or {}
	if not owned(labels, server, role, bench, site):
		expected = labels_of(server, role, bench, site)
		raise NotOwned(
			f"The {kind} {obj.name} on server {server} is not one press_selfhosted made for it "
			f"(labels {dict(sorted(labels.items())) or 'none'}, expected {expected}), so it is left alone. "
			f"Fix: rename or remove that {kind} yourself if it is not needed, or change the server's "
			"container_prefix, then retry the job."
		)


def labels_of(server: str, role: str | None, bench: str | None, site: str | None) -> dict[str, str]:
	found = {MANAGED: "1", SERVER: server}
	for key, value in ((ROLE, role), (BENCH, bench), (SITE, site)):
		if value is not None:
			found[key] = value
	return found


def label_filters(server: str, **match: str) -> list[str]:
	"""Docker ``label`` filters for what belongs to ``server`` (and e.g. ``bench=...``, ``role=...``)."""
	found = [f"{MANAGED}=1", f"{SERVER}={server}"]
	found += [f"press.{key}={value}" for key, value in match.items()]
	return found


def resource_name(prefix: str, *parts: str) -> str:
	return "-".join((prefix, *parts))


def mariadb_container(prefix: str) -> str:
	"""The MariaDB container of a container Database Server: also its host name on bench networks."""
	return resource_name(prefix, "mariadb")


def cluster_network(cluster: str | None) -> str:
	"""The Docker network of a Press Cluster's container servers (``press-<cluster>``, lowercased, any run
	of characters Docker refuses in a network name made one hyphen)."""
	return "press-" + re.sub(r"[^a-z0-9_.-]+", "-", (cluster or "default").lower()).strip("-")


@dataclass(frozen=True)
class BenchNames:
	"""What a bench is made of on an app server: the backend (the bench image), the static-file front,
	the sites and logs volumes, the scratch container that seeds volumes from the image, and the
	bench's own network (its backend, its front and the database server's MariaDB: nothing else)."""

	backend: str
	front: str
	sites: str
	logs: str
	scratch: str
	network: str

	@classmethod
	def of(cls, prefix: str, bench: str) -> BenchNames:
		return cls(
			backend=resource_name(prefix, bench),
			front=resource_name(prefix, bench, "front"),
			sites=resource_name(prefix, bench, "sites"),
			logs=resource_name(prefix, bench, "logs"),
			scratch=resource_name(prefix, bench, "scratch"),
			network=resource_name(prefix, bench, "net"),
		)
