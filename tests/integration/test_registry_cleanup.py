"""Registry hygiene against the real anonymous registry and the real TLS + basic-auth one."""

from __future__ import annotations

import io
import tarfile

import pytest

from press_selfhosted.engine.clients.registry import RegistryTarget
from press_selfhosted.engine.errors import RegistryAuthError
from press_selfhosted.engine.policies.registry_cleanup import (
	delete_unreferenced_tags,
	list_tags,
	manifest_digest,
	referenced_tags,
)


def tiny_context(content: bytes) -> io.BytesIO:
	"""A one-file image FROM scratch: distinct content, distinct digest, pushed in a blink."""
	raw = io.BytesIO()
	with tarfile.open(fileobj=raw, mode="w") as tar:
		for name, data in (("Dockerfile", b"FROM scratch\nCOPY payload /payload\n"), ("payload", content)):
			info = tarfile.TarInfo(name)
			info.size = len(data)
			tar.addfile(info, io.BytesIO(data))
	raw.seek(0)
	return raw


@pytest.fixture(params=["registry", "registry_tls"])
def target(request, endpoints) -> RegistryTarget:
	service = endpoints[request.param]
	return RegistryTarget(
		url=service["url"],
		username=service.get("username", ""),
		password=service.get("password", ""),
		ca_bundle=service.get("ca_file"),
	)


@pytest.fixture
def pushed(target, docker_client, unique):
	"""Tags a (referenced), b (not), c (not, same image as a), d (not) in a new repository."""
	repository = f"press/cleanup-{unique}"
	name = f"{target.url}/{repository}"
	auth = {"username": target.username, "password": target.password} if target.username else None
	built = []
	for tag, content in (("a", b"a"), ("b", b"b"), ("c", b"a"), ("d", b"d")):
		image, _ = docker_client.images.build(
			fileobj=tiny_context(content + unique.encode()), custom_context=True
		)
		image.tag(name, tag)
		built.append(f"{name}:{tag}")
		for line in docker_client.api.push(name, tag=tag, auth_config=auth, stream=True, decode=True):
			assert "error" not in line, line
	yield repository
	for ref in built:
		docker_client.images.remove(ref, force=True)


def test_dry_run_reports_and_deletes_nothing(target, pushed):
	before = {tag: manifest_digest(target, pushed, tag) for tag in "abcd"}
	assert list_tags(target, pushed) == ["a", "b", "c", "d"]
	assert before["a"] == before["c"] != before["b"]

	report = delete_unreferenced_tags(target, pushed, {"a"}, dry_run=True)
	assert report.deleted == ["b", "d"]
	assert report.kept == ["a", "c"] and report.shared == {"c": "a"}
	assert "would delete 2 (b, d)" in report.message and "c (same image as a)" in report.message
	assert list_tags(target, pushed) == ["a", "b", "c", "d"]


def test_cleanup_deletes_only_unreferenced_tags(target, pushed):
	digest_a = manifest_digest(target, pushed, "a")
	images = [f"{target.url}/{pushed}:a", f"{target.url}/other:b", "", f"{target.url}/{pushed}-x:d"]
	referenced = referenced_tags(target.url, pushed, images)
	assert referenced == {"a"}

	report = delete_unreferenced_tags(target, pushed, referenced, dry_run=False)
	assert report.deleted == ["b", "d"] and not report.dry_run
	assert list_tags(target, pushed) == ["a", "c"]
	assert manifest_digest(target, pushed, "a") == digest_a
	assert manifest_digest(target, pushed, "b") is None and manifest_digest(target, pushed, "d") is None

	# running it again finds nothing more to delete
	again = delete_unreferenced_tags(target, pushed, referenced, dry_run=False)
	assert again.deleted == [] and again.kept == ["a", "c"]


def test_unknown_repository_has_no_tags(target, unique):
	assert list_tags(target, f"press/none-{unique}") == []
	assert manifest_digest(target, f"press/none-{unique}", "x") is None


def test_wrong_password_is_named(endpoints):
	tls = endpoints["registry_tls"]
	target = RegistryTarget(
		tls["url"], username=tls["username"], password="nope-nope", ca_bundle=tls["ca_file"]
	)
	with pytest.raises(RegistryAuthError, match="rejected the user name or password") as caught:
		list_tags(target, "press/anything")
	assert "nope-nope" not in str(caught.value)
