"""The ACME certificate report as the operator API answers it and the Error Log tells it."""

from __future__ import annotations

import datetime

from press_selfhosted.engine import acme
from press_selfhosted.engine.acme import ISSUE_GRACE, SiteCertificate

NOW = datetime.datetime(2026, 11, 26, 12, 0, tzinfo=datetime.timezone.utc)


def test_rows_name_each_sites_problem_and_the_log_lists_only_problems():
	found = [
		SiteCertificate("b.example.com", NOW - ISSUE_GRACE * 2, None),
		SiteCertificate(
			"a.example.com", NOW - datetime.timedelta(days=60), NOW + datetime.timedelta(days=50)
		),
		SiteCertificate("c.example.com", NOW - datetime.timedelta(minutes=5), None),
	]
	rows = acme.certificate_rows(found, NOW)
	assert [row["site"] for row in rows] == ["a.example.com", "b.example.com", "c.example.com"]
	assert rows[0] == {
		"site": "a.example.com",
		"routed_since": "2026-09-27T12:00:00+00:00",
		"not_after": "2027-01-15T12:00:00+00:00",
		"problem": None,
	}
	assert rows[1]["problem"].startswith("b.example.com: no certificate") and rows[2]["problem"] is None
	text = acme.problems_text("proxy-1.local", rows)
	assert text.splitlines()[0] == "1 of 3 site(s) certified by ACME on proxy server proxy-1.local:"
	assert text.splitlines()[1] == rows[1]["problem"]
	assert acme.problems_text("proxy-1.local", [rows[0], rows[2]]) is None
