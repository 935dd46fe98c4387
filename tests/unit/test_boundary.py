"""The engine boundary: nothing under press_selfhosted/engine imports frappe or press (or the
Frappe-side modules of this app, which do); its errors live in errors.py; its layers (foundation,
clients, policies, jobs, agent) import downwards only; no module of the app is part of an import cycle."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

from references import ROOT

ENGINE = ROOT / "press_selfhosted" / "engine"
FORBIDDEN = ("frappe", "press")


def engine_modules() -> list[tuple[str, Path]]:
	found = []
	for path in sorted(ENGINE.rglob("*.py")):
		relative = path.relative_to(ROOT).with_suffix("")
		parts = list(relative.parts)
		if parts[-1] == "__init__":
			parts.pop()
		found.append((".".join(parts), path))
	return found


def _forbidden(module: str) -> bool:
	top = module.split(".")[0]
	if top in FORBIDDEN:
		return True
	# this app's own modules outside the engine are Frappe glue
	return top == "press_selfhosted" and not (
		module == "press_selfhosted" or module.startswith("press_selfhosted.engine")
	)


def imports_of(path: Path, module: str) -> list[tuple[int, str]]:
	"""Every module name ``path`` imports, relative imports resolved against ``module``."""
	tree = ast.parse(path.read_text(), filename=str(path))
	package = module if path.name == "__init__.py" else module.rpartition(".")[0]
	found = []
	for node in ast.walk(tree):
		if isinstance(node, ast.Import):
			found += [(node.lineno, alias.name) for alias in node.names]
		elif isinstance(node, ast.ImportFrom):
			if node.level:
				base = package.split(".")
				base = base[: len(base) - (node.level - 1)]
				name = ".".join(base + ([node.module] if node.module else []))
			else:
				name = node.module or ""
			found.append((node.lineno, name))
			found += [(node.lineno, f"{name}.{alias.name}") for alias in node.names]
		elif isinstance(node, ast.Call):
			func = node.func
			called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
			if (
				called in ("import_module", "__import__")
				and node.args
				and isinstance(node.args[0], ast.Constant)
			):
				found.append((node.lineno, str(node.args[0].value)))
	return found


def test_engine_has_modules():
	names = [name for name, _ in engine_modules()]
	assert "press_selfhosted.engine.validation" in names
	assert "press_selfhosted.engine.errors" in names


def test_no_engine_module_imports_frappe_or_press_or_glue():
	offences = []
	for module, path in engine_modules():
		for line, name in imports_of(path, module):
			if _forbidden(name):
				offences.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
	assert not offences, "\n".join(offences)


def test_the_ast_check_catches_an_offence(tmp_path):
	bad = tmp_path / "bad.py"
	bad.write_text("import os\nfrom frappe.utils import cint\nimport press.agent\nfrom .. import hooks\n")
	names = [name for _, name in imports_of(bad, "press_selfhosted.engine.bad")]
	assert {n for n in names if _forbidden(n)} == {
		"frappe.utils",
		"frappe.utils.cint",
		"press.agent",
		"press_selfhosted.hooks",
	}
	assert _forbidden("frappe.utils") and _forbidden("press.agent") and _forbidden("press_selfhosted.hooks")
	assert not _forbidden("press_selfhosted.engine.errors") and not _forbidden("boto3")


BLOCKER = textwrap.dedent(
	"""
	import importlib, importlib.abc, pkgutil, sys

	class Block(importlib.abc.MetaPathFinder):
		def find_spec(self, name, path=None, target=None):
			if name.split(".")[0] in ("frappe", "press"):
				raise ImportError(f"{name} is blocked: the engine must not import it")
			return None

	sys.meta_path.insert(0, Block())
	for name in sys.argv[1:]:
		importlib.import_module(name)
	assert not any(m.split(".")[0] in ("frappe", "press") for m in sys.modules)
	print("imported", len(sys.argv) - 1)
	"""
)


def test_every_engine_module_imports_without_frappe_or_press():
	names = [name for name, _ in engine_modules()]
	result = subprocess.run(
		[sys.executable, "-c", BLOCKER, *names],
		check=False,
		cwd=ROOT,
		capture_output=True,
		text=True,
		timeout=120,
	)
	assert result.returncode == 0, result.stderr
	assert f"imported {len(names)}" in result.stdout


def test_the_blocker_really_blocks():
	result = subprocess.run(
		[sys.executable, "-c", BLOCKER, "press.agent"],
		check=False,
		cwd=ROOT,
		capture_output=True,
		text=True,
		timeout=60,
	)
	assert result.returncode != 0
	assert "blocked" in result.stderr


# --- every engine error in engine/errors.py -------------------------------------------------------

ERRORS = ENGINE / "errors.py"


def error_classes() -> set[str]:
	"""The classes errors.py defines that derive from EngineError (EngineError included)."""
	tree = ast.parse(ERRORS.read_text(), filename=str(ERRORS))
	bases = {
		node.name: {_base_name(base) for base in node.bases}
		for node in tree.body
		if isinstance(node, ast.ClassDef)
	}
	found = {"EngineError"}
	while grown := {name for name, of in bases.items() if of & found} - found:
		found |= grown
	return found


def _base_name(node: ast.expr) -> str:
	"""``EngineError`` of ``EngineError`` and of ``errors.EngineError``."""
	if isinstance(node, ast.Attribute):
		return node.attr
	return getattr(node, "id", "")


def errors_defined_outside(path: Path, known: set[str]) -> list[tuple[int, str]]:
	"""Classes of ``path`` that derive from an engine error (through the module's own classes too,
	and whatever name an import gives the error); EndJob and StepWaiting derive from Exception."""
	tree = ast.parse(path.read_text(), filename=str(path))
	errors = set(known)
	for node in ast.walk(tree):
		if isinstance(node, ast.ImportFrom):
			errors |= {alias.asname for alias in node.names if alias.asname and alias.name in known}
	found = []
	classes = [node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]
	while grown := [
		node
		for node in classes
		if (node.lineno, node.name) not in found and {_base_name(base) for base in node.bases} & errors
	]:
		found += [(node.lineno, node.name) for node in grown]
		errors |= {node.name for node in grown}
	return sorted(found)


def misplaced_errors(paths: list[Path]) -> list[str]:
	"""Engine errors defined in ``paths``, including those derived from one another of ``paths`` defines."""
	known = error_classes()
	while True:
		found = {
			(str(path), line, name) for path in paths for line, name in errors_defined_outside(path, known)
		}
		if {name for *_, name in found} <= known:
			return [f"{path}:{line} defines {name}" for path, line, name in sorted(found)]
		known |= {name for *_, name in found}


def test_engine_errors_are_defined_in_errors_py_only():
	assert {
		"EngineError",
		"ValidationError",
		"JobStoreUnavailable",
		"PushDenied",
		"NotTheSameFile",
	} <= error_classes()
	offences = misplaced_errors([path for _, path in engine_modules() if path != ERRORS])
	assert not offences, "move these to press_selfhosted/engine/errors.py:\n" + "\n".join(offences)


def test_the_error_check_catches_an_offence(tmp_path):
	bad = tmp_path / "bad.py"
	bad.write_text(
		textwrap.dedent(
			"""
			from press_selfhosted.engine import errors
			from press_selfhosted.engine.errors import TransferError as Copy

			class Stop(Exception): ...
			class Mine(errors.EngineError): ...
			class Deeper(Mine): ...
			class Renamed(Copy): ...
			def later():
				class Nested(errors.SiteError): ...
			"""
		)
	)
	other = tmp_path / "other.py"
	other.write_text("from .bad import Mine\n\nclass Theirs(Mine): ...\n")
	assert {name for _, name in errors_defined_outside(bad, error_classes())} == {
		"Mine",
		"Deeper",
		"Renamed",
		"Nested",
	}
	assert errors_defined_outside(other, error_classes()) == []
	assert [line.rpartition(" ")[2] for line in misplaced_errors([bad, other])] == [
		"Mine",
		"Deeper",
		"Renamed",
		"Nested",
		"Theirs",
	]


def test_errors_py_is_the_bottom_layer():
	offences = [
		name
		for _, name in imports_of(ERRORS, "press_selfhosted.engine.errors")
		if name.startswith("press_selfhosted")
	]
	assert not offences, (
		f"errors.py imports {offences}: every engine module imports errors.py, not the reverse"
	)


def reexported_errors(path: Path, known: set[str], engine_names: set[str]) -> list[str]:
	"""Errors ``path`` takes from another module of this app than errors.py (by import or attribute)."""
	found = []
	for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
		if isinstance(node, ast.ImportFrom):
			module = node.module or ""
			ours = node.level or module.startswith("press_selfhosted")
			if ours and module.rpartition(".")[2] != "errors":
				found += [
					f"{node.lineno}: {alias.name} from {module}"
					for alias in node.names
					if alias.name in known
				]
		elif (
			isinstance(node, ast.Attribute)
			and isinstance(node.value, ast.Name)
			and node.attr in known
			and node.value.id in engine_names
		):
			found.append(f"{node.lineno}: {node.value.id}.{node.attr}")
	return found


def test_errors_are_imported_from_errors_py():
	"""No module re-exports an engine error: ``from press_selfhosted.engine.clients.transfer import ObjectMissing``
	(or ``transfer.ObjectMissing``) works only while transfer happens to import it."""
	known = error_classes()
	engine_names = {path.stem for _, path in engine_modules()} - {"errors", "__init__"}
	offences = [
		f"{path.relative_to(ROOT)}:{offence}"
		for path in sorted([*(ROOT / "press_selfhosted").rglob("*.py"), *(ROOT / "tests").rglob("*.py")])
		for offence in reexported_errors(path, known, engine_names)
	]
	assert not offences, "\n".join(offences)


def test_the_reexport_check_catches_an_offence(tmp_path):
	bad = tmp_path / "bad.py"
	bad.write_text(
		"import frappe\n"
		"from frappe import ValidationError\n"
		"from press_selfhosted.engine import transfer\n"
		"from press_selfhosted.engine.errors import ChecksumMismatch\n"
		"from press_selfhosted.engine.jobs.sites import SiteError\n"
		"from .validation import ValidationError as Refused\n"
		"caught = (frappe.ValidationError, transfer.ObjectMissing, ChecksumMismatch)\n"
	)
	found = reexported_errors(bad, error_classes(), {"transfer", "sites", "validation"})
	assert found == [
		"5: SiteError from press_selfhosted.engine.jobs.sites",
		"6: ValidationError from validation",
		"7: transfer.ObjectMissing",
	]


# --- layers: imports point down, never in a circle -----------------------------------------------------

# Bottom to top. A module imports only modules of its own layer or of the layers below it.
LAYERS = ("foundation", "clients", "policies", "jobs", "agent")


def layer_of(module: str) -> str | None:
	"""The layer of an engine module (its sub-package; the modules at the engine's top are the
	foundation: errors, naming, validation, masking); None outside the engine."""
	parts = module.split(".")
	if parts[:2] != ["press_selfhosted", "engine"]:
		return None
	if len(parts) > 2 and parts[2] in LAYERS:
		return parts[2]
	return "foundation"


def upward_imports(modules: list[tuple[str, Path]]) -> list[str]:
	"""Imports of ``modules`` that reach a higher layer than the importer's."""
	found = []
	for module, path in modules:
		mine = LAYERS.index(layer_of(module))
		for line, name in imports_of(path, module):
			theirs = layer_of(name)
			if theirs and LAYERS.index(theirs) > mine:
				found.append(f"{module}:{line} ({LAYERS[mine]}) imports {name} ({theirs})")
	return found


