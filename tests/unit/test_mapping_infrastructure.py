"""Storage Configuration and Local Registry documents -> validated values and engine targets
(record_rules/infrastructure.py), without Frappe."""

from __future__ import annotations

import pytest

from press_selfhosted.engine.clients.registry import RegistryTarget
from press_selfhosted.engine.clients.storage import S3Target
from press_selfhosted.engine.errors import ValidationError
from press_selfhosted.record_rules import infrastructure as infra

STORAGE = {
	"title": "minio-primary",
	"endpoint_url": "HTTPS://MinIO.Internal:9000/",
	"access_key": "press",
	"secret_key": "press-secret-key",
	"region": "",
	"default_bucket": "press-backups",
	"addressing_style": "",
	"connect_timeout": 0,
	"minio_prefix": "/backups/",
	"verify_tls": 1,
	"ca_bundle": "",
	"is_default": 1,
}


def test_storage_configuration_values_are_normalised_with_defaults():
	values = infra.check_storage_configuration(STORAGE)
	assert values == {
		"endpoint_url": "https://minio.internal:9000",
		"region": "us-east-1",
		"default_bucket": "press-backups",
		"addressing_style": "path",
		"connect_timeout": 5,
		"minio_prefix": "backups",
		"ca_bundle": "",
		"access_key": "press",
		"secret_key": "press-secret-key",
	}


def test_masked_secrets_are_not_validated_again():
	values = infra.check_storage_configuration({**STORAGE, "access_key": "*****", "secret_key": "*" * 16})
	assert "access_key" not in values and "secret_key" not in values
	assert infra.is_masked("****") and not infra.is_masked("") and not infra.is_masked("a***")


@pytest.mark.parametrize(
	("field", "value"),
	[
		("endpoint_url", "minio:9000"),
		("default_bucket", "Press_Backups"),
		("default_bucket", ""),
		("region", "eu central"),
		("addressing_style", "auto"),
		("connect_timeout", 120),
		("minio_prefix", "a/../b"),
		("ca_bundle", "garbage"),
		("secret_key", "short"),
		("access_key", "a b"),
	],
)
def test_every_storage_field_is_validated(field, value):
	with pytest.raises(ValidationError) as info:
		infra.check_storage_configuration({**STORAGE, field: value})
	assert info.value.field == field


def test_s3_target_mapping():
	doc = {**STORAGE, **infra.check_storage_configuration(STORAGE), "verify_tls": 0}
	target = infra.s3_target(doc, "press", "press-secret-key")
	assert target == S3Target(
		endpoint_url="https://minio.internal:9000",
		access_key="press",
		secret_key="press-secret-key",
		region="us-east-1",
		bucket="press-backups",
		verify_tls=False,
		ca_bundle=None,
		addressing_style="path",
		connect_timeout=5,
		prefix="backups",
	)
	assert infra.s3_target(doc, "press", "press-secret-key", bucket="other").bucket == "other"
	assert (
		target.key("site1.platform.local", "2026-11-25", "db.sql.gz")
		== "backups/site1.platform.local/2026-11-25/db.sql.gz"
	)
	assert target.validated() == target


def test_check_fields_default_to_true_for_verify_tls():
	doc = {k: v for k, v in STORAGE.items() if k != "verify_tls"}
	assert infra.s3_target(doc, "a", "b").verify_tls is True
	assert infra.s3_target({**doc, "verify_tls": "0"}, "a", "b").verify_tls is False


REGISTRY = {
	"title": "registry-primary",
	"url": "https://Registry.Internal:5443/",
	"namespace": "/press/",
	"username": "press",
	"password": "registry-password",
	"insecure": 0,
	"verify_tls": 1,
	"ca_bundle": "",
}


def test_local_registry_values_are_normalised():
	assert infra.check_local_registry(REGISTRY) == {
		"url": "https://registry.internal:5443",
		"namespace": "press",
		"username": "press",
		"ca_bundle": "",
	}


def test_local_registry_masked_password_counts_as_set():
	assert infra.check_local_registry({**REGISTRY, "password": "*****"})["username"] == "press"


@pytest.mark.parametrize(
	("changes", "field"),
	[
		({"url": "http://registry.internal"}, "url"),
		({"url": "registry"}, "url"),
		({"namespace": "Press"}, "namespace"),
		({"password": ""}, "password"),
		({"username": ""}, "username"),
		({"ca_bundle": "garbage"}, "ca_bundle"),
	],
)
def test_every_registry_field_is_validated(changes, field):
	with pytest.raises(ValidationError) as info:
		infra.check_local_registry({**REGISTRY, **changes})
	assert info.value.field == field


def test_insecure_allows_plain_http():
	assert infra.check_local_registry({**REGISTRY, "url": "http://registry.internal", "insecure": 1})[
		"url"
	] == ("http://registry.internal")


def test_registry_target_mapping():
	doc = {**REGISTRY, **infra.check_local_registry(REGISTRY)}
	target = infra.registry_target(doc, "registry-password")
	assert target == RegistryTarget(
		url="https://registry.internal:5443",
		namespace="press",
		username="press",
		password="registry-password",
		verify_tls=True,
		ca_bundle=None,
		insecure=False,
	)
	assert target.image_reference("bench-0001", "abc123") == "registry.internal:5443/press/bench-0001:abc123"
