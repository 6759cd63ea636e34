"""Change-freeze calendars and the gate that keeps promotions out of them.

A calendar is written in the model's own IANA time zone, as people write freezes ("Friday
15:00 to Monday 08:00", "no changes on 24 December"), and evaluated against an aware instant.

DST: wall-clock times are resolved to instants per occurrence, so a freeze that spans the
spring-forward night is one hour shorter in absolute time and one that spans the fall-back night
one hour longer, exactly as the local clocks say. A boundary that falls on a wall-clock time
that does not exist (the skipped hour) or exists twice (the repeated hour) is resolved so the
freeze is as *long* as possible: starts take the earlier candidate instant, ends the later one.
Being frozen a little too long is the fail-closed side.

All comparisons are made in UTC: Python compares two datetimes that share a tzinfo by wall
time, ignoring ``fold``, which is wrong exactly in the repeated hour.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import IntEnum
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AwareDatetime, BaseModel, ConfigDict, field_validator, model_validator

from gates.base import GateContext, GateDecision, JsonValue, closed, opened


class Weekday(IntEnum):
    """ISO-ordered weekdays matching ``date.weekday()`` (Monday is 0)."""

    MONDAY = 0
    TUESDAY = 1
    WEDNESDAY = 2
    THURSDAY = 3
    FRIDAY = 4
    SATURDAY = 5
    SUNDAY = 6


_DAY_NAMES = {d.name.lower(): d for d in Weekday} | {d.name.lower()[:3]: d for d in Weekday}


def _parse_weekday(value: object) -> object:
    if isinstance(value, str) and value.strip().lower() in _DAY_NAMES:
        return _DAY_NAMES[value.strip().lower()]
    return value


class WeeklyFreeze(BaseModel):
    """A freeze recurring every week, e.g. Friday 15:00 → Monday 08:00 (local wall time).

    When the end day and time equal the start, the freeze lasts a whole week.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    label: str = "weekly freeze"
    start_day: Weekday
    start_time: time
    end_day: Weekday
    end_time: time

    _coerce_days = field_validator("start_day", "end_day", mode="before")(_parse_weekday)

    def span_days(self) -> int:
        """Whole local days from the start date to the end date (0..7)."""
        days = (self.end_day - self.start_day) % 7
        if days == 0 and self.end_time <= self.start_time:
            return 7
        return days


class Blackout(BaseModel):
    """An explicit frozen range of instants, ``[start, end)``; both ends must be aware."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    label: str = "blackout"
    start: AwareDatetime
    end: AwareDatetime

    @model_validator(mode="after")
    def _ordered(self) -> Blackout:
        if self.end <= self.start:
            raise ValueError(f"blackout {self.label!r} ends before it starts")
        return self


class FreezeCalendar(BaseModel):
    """Every freeze that applies to one model, in that model's IANA time zone."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    timezone: str = "UTC"
    weekly: tuple[WeeklyFreeze, ...] = ()
    holidays: tuple[date, ...] = ()
    blackouts: tuple[Blackout, ...] = ()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value

    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True, kw_only=True, slots=True)
class ActiveFreeze:
    """One freeze occurrence that contains the instant asked about (UTC bounds)."""

    kind: Literal["weekly", "holiday", "blackout"]
    label: str
    start: datetime
    end: datetime

    def to_json(self, zone: ZoneInfo) -> dict[str, JsonValue]:
        return {
            "kind": self.kind,
            "label": self.label,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "start_local": self.start.astimezone(zone).isoformat(),
            "end_local": self.end.astimezone(zone).isoformat(),
        }


def resolve_local(day: date, at: time, zone: ZoneInfo, *, earliest: bool) -> datetime:
    """The UTC instant of a local wall-clock time, choosing among DST candidates.

    In the repeated hour both ``fold`` values are real instants; in the skipped hour they are
    the two readings of a time that never appears. Either way ``earliest`` picks the earlier.
    """
    naive = datetime.combine(day, at)
    candidates = [naive.replace(tzinfo=zone, fold=fold).astimezone(UTC) for fold in (0, 1)]
    return min(candidates) if earliest else max(candidates)


def _weekly_occurrence(freeze: WeeklyFreeze, now: datetime, zone: ZoneInfo) -> ActiveFreeze | None:
    local_day = now.astimezone(zone).date()
    latest_start_day = local_day - timedelta(days=(local_day.weekday() - freeze.start_day) % 7)
    # A freeze can last up to seven days, so the occurrence that started a week earlier may
    # still be running.
    for start_day in (latest_start_day, latest_start_day - timedelta(days=7)):
        start = resolve_local(start_day, freeze.start_time, zone, earliest=True)
        end_day = start_day + timedelta(days=freeze.span_days())
        end = resolve_local(end_day, freeze.end_time, zone, earliest=False)
        if start <= now < end:
            return ActiveFreeze(kind="weekly", label=freeze.label, start=start, end=end)
    return None


def active_freezes(calendar: FreezeCalendar, now: datetime) -> tuple[ActiveFreeze, ...]:
    """Every freeze of ``calendar`` that contains the aware instant ``now``."""
    if now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    zone = calendar.zone()
    now_utc = now.astimezone(UTC)
    found: list[ActiveFreeze] = []
    for weekly in calendar.weekly:
        occurrence = _weekly_occurrence(weekly, now_utc, zone)
        if occurrence is not None:
            found.append(occurrence)
    for holiday in calendar.holidays:
        start = resolve_local(holiday, time(0), zone, earliest=True)
        end = resolve_local(holiday + timedelta(days=1), time(0), zone, earliest=False)
        if start <= now_utc < end:
            found.append(ActiveFreeze(kind="holiday", label=str(holiday), start=start, end=end))
    for blackout in calendar.blackouts:
        start, end = blackout.start.astimezone(UTC), blackout.end.astimezone(UTC)
        if start <= now_utc < end:
            found.append(ActiveFreeze(kind="blackout", label=blackout.label, start=start, end=end))
    return tuple(found)


class ChangeWindowGate:
    """Closed while any freeze in the calendar is in force, open otherwise."""

    def __init__(self, calendar: FreezeCalendar, *, name: str = "change-window") -> None:
        self._calendar = calendar
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    def check(self, context: GateContext) -> GateDecision:
        zone = self._calendar.zone()
        freezes = active_freezes(self._calendar, context.now)
        evidence: dict[str, JsonValue] = {
            "timezone": self._calendar.timezone,
            "local_time": context.now.astimezone(zone).isoformat(),
            "freezes": [f.to_json(zone) for f in freezes],
        }
        if not freezes:
            return opened(self._name, context, "no change freeze is in force", evidence)
        last = max(freezes, key=lambda f: f.end)
        until = last.end.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")
        labels = ", ".join(f.label for f in freezes)
        return closed(
            self._name, context, f"change freeze in force ({labels}) until {until}", evidence
        )
