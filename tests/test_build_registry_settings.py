"""The Frappe glue that keeps Press's registry fields in step with the default Local Registry.

Frappe cannot be installed here: a stand-in ``frappe`` module (only Frappe is faked) records what the
glue writes; the mapping functions are pure and tested as they are.
"""

from __future__ import annotations

import io
import sys
import types

import pytest

from press_selfhosted.engine import builds


class FakeDoc(dict):
	def get_password(self, field, raise_exception=True):
		return self["_secret"]


class FakeFrappe(types.ModuleType):
	def __init__(self, registries, clusters, settings):
		super().__init__("frappe")
		self.registries, self.clusters, self.settings = registries, clusters, settings
		self.cluster_updates = {}
		self.conf: dict = {}
		self.db = types.SimpleNamespace(
			get_value=self._get_value,
			get_single_value=lambda doctype, field: self.settings.get(field),
			set_single_value=lambda doctype, values: self.settings.update(values),
			set_value=lambda doctype, name, field, value: self.cluster_updates.__setitem__(name, value),
		)

	def _get_value(self, doctype, filters):
		return next((name for name, doc in self.registries.items() if doc.get("is_default")), None)

	def get_doc(self, doctype, name):
		return self.registries[name]

	def get_all(self, doctype, fields=None, order_by=None, pluck=None):
		if doctype == "Cluster":
			return self.clusters
		return sorted(self.registries, key=lambda name: not self.registries[name].get("is_default"))

	def get_site_path(self, *parts):
		return "/tmp/site/" + "/".join(parts)

	def throw(self, message):
		raise RuntimeError(message)


@pytest.fixture
def glue(monkeypatch):
	registries = {
		"old": FakeDoc(url="https://old.internal:5000", namespace="", username="", is_default=0, _secret=""),
		"main": FakeDoc(
			url="https://registry.internal:5443",
			namespace="press",
			username="builder",
			is_default=1,
			verify_tls=1,
			_secret="s3cret-pass",
		),
	}
	clusters = [
		{"name": "Default", "repository": "old.internal:5000"},
		{"name": "Mirror", "repository": "mirror.internal:5000"},
		{"name": "New", "repository": None},
	]
	fake = FakeFrappe(registries, clusters, {"docker_registry_url": "old.internal:5000"})
	monkeypatch.setitem(sys.modules, "frappe", fake)
	monkeypatch.delitem(sys.modules, "press_selfhosted.agent.registry", raising=False)
	import press_selfhosted.agent.registry as module

	yield module, fake
	sys.modules.pop("press_selfhosted.agent.registry", None)  # it was bound to the stand-in frappe


def test_press_settings_follow_default_registry_without_password(glue):
	module, fake = glue
	values = module.sync_default_registry()
	assert values == {
		"docker_registry_url": "registry.internal:5443",
		"docker_registry_namespace": "press",
		"docker_registry_username": "builder",
		"docker_registry_password": "",
	}
	assert fake.settings["docker_registry_url"] == "registry.internal:5443"
	assert fake.settings["docker_registry_password"] == ""
	# clusters that followed the old registry (or had none) follow the new one; a mirror stays
	assert fake.cluster_updates == {"Default": "registry.internal:5443", "New": "registry.internal:5443"}


def test_password_is_published_only_when_asked(glue):
	module, fake = glue
	module.sync_default_registry(publish_password=True)
	assert fake.settings["docker_registry_password"] == "s3cret-pass"


def test_image_names_match_press_convention(glue):
	module, fake = glue
	module.sync_default_registry()
	settings = fake.settings
	# DeployCandidateBuild._update_docker_image_metadata, with Press Settings' domain
	repository = (
		f"{settings['docker_registry_url']}/{settings['docker_registry_namespace']}/example.com/bench-0001"
	)
	assert repository == "registry.internal:5443/press/example.com/bench-0001"


def test_builder_finds_registry_by_press_url(glue):
	module, _ = glue
	target = module.registry_target_for("registry.internal:5443")
	assert (target.url, target.username, target.password, target.namespace) == (
		"https://registry.internal:5443",
		"builder",
		"",
		"press",
	)
	with pytest.raises(RuntimeError, match="No Local Registry has the URL elsewhere:5000"):
		module.registry_target_for("elsewhere:5000")


def test_upload_is_refused_and_the_builder_works_in_site_private_folder(glue, tmp_path, monkeypatch):
	"""Press 010bc70 sends clone instructions, never an uploaded context: an upload is refused clearly
	(the transport answers it 400), and the builder keeps its clones and builds under private/."""
	module, fake = glue
	monkeypatch.setattr(fake, "get_site_path", lambda *parts: str(tmp_path.joinpath(*parts)))
	with pytest.raises(builds.BuildRequestError, match="clones the apps itself"):
		module.save_build_context("dcb-0001", {"build_context_file": io.BytesIO(b"context")})
	settings = module.builder_settings()
	assert settings.root == tmp_path / "private" / module.BUILDS_FOLDER
	assert settings.docker_cli == "/usr/bin/docker"


def test_non_default_registry_update_changes_nothing(glue):
	module, fake = glue
	module.on_local_registry_update(fake.registries["old"])
	assert fake.settings == {"docker_registry_url": "old.internal:5000"}
