"""Query templates with named placeholders, validated before anything is substituted.

A template is query text (PromQL for Prometheus) with placeholders ``{namespace}``, ``{model}``,
``{revision}`` and ``{window}``. Identifiers may appear only inside quoted label values; there
they are substituted as literal text (exact matchers) or regex-escaped text (``=~``/``!~``
matchers, where a ``.`` in a revision name would otherwise match any character). ``{window}``
(a duration such as ``3600s``) may appear anywhere. Any other ``{name}`` is refused, so a typo
such as ``{revison}`` fails at profile load rather than silently selecting nothing.

Values are validated before substitution (DNS-1123 names only), so quoting is never needed: a
value containing a quote, brace, backslash, comma or newline is refused, not escaped.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from analyzer.domain.errors import InvalidInputError

IDENTIFIER_PLACEHOLDERS = frozenset({"namespace", "model", "revision"})
PLACEHOLDERS = IDENTIFIER_PLACEHOLDERS | {"window"}
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SAFE_VALUE = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_WINDOW = re.compile(r"^[0-9]+[smhd]$")


@dataclass(frozen=True, slots=True)
class _Segment:
    """A run of template text, and the quoting context it sits in."""

    text: str
    quote: str | None  # the quote character when inside a string literal
    regex: bool  # inside a string that is the right-hand side of =~ or !~


def _matcher_is_regex(before: str) -> bool:
    stripped = before.rstrip()
    return stripped.endswith(("=~", "!~"))


def _scan_string(template: str, start: int, quote: str) -> int:
    """Index just past the closing quote of the string literal opening at ``start``."""
    i = start + 1
    while i < len(template):
        char = template[i]
        if char == "\\" and quote != "`":
            i += 2
            continue
        if char == quote:
            return i + 1
        i += 1
    raise InvalidInputError(f"unterminated string literal in template {template!r}")


@functools.lru_cache(maxsize=1024)
def _segments(template: str) -> tuple[_Segment, ...]:
    """The template cut into quoted and unquoted runs (cached: profiles reuse few templates)."""
    return tuple(_scan(template))


def _scan(template: str) -> Iterator[_Segment]:
    i = 0
    outside_start = 0
    while i < len(template):
        char = template[i]
        if char in "\"'`":
            yield _Segment(template[outside_start:i], None, regex=False)
            end = _scan_string(template, i, char)
            regex = _matcher_is_regex(template[:i])
            yield _Segment(template[i + 1 : end - 1], char, regex=regex)
            i = outside_start = end
        else:
            i += 1
    yield _Segment(template[outside_start:], None, regex=False)


def check_template(template: str, *, field: str | None = None) -> frozenset[str]:
    """Validate ``template``; return the placeholder names it uses."""
    try:
        return _checked(template)
    except InvalidInputError as exc:
        raise InvalidInputError(str(exc), field=field) from exc


@functools.lru_cache(maxsize=1024)
def _checked(template: str) -> frozenset[str]:
    """``check_template`` without the field in its errors (cached: a look checks the same few
    templates again; a refusal is not cached, and is raised again each time)."""
    used: set[str] = set()
    for segment in _segments(template):
        for match in _PLACEHOLDER.finditer(segment.text):
            name = match.group(1)
            if name not in PLACEHOLDERS:
                raise InvalidInputError(
                    f"unknown placeholder {{{name}}} (known: "
                    f"{', '.join('{' + p + '}' for p in sorted(PLACEHOLDERS))})"
                )
            if name in IDENTIFIER_PLACEHOLDERS and segment.quote is None:
                raise InvalidInputError(
                    f"placeholder {{{name}}} must be inside a quoted label value, "
                    f'e.g. revision_name="{{{name}}}"'
                )
            used.add(name)
    return frozenset(used)


def _regex_escaped(value: str, quote: str) -> str:
    # Validated values contain only [a-z0-9.-]; '.' is the only regex metacharacter among them.
    # In "..." and '...' PromQL strings a backslash must itself be escaped; in `...` it must not.
    escape = "\\" if quote == "`" else "\\\\"
    return value.replace(".", escape + ".")


def render(template: str, values: Mapping[str, str], *, field: str | None = None) -> str:
    """Substitute validated ``values`` into ``template``.

    Raises :class:`InvalidInputError` for an unsafe value, an unknown or misplaced placeholder,
    or a placeholder without a value; nothing is ever half-rendered.
    """
    used = check_template(template, field=field)
    for name, value in values.items():
        if not _safe(name, value):
            raise InvalidInputError(f"unsafe value {value!r} for {{{name}}}", field=field)
    if not used <= values.keys():
        missing = next(
            match.group(1)
            for segment in _segments(template)
            for match in _PLACEHOLDER.finditer(segment.text)
            if match.group(1) not in values
        )
        raise InvalidInputError(f"no value for placeholder {{{missing}}}", field=field)
    # The text depends on the template and the values of its own placeholders only, so looks
    # that differ in the window length share the rendering of templates without ``{window}``.
    return _rendered(template, tuple((name, values[name]) for name in sorted(used)))


@functools.lru_cache(maxsize=4096)
def _safe(name: str, value: str) -> bool:
    pattern = _WINDOW if name == "window" else _SAFE_VALUE
    return pattern.match(value) is not None


@functools.lru_cache(maxsize=4096)
def _rendered(template: str, values: tuple[tuple[str, str], ...]) -> str:
    """``template`` with its placeholders' checked ``values`` substituted (cached: the same
    templates and revisions are rendered at every look of a session)."""
    by_name = dict(values)
    return "".join(_render_segment(segment, by_name) for segment in _segments(template))


def _render_segment(segment: _Segment, values: Mapping[str, str]) -> str:
    text = _PLACEHOLDER.sub(lambda m: _value(m.group(1), values, segment), segment.text)
    return text if segment.quote is None else f"{segment.quote}{text}{segment.quote}"


def _value(name: str, values: Mapping[str, str], segment: _Segment) -> str:
    value = values[name]
    if segment.regex and segment.quote is not None and name != "window":
        return _regex_escaped(value, segment.quote)
    return value
