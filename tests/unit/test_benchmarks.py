"""The benchmarks measure on demand, so the test command never runs them; this keeps them runnable: every
name a benchmark imports, at its top or inside a function, exists (a renamed module or class of the
engine or of the tests' support modules otherwise breaks a benchmark unseen)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = sorted((ROOT / "benchmarks").glob("*.py"))


def imported_names(source: str) -> list[tuple[str, str | None]]:
	"""(module, name) of every absolute import in ``source`` (name None for ``import module``)."""
	found: list[tuple[str, str | None]] = []
	for node in ast.walk(ast.parse(source)):
		if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
			found += [(node.module, alias.name) for alias in node.names]
		elif isinstance(node, ast.Import):
			found += [(alias.name, None) for alias in node.names]
	return found


def missing(module_name: str, name: str | None) -> bool:
	try:
		module = importlib.import_module(module_name)
	except ImportError:
		return True
	if name is None or hasattr(module, name):
		return False
	try:  # a submodule of a package (from package import module)
		importlib.import_module(f"{module_name}.{name}")
	except ImportError:
		return True
	return False


@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda path: path.name)
def test_every_name_a_benchmark_imports_exists(path, monkeypatch):
	monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # a benchmark imports its sibling modules
	monkeypatch.syspath_prepend(str(ROOT / "tests"))  # and the tests' support modules
	absent = [
		f"{module}.{name}" if name else module
		for module, name in imported_names(path.read_text())
		if missing(module, name)
	]
	assert absent == [], f"{path.name} imports what does not exist"


def test_a_renamed_name_is_found():
	source = "def run():\n\tfrom site_cluster import Topology, records\n\timport no_such_module\n"
	found = [(module, name) for module, name in imported_names(source) if missing(module, name)]
	assert found == [("site_cluster", "Topology"), ("no_such_module", None)]
