"""The Frappe layer held to Frappe's and Press's real definitions, read with ``ast`` and ``json``:
no Frappe import.

* every DocType JSON of this app is valid against Frappe's meta;
* every dotted path in hooks.py and patches.txt resolves to a function defined in the package;
* modules.txt names the module folder the DocTypes live in.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
from references import APP_DOCTYPES, ROOT, app_doctypes, frappe_meta, known_doctype_names, press_doctypes

PACKAGE = ROOT / "press_selfhosted"
HOOKS = PACKAGE / "hooks.py"
PATCHES = PACKAGE / "patches.txt"
MODULES = PACKAGE / "modules.txt"
DOTTED = re.compile(r"press_selfhosted(\.[A-Za-z_][A-Za-z0-9_]*)+")
BREAKS = {"Section Break", "Column Break", "Tab Break"}
NO_VALUE_TYPES = BREAKS | {"HTML", "Button", "Heading", "Fold", "Image"}
# DocType JSON keys Frappe writes that are not fields of the DocType meta
STANDARD_DOCTYPE_KEYS = {
	"doctype",
	"name",
	"owner",
	"creation",
	"modified",
	"modified_by",
	"idx",
	"docstatus",
	"field_order",
}
REQUIRED_DOCTYPE_KEYS = {"doctype", "name", "module", "fields", "field_order", "permissions"}


def scrub(name: str) -> str:
	return name.replace(" ", "_").replace("-", "_").lower()


# --- resolving dotted paths ----------------------------------------------------------------------


def _module_file(parts: list[str]) -> Path | None:
	base = ROOT.joinpath(*parts)
	if base.with_suffix(".py").is_file():
		return base.with_suffix(".py")
	if (base / "__init__.py").is_file():
		return base / "__init__.py"
	return None


def resolve(dotted: str, want_class: bool = False) -> str | None:
	"""None when ``dotted`` names a function (or method; a class when ``want_class``) defined in this
	package, else why not."""
	parts = dotted.split(".")
	if parts[0] != "press_selfhosted":
		return f"{dotted}: not in this package"
	for split in range(len(parts) - 1, 0, -1):
		path = _module_file(parts[:split])
		if path is None:
			continue
		body = ast.parse(path.read_text()).body
		remainder = parts[split:]
		for index, name in enumerate(remainder):
			found = next(
				(
					n
					for n in body
					if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and n.name == name
				),
				None,
			)
			if found is None:
				return f"{dotted}: {name!r} is not defined in {path.relative_to(ROOT)}"
			if index == len(remainder) - 1:
				if isinstance(found, ast.ClassDef) == want_class:
					return None
				return f"{dotted}: is a {'function' if want_class else 'class'}, not a {'class' if want_class else 'function'}"
			if not isinstance(found, ast.ClassDef):
				return f"{dotted}: {name!r} is not a class"
			body = found.body
	return f"{dotted}: no such module"


def _strings(node) -> list[str]:
	if isinstance(node, ast.Constant) and isinstance(node.value, str):
		return [node.value]
	return [s for child in ast.iter_child_nodes(node) for s in _strings(child)]


def hook_assignments() -> dict[str, ast.AST]:
	tree = ast.parse(HOOKS.read_text())
	found = {}
	for node in tree.body:
		if isinstance(node, ast.Assign):
			for target in node.targets:
				found[target.id] = node.value
		elif isinstance(node, ast.AnnAssign) and node.value is not None:
			found[node.target.id] = node.value
	return found


def hook_paths() -> list[str]:
	return sorted(
		{s for value in hook_assignments().values() for s in _strings(value) if DOTTED.fullmatch(s)}
	)


def patch_entries() -> tuple[list[str], list[str]]:
	"""(section names, patch lines) of patches.txt."""
	sections, entries = [], []
	for raw in PATCHES.read_text().splitlines():
		line = raw.strip()
		if not line or line.startswith(("#", ";")):
			continue
		if line.startswith("[") and line.endswith("]"):
			sections.append(line[1:-1])
		else:
			entries.append(line)
	return sections, entries


# --- hooks.py ------------------------------------------------------------------------------------


def test_hooks_is_wiring_only():
	tree = ast.parse(HOOKS.read_text())
	for node in tree.body:
		assert isinstance(node, ast.Assign | ast.AnnAssign | ast.Expr), (
			f"hooks.py line {node.lineno}: only assignments"
		)
		if isinstance(node, ast.Expr):
			assert isinstance(node.value, ast.Constant), "only a docstring besides assignments"
	for name, value in hook_assignments().items():
		ast.literal_eval(value)  # plain data, no calls or imports
		assert name.isidentifier()


def test_hooks_metadata_and_wiring():
	values = {name: ast.literal_eval(value) for name, value in hook_assignments().items()}
	assert values["app_name"] == "press_selfhosted"
	# with its org: a bare "press" makes Frappe's installer ask GitHub for it (find_org), which fails offline
	assert values["required_apps"] == ["frappe/press"]
	for hook in ("after_install", "after_migrate", "before_uninstall"):
		assert values[hook], hook
	press = press_doctypes()
	for doctype in ("Server", "Proxy Server", "Database Server", "Site", "Site Backup"):
		assert values["doc_events"][doctype]["validate"]
	assert set(values["doc_events"]) <= set(press) | set(app_doctypes())


def test_every_dotted_path_in_hooks_resolves():
	paths = hook_paths()
	assert paths, "hooks.py wires at least the install hooks"
	classes = set(ast.literal_eval(hook_assignments()["override_doctype_class"]).values())
	problems = [problem for path in paths if (problem := resolve(path, want_class=path in classes))]
	assert problems == []


def test_resolve_refuses_what_does_not_exist():
	assert resolve("press_selfhosted.install.after_install") is None
	assert "not defined" in resolve("press_selfhosted.install.no_such_function")
	assert "not defined" in resolve("press_selfhosted.nowhere.function")
	assert "class" in resolve(
		"press_selfhosted.press_selfhosted.doctype.storage_configuration.storage_configuration.StorageConfiguration"
	)
	assert (
		resolve(
			"press_selfhosted.press_selfhosted.doctype.storage_configuration.storage_configuration.StorageConfiguration.test_connection"
		)
		is None
	)


# --- patches.txt and modules.txt -----------------------------------------------------------------


def test_patches_txt_sections_and_entries():
	sections, entries = patch_entries()
	assert sections == ["pre_model_sync", "post_model_sync"]
	for entry in entries:
		if entry.startswith("execute:"):
			ast.parse(entry[len("execute:") :])
			continue
		dotted = entry.split()[0]
		assert resolve(f"{dotted}.execute") is None, f"{entry}: needs a module defining execute()"


def test_modules_txt_names_the_module_folder():
	modules = [line.strip() for line in MODULES.read_text().splitlines() if line.strip()]
	assert modules == ["Press Selfhosted"]
	for module in modules:
		assert (PACKAGE / scrub(module) / "__init__.py").is_file()
		assert (PACKAGE / scrub(module) / "doctype" / "__init__.py").is_file()


# --- DocType JSON --------------------------------------------------------------------------------


def test_this_app_has_its_doctypes():
	assert {"Storage Configuration", "Local Registry"} <= set(app_doctypes())


def doctype_problems(doctype: dict, folder: Path | None = None) -> list[str]:
	"""What is wrong with one DocType JSON against Frappe's meta (empty when valid)."""
	name = doctype.get("name", "?")
	problems = [f"{name}: missing key {key!r}" for key in sorted(REQUIRED_DOCTYPE_KEYS - set(doctype))]
	if problems:
		return problems
	docfield = frappe_meta("docfield")
	field_keys = {f["fieldname"] for f in docfield["fields"]} | {
		"fieldname",
		"fieldtype",
		"label",
		"doctype",
		"name",
	}
	(fieldtype_meta,) = [f for f in docfield["fields"] if f["fieldname"] == "fieldtype"]
	fieldtypes = set(fieldtype_meta["options"].split("\n")) - {""}
	doctype_keys = {f["fieldname"] for f in frappe_meta("doctype")["fields"]} | STANDARD_DOCTYPE_KEYS
	modules = [line.strip() for line in MODULES.read_text().splitlines() if line.strip()]

	if doctype["doctype"] != "DocType":
		problems.append(f"{name}: doctype must be 'DocType'")
	if doctype["module"] not in modules:
		problems.append(f"{name}: module {doctype['module']!r} is not in modules.txt")
	unknown = set(doctype) - doctype_keys
	if unknown:
		problems.append(f"{name}: keys DocType does not have: {sorted(unknown)}")
	fieldnames = [f.get("fieldname") for f in doctype["fields"]]
	if len(set(fieldnames)) != len(fieldnames):
		problems.append(f"{name}: duplicate fieldnames")
	if doctype["field_order"] != fieldnames:
		problems.append(f"{name}: field_order does not list the fields in order")
	for field in doctype["fields"]:
		fname = field.get("fieldname", "?")
		where = f"{name}.{fname}"
		if not re.fullmatch(r"[a-z][a-z0-9_]*", fname):
			problems.append(f"{where}: fieldname must be lowercase snake_case")
		unknown = set(field) - field_keys
		if unknown:
			problems.append(f"{where}: keys DocField does not have: {sorted(unknown)}")
		fieldtype = field.get("fieldtype")
		if fieldtype not in fieldtypes:
			problems.append(f"{where}: unknown fieldtype {fieldtype!r}")
		if fieldtype not in NO_VALUE_TYPES and not field.get("label"):
			problems.append(f"{where}: a label is required")
		if fieldtype in BREAKS and field.get("reqd"):
			problems.append(f"{where}: a break cannot be required")
		if (
			fieldtype in ("Link", "Table", "Table MultiSelect")
			and field.get("options") not in known_doctype_names()
		):
			problems.append(f"{where}: {fieldtype} to unknown DocType {field.get('options')!r}")
		if fieldtype == "Select":
			options = (field.get("options") or "").split("\n")
			if not any(options):
				problems.append(f"{where}: a Select needs options")
			if field.get("default") and field["default"] not in options:
				problems.append(f"{where}: default {field['default']!r} is not an option")
		if fieldtype == "Check" and str(field.get("default", "0")) not in ("0", "1"):
			problems.append(f"{where}: a Check defaults to 0 or 1")
	autoname = doctype.get("autoname", "")
	if autoname.startswith("field:") and autoname[len("field:") :] not in fieldnames:
		problems.append(f"{name}: autoname names a missing field")
	if doctype.get("title_field") and doctype["title_field"] not in fieldnames:
		problems.append(f"{name}: title_field names a missing field")
	# a child table (istable) has no permissions of its own: its parent's apply
	if not doctype.get("istable") and (
		not doctype["permissions"] or not all(p.get("role") for p in doctype["permissions"])
	):
		problems.append(f"{name}: permissions need roles")
	if folder is not None:
		snake = scrub(name)
		if folder.name != snake:
			problems.append(f"{name}: folder must be named {snake}")
		for required in ("__init__.py", f"{snake}.py", f"{snake}.json", f"test_{snake}.py"):
			if not (folder / required).is_file():
				problems.append(f"{name}: missing {required}")
	return problems


