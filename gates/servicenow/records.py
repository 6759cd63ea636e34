"""Reading fields out of Table API records, whatever ``sysparm_display_value`` produced.

With ``sysparm_display_value=all`` (what the gate asks for) every field is
``{"display_value": ..., "value": ...}``; with ``false`` a plain string (reference fields
``{"link", "value"}`` unless links are excluded); with ``true`` a plain display string
(references ``{"link", "display_value"}``). Reading through :func:`field` accepts every shape,
so an instance or proxy that ignores the parameter still parses.

Date-time *values* are UTC ``YYYY-MM-DD HH:MM:SS``; *display values* are in the API user's
time zone and format, which is why windows are always read from ``value``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

_SN_DATETIME = "%Y-%m-%d %H:%M:%S"
# Change numbers are letters then digits (CHG0031337). Checking the shape before it is put into
# an encoded query stops a value like "CHG1^ORnumber!=x" from widening the query.
_CHANGE_NUMBER = re.compile(r"^[A-Z]{2,8}[0-9]{4,12}$")
_FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")


@dataclass(frozen=True, kw_only=True, slots=True)
class FieldValue:
    """A field's stored value and its display value ('' when absent)."""

    value: str
    display: str

    def matches(self, expected: str) -> bool:
        wanted = expected.strip()
        return bool(wanted) and wanted in (self.value.strip(), self.display.strip())

    def shown(self) -> str:
        return self.display or self.value


def field(record: dict[str, Any], name: str) -> FieldValue:
    """The value and display value of ``name`` in ``record`` (empty strings when missing)."""
    raw = record.get(name)
    if raw is None:
        return FieldValue(value="", display="")
    if isinstance(raw, dict):
        value = raw.get("value")
        display = raw.get("display_value")
        return FieldValue(
            value="" if value is None else str(value),
            display="" if display is None else str(display),
        )
    return FieldValue(value=str(raw), display=str(raw))


def parse_datetime(text: str) -> datetime | None:
    """A ServiceNow UTC date-time value, or None when empty or not in the API's format."""
    if not text.strip():
        return None
    try:
        return datetime.strptime(text.strip(), _SN_DATETIME).replace(tzinfo=UTC)
    except ValueError:
        return None


def is_change_number(text: str) -> bool:
    return bool(_CHANGE_NUMBER.match(text))


def is_field_name(text: str) -> bool:
    return bool(_FIELD_NAME.match(text))
