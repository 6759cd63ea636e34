"""Datadog query templates: checked at load time, rendered from validated values.

A Datadog template is metric query text with the same named placeholders as a PromQL one
(``{namespace}``, ``{model}``, ``{revision}``, ``{window}``), placed by Datadog's syntax::

    kubeflow.kserve.inferences.count{kube_namespace:{namespace},kube_deployment:{revision}-deployment}
    avg:model.cpu{kube_namespace:{namespace},revision:{revision}} by {pod_name}
    p99:latency.distribution{revision:{revision}}.rollup({window})

Rules (each refusal is an ``InvalidInputError`` naming the field):

* ``{namespace}``, ``{model}`` and ``{revision}`` may appear **only inside a tag value** of a
  scope (``key:{revision}`` or ``key:{revision}-deployment-*``), never in a metric name, a tag
  key or outside a scope: a value can then only ever select, never change the query's shape.
* ``{window}`` (the window length in whole seconds, e.g. ``3600``) may appear only outside scopes
  (a ``.rollup({window})`` or ``.rollup(max, {window})`` argument).
* Braces that are not a placeholder must be a scope (right after a metric name) or a ``by``
  group list (``by {tag,tag}``); any other ``{name}`` is an unknown placeholder, so a typo such
  as ``{revison}`` fails at profile load instead of selecting nothing.

Values are DNS-1123 names (validated before substitution): lower-case letters, digits, ``-`` and
``.``, which Datadog tag values take literally (``*`` is Datadog's only wildcard), so no value
needs escaping and none can add a tag, a scope or a function.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass

from analyzer.domain.errors import InvalidInputError

IDENTIFIER_PLACEHOLDERS = frozenset({"namespace", "model", "revision"})
PLACEHOLDERS = IDENTIFIER_PLACEHOLDERS | {"window"}
_SAFE_VALUE = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_WINDOW_SECONDS = re.compile(r"^[1-9][0-9]{0,9}$")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# A tag key (Datadog: starts with a letter; letters, digits, '_', '-', ':', '.', '/').
_TAG_KEY = re.compile(r"^!?[A-Za-z][A-Za-z0-9_\-./]*$")
# Literal text of a tag value around placeholders: no separators, no quotes, no braces.
_TAG_VALUE_TEXT = re.compile(r"^[A-Za-z0-9_\-./*]*$")
# A metric name: Datadog's [A-Za-z][A-Za-z0-9_.]*; a selector may be prefixed by `aggr:`.
SELECTOR = re.compile(r"^\s*[A-Za-z][A-Za-z0-9_.]*\{[^{}]*(\{[a-z_]+\}[^{}]*)*\}\s*$")


@dataclass(frozen=True, slots=True)
class _Part:
    """A run of template text: literal, or a placeholder (``name`` set) in a tag value."""

    text: str
    name: str | None = None


def _close(template: str, start: int) -> int:
    """Index of the ``}`` closing the placeholder opened at ``start`` (no nesting inside)."""
    end = template.find("}", start)
    if end < 0:
        raise InvalidInputError(f"unbalanced '{{' in template {template!r}")
    return end


@functools.lru_cache(maxsize=1024)
def _parse(template: str) -> tuple[tuple[_Part, ...], frozenset[str]]:
    """The template cut into literal runs and placeholders; the placeholder names used.

    Raises ``InvalidInputError`` (without a field; callers add theirs) for any rule broken.
    """
    parts: list[_Part] = []
    used: set[str] = set()
    literal = ""
    i = 0
    while i < len(template):
        char = template[i]
        if char == "}":
            raise InvalidInputError(f"unbalanced '}}' in template {template!r}")
        if char != "{":
            literal += char
            i += 1
            continue
        before = template[:i]
        end = _close(template, i + 1)
        inner = template[i + 1 : end]
        if re.search(r"\bby\s*$", before):
            _check_group_by(inner)
            literal += template[i : end + 1]
            i = end + 1
            continue
        if not re.search(r"[A-Za-z0-9_.]$", before):
            if not _NAME.fullmatch(inner):
                raise InvalidInputError(
                    f"'{{' at offset {i} is neither a placeholder, a scope after a metric name "
                    "nor a `by {...}` group list"
                )
            _check_placeholder(inner, outside_scope=True)
            parts.append(_Part(literal))
            parts.append(_Part("", inner))
            literal = ""
            used.add(inner)
            i = end + 1
            continue
        i, literal = _scan_scope(template, i, literal, parts, used)
    parts.append(_Part(literal))
    return tuple(p for p in parts if p.text or p.name), frozenset(used)


def _scan_scope(
    template: str, i: int, literal: str, parts: list[_Part], used: set[str]
) -> tuple[int, str]:
    """Scan the scope opening at ``i``: tag items up to its ``}`` (placeholders nest inside).

    Returns the index after the scope and the literal text not yet emitted.
    """
    literal += "{"
    i += 1
    item = ""
    while True:
        if i >= len(template):
            raise InvalidInputError(f"unterminated scope in template {template!r}")
        char = template[i]
        if char in ",}":
            literal = _scope_item(item, literal, parts, used) + char
            item = ""
            i += 1
            if char == "}":
                return i, literal
            continue
        if char == "{":
            end = _close(template, i + 1)
            item += template[i : end + 1]
            i = end + 1
            continue
        item += char
        i += 1


def _check_placeholder(name: str, *, outside_scope: bool) -> None:
    if name not in PLACEHOLDERS:
        known = ", ".join("{" + p + "}" for p in sorted(PLACEHOLDERS))
        raise InvalidInputError(f"unknown placeholder {{{name}}} (known: {known})")
    if outside_scope and name in IDENTIFIER_PLACEHOLDERS:
        raise InvalidInputError(
            f"placeholder {{{name}}} must be inside a tag value of a scope, "
            f"e.g. metric{{kube_deployment:{{{name}}}-deployment}}"
        )
    if not outside_scope and name == "window":
        raise InvalidInputError("{window} belongs outside scopes, e.g. .rollup(avg, {window})")


def _check_group_by(inner: str) -> None:
    for key in inner.split(","):
        if not _TAG_KEY.match(key.strip()) or key.strip().startswith("!"):
            raise InvalidInputError(f"{key.strip()!r} in `by {{{inner}}}` is not a tag key")


def _scope_item(item: str, literal: str, parts: list[_Part], used: set[str]) -> str:
    """Check one scope item (``*``, ``key``, ``key:value``); return the literal text so far."""
    stripped = item.strip()
    if stripped in ("*", ""):
        if stripped == "" and item:
            raise InvalidInputError("empty tag in scope")
        return literal + item
    key, sep, value = item.partition(":")
    if "{" in key:
        raise InvalidInputError(
            f"a placeholder in the tag key of {item!r}: placeholders belong in tag values, "
            "e.g. kube_deployment:{revision}-deployment"
        )
    if not _TAG_KEY.match(key.strip()):
        raise InvalidInputError(f"{key.strip()!r} is not a tag key")
    literal += key + sep
    pos = 0
    for match in re.finditer(r"\{([^{}]*)\}", value):
        text = value[pos : match.start()]
        if not _TAG_VALUE_TEXT.match(text):
            raise InvalidInputError(f"{text!r} in tag value {value!r} is not tag-value text")
        name = match.group(1)
        _check_placeholder(name, outside_scope=False)
        parts.append(_Part(literal + text))
        parts.append(_Part("", name))
        used.add(name)
        literal = ""
        pos = match.end()
    rest = value[pos:]
    if not _TAG_VALUE_TEXT.match(rest):
        raise InvalidInputError(f"{rest!r} in tag value {value!r} is not tag-value text")
    return literal + rest


def check_datadog_template(template: str, *, field: str | None = None) -> frozenset[str]:
    """Validate ``template``; return the placeholder names it uses."""
    try:
        return _parse(template)[1]
    except InvalidInputError as exc:
        raise InvalidInputError(str(exc), field=field) from exc


def render_datadog(template: str, values: Mapping[str, str], *, field: str | None = None) -> str:
    """Substitute validated ``values`` (``window``: whole seconds) into ``template``."""
    try:
        parts, _ = _parse(template)
    except InvalidInputError as exc:
        raise InvalidInputError(str(exc), field=field) from exc
    for name, value in values.items():
        pattern = _WINDOW_SECONDS if name == "window" else _SAFE_VALUE
        if not pattern.match(value):
            raise InvalidInputError(f"unsafe value {value!r} for {{{name}}}", field=field)
    out = []
    for part in parts:
        if part.name is None:
            out.append(part.text)
        elif part.name in values:
            out.append(values[part.name])
        else:
            raise InvalidInputError(f"no value for placeholder {{{part.name}}}", field=field)
    return "".join(out)
