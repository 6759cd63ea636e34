"""A :class:`~analyzer.api.ui.charts.Chart` as markup: the ``<figure>`` with its SVG, caption
and data table.

Written here rather than in a Jinja macro for speed: a rollout of 500 looks draws thousands of
elements, and a macro call per element cost more than the rest of the page (docs/ui.md,
*Charts*). The safety rules of the templates hold all the same: every attribute value and every
text is escaped with ``markupsafe.escape`` (autoescaping's own function), element names come
from :data:`~analyzer.api.ui.charts.ALLOWED_TAGS` and attribute names must match
:data:`ATTRIBUTE_NAME` (no ``on*`` handler, no ``style``), so recorded text — an actor, a reason,
a metric name — can only ever show as text.
"""

from __future__ import annotations

import re

from markupsafe import Markup

from analyzer.api.ui.charts import ALLOWED_TAGS, Chart, DataTable, Shape
from analyzer.lru import BoundedLru

ATTRIBUTE_NAME = re.compile(r"^(?!on)(?!style$)[a-z][a-z0-9-]*$")
SVG_NAMESPACE = "http://www.w3.org/2000/svg"


_CHECKED_NAMES: set[str] = set()


def escaped(value: str) -> str:
    """``value`` safe in HTML text and in a double-quoted attribute: what autoescaping does
    (``markupsafe.escape``), as plain string replacements (no object per value: charts escape
    tens of thousands of values)."""
    return (
        value.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&#34;")
        .replace("'", "&#39;")
    )


def _attribute(name: str, value: str) -> str:
    if name not in _CHECKED_NAMES:
        if not ATTRIBUTE_NAME.match(name):
            raise ValueError(f"not a chart attribute: {name!r}")
        _CHECKED_NAMES.add(name)
    return f' {name}="{escaped(value)}"'


def _shape(shape: Shape) -> str:
    if shape.tag not in ALLOWED_TAGS:
        raise ValueError(f"not a chart element: {shape.tag!r}")
    parts = [f'<{shape.tag} class="{escaped(shape.cls)}"']
    parts.extend([_attribute(name, value) for name, value in shape.attrs])
    parts.extend([_attribute(name, value) for name, value in shape.data])
    parts.append(">")
    if shape.tip:
        parts.append(f"<title>{escaped(shape.tip)}</title>")
    if shape.text:
        parts.append(escaped(shape.text))
    parts.append(f"</{shape.tag}>")
    element = "".join(parts)
    if shape.href:
        return f'<a href="{escaped(shape.href)}">{element}</a>'
    return element


def svg(chart: Chart) -> Markup:
    key = escaped(chart.key)
    head = (
        f'<svg id="chart-{key}" class="chart-svg" xmlns="{SVG_NAMESPACE}" '
        f'viewBox="0 0 {int(chart.width)} {int(chart.height)}" role="img" '
        f'aria-labelledby="chart-{key}-title chart-{key}-desc" '
        f'data-kind="{escaped(chart.kind)}" data-verdict="{escaped(chart.verdict)}">'
        f'<title id="chart-{key}-title">{escaped(chart.title)}</title>'
        f'<desc id="chart-{key}-desc">{escaped(chart.desc)}</desc>'
        f'<rect class="frame" x="0" y="0" width="{int(chart.width)}" '
        f'height="{int(chart.height)}"></rect>'
    )
    body = "\n".join(_shape(s) for s in chart.shapes)
    return Markup(f"{head}\n{body}\n</svg>")  # noqa: S704 - every value above is escaped


def data_table(table: DataTable, key: str) -> Markup:
    tall = " tall" if len(table.rows) > 12 else ""
    head = "".join(f'<th scope="col">{escaped(c)}</th>' for c in table.columns)
    rows = _table_rows(table.rows)
    return Markup(  # noqa: S704 - every value is escaped
        f'<div class="scroll{tall}">\n<table class="chart-data" id="data-{escaped(key)}">\n'
        f"<caption>{escaped(table.caption)}</caption>\n<thead><tr>{head}</tr></thead>\n"
        f"<tbody>\n{rows}\n</tbody>\n</table>\n</div>"
    )


# Separators no escaping touches: a table's cells are joined with them, escaped in one pass (a
# 500-look table has ~4,000 cells) and the separators then become the cell and row tags.
_CELL, _ROW = "\x1f", "\x1e"


def _table_rows(rows: tuple[tuple[str, ...], ...]) -> str:
    """The rows' markup: every cell escaped, ``<tr><td>…</td><td>…</td></tr>`` per row."""
    raw = _ROW.join([_CELL.join(row) for row in rows])
    separators = sum(max(len(row) - 1, 0) for row in rows) + max(len(rows) - 1, 0)
    if raw.count(_CELL) + raw.count(_ROW) != separators:  # a cell holds a separator: one by one
        return "\n".join(
            "<tr><td>" + "</td><td>".join([escaped(cell) for cell in row]) + "</td></tr>"
            for row in rows
        )
    if not rows:
        return ""
    body = escaped(raw).replace(_CELL, "</td><td>").replace(_ROW, "</td></tr>\n<tr><td>")
    return f"<tr><td>{body}</td></tr>"


class _Figures:
    """The markup of recently drawn charts, by the chart *object*: the charts of a finished
    rollout's looks are kept (pictures.LookChartsCache) and written once, not per request.
    Holding the chart itself keeps its ``id`` from being reused by another object."""

    def __init__(self, size: int = 256) -> None:
        self._items: BoundedLru[int, tuple[Chart, Markup]] = BoundedLru(size)

    def get(self, chart: Chart) -> Markup | None:
        found = self._items.get(id(chart))
        return found[1] if found is not None and found[0] is chart else None

    def put(self, chart: Chart, markup: Markup) -> None:
        self._items.put(id(chart), (chart, markup))


_FIGURES = _Figures()


def figure(chart: Chart) -> Markup:
    """The chart, its caption and the table of its numbers."""
    found = _FIGURES.get(chart)
    if found is not None:
        return found
    made = Markup(  # noqa: S704 - the parts are Markup built above, the rest escaped
        f'<figure class="chart chart-{escaped(chart.kind)}" id="figure-{escaped(chart.key)}">\n'
        f"{svg(chart)}\n<figcaption>{escaped(chart.title)}</figcaption>\n"
        f"{data_table(chart.table, chart.key)}\n</figure>"
    )
    _FIGURES.put(chart, made)
    return made
