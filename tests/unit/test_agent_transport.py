"""The transport swap: patch logic against a stand-in of ``press.agent.Agent`` (Press is not
importable here; when it is, the real class's signatures are checked too). Frappe is not used."""

from __future__ import annotations

import inspect

import pytest
import requests

from press_selfhosted.engine.agent.router import Response, error
from press_selfhosted.engine.errors import JobStoreUnavailable
from press_selfhosted.glue import transport


class StandInAgent:
	"""Stand-in for press.agent.Agent: same method signatures, records what reached HTTP."""

	def __init__(self, server, server_type="Server"):
		self.server, self.server_type, self.http = server, server_type, []

	def _make_req(self, method, path, data, files, agent_job_id):
		self.http.append(("make_req", path))
		return "http"

	def raw_request(self, method, path, data=None, raises=True, timeout=None):
		self.http.append(("raw", path))
		return "http"


def routes(agent, method, path, data, agent_job_id, files):
	if files:
		return Response(200, {"filename": files["build_context_file"]})
	if path == "benches":
		return Response(200, {"job": 7, "seen": agent_job_id})
	return error(501, f"no {path}")


@pytest.fixture
def agent_class():
	cls = type("Agent", (StandInAgent,), {})
	assert transport.install(cls, lambda agent: agent.server.startswith("c-"), routes)
	assert not transport.install(cls, lambda agent: True, routes)  # once per process
	return cls


def test_container_servers_are_answered_in_process(agent_class):
	agent = agent_class("c-1")
	response = agent._make_req("POST", "benches", {}, None, "AJ-1")
	assert (response.status_code, response.reason, response.json()) == (200, "OK", {"job": 7, "seen": "AJ-1"})
	assert agent.raw_request("POST", "benches") == {"job": 7, "seen": None}
	upload = agent._make_req("POST", "builder/upload/b1", None, {"build_context_file": "ctx.tar"}, None)
	assert upload.json() == {"filename": "ctx.tar"}
	with pytest.raises(requests.HTTPError, match="501 Not Implemented"):
		agent.raw_request("GET", "benches/b/info")
	assert agent.raw_request("GET", "benches/b/info", raises=False)["error"] == "no benches/b/info"
	assert agent.http == []


def test_a_failure_before_the_router_is_an_answer_never_an_exception():

	def broken(agent, method, path, data, agent_job_id, files):
		if path == "benches":
			raise JobStoreUnavailable("The agent job store at db:3306/x failed: gone")
		raise KeyError("topology")

	cls = type("Agent", (StandInAgent,), {})
	transport.install(cls, lambda agent: True, broken)
	agent = cls("c-1")
	response = agent._make_req("POST", "benches", {}, None, "AJ-1")
	assert response.status_code == 503 and "job store" in response.json()["output"]
	response = agent._make_req("POST", "benches/b1/config", {}, None, "AJ-2")
	assert response.status_code == 500 and "KeyError" in response.json()["output"]
	assert agent.raw_request("GET", "ping", raises=False)["error"].startswith("press_selfhosted: KeyError")


def test_other_servers_keep_http(agent_class):
	agent = agent_class("vm-1")
	assert agent._make_req("POST", "benches", {}, None, "AJ-1") == "http"
	assert agent.raw_request("GET", "ping", timeout=(1, 2)) == "http"
	assert agent.http == [("make_req", "benches"), ("raw", "ping")]


def test_signatures_match_press():
	press_agent = pytest.importorskip("press.agent", reason="Press is not installed here")
	for name in ("_make_req", "raw_request"):
		assert inspect.signature(getattr(press_agent.Agent, name)) == inspect.signature(
			getattr(StandInAgent, name)
		)
