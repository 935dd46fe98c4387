"""Registry hygiene: list an image's tags and delete the tags no bench uses any more (v2 API).

A registry deletes manifests, not tags: ``DELETE /v2/<name>/manifests/<digest>`` removes every tag
that points at that digest. A tag that is not referenced is therefore kept when it shares its digest
with a referenced tag. Deleting needs the registry's ``storage.delete.enabled``; the space comes back
after the registry's garbage collection.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import quote

from press_selfhosted.engine.clients.registry import RegistryClient, RegistryTarget
from press_selfhosted.engine.errors import RegistryError

# Docker's push stores schema 2 (or OCI) manifests; the digest answered depends on the Accept header.
MANIFEST_ACCEPT = (
	"application/vnd.docker.distribution.manifest.v2+json, "
	"application/vnd.docker.distribution.manifest.list.v2+json, "
	"application/vnd.oci.image.manifest.v1+json, "
	"application/vnd.oci.image.index.v1+json"
)


def _scope(repository: str, actions: str) -> str:
	return f"repository:{repository}:{actions}"


def _tags(client: RegistryClient, repository: str) -> list[str]:
	response = client.request(
		"GET", f"/v2/{repository}/tags/list", scope=_scope(repository, "pull"), expect=(200, 404)
	)
	if response.status_code == 404:
		return []
	return sorted((response.json() or {}).get("tags") or [])


def _digest(client: RegistryClient, repository: str, tag: str) -> str | None:
	response = client.request(
		"HEAD",
		f"/v2/{repository}/manifests/{quote(tag, safe='')}",
		scope=_scope(repository, "pull"),
		headers={"Accept": MANIFEST_ACCEPT},
		expect=(200, 404),
	)
	if response.status_code == 404:
		return None
	digest = response.headers.get("Docker-Content-Digest")
	if not digest:
		raise RegistryError(
			f"The registry {client.base_url} answered {repository}:{tag} without a Docker-Content-Digest header."
		)
	return digest


def list_tags(target: RegistryTarget, repository: str) -> list[str]:
	"""The tags of ``repository`` (a path in the registry, e.g. ``press/example.com/bench-0001``)."""
	with RegistryClient(target) as client:
		return _tags(client, repository)


def manifest_digest(target: RegistryTarget, repository: str, tag: str) -> str | None:
	"""The digest the registry serves for ``repository:tag``, or None when the tag does not exist."""
	with RegistryClient(target) as client:
		return _digest(client, repository, tag)


@dataclass
class CleanupReport:
	repository: str
	dry_run: bool
	kept: list[str] = field(default_factory=list)
	deleted: list[str] = field(default_factory=list)  # deleted, or to be deleted when dry_run
	shared: dict[str, str] = field(default_factory=dict)  # unreferenced tag -> referenced tag with its digest
	digests: dict[str, str] = field(default_factory=dict)

	@property
	def message(self) -> str:
		verb = "would delete" if self.dry_run else "deleted"
		text = f"{self.repository}: kept {len(self.kept)} tag(s), {verb} {len(self.deleted)}"
		if self.deleted:
			text += f" ({', '.join(self.deleted)})"
		if self.shared:
			text += "; kept " + ", ".join(f"{tag} (same image as {ref})" for tag, ref in self.shared.items())
		return text + "."


def tags_by_repository(registry_host: str, images: Iterable[str | None]) -> dict[str, set[str]]:
	"""``{repository: tags}`` of the images ``<registry_host>/<repository>:<tag>`` among ``images``."""
	found: dict[str, set[str]] = {}
	prefix = f"{registry_host}/"
	for image in images:
		if not image or not image.startswith(prefix):
			continue
		repository, sep, tag = image[len(prefix) :].rpartition(":")
		if sep and repository:
			found.setdefault(repository, set()).add(tag)
	return found


def images_to_keep(builds: Iterable[str | None], benches: Iterable[tuple[str | None, str]]) -> list[str]:
	"""Images a registry cleanup keeps: every non-Archived Bench's, and every successful build's that no
	Bench has used yet (built, not yet deployed). ``benches`` holds (docker_image, status)."""
	benches = list(benches)
	deployed = {image for image, _status in benches if image}
	live = [image for image, status in benches if image and status != "Archived"]
	return live + [image for image in builds if image and image not in deployed]


def cleanup_summary(reports: Iterable[CleanupReport]) -> dict:
	"""The reports as the operator API answers them."""
	reports = list(reports)
	return {
		"repositories": [
			{"repository": r.repository, "kept": r.kept, "deleted": r.deleted, "message": r.message}
			for r in reports
		],
		"deleted": sum(len(r.deleted) for r in reports),
	}


def referenced_tags(registry_host: str, repository: str, images: Iterable[str]) -> set[str]:
	"""The tags of ``repository`` among full image names ``<host>/<repository>:<tag>`` (e.g. Bench.docker_image)."""
	prefix = f"{registry_host}/{repository}:"
	return {image[len(prefix) :] for image in images if image and image.startswith(prefix)}


def delete_unreferenced_tags(
	target: RegistryTarget, repository: str, referenced: Iterable[str], dry_run: bool = True
) -> CleanupReport:
	"""Deletes the tags of ``repository`` not in ``referenced`` (tags); with ``dry_run`` only reports them."""
	keep = set(referenced)
	report = CleanupReport(repository=repository, dry_run=dry_run)
	with RegistryClient(target) as client:
		tags = _tags(client, repository)
		for tag in tags:
			digest = _digest(client, repository, tag)
			if digest:
				report.digests[tag] = digest
		kept_digests = {report.digests[tag]: tag for tag in tags if tag in keep and tag in report.digests}
		for tag in tags:
			digest = report.digests.get(tag)
			if tag in keep or digest is None:
				report.kept.append(tag)
			elif digest in kept_digests:
				report.kept.append(tag)
				report.shared[tag] = kept_digests[digest]
			else:
				report.deleted.append(tag)
		if not dry_run:
			for digest in dict.fromkeys(report.digests[tag] for tag in report.deleted):
				_delete_manifest(client, repository, digest)
	return report


def _delete_manifest(client: RegistryClient, repository: str, digest: str) -> None:
	response = client.request(
		"DELETE", f"/v2/{repository}/manifests/{digest}", scope=_scope(repository, "delete"), expect=None
	)
	if response.status_code in (202, 404):
		return
	if response.status_code == 405:
		raise RegistryError(
			f"The registry {client.base_url} does not allow deleting images (HTTP 405). Fix: enable deletion in the "
			"registry's configuration (storage: delete: enabled: true, or REGISTRY_STORAGE_DELETE_ENABLED=true) "
			"and restart it."
		)
	raise RegistryError(
		f"The registry {client.base_url} answered HTTP {response.status_code} when deleting {repository}@{digest}: "
		f"{response.text[:200]}"
	)
