"""The transport swap: the one place where press_selfhosted patches Press.

``press.agent.Agent._make_req(self, method, path, data, files, agent_job_id)`` and
``Agent.raw_request(self, method, path, data=None, raises=True, timeout=None)`` make every HTTP call
Press sends to an agent. :func:`install` wraps both at class level, once per process: for a container
server the in-process router answers (no HTTP, no Agent Request Failure row); for every other server
the original method runs unchanged. Pure logic, no frappe import: tested against a stand-in class.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

import requests

from press_selfhosted.engine.errors import JobStoreUnavailable

MARKER = "_press_selfhosted_swapped"


class RoutedResponse:
	"""What Press reads from a ``requests.Response``: status_code, reason, text, json()."""

	def __init__(self, status_code: int, reason: str, payload: Any):
		self.status_code = status_code
		self.reason = reason
		self._payload = payload
		self.text = json.dumps(payload)
		self.ok = status_code < 400

	def json(self) -> Any:
		return self._payload

	def raise_for_status(self) -> None:
		if self.status_code >= 400:
			raise requests.HTTPError(f"{self.status_code} {self.reason}: {self.text}", response=self)


def failed(failure: Exception) -> RoutedResponse:
	"""What Press gets when answering failed before the router could: 503 when the job store is out
	(Press delivers again later), else 500; never an exception (Press would record an Agent Request
	Failure and stop sending anything to the server)."""

	status = 503 if isinstance(failure, JobStoreUnavailable) else 500
	message = f"press_selfhosted: {type(failure).__name__}: {failure}"
	reason = "Service Unavailable" if status == 503 else "Internal Server Error"
	return RoutedResponse(status, reason, {"error": message, "output": message, "traceback": ""})


# route(agent, method, path, data, agent_job_id, files) -> router Response (status_code, reason, json);
# ``files`` carries uploads (Press's build context), None otherwise
Route = Callable[[Any, str, str, Any, "str | None", Any], Any]


def install(agent_class: type, is_container: Callable[[Any], bool], route: Route) -> bool:
	"""Patch ``agent_class``; returns False when it was already patched (idempotent)."""
	if getattr(agent_class, MARKER, False):
		return False
	original_make_req = agent_class._make_req
	original_raw_request = agent_class.raw_request

	def answer(agent, method, path, data, agent_job_id, files=None) -> RoutedResponse:
		try:
			response = route(agent, method, path, data, agent_job_id, files)
		except Exception as failure:  # noqa: BLE001 - an exception here would block the server in Press
			return failed(failure)
		return RoutedResponse(response.status_code, response.reason, response.json)

	@functools.wraps(original_make_req)
	def _make_req(self, method, path, data, files, agent_job_id):
		if not is_container(self):
			return original_make_req(self, method, path, data, files, agent_job_id)
		return answer(self, method, path, data, agent_job_id, files)

	@functools.wraps(original_raw_request)
	def raw_request(self, method, path, data=None, raises=True, timeout=None):
		if not is_container(self):
			return original_raw_request(self, method, path, data=data, raises=raises, timeout=timeout)
		response = answer(self, method, path, data, None, None)
		if raises:
			response.raise_for_status()
		return response.json()

	agent_class._make_req = _make_req
	agent_class.raw_request = raw_request
	setattr(agent_class, MARKER, True)
	return True
