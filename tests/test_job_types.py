"""Every handler press_selfhosted runs matches Press's Agent Job Type (from Press's fixture): its steps
exactly; and no two handlers answer the same request."""

from __future__ import annotations

import re

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
