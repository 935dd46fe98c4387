"""Every handler's steps, method and path equal Press's Agent Job Type (from Press's fixture)."""

from __future__ import annotations

from press_selfhosted.engine import job_types
from press_selfhosted.engine.benches import bench_handlers


def test_handlers_match_press_job_types():
	press = job_types.load()
	for handler in bench_handlers():
		expected = press[handler.job_type]
		assert handler.step_names == list(expected.steps), handler.job_type
		assert (handler.method, handler.path) == (expected.method, expected.path), handler.job_type
