"""Reading what people type into the pages' forms, with messages that say what to fix.

HTML forms send every field, empty or not, so an empty field means "no filter". Times must be
ISO 8601 *with* a zone: a bare ``02:13`` would be read in some zone nobody chose, and an audit
answer to the wrong hour is worse than none.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from urllib.parse import parse_qs

from fastapi import Request

from analyzer.api.inputs import utc_instant
from analyzer.domain.errors import InvalidInputError
from analyzer.domain.events import EventType

TIME_EXAMPLE = "2026-03-04T02:13:00Z"
_MAX_FORM_FIELDS = 10


def blank_to_none(value: str | None) -> str | None:
    if value is None:
        return None
    stripped = value.strip()
    return stripped or None


def required(value: str | None, field: str, what: str) -> str:
    text = blank_to_none(value)
    if text is None:
        raise InvalidInputError(f"enter {what}", field=field)
    return text


def parse_instant(value: str | None, field: str) -> datetime | None:
    """An aware datetime from ISO 8601 text, None for an empty field."""
    text = blank_to_none(value)
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:  # fromisoformat also refuses out-of-range years and offsets
        raise InvalidInputError(
            f"{text!r} is not an ISO 8601 time; write it like {TIME_EXAMPLE}", field=field
        ) from exc
    return utc_instant(moment, field)


def parse_event_types(values: Sequence[str] | None) -> tuple[EventType, ...]:
    known = {t.value: t for t in EventType}
    chosen = []
    for value in values or ():
        if value not in known:
            raise InvalidInputError(f"unknown event type {value!r}", field="type")
        chosen.append(known[value])
    return tuple(chosen)


async def read_form(request: Request) -> dict[str, str]:
    """The first value of each field of an ``application/x-www-form-urlencoded`` body."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise InvalidInputError("send the form as application/x-www-form-urlencoded", field="body")
    try:
        fields = parse_qs((await request.body()).decode("utf-8"), max_num_fields=_MAX_FORM_FIELDS)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidInputError("the form could not be read", field="body") from exc
    return {name: values[0] for name, values in fields.items() if values}
