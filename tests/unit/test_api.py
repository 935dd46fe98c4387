"""press_selfhosted/api.py's structure (every method whitelisted, permission first, POST for changes),
read from its source; the helpers it uses are the engine's, tested here. The methods themselves run in
the in-bench suite."""

from __future__ import annotations

import ast

import pytest
from references import ROOT

from press_selfhosted.engine.errors import ValidationError
from press_selfhosted.engine.policies.registry_cleanup import (
	CleanupReport,
	cleanup_summary,
	images_to_keep,
	tags_by_repository,
)
from press_selfhosted.engine.validation import validate_limit

API = ROOT / "press_selfhosted" / "api.py"


def test_every_function_is_whitelisted_and_checks_permission_first():
	tree = ast.parse(API.read_text())
	public = [
		n
		for n in tree.body
		if isinstance(n, ast.FunctionDef)
		and any(
			isinstance(d, ast.Call) and ast.unparse(d.func) == "frappe.whitelist" for d in n.decorator_list
		)
	]
	assert {f.name for f in public} == {
		"agent_jobs",
		"retention_plan",
		"apply_retention",
		"registry_cleanup_plan",
		"registry_cleanup",
		"verify_backup",
		"run_restore_drill",
		"site_usage",
		"site_certificates",
		"setup_container_server",
		"certify_root_domain",
		"platform_ca_certificate",
	}
	for function in public:
		body = [
			n for n in function.body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))
		]
		assert ast.unparse(body[0]) == "_only_operators()", function.name
		assert ast.get_docstring(function), function.name
	helper = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "_only_operators")
	assert ast.unparse(helper.body[0]) == "frappe.only_for('System Manager')"
	# methods that change something accept POST only
	for function in public:
		if function.name in (
			"apply_retention",
			"registry_cleanup",
			"run_restore_drill",
			"site_usage",
			"setup_container_server",
			"certify_root_domain",
		):
			assert "methods=['POST']" in ast.unparse(function.decorator_list[0]), function.name


def test_limits_are_parsed_with_field_named_errors():
	assert validate_limit("20", "limit", 200) == 20
	for value in ("x", 0, 201, None):
		with pytest.raises(ValidationError) as bad:
			validate_limit(value, "limit", 200)
		assert bad.value.field == "limit"


def test_images_are_grouped_by_repository_of_the_registry():
	images = [
		"127.0.0.1:5000/fc/bench:a1",
		"127.0.0.1:5000/fc/bench:b2",
		"127.0.0.1:5000/other:c3",
		"elsewhere:5000/fc/bench:z9",
		None,
		"127.0.0.1:5000/notag",
	]
	assert tags_by_repository("127.0.0.1:5000", images) == {"fc/bench": {"a1", "b2"}, "other": {"c3"}}


def test_cleanup_summary_counts_deleted_tags():
	report = CleanupReport("fc/bench", True, kept=["a1"], deleted=["b2", "c3"])
	summary = cleanup_summary([report])
	assert summary["deleted"] == 2
	assert summary["repositories"][0]["message"].startswith("fc/bench: kept 1 tag(s), would delete 2")


def test_a_cleanup_keeps_live_benches_and_builds_not_yet_deployed():
	builds = ["r/fc/g:old", "r/fc/g:live", "r/fc/g:new-not-deployed", None]
	benches = [("r/fc/g:old", "Archived"), ("r/fc/g:live", "Active"), (None, "Pending")]
	assert sorted(images_to_keep(builds, benches)) == ["r/fc/g:live", "r/fc/g:new-not-deployed"]
