"""Where the reference data the structure tests check against lives.

* ``PRESS_DOCTYPES_DIR``: Press's DocType JSON. Default: the doctype folder of an installed ``press``
  package, else ``<repo>/../shared/press-doctypes``.
* ``PRESS_FIXTURES_DIR``: Press's fixtures. Default: ``<installed press>/fixtures``, else
  ``<repo>/../shared/press-fixtures``.
* ``FRAPPE_META_DIR``: Frappe's own meta DocTypes (DocField, DocType, Custom Field). Default: an
  installed ``frappe`` package, else ``<repo>/../shared/frappe-meta``.

A relative environment value is taken relative to the repository root. Installed packages are
located with ``importlib.util.find_spec``: nothing is imported.
"""

from __future__ import annotations

import importlib.util
import json
import os
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
APP_DOCTYPES = ROOT / "press_selfhosted" / "press_selfhosted" / "doctype"

# meta DocType name -> its folder inside an installed frappe package
FRAPPE_META_PATHS = {
	"docfield": "core/doctype/docfield/docfield.json",
	"doctype": "core/doctype/doctype/doctype.json",
	"custom_field": "custom/doctype/custom_field/custom_field.json",
	"property_setter": "custom/doctype/property_setter/property_setter.json",
}


def _package_dir(name: str) -> Path | None:
	try:
		spec = importlib.util.find_spec(name)
	except (ImportError, ValueError):
		return None
	if spec is None or not spec.submodule_search_locations:
		return None
	return Path(next(iter(spec.submodule_search_locations)))


def _from_env(variable: str) -> Path | None:
	value = os.environ.get(variable)
	if not value:
		return None
	path = Path(value)
	return path if path.is_absolute() else (ROOT / path).resolve()


def press_doctypes_dir() -> Path:
	found = _from_env("PRESS_DOCTYPES_DIR")
	if found:
		return found
	press = _package_dir("press")
	if press and (press / "press" / "doctype").is_dir():
		return press / "press" / "doctype"
	return SHARED / "press-doctypes"


def press_fixtures_dir() -> Path:
	found = _from_env("PRESS_FIXTURES_DIR")
	if found:
		return found
	press = _package_dir("press")
	if press and (press / "fixtures").is_dir():
		return press / "fixtures"
	return SHARED / "press-fixtures"


def frappe_meta_dir() -> Path:
	found = _from_env("FRAPPE_META_DIR")
	if found:
		return found
	frappe = _package_dir("frappe")
	if frappe and (frappe / FRAPPE_META_PATHS["docfield"]).is_file():
		return frappe
	return SHARED / "frappe-meta"


def frappe_meta(name: str) -> dict:
	"""A Frappe meta DocType (``docfield``, ``doctype``, ``custom_field``, ``property_setter``), from a
	flat reference folder or from an installed frappe package."""
	base = frappe_meta_dir()
	flat = base / f"{name}.json"
	path = flat if flat.is_file() else base / FRAPPE_META_PATHS[name]
	return json.loads(path.read_text())


def _doctype_files(folder: Path) -> list[Path]:
	"""DocType JSON in a flat folder (``<snake>.json``) or an app layout (``<snake>/<snake>.json``)."""
	files = [p for p in folder.glob("*.json")]
	files += [p for p in folder.glob("*/*.json") if p.stem == p.parent.name]
	return sorted(files)


def load_doctypes(folder: Path) -> dict[str, dict]:
	"""``{DocType name: its JSON}`` for every DocType definition in ``folder``."""
	found = {}
	for path in _doctype_files(folder):
		try:
			data = json.loads(path.read_text())
		except ValueError:
			continue
		if isinstance(data, dict) and data.get("doctype") == "DocType" and data.get("name"):
			found[data["name"]] = data
	return found


@cache
def press_doctypes() -> dict[str, dict]:
	return load_doctypes(press_doctypes_dir())


@cache
def app_doctypes() -> dict[str, dict]:
	return load_doctypes(APP_DOCTYPES)


@cache
def known_doctype_names() -> frozenset[str]:
	"""Every DocType name a Link in this app may point at: this app's, Press's and Frappe's."""
	names = set(app_doctypes()) | set(press_doctypes())
	listing = SHARED / "reference" / "doctype-names.json"
	if listing.is_file():
		for group in json.loads(listing.read_text()).values():
			names.update(group)
	frappe = _package_dir("frappe")
	if frappe:
		for path in frappe.glob("*/doctype/*/*.json"):
			if path.stem == path.parent.name:
				names.add(json.loads(path.read_text()).get("name", ""))
	return frozenset(names)


def schemas_dir() -> Path:
	"""JSON schemas of formats the engine writes (Traefik dynamic configuration, Compose): ``SCHEMAS_DIR``."""
	return _from_env("SCHEMAS_DIR") or SHARED / "schemas"


@cache
def schema(file_name: str) -> dict:
	return json.loads((schemas_dir() / file_name).read_text())


def frappe_cli_commands() -> Path:
	"""Frappe's site-level bench commands and their options (``FRAPPE_CLI_DIR``/commands.json, else
	``<repo>/../shared/frappe-cli/commands.json``)."""
	found = _from_env("FRAPPE_CLI_DIR")
	return (found or SHARED / "frappe-cli") / "commands.json"
