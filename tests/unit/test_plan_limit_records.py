"""Plan limits to and from Press's records (Site Plan, Site fields) as plain values: what the Frappe glue
of usage reads and writes (the glue itself runs in the in-bench suite)."""

from __future__ import annotations

import datetime

from press_selfhosted.engine.policies import plan_limits
from press_selfhosted.engine.policies.plan_limits import MIB, Action, LimitState, PlanLimits, decide
from press_selfhosted.engine.policies.usage import SiteUsage

NOW = datetime.datetime(2026, 3, 1, 9, 0)


def test_site_plan_fields_become_limits_and_empty_means_unlimited():
	assert plan_limits.plan_limits(
		{"max_database_usage": 512, "max_storage_usage": None, "max_users": 3}
	) == PlanLimits(512, 0, 3)


def test_press_site_fields_round_trip_the_policy_state():
	site = {
		"site_usage_exceeded": 1,
		"site_usage_exceeded_on": NOW - datetime.timedelta(days=3),
		"last_site_usage_warning_mail_sent_on": NOW - datetime.timedelta(days=3),
	}
	state = plan_limits.limit_state(site, suspended_by_policy=False)
	assert state == LimitState(
		site["site_usage_exceeded_on"], site["last_site_usage_warning_mail_sent_on"], False
	)
	cleared = decide(PlanLimits(max_users=5), SiteUsage("s.example.com", 0, 0, 0, 0, 1), state, NOW)
	assert cleared.action is Action.CLEAR
	assert plan_limits.site_fields(cleared, NOW) == {
		"site_usage_exceeded": 0,
		"site_usage_exceeded_on": None,
		"last_site_usage_warning_mail_sent_on": None,
		"site_usage_exceeded_last_checked_on": NOW,
	}
	# a site without the exceeded flag has no running grace period, whatever the date field says
	assert plan_limits.limit_state({**site, "site_usage_exceeded": 0}, False).exceeded_since is None


def test_usage_percentages_are_of_the_plan_limits():
	measured = SiteUsage("s.example.com", 50 * MIB, 30 * MIB, 20 * MIB, 999 * MIB, 1)
	assert plan_limits.usage_percentages(PlanLimits(100, 200, 0), measured) == {
		"current_database_usage": 50,
		"current_disk_usage": 25,
	}
	assert plan_limits.usage_percentages(PlanLimits(), measured) == {
		"current_database_usage": 0,
		"current_disk_usage": 0,
	}
