"""Pure rules and mappings for Storage Configuration and Local Registry (no Frappe import).

The controllers call :func:`check_storage_configuration` / :func:`check_local_registry` in
``validate`` and write the normalised values back; :func:`s3_target` / :func:`registry_target` turn a
document plus its decrypted secrets into the engine's targets.

Password fields: while a document is saved, a Password field holds the new plain value when the
operator changed it, or a mask of asterisks when it is unchanged; a mask is not validated again.
"""

from __future__ import annotations

from press_selfhosted.engine import validation
from press_selfhosted.engine.clients.registry import RegistryTarget
from press_selfhosted.engine.clients.storage import S3Target

DEFAULT_REGION = "us-east-1"
DEFAULT_ADDRESSING_STYLE = "path"
DEFAULT_CONNECT_TIMEOUT = 5
DEFAULT_OBJECT_PREFIX = "backups"


def _value(doc, field: str):
	getter = getattr(doc, "get", None)
	return getter(field) if callable(getter) else getattr(doc, field, None)


def _flag(doc, field: str, default: bool = False) -> bool:
	value = _value(doc, field)
	if value is None or value == "":
		return default
	if isinstance(value, str):
		return value.strip().lower() not in ("0", "false", "no", "off")
	return bool(value)


def is_masked(value) -> bool:
	"""A Password field's stored mask (only asterisks): the secret itself is unchanged."""
	return isinstance(value, str) and bool(value) and set(value) == {"*"}


def check_storage_configuration(doc) -> dict:
	"""Validates every field of a Storage Configuration; returns the normalised values (secret
	fields only when they were changed). Raises ValidationError."""
	values = {
		"endpoint_url": validation.validate_endpoint_url(_value(doc, "endpoint_url")),
		"region": validation.validate_region(_value(doc, "region") or DEFAULT_REGION),
		"default_bucket": validation.validate_bucket_name(
			_value(doc, "default_bucket"), field="default_bucket"
		),
		"addressing_style": validation.validate_addressing_style(
			_value(doc, "addressing_style") or DEFAULT_ADDRESSING_STYLE
		),
		"connect_timeout": validation.validate_connect_timeout(
			_value(doc, "connect_timeout") or DEFAULT_CONNECT_TIMEOUT
		),
		"minio_prefix": validation.validate_object_prefix(_value(doc, "minio_prefix")),
		"ca_bundle": validation.validate_ca_bundle(_value(doc, "ca_bundle")),
	}
	for field, check in (
		("access_key", validation.validate_access_key),
		("secret_key", validation.validate_secret_key),
	):
		secret = _value(doc, field)
		if not is_masked(secret):
			values[field] = check(secret, field=field)
	return values


def s3_target(doc, access_key: str, secret_key: str, bucket: str | None = None) -> S3Target:
	"""The engine's S3Target for a Storage Configuration document and its decrypted keys."""
	return S3Target(
		endpoint_url=_value(doc, "endpoint_url") or "",
		access_key=access_key or "",
		secret_key=secret_key or "",
		region=_value(doc, "region") or DEFAULT_REGION,
		bucket=bucket if bucket is not None else (_value(doc, "default_bucket") or ""),
		verify_tls=_flag(doc, "verify_tls", default=True),
		ca_bundle=_value(doc, "ca_bundle") or None,
		addressing_style=_value(doc, "addressing_style") or DEFAULT_ADDRESSING_STYLE,
		connect_timeout=int(_value(doc, "connect_timeout") or DEFAULT_CONNECT_TIMEOUT),
		prefix=_value(doc, "minio_prefix") or "",
	)


def check_local_registry(doc) -> dict:
	"""Validates every field of a Local Registry; returns the normalised values. Raises
	ValidationError."""
	insecure = _flag(doc, "insecure")
	address = validation.validate_registry_url(_value(doc, "url"), allow_insecure_http=insecure)
	password = _value(doc, "password")
	username, _secret = validation.validate_registry_credentials(
		_value(doc, "username"), "(unchanged)" if is_masked(password) else password
	)
	return {
		"url": address.url,
		"namespace": validation.validate_registry_namespace(_value(doc, "namespace")),
		"username": username,
		"ca_bundle": validation.validate_ca_bundle(_value(doc, "ca_bundle")),
	}


def registry_target(doc, password: str | None) -> RegistryTarget:
	"""The engine's RegistryTarget for a Local Registry document and its decrypted password."""
	return RegistryTarget(
		url=_value(doc, "url") or "",
		namespace=_value(doc, "namespace") or "",
		username=_value(doc, "username") or "",
		password=password or "",
		verify_tls=_flag(doc, "verify_tls", default=True),
		ca_bundle=_value(doc, "ca_bundle") or None,
		insecure=_flag(doc, "insecure"),
	)


# --- Press Settings and Clusters that follow the default Local Registry ------------------------------


def press_settings_values(registry, password: str | None = None) -> dict[str, str]:
	"""Press Settings' registry fields for a Local Registry document (``password`` only when given)."""
	target = registry_target(registry, None)
	return {
		"docker_registry_url": image_host(target),
		"docker_registry_namespace": target.namespace,
		"docker_registry_username": target.username,
		"docker_registry_password": password or "",
	}


def image_host(target: RegistryTarget) -> str:
	"""``host[:port]``: the registry part of an image name (Docker names carry no scheme)."""
	return validation.validate_registry_url(target.url, allow_insecure_http=target.insecure).host_port


def clusters_to_update(clusters: list[dict], previous_host: str | None) -> list[str]:
	"""Clusters whose ``repository`` follows the registry: empty, or still the previous registry host."""
	return [
		row["name"] for row in clusters if not row.get("repository") or row.get("repository") == previous_host
	]
