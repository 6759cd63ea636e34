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

import re
from calendar import monthrange
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import IntEnum
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from analyzer.domain.model import ModelRef
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


class MonthEndFreeze(BaseModel):
    """Every month's close: the month's last ``last_days`` days and the next month's first
    ``first_days`` days, from 00:00 to 00:00 local time (e.g. a credit model during the books'
    close: ``last_days: 2, first_days: 1`` freezes 29 Nov 00:00 to 2 Dec 00:00)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    label: str = "month-end close"
    last_days: int = Field(ge=1, le=15)
    first_days: int = Field(default=0, ge=0, le=15)


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
    month_end: tuple[MonthEndFreeze, ...] = ()
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


_MODEL_SELECTOR = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?/(\*|[a-z0-9]([-a-z0-9.]*[a-z0-9])?)$")


class ModelCalendar(BaseModel):
    """Freezes for some models only (``namespace/name`` or ``namespace/*``), in force on top of
    the calendar every model shares: a credit model's month-end close, a team's own holidays."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    models: tuple[str, ...] = Field(min_length=1)
    calendar: FreezeCalendar

    @field_validator("models")
    @classmethod
    def _selectors(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for selector in value:
            if not _MODEL_SELECTOR.match(selector):
                raise ValueError(
                    f"{selector!r} is not 'namespace/name' or 'namespace/*' (lower case)"
                )
        return value

    def covers(self, model: ModelRef) -> bool:
        return str(model) in self.models or f"{model.namespace}/*" in self.models


@dataclass(frozen=True, kw_only=True, slots=True)
class ActiveFreeze:
    """One freeze occurrence that contains the instant asked about (UTC bounds)."""

    kind: Literal["weekly", "month-end", "holiday", "blackout"]
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


def _month_end_occurrence(
    freeze: MonthEndFreeze, now: datetime, zone: ZoneInfo
) -> ActiveFreeze | None:
    local_day = now.astimezone(zone).date()
    this_month = (local_day.year, local_day.month)
    last_month = (
        (local_day.year - 1, 12) if local_day.month == 1 else (local_day.year, local_day.month - 1)
    )
    # the close that began this month, or the one that began last month and runs into this one
    for year, month in (this_month, last_month):
        days = monthrange(year, month)[1]
        start_day = date(year, month, days - min(freeze.last_days, days) + 1)
        end_day = date(year, month, days) + timedelta(days=1 + freeze.first_days)
        start = resolve_local(start_day, time(0), zone, earliest=True)
        end = resolve_local(end_day, time(0), zone, earliest=False)
        if start <= now < end:
            return ActiveFreeze(kind="month-end", label=freeze.label, start=start, end=end)
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
    for month_end in calendar.month_end:
        occurrence = _month_end_occurrence(month_end, now_utc, zone)
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
    """Closed while any freeze that applies to the model is in force, open otherwise.

    The freezes that apply are those of ``calendar`` (every model; may be None) and of every
    ``per_model`` calendar that covers the model, each in its own time zone.
    """

    def __init__(
        self,
        calendar: FreezeCalendar | None,
        *,
        per_model: tuple[ModelCalendar, ...] = (),
        name: str = "change-window",
    ) -> None:
        self._calendar = calendar
        self._per_model = per_model
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    def check(self, context: GateContext) -> GateDecision:
        applicable = [("all models", self._calendar)] if self._calendar is not None else []
        applicable += [
            (", ".join(scoped.models), scoped.calendar)
            for scoped in self._per_model
            if scoped.covers(context.model)
        ]
        found: list[tuple[ActiveFreeze, ZoneInfo]] = []
        listed: list[JsonValue] = []
        freezes_json: list[JsonValue] = []
        for applies_to, calendar in applicable:
            zone = calendar.zone()
            listed.append({
                "applies_to": applies_to,
                "timezone": calendar.timezone,
                "local_time": context.now.astimezone(zone).isoformat(),
            })  # fmt: skip
            for freeze in active_freezes(calendar, context.now):
                found.append((freeze, zone))
                freezes_json.append({**freeze.to_json(zone), "calendar": applies_to})
        first = applicable[0][1] if applicable else None  # the shared calendar when there is one
        evidence: dict[str, JsonValue] = {
            "timezone": first.timezone if first else None,
            "local_time": context.now.astimezone(first.zone()).isoformat() if first else None,
            "calendars": listed,
            "freezes": freezes_json,
        }
        if not applicable:
            reason = f"no freeze calendar applies to {context.model}"
            return opened(self._name, context, reason, evidence)
        if not found:
            return opened(self._name, context, "no change freeze is in force", evidence)
        last, zone = max(found, key=lambda fz: fz[0].end)
        until = last.end.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")
        labels = ", ".join(f.label for f, _ in found)
        return closed(
            self._name, context, f"change freeze in force ({labels}) until {until}", evidence
        )
