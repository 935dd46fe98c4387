"""Every handler press_selfhosted runs matches Press's Agent Job Type (from Press's fixture): its steps
exactly; no two handlers answer the same request; the jobs map names the family of each."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

from press_selfhosted.engine import jobs as jobs_package
from press_selfhosted.engine.agent import catalog, job_types
from press_selfhosted.engine.clients.proxy import ProxySettings
from press_selfhosted.engine.jobs import builds, handlers

# Press's fixture gives no path for these, or one that differs from what Press's code really calls
PATHS_FROM_PRESS_CODE = {
	"Archive Site": ("POST", "benches/{bench}/sites/{site}/archive"),
	"Backup Site": ("POST", "benches/{bench}/sites/{site}/backup"),
	"Uninstall App from Site": ("DELETE", "benches/{bench}/sites/{site}/apps/{app}"),
}


def every_handler():
	return catalog.all_handlers(
		ProxySettings(traefik_image="traefik", router_image="nginx"),
		builds.BuilderSettings("/nonexistent"),
	)


def test_every_handler_has_press_steps_and_path():
	press = job_types.load()
	for handler in every_handler():
		expected = press[handler.job_type]
		assert handler.step_names == list(expected.steps), handler.job_type
		method, path = PATHS_FROM_PRESS_CODE.get(handler.job_type, (expected.method, expected.path))
		generic = re.sub(r"\{[^}]+\}", "{}", path)
		assert (handler.method, re.sub(r"\{[^}]+\}", "{}", handler.path)) == (method, generic), (
			handler.job_type
		)


def test_no_two_handlers_answer_the_same_request():
	found = handlers.index(every_handler())
	shapes = [(h.method, re.sub(r"\{[^}]+\}", "{}", h.path)) for h in found.values()]
	assert len(shapes) == len(set(shapes))
	assert len(found) == 46


def families_in_the_map() -> dict[str, list[str]]:
	"""``module.Class`` -> job types, as the map at the top of engine/jobs/__init__.py lists them."""
	text = " ".join(jobs_package.__doc__.split())
	return {
		family: [name.strip() for name in names.split(";")]
		for family, names in re.findall(r"- ``(\w+\.\w+Jobs)``: (.*?)(?= - ``| A family's)", text)
	}


def job_types_made_in(module_name: str) -> list[str]:
	"""The job types whose ``handler(...)`` a module of engine/jobs makes, in order."""
	path = Path(jobs_package.__file__).parent / f"{module_name}.py"
	return [
		node.args[0].value
		for node in ast.walk(ast.parse(path.read_text()))
		if isinstance(node, ast.Call)
		and getattr(node.func, "id", None) == "handler"
		and node.args
		and isinstance(node.args[0], ast.Constant)
	]


def test_a_job_type_is_found_from_its_press_name_in_the_jobs_map():
	"""The map names, for every job type of the catalog, the module and class that make it."""
	families = families_in_the_map()
	for family, names in families.items():
		module_name, class_name = family.split(".")
		module = importlib.import_module(f"{jobs_package.__name__}.{module_name}")
		assert isinstance(getattr(module, class_name, None), type), family
		assert names == job_types_made_in(module_name), family
	mapped = [name for names in families.values() for name in names]
	assert sorted(mapped) == sorted(handler.job_type for handler in every_handler())
