"""The over-limit policy (pure): notify, remind, suspend after the grace period, clear or unsuspend when
back within the limits, including after a plan change."""

from __future__ import annotations

import datetime
import json

import pytest

from press_selfhosted.engine.policies.plan_limits import MIB, Action, LimitState, PlanLimits, decide, excesses
from press_selfhosted.engine.policies.usage import SiteUsage

DAY = datetime.timedelta(days=1)
T0 = datetime.datetime(2026, 1, 1, 12, 0)
SMALL = PlanLimits(max_database_usage=100, max_storage_usage=200, max_users=5)
BIG = PlanLimits(max_database_usage=1000, max_storage_usage=2000, max_users=50)


def usage(database_mib=10, public_mib=10, private_mib=10, backups_mib=0, users=1) -> SiteUsage:
	return SiteUsage(
		"s.example.com", database_mib * MIB, public_mib * MIB, private_mib * MIB, backups_mib * MIB, users
	)


def test_within_limits_nothing_happens():
	decision = decide(SMALL, usage(), LimitState(), T0)
	assert decision.action is Action.NONE and decision.state == LimitState()


@pytest.mark.parametrize(
	("used", "limit", "text"),
	[
		(usage(database_mib=101), "max_database_usage", "database: 101 MiB used, the plan allows 100 MiB"),
		(usage(public_mib=150, private_mib=51), "max_storage_usage", "file storage: 201 MiB used"),
		(usage(users=6), "max_users", "users: 6 used, the plan allows 5"),
	],
)
def test_each_limit_is_checked_and_named(used, limit, text):
	(excess,) = excesses(SMALL, used)
	assert excess.limit == limit and text in str(excess)


def test_backups_do_not_count_and_zero_means_unlimited():
	assert excesses(SMALL, usage(backups_mib=10_000)) == ()
	assert excesses(PlanLimits(), usage(database_mib=10**6, users=10**6)) == ()


def test_notify_then_remind_then_suspend_after_the_grace_period():
	over = usage(database_mib=150)
	first = decide(SMALL, over, LimitState(), T0)
	assert first.action is Action.NOTIFY and first.state.exceeded_since == T0
	assert "database" in first.reason
	quiet = decide(SMALL, over, first.state, T0 + DAY)
	assert quiet.action is Action.NONE and quiet.state.exceeded_since == T0
	reminder = decide(SMALL, over, quiet.state, T0 + 7 * DAY)
	assert reminder.action is Action.NOTIFY and reminder.state.exceeded_since == T0
	assert (
		decide(SMALL, over, reminder.state, T0 + 14 * DAY - datetime.timedelta(seconds=1)).action
		is Action.NONE
	)
	suspended = decide(SMALL, over, reminder.state, T0 + 14 * DAY)
	assert suspended.action is Action.SUSPEND and suspended.state.suspended_by_policy
	assert decide(SMALL, over, suspended.state, T0 + 15 * DAY).action is Action.NONE  # suspended once


def test_back_within_limits_clears_and_a_bigger_plan_unsuspends():
	over = usage(users=9)
	notified = decide(SMALL, over, LimitState(), T0)
	cleared = decide(SMALL, usage(users=2), notified.state, T0 + DAY)
	assert cleared.action is Action.CLEAR and cleared.state == LimitState()
	suspended = decide(SMALL, over, notified.state, T0 + 20 * DAY)
	assert suspended.action is Action.SUSPEND
	# the plan changes: the same usage is evaluated against the new plan's limits
	after_upgrade = decide(BIG, over, suspended.state, T0 + 20 * DAY)
	assert after_upgrade.action is Action.UNSUSPEND and after_upgrade.state == LimitState()


def test_a_smaller_plan_starts_the_grace_period_on_the_day_of_the_change():
	decision = decide(SMALL, usage(database_mib=500), LimitState(), T0)
	assert decision.action is Action.NOTIFY and decision.state.exceeded_since == T0


def test_a_decision_is_plain_data_for_an_api_answer():
	decision = decide(SMALL, usage(users=9), LimitState(), T0)
	answer = json.loads(json.dumps(decision.as_dict(), default=str))
	assert answer["action"] == decision.action.value and answer["excesses"][0]["limit"] == "max_users"
