"""Press's registry fields as they follow the default Local Registry: the mapping from the record (the
glue that writes them runs in the in-bench suite)."""

from __future__ import annotations

from press_selfhosted.record_rules import infrastructure

MAIN = {
	"url": "https://registry.internal:5443",
	"namespace": "press",
	"username": "builder",
	"is_default": 1,
	"verify_tls": 1,
}


def test_press_settings_follow_the_registry_without_its_password():
	assert infrastructure.press_settings_values(MAIN) == {
		"docker_registry_url": "registry.internal:5443",
		"docker_registry_namespace": "press",
		"docker_registry_username": "builder",
		"docker_registry_password": "",
	}
	published = infrastructure.press_settings_values(MAIN, "s3cret-pass")
	assert published["docker_registry_password"] == "s3cret-pass"


def test_image_names_match_press_convention():
	values = infrastructure.press_settings_values(MAIN)
	# DeployCandidateBuild._update_docker_image_metadata, with Press Settings' domain
	repository = (
		f"{values['docker_registry_url']}/{values['docker_registry_namespace']}/example.com/bench-0001"
	)
	assert repository == "registry.internal:5443/press/example.com/bench-0001"


def test_clusters_that_followed_the_old_registry_follow_the_new_one_and_a_mirror_stays():
	clusters = [
		{"name": "Default", "repository": "old.internal:5000"},
		{"name": "Mirror", "repository": "mirror.internal:5000"},
		{"name": "New", "repository": None},
	]
	assert infrastructure.clusters_to_update(clusters, "old.internal:5000") == ["Default", "New"]
