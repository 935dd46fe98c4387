"""The developer stack's compose file against the Compose Specification schema (shared/schemas)."""

from pathlib import Path

import jsonschema
import yaml
from references import schema

ROOT = Path(__file__).resolve().parent.parent


def load_compose() -> dict:
	return yaml.safe_load((ROOT / "docker-compose.dev.yml").read_text())


def test_compose_file_is_valid_against_the_compose_spec():
	jsonschema.validate(load_compose(), schema("compose-spec.json"))


def test_services_publish_on_loopback_only():
	for name, service in load_compose()["services"].items():
		for port in service.get("ports", []):
			assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_secrets_come_from_files_not_from_the_environment():
	compose = load_compose()
	for name, service in compose["services"].items():
		for key in service.get("environment") or {}:
			assert "PASSWORD" not in key or key.endswith("_FILE"), (
				f"{name}.{key} puts a secret in the environment"
			)
	for secret in compose["secrets"].values():
		assert secret["file"].startswith("./.dev/")


def test_the_start_script_exists_for_the_press_service():
	command = load_compose()["services"]["press"]["command"]
	script = ROOT / command[-1].replace("/workspace/press_selfhosted/", "")
	assert script.is_file()
