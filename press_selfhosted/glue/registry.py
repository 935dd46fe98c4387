"""The default Local Registry as Press's registry, and the builder's wiring.

Press names images ``<docker_registry_url>/<docker_registry_namespace>/<domain>/<group>:<build>``
and reads the registry from Press Settings' ``docker_registry_*`` fields (builds, New Bench) and from
Cluster ``repository`` (the registry host New Bench pulls from); it never reads a Registry Server
or our Local Registry. So those fields follow the default Local Registry.

``docker_registry_password`` is a clear Data field in Press: Press reads it with
``frappe.db.get_value`` and copies it into every ``Run Remote Builder`` and ``New Bench`` payload.
Our handlers never use that copy (they read the Local Registry's Password field through
``ctx.secret("registry_password")``), so it stays empty unless ``publish_password`` is asked for,
which only servers driven by the real Agent need.
"""

from __future__ import annotations

import frappe

from press_selfhosted.engine.clients.registry import RegistryTarget
from press_selfhosted.engine.errors import BuildRequestError
from press_selfhosted.engine.jobs import builds
from press_selfhosted.record_rules import infrastructure

LOCAL_REGISTRY = "Local Registry"
BUILDS_FOLDER = "press_selfhosted-builds"


def sync_default_registry(publish_password: bool = False) -> dict[str, str]:
	"""Writes the default Local Registry into Press Settings and the Clusters that follow it."""
	name = frappe.db.get_value(LOCAL_REGISTRY, {"is_default": 1})
	if not name:
		return {}
	registry = frappe.get_doc(LOCAL_REGISTRY, name)
	password = registry.get_password("password", raise_exception=False) if publish_password else None
	values = infrastructure.press_settings_values(registry, password)
	previous = frappe.db.get_single_value("Press Settings", "docker_registry_url")
	frappe.db.set_single_value("Press Settings", values)
	clusters = frappe.get_all("Cluster", fields=["name", "repository"])
	for cluster in infrastructure.clusters_to_update(clusters, previous):
		frappe.db.set_value("Cluster", cluster, "repository", values["docker_registry_url"])
	return values


def on_local_registry_update(doc, method=None) -> None:
	"""doc_events hook (Local Registry ``on_update``)."""
	if doc.get("is_default"):
		sync_default_registry()


def registry_target_for(url: str) -> RegistryTarget:
	"""The Local Registry behind ``url`` (Press's ``registry.url``) without its password, for the builder."""
	for name in frappe.get_all(LOCAL_REGISTRY, order_by="is_default desc", pluck="name"):
		doc = frappe.get_doc(LOCAL_REGISTRY, name)
		target = infrastructure.registry_target(doc, None)
		if infrastructure.image_host(target) == url.split("://", 1)[-1].rstrip("/"):
			return target
	frappe.throw(
		f"No Local Registry has the URL {url} that Press Settings' docker_registry_url names. "
		"Fix: tick Default on the Local Registry to use; press_selfhosted then writes its URL into Press Settings."
	)


def builder_settings() -> builds.BuilderSettings:
	"""The builder works in the site's private folder: the clone cache and the build directories
	(removed by each build's Cleanup Context). ``press_selfhosted_docker_cli`` in site_config names
	another docker CLI with BuildKit than Debian's ``/usr/bin/docker``."""
	return builds.BuilderSettings(
		workdir=frappe.get_site_path("private", BUILDS_FOLDER),
		registry_target=registry_target_for,
		docker_cli=frappe.conf.get("press_selfhosted_docker_cli") or "/usr/bin/docker",
	)


def save_build_context(build: str, files: dict) -> dict[str, str]:
	"""``POST builder/upload/<build>``: this Press sends clone instructions instead of a context."""
	raise BuildRequestError(
		f"build context upload for {build} refused: press_selfhosted's builder clones the apps itself from "
		"the clone instructions of builder/build, as the Agent does; no upload is used."
	)


# a cached clone no build used for a month goes; a build directory a dead worker left, after a week
STALE_CLONE_SECONDS = 30 * 24 * 3600
STALE_BUILD_SECONDS = 7 * 24 * 3600


def prune_build_contexts() -> list[str]:
	"""Scheduler (daily): the clone cache's unused commits and abandoned build directories."""
	return builds.prune_workdir(builder_settings(), STALE_CLONE_SECONDS, STALE_BUILD_SECONDS)