@pytest.mark.parametrize("name", sorted(app_doctypes()))
def test_doctype_json_is_valid_against_frappe_meta(name):
	doctype = app_doctypes()[name]
	assert doctype_problems(doctype, APP_DOCTYPES / scrub(name)) == []


def test_doctype_check_catches_mistakes():
	doctype = json.loads(json.dumps(app_doctypes()["Storage Configuration"]))
	doctype["fields"][1]["fieldtype"] = "Strange"
	doctype["fields"].append(
		{"fieldname": "server", "fieldtype": "Link", "label": "Server", "options": "No Such DocType"}
	)
	doctype["field_order"].append("server")
	doctype["module"] = "Elsewhere"
	problems = "\n".join(doctype_problems(doctype))
	assert "unknown fieldtype 'Strange'" in problems
	assert "unknown DocType 'No Such DocType'" in problems
	assert "not in modules.txt" in problems


def _class_name(doctype: str) -> str:
	return doctype.replace(" ", "").replace("-", "")


def _whitelisted_methods(cls: ast.ClassDef) -> set[str]:
	found = set()
	for node in cls.body:
		if isinstance(node, ast.FunctionDef):
			for decorator in node.decorator_list:
				target = decorator.func if isinstance(decorator, ast.Call) else decorator
				if getattr(target, "attr", None) == "whitelist" or getattr(target, "id", None) == "whitelist":
					found.add(node.name)
	return found


