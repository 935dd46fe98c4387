"""The ACME certificate report as the operator API answers it and the Error Log tells it."""

from __future__ import annotations

import datetime

from press_selfhosted.engine.clients import acme
from press_selfhosted.engine.clients.acme import ISSUE_GRACE, SiteCertificate

NOW = datetime.datetime(2026, 11, 26, 12, 0, tzinfo=datetime.timezone.utc)


def test_rows_name_each_sites_problem_and_the_log_lists_only_problems():
	found = [
		SiteCertificate("b.example.com", NOW - ISSUE_GRACE * 2, None),
		SiteCertificate(
			"a.example.com", NOW - datetime.timedelta(days=60), NOW + datetime.timedelta(days=50)
		),
		SiteCertificate("c.example.com", NOW - datetime.timedelta(minutes=5), None),
		SiteCertificate("a.example.com", NOW - ISSUE_GRACE * 2, None, "www.customer.test"),
	]
	rows = acme.certificate_rows(found, NOW)
	assert [(row["site"], row["domain"]) for row in rows] == [
		("a.example.com", None),
		("a.example.com", "www.customer.test"),
		("b.example.com", None),
		("c.example.com", None),
	]
	assert rows[0] == {
		"site": "a.example.com",
		"domain": None,
		"routed_since": "2026-09-27T12:00:00+00:00",
		"not_after": "2027-01-15T12:00:00+00:00",
		"problem": None,
	}
	# a custom domain's problem names the domain, whose challenge must reach this proxy
	assert rows[1]["problem"].startswith("www.customer.test: no certificate")
	assert "http://www.customer.test/.well-known/acme-challenge/" in rows[1]["problem"]
	assert rows[2]["problem"].startswith("b.example.com: no certificate") and rows[3]["problem"] is None
	text = acme.problems_text("proxy-1.local", rows)
	assert text.splitlines()[0] == "2 of 4 name(s) certified by ACME on proxy server proxy-1.local:"
	assert text.splitlines()[1:] == [rows[1]["problem"], rows[2]["problem"]]
	assert acme.problems_text("proxy-1.local", [rows[0], rows[3]]) is None
