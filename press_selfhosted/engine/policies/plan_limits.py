"""The policy for sites over their plan's limits (pure: usage and dates in, a decision out).

Limits come from the Site Plan: ``max_database_usage`` and ``max_storage_usage`` (MiB, Press's fields)
and ``max_users`` (this app's custom field); 0 means no limit. Like Press does for disk usage
(``suspend_sites_exceeding_disk_usage_for_last_14_days``):

1. the first time a site is over a limit, its team is notified and the date is recorded;
2. while it stays over, a reminder goes out every ``reminder`` days;
3. once it has been over for the whole ``grace`` period, the site is suspended;
4. when it is back within its limits (less data, or a bigger plan: the limits are evaluated again
   when the plan changes), the record is cleared and a site this policy suspended is unsuspended.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
from dataclasses import dataclass

from press_selfhosted.engine.policies.usage import SiteUsage

MIB = 1024 * 1024


@dataclass(frozen=True)
class PlanLimits:
	max_database_usage: int = 0  # MiB
	max_storage_usage: int = 0  # MiB
	max_users: int = 0


@dataclass(frozen=True)
class Excess:
	limit: str  # the Site Plan field
	used: int  # in the field's unit
	allowed: int

	def __str__(self) -> str:
		unit = "" if self.limit == "max_users" else " MiB"
		what = {"max_users": "users", "max_database_usage": "database", "max_storage_usage": "file storage"}
		return f"{what[self.limit]}: {self.used}{unit} used, the plan allows {self.allowed}{unit}"


@dataclass(frozen=True)
class LimitState:
	"""What the site's record remembers (Press's Site fields ``site_usage_exceeded_on``,
	``last_site_usage_warning_mail_sent_on`` and whether this policy suspended it)."""

	exceeded_since: datetime.datetime | None = None
	warned_at: datetime.datetime | None = None
	suspended_by_policy: bool = False


class Action(enum.Enum):
	NONE = "none"
	NOTIFY = "notify"
	SUSPEND = "suspend"
	CLEAR = "clear"  # back within limits: forget the excess
	UNSUSPEND = "unsuspend"  # back within limits after this policy suspended the site


@dataclass(frozen=True)
class Decision:
	action: Action
	state: LimitState
	excesses: tuple[Excess, ...] = ()

	@property
	def reason(self) -> str:
		return "; ".join(str(excess) for excess in self.excesses)

	def as_dict(self) -> dict:
		"""Plain data (the action by its value), e.g. for a JSON answer."""
		return {
			"action": self.action.value,
			"state": dataclasses.asdict(self.state),
			"excesses": [dataclasses.asdict(excess) for excess in self.excesses],
			"reason": self.reason,
		}


def excesses(limits: PlanLimits, usage: SiteUsage) -> tuple[Excess, ...]:
	used = {
		"max_database_usage": -(-usage.database // MIB),
		"max_storage_usage": -(-usage.storage // MIB),
		"max_users": usage.users,
	}
	return tuple(
		Excess(field, used[field], allowed)
		for field, allowed in dataclasses.asdict(limits).items()
		if allowed and used[field] > allowed
	)


def decide(
	limits: PlanLimits,
	usage: SiteUsage,
	state: LimitState,
	now: datetime.datetime,
	grace: datetime.timedelta = datetime.timedelta(days=14),
	reminder: datetime.timedelta = datetime.timedelta(days=7),
) -> Decision:
	over = excesses(limits, usage)
	if not over:
		if state.suspended_by_policy:
			return Decision(Action.UNSUSPEND, LimitState())
		if state.exceeded_since:
			return Decision(Action.CLEAR, LimitState())
		return Decision(Action.NONE, state)
	since = state.exceeded_since or now
	if state.suspended_by_policy:
		return Decision(Action.NONE, state, over)
	if now - since >= grace:
		return Decision(
			Action.SUSPEND, dataclasses.replace(state, exceeded_since=since, suspended_by_policy=True), over
		)
	if state.warned_at is None or now - state.warned_at >= reminder:
		return Decision(Action.NOTIFY, LimitState(exceeded_since=since, warned_at=now), over)
	return Decision(Action.NONE, dataclasses.replace(state, exceeded_since=since), over)


# --- Press's records (Site Plan, Site), as plain values in and out --------------------------------


def plan_limits(plan) -> PlanLimits:
	"""Site Plan document (or dict) → limits; an empty field is no limit."""
	return PlanLimits(
		max_database_usage=int(plan.get("max_database_usage") or 0),
		max_storage_usage=int(plan.get("max_storage_usage") or 0),
		max_users=int(plan.get("max_users") or 0),
	)


def limit_state(site, suspended_by_policy: bool) -> LimitState:
	return LimitState(
		exceeded_since=site.get("site_usage_exceeded_on") if site.get("site_usage_exceeded") else None,
		warned_at=site.get("last_site_usage_warning_mail_sent_on"),
		suspended_by_policy=suspended_by_policy,
	)


def site_fields(decision: Decision, checked_at: datetime.datetime) -> dict:
	"""The Site fields that remember ``decision.state``."""
	state = decision.state
	return {
		"site_usage_exceeded": 1 if state.exceeded_since else 0,
		"site_usage_exceeded_on": state.exceeded_since,
		"last_site_usage_warning_mail_sent_on": state.warned_at,
		"site_usage_exceeded_last_checked_on": checked_at,
	}


def usage_percentages(limits: PlanLimits, measured: SiteUsage) -> dict:
	"""Press's ``current_database_usage``/``current_disk_usage``: percent of the plan's limit."""

	def percent(used: int, allowed_mib: int) -> int:
		return int(used * 100 / (allowed_mib * MIB)) if allowed_mib else 0

	return {
		"current_database_usage": percent(measured.database, limits.max_database_usage),
		"current_disk_usage": percent(measured.storage, limits.max_storage_usage),
	}
