"""The canaries manifest of ``backtest --from prometheus``: which canaries, when, and their truth.

A metric store knows series, not canaries: which revision was compared with which, from when,
looked at how often, and whether it was in fact harmful is what the team knows (release notes,
incident reviews). The manifest says it, one entry per canary (YAML or JSON)::

    canaries:
      - id: fraud-2026-03-04          # optional; default "<model>:<canary>"
        model: risk-prod/fraud-scorer
        baseline: fraud-00041
        canary: fraud-00042
        start: 2026-03-04T02:00:00Z   # the analysis start (ISO 8601 with a zone)
        interval: 1m                  # one look every interval (default 1m)
        looks: 60                     # how many looks
        bake: 1h                      # optional: the planned bake (a bake-aware analysis)
        canary_weight: 0.1            # optional: the expected canary share (SRM check)
        truth: bad                    # optional: bad (should fail) or good (should not)

Errors name the entry and key (``canaries[3].start``) so the command exits 2 with a message the
user can act on.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from analyzer.backtests.replay import PlannedLook, RecordedCanary, Truth
from analyzer.domain.errors import InvalidInputError
from analyzer.domain.model import ModelRef
from analyzer.metrics.base import validate_revision

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h|d)$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_LOOKS = 10_000


def parse_duration(value: object) -> timedelta:
    """``90s``, ``5m``, ``1h``, ``1d`` or a number of seconds; positive."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value).strip())
        if not match:
            raise ValueError(f"{value!r} is not a duration (90s, 5m, 1h, 1d)")
        seconds = float(match.group(1)) * _SECONDS[match.group(2)]
    if seconds <= 0:
        raise ValueError("must be positive")
    return timedelta(seconds=seconds)


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str | None = Field(default=None, min_length=1, max_length=200)
    model: str
    baseline: str
    canary: str
    start: datetime
    interval: timedelta = timedelta(minutes=1)
    looks: int = Field(ge=1, le=MAX_LOOKS)
    bake: timedelta | None = None
    canary_weight: float | None = Field(default=None, gt=0, lt=1)
    truth: Literal["bad", "good"] | None = None

    @field_validator("interval", "bake", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        return None if value is None else parse_duration(value)

    @field_validator("start")
    @classmethod
    def _zoned(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("needs a time zone (Z or +01:00)")
        return value


class _Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    canaries: list[_Entry] = Field(min_length=1)


def _location(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _canary(entry: _Entry, index: int) -> RecordedCanary:
    where = f"canaries[{index}]"
    try:
        model = ModelRef.parse(entry.model)
    except InvalidInputError as exc:
        raise InvalidInputError(str(exc).split(": ", 1)[-1], field=f"{where}.model") from None
    validate_revision(entry.baseline, field=f"{where}.baseline")
    validate_revision(entry.canary, field=f"{where}.canary")
    bake = entry.bake.total_seconds() if entry.bake is not None else None
    looks = []
    for k in range(entry.looks):
        end = entry.start + entry.interval * (k + 1)
        elapsed = (end - entry.start).total_seconds()
        looks.append(
            PlannedLook(
                start=entry.start,
                end=end,
                canary_weight=entry.canary_weight,
                bake_elapsed=None if bake is None else elapsed / bake,
            )
        )
    return RecordedCanary(
        id=entry.id or f"{model}:{entry.canary}",
        model=model,
        baseline=entry.baseline,
        canary=entry.canary,
        looks=tuple(looks),
        truth=None if entry.truth is None else Truth(entry.truth),
    )


def parse_manifest(text: str, *, source: str = "<manifest>") -> list[RecordedCanary]:
    """Every canary of a manifest (YAML or JSON); ``InvalidInputError`` naming the bad key."""
    try:
        document: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInputError(f"{source}: not valid YAML or JSON: {exc}") from None
    try:
        manifest = _Manifest.model_validate(document)
    except ValidationError as exc:
        error = exc.errors()[0]
        raise InvalidInputError(
            f"{source}: {error['msg']}", field=_location(error["loc"]) or "canaries"
        ) from None
    canaries = [_canary(entry, i) for i, entry in enumerate(manifest.canaries)]
    seen: set[str] = set()
    for i, canary in enumerate(canaries):
        if canary.id in seen:
            raise InvalidInputError(f"duplicate canary id {canary.id!r}", field=f"canaries[{i}].id")
        seen.add(canary.id)
    return canaries


def select(
    canaries: Sequence[RecordedCanary],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    model: ModelRef | None = None,
) -> list[RecordedCanary]:
    """The canaries whose analysis started in ``[since, until)`` (and of ``model``)."""
    return [
        c
        for c in canaries
        if (since is None or c.looks[0].start >= since)
        and (until is None or c.looks[0].start < until)
        and (model is None or c.model == model)
    ]