def test_engine_imports_point_down_the_layers():
	offences = upward_imports(engine_modules())
	assert not offences, "\n".join(offences)


def test_every_layer_has_its_package():
	for layer in LAYERS[1:]:
		assert (ENGINE / layer / "__init__.py").is_file(), layer


def test_the_layer_check_catches_an_offence(tmp_path):
	client = tmp_path / "proxy.py"
	client.write_text(
		"from press_selfhosted.engine import naming\n"
		"from press_selfhosted.engine.clients import traefik\n"
		"from press_selfhosted.engine.jobs.handlers import StepContext\n"
	)
	found = upward_imports([("press_selfhosted.engine.clients.proxy", client)])
	importer = (
		"press_selfhosted.engine.clients.proxy:3 (clients) imports press_selfhosted.engine.jobs.handlers"
	)
	assert found == [f"{importer} (jobs)", f"{importer}.StepContext (jobs)"]


def app_modules() -> list[tuple[str, Path]]:
	package = ROOT / "press_selfhosted"
	found = []
	for path in sorted(package.rglob("*.py")):
		parts = list(path.relative_to(ROOT).with_suffix("").parts)
		if parts[-1] == "__init__":
			parts.pop()
		found.append((".".join(parts), path))
	return found


def import_cycles(modules: list[tuple[str, Path]]) -> list[list[str]]:
	"""Groups of modules that import each other, directly or through others (Tarjan's strongly
	connected components of the import graph, imports inside functions included)."""
	known = {name for name, _ in modules}
	graph = {
		name: sorted({target for _, target in imports_of(path, name) if target in known and target != name})
		for name, path in modules
	}
	index: dict[str, int] = {}
	low: dict[str, int] = {}
	stack: list[str] = []
	cycles = []

	def visit(node: str) -> None:
		index[node] = low[node] = len(index)
		stack.append(node)
		for target in graph[node]:
			if target not in index:
				visit(target)
				low[node] = min(low[node], low[target])
			elif target in stack:
				low[node] = min(low[node], index[target])
		if low[node] == index[node]:
			group = []
			while True:
				member = stack.pop()
				group.append(member)
				if member == node:
					break
			if len(group) > 1:
				cycles.append(sorted(group))

	for node in graph:
		if node not in index:
			visit(node)
	return cycles


