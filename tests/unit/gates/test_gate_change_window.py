"""Change-freeze calendars: weekly freezes, holidays, blackouts, and every DST edge."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest
from pydantic import ValidationError

from analyzer.domain.model import ModelRef
from gates.change_window import (
    Blackout,
    ChangeWindowGate,
    FreezeCalendar,
    ModelCalendar,
    MonthEndFreeze,
    Weekday,
    WeeklyFreeze,
    active_freezes,
)
from tests.unit.gates.helpers import context

WEEKEND = WeeklyFreeze(
    label="weekend freeze",
    start_day=Weekday.FRIDAY,
    start_time=time(15, 0),
    end_day=Weekday.MONDAY,
    end_time=time(8, 0),
)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def frozen(calendar: FreezeCalendar, at: datetime) -> bool:
    return bool(active_freezes(calendar, at))


# -- weekly freeze, no DST involved (London in November is GMT = UTC) -------------------------
LONDON = FreezeCalendar(timezone="Europe/London", weekly=(WEEKEND,))


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (utc(2026, 11, 27, 14, 59, 59), False),  # Friday, one second before
        (utc(2026, 11, 27, 15, 0), True),  # Friday 15:00 sharp
        (utc(2026, 11, 28, 12, 0), True),  # Saturday
        (utc(2026, 11, 30, 7, 59, 59), True),  # Monday, one second before the end
        (utc(2026, 11, 30, 8, 0), False),  # Monday 08:00 sharp
        (utc(2026, 11, 25, 12, 0), False),  # Wednesday
    ],
)
def test_weekend_freeze_boundaries(at: datetime, expected: bool) -> None:
    assert frozen(LONDON, at) is expected


def test_weekday_names_are_accepted_in_configuration() -> None:
    freeze = WeeklyFreeze.model_validate(
        {"start_day": "fri", "start_time": "15:00", "end_day": "Monday", "end_time": "08:00"}
    )
    assert freeze.start_day is Weekday.FRIDAY
    assert freeze.end_day is Weekday.MONDAY
    assert freeze.span_days() == 3


def test_same_start_and_end_is_a_week_long_freeze() -> None:
    always = FreezeCalendar(
        weekly=(WeeklyFreeze(start_day=0, start_time=time(9), end_day=0, end_time=time(9)),)
    )
    assert all(
        frozen(always, utc(2026, 11, day, hour)) for day in range(23, 30) for hour in (0, 9, 18)
    )


# -- DST: spring forward ----------------------------------------------------------------------
def test_freeze_spanning_spring_forward_night_ends_at_local_wall_time() -> None:
    # New York springs forward on Sunday 2027-03-14 (02:00 EST -> 03:00 EDT). The freeze
    # began Friday 15:00 EST (20:00 UTC) and ends Monday 08:00 EDT = 12:00 UTC, not 13:00.
    new_york = FreezeCalendar(timezone="America/New_York", weekly=(WEEKEND,))
    assert not frozen(new_york, utc(2027, 3, 12, 19, 59))  # Friday 14:59 EST
    assert frozen(new_york, utc(2027, 3, 12, 20, 0))  # Friday 15:00 EST
    assert frozen(new_york, utc(2027, 3, 15, 11, 59))  # Monday 07:59 EDT
    assert not frozen(new_york, utc(2027, 3, 15, 12, 0))  # Monday 08:00 EDT


def test_overnight_freeze_across_spring_forward_is_an_hour_shorter() -> None:
    # London springs forward on Sunday 2027-03-28 at 01:00 GMT -> 02:00 BST. A freeze from
    # Saturday 22:00 to Sunday 03:00 local lasts four real hours: 22:00 UTC to 02:00 UTC.
    night = FreezeCalendar(
        timezone="Europe/London",
        weekly=(WeeklyFreeze(start_day=5, start_time=time(22), end_day=6, end_time=time(3)),),
    )
    assert frozen(night, utc(2027, 3, 27, 22, 0))
    assert frozen(night, utc(2027, 3, 28, 1, 59, 59))  # 02:59:59 BST
    assert not frozen(night, utc(2027, 3, 28, 2, 0))  # 03:00 BST


def test_boundary_in_the_skipped_hour_resolves_to_the_longer_freeze() -> None:
    # 02:30 does not exist in New York on 2027-03-14. The start is taken at the earlier of
    # its two readings (06:30 UTC), so the freeze is never shorter than intended.
    calendar = FreezeCalendar(
        timezone="America/New_York",
        weekly=(WeeklyFreeze(start_day=6, start_time=time(2, 30), end_day=6, end_time=time(6)),),
    )
    assert not frozen(calendar, utc(2027, 3, 14, 6, 29))
    assert frozen(calendar, utc(2027, 3, 14, 6, 30))
    assert frozen(calendar, utc(2027, 3, 14, 9, 59))  # 05:59 EDT
    assert not frozen(calendar, utc(2027, 3, 14, 10, 0))  # 06:00 EDT


# -- DST: fall back ---------------------------------------------------------------------------
def test_freeze_spanning_fall_back_night_ends_at_local_wall_time() -> None:
    # New York falls back on Sunday 2026-11-01. Monday 08:00 EST is 13:00 UTC, not 12:00.
    new_york = FreezeCalendar(timezone="America/New_York", weekly=(WEEKEND,))
    assert frozen(new_york, utc(2026, 10, 30, 19, 0))  # Friday 15:00 EDT
    assert frozen(new_york, utc(2026, 11, 2, 12, 30))  # Monday 07:30 EST
    assert not frozen(new_york, utc(2026, 11, 2, 13, 0))  # Monday 08:00 EST


def test_end_in_the_repeated_hour_takes_the_later_instant() -> None:
    # 01:30 happens twice in New York on 2026-11-01: 05:30 UTC (EDT) and 06:30 UTC (EST).
    calendar = FreezeCalendar(
        timezone="America/New_York",
        weekly=(WeeklyFreeze(start_day=5, start_time=time(22), end_day=6, end_time=time(1, 30)),),
    )
    assert frozen(calendar, utc(2026, 11, 1, 6, 0))  # between the two 01:30s
    assert not frozen(calendar, utc(2026, 11, 1, 6, 30))


def test_comparison_is_by_instant_not_wall_clock_in_the_repeated_hour() -> None:
    # Asked with an aware local time in the *second* 01:15 (fold=1, EST), which is after the
    # end at the first 01:30 only when compared by instant.
    from zoneinfo import ZoneInfo

    calendar = FreezeCalendar(
        timezone="America/New_York",
        blackouts=(
            Blackout(start=utc(2026, 11, 1, 4, 0), end=utc(2026, 11, 1, 5, 30)),  # to 01:30 EDT
        ),
    )
    second_0115 = datetime(2026, 11, 1, 1, 15, fold=1, tzinfo=ZoneInfo("America/New_York"))
    first_0115 = datetime(2026, 11, 1, 1, 15, fold=0, tzinfo=ZoneInfo("America/New_York"))
    assert frozen(calendar, first_0115)
    assert not frozen(calendar, second_0115)


# -- holidays and blackouts -------------------------------------------------------------------
def test_holiday_is_the_whole_local_day() -> None:
    calendar = FreezeCalendar(timezone="America/New_York", holidays=(date(2026, 12, 25),))
    assert not frozen(calendar, utc(2026, 12, 25, 4, 59))  # 24th, 23:59 EST
    assert frozen(calendar, utc(2026, 12, 25, 5, 0))
    assert frozen(calendar, utc(2026, 12, 26, 4, 59))
    assert not frozen(calendar, utc(2026, 12, 26, 5, 0))


def test_blackout_is_half_open() -> None:
    calendar = FreezeCalendar(
        blackouts=(Blackout(label="year end", start=utc(2026, 12, 30), end=utc(2027, 1, 2)),)
    )
    assert frozen(calendar, utc(2026, 12, 30))
    assert not frozen(calendar, utc(2027, 1, 2))


def test_blackout_must_be_aware_and_ordered() -> None:
    with pytest.raises(ValidationError):
        Blackout(start=datetime(2026, 12, 30), end=utc(2027, 1, 2))
    with pytest.raises(ValidationError, match="ends before it starts"):
        Blackout(start=utc(2027, 1, 2), end=utc(2026, 12, 30))


def test_unknown_time_zone_is_rejected() -> None:
    with pytest.raises(ValidationError, match="unknown IANA time zone"):
        FreezeCalendar(timezone="Mars/Olympus_Mons")


def test_unknown_keys_are_rejected() -> None:
    with pytest.raises(ValidationError):
        FreezeCalendar.model_validate({"timezone": "UTC", "weekley": []})


# -- the gate ---------------------------------------------------------------------------------
def test_gate_is_closed_in_a_freeze_with_the_end_in_local_time() -> None:
    gate = ChangeWindowGate(LONDON)
    decision = gate.check(context(now=utc(2026, 11, 27, 16, 0)))
    assert not decision.open
    assert "weekend freeze" in decision.reason
    assert "until 2026-11-30 08:00 GMT" in decision.reason
    assert decision.evidence["freezes"][0]["end"] == "2026-11-30T08:00:00+00:00"
    assert decision.gate == "change-window"


def test_gate_is_open_outside_every_freeze() -> None:
    decision = ChangeWindowGate(LONDON).check(context(now=utc(2026, 11, 25, 10, 0)))
    assert decision.open
    assert decision.evidence["freezes"] == []
    assert decision.checked_at == utc(2026, 11, 25, 10, 0)


# -- month-end close -------------------------------------------------------------------------
CLOSE = FreezeCalendar(
    timezone="Europe/London", month_end=(MonthEndFreeze(last_days=2, first_days=1),)
)


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (utc(2026, 11, 28, 23, 59, 59), False),  # the day before the last two days of November
        (utc(2026, 11, 29, 0, 0), True),  # 29 Nov 00:00 (GMT)
        (utc(2026, 12, 1, 23, 59, 59), True),  # the first day of December still frozen
        (utc(2026, 12, 2, 0, 0), False),
        (utc(2027, 2, 27, 0, 0), True),  # February 2027 has 28 days: 27th and 28th
        (utc(2027, 2, 26, 23, 59), False),
        (utc(2027, 1, 1, 12, 0), True),  # the December close runs into the new year
        (utc(2027, 1, 2, 0, 0), False),
        # March 2027 ends in BST: the close starts at 30 Mar 00:00 BST = 29 Mar 23:00 UTC
        (utc(2027, 3, 29, 22, 59, 59), False),
        (utc(2027, 3, 29, 23, 0), True),
    ],
)
def test_month_end_close_boundaries(at: datetime, expected: bool) -> None:
    assert frozen(CLOSE, at) is expected


def test_month_end_close_is_named_in_the_reason_and_evidence() -> None:
    decision = ChangeWindowGate(CLOSE).check(context(now=utc(2026, 11, 30, 12, 0)))
    assert not decision.open
    assert decision.reason == (
        "change freeze in force (month-end close) until 2026-12-02 00:00 GMT"
    )
    assert decision.evidence["freezes"][0]["kind"] == "month-end"


# -- calendars for some models only ----------------------------------------------------------
CREDIT_CLOSE = ModelCalendar(models=("credit/pd-scorer",), calendar=CLOSE)
TEAM_HOLIDAY = ModelCalendar(
    models=("payments/*",),
    calendar=FreezeCalendar(timezone="America/New_York", holidays=(date(2026, 11, 26),)),
)
GATE = ChangeWindowGate(LONDON, per_model=(CREDIT_CLOSE, TEAM_HOLIDAY))


def test_a_model_calendar_freezes_its_models_only() -> None:
    month_end_tuesday = utc(2026, 12, 1, 12, 0)  # no weekend freeze; the credit close runs
    credit = GATE.check(context(now=month_end_tuesday))  # MODEL is credit/pd-scorer
    assert not credit.open
    assert credit.evidence["freezes"][0]["calendar"] == "credit/pd-scorer"
    other = ModelRef(namespace="credit", name="limits")
    assert GATE.check(context(now=month_end_tuesday, model=other)).open


def test_a_namespace_calendar_applies_in_its_own_time_zone() -> None:
    payments = ModelRef(namespace="payments", name="fraud-scorer")
    # Thanksgiving in New York: 26 Nov 00:00-24:00 EST = 05:00 UTC on the 26th to 05:00 on the 27th
    assert not GATE.check(context(now=utc(2026, 11, 26, 5, 0), model=payments)).open
    assert GATE.check(context(now=utc(2026, 11, 26, 4, 59), model=payments)).open
    decision = GATE.check(context(now=utc(2026, 11, 26, 12, 0), model=payments))
    assert [c["applies_to"] for c in decision.evidence["calendars"]] == ["all models", "payments/*"]
    assert decision.reason == "change freeze in force (2026-11-26) until 2026-11-27 00:00 EST"


def test_the_shared_calendar_still_applies_to_every_model() -> None:
    payments = ModelRef(namespace="payments", name="fraud-scorer")
    assert not GATE.check(context(now=utc(2026, 11, 28, 12, 0), model=payments)).open  # weekend


def test_with_only_model_calendars_other_models_have_no_freeze() -> None:
    gate = ChangeWindowGate(None, per_model=(CREDIT_CLOSE,))
    other = ModelRef(namespace="analytics", name="churn")
    decision = gate.check(context(now=utc(2026, 11, 30, 12, 0), model=other))
    assert decision.open
    assert decision.reason == "no freeze calendar applies to analytics/churn"
    assert not gate.check(context(now=utc(2026, 11, 30, 12, 0))).open


@pytest.mark.parametrize(
    "selector", ["credit", "Credit/x", "credit/", "*/x", "credit/a b", "a/b/c"]
)
def test_model_selectors_are_validated(selector: str) -> None:
    with pytest.raises(ValidationError, match="namespace/name"):
        ModelCalendar(models=(selector,), calendar=CLOSE)