CONNECTION_RECORDS = {"Storage Configuration", "Local Registry"}


@pytest.mark.parametrize("name", sorted(app_doctypes()))
def test_controller_class_and_form_buttons(name):
	folder = APP_DOCTYPES / scrub(name)
	tree = ast.parse((folder / f"{scrub(name)}.py").read_text())
	classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
	assert _class_name(name) in classes, f"{name}: controller class {_class_name(name)} missing"
	cls = classes[_class_name(name)]
	# a Frappe Document, directly or through the app's shared base of default-able records
	assert [getattr(b, "id", None) for b in cls.bases] in (["Document"], ["DefaultRecord"])
	whitelisted = _whitelisted_methods(cls)
	script = folder / f"{scrub(name)}.js"
	if name in CONNECTION_RECORDS:  # the records of a service: the form tests the connection
		assert "test_connection" in whitelisted
		assert script.is_file()
	if script.is_file():
		called = set(re.findall(r'method:\s*"([a-z_]+)"', script.read_text()))
		assert called and called <= whitelisted, (
			f"{name}.js calls {called - whitelisted} which are not whitelisted"
		)


@pytest.mark.parametrize("name", sorted(app_doctypes()))
def test_frappe_test_case_exists(name):
	snake = scrub(name)
	tree = ast.parse((APP_DOCTYPES / snake / f"test_{snake}.py").read_text())
	classes = [n for n in tree.body if isinstance(n, ast.ClassDef)]
	assert any(c.name == f"Test{_class_name(name)}" for c in classes)
	assert all(any(getattr(b, "id", None) == "TestCase" for b in c.bases) for c in classes)


def test_reference_folders_are_found():
	from references import press_doctypes_dir

	assert "Server" in press_doctypes(), (
		f"Press DocType JSON not found in {press_doctypes_dir()}: set PRESS_DOCTYPES_DIR (e.g. ../shared/press-doctypes)"
	)
	assert frappe_meta("docfield")["name"] == "DocField"
