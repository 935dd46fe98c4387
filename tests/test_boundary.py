"""The engine boundary: nothing under press_selfhosted/engine imports frappe or press (or the
Frappe-side modules of this app, which do)."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
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