def test_no_import_cycles_in_the_app():
	assert import_cycles(app_modules()) == []


def test_the_cycle_check_catches_a_cycle(tmp_path):
	files = {
		"a": "from press_selfhosted.engine import b\n",
		"b": "def late():\n\tfrom press_selfhosted.engine.c import thing\n",
		"c": "import press_selfhosted.engine.a\n",
		"d": "from press_selfhosted.engine import a\n",
	}
	modules = []
	for name, text in files.items():
		(tmp_path / f"{name}.py").write_text(text)
		modules.append((f"press_selfhosted.engine.{name}", tmp_path / f"{name}.py"))
	assert import_cycles(modules) == [
		["press_selfhosted.engine.a", "press_selfhosted.engine.b", "press_selfhosted.engine.c"]
	]


def _imports_this_app(node: ast.AST) -> bool:
	if isinstance(node, ast.ImportFrom):
		return bool(node.level) or (node.module or "").startswith("press_selfhosted")
	return isinstance(node, ast.Import) and any(a.name.startswith("press_selfhosted") for a in node.names)


def engine_imports_inside_functions(modules: list[tuple[str, Path]]) -> list[str]:
	"""Imports of this app's modules made inside a function of an engine module (how a cycle hides)."""
	found = []
	for module, path in modules:
		for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
			if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
				found += [
					f"{module}:{inner.lineno} in {node.name}()"
					for inner in ast.walk(node)
					if _imports_this_app(inner)
				]
	return found


def test_engine_modules_import_at_the_top():
	offences = engine_imports_inside_functions(engine_modules())
	assert not offences, "\n".join(offences)


def test_the_inner_import_check_catches_an_offence(tmp_path):
	bad = tmp_path / "bad.py"
	bad.write_text(
		"import json\n\ndef step(ctx):\n\timport json\n\tfrom press_selfhosted.engine.jobs import backups\n"
	)
	assert engine_imports_inside_functions([("press_selfhosted.engine.jobs.bad", bad)]) == [
		"press_selfhosted.engine.jobs.bad:5 in step()"
	]
