"""Server-rendered SVG charts of the recorded evidence. Pure: entry data in, chart data out.

A :class:`Chart` is geometry plus words: shapes with coordinates, a title, a ``<desc>`` that
says in one paragraph what the picture shows, and a :class:`DataTable` with the same numbers
for screen readers, print and tests. The template ``_charts.html`` writes the SVG (autoescaped,
no script, no inline style: colours come from classes in ``ui.css``), so nothing here builds
markup. Every plotted point carries ``data-*`` attributes with the recorded number it stands
for, so a test (or an auditor's tool) can check the picture against the evidence.

Readers take what they find in the entry data and never assume a key (see ``summaries.py``):
a value that was not recorded is not drawn and shows as "—" in the table.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

ALLOWED_TAGS = frozenset({"line", "rect", "circle", "polyline", "text", "path"})
WIDTH = 640
ROW = 34  # height of one dot-and-whisker row
LEFT = 120  # room for row labels
RIGHT = 24
TOP = 40  # room for the verdict line
AXIS = 34  # room for the x axis and its ticks
QUANTILES = ("p50", "p90", "p99")
NA = "n/a"
DASH = "—"
# Above this many elements in one series a chart draws no per-element tooltip: the table beside
# it has every number, and a tooltip per look made long rollouts' pages slow and heavy.
TIPS_UP_TO = 120


def clock_time(moment: datetime) -> str:
    """HH:MM:SS of a UTC time (isoformat is much faster than strftime)."""
    return moment.isoformat()[11:19]


@dataclass(frozen=True, slots=True)
class Shape:
    """One SVG element: ``tag`` from :data:`ALLOWED_TAGS`, a class for its colour, its geometry,
    the recorded numbers it stands for (``data``), a tooltip and, optionally, a link."""

    tag: str
    cls: str
    attrs: tuple[tuple[str, str], ...]
    data: tuple[tuple[str, str], ...] = ()
    text: str = ""
    tip: str = ""
    href: str = ""

    def __post_init__(self) -> None:
        if self.tag not in ALLOWED_TAGS:
            raise ValueError(f"not a chart element: {self.tag}")


@dataclass(frozen=True, slots=True)
class DataTable:
    caption: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class Chart:
    key: str  # unique on a page: the id of the <svg> and the prefix of its title/desc ids
    kind: str  # quantiles, rates, mix, means, threshold, evidence, score, sequence, traffic
    title: str
    desc: str
    width: int
    height: int
    shapes: tuple[Shape, ...]
    table: DataTable
    verdict: str = ""


def fmt(value: float | None, digits: int = 4) -> str:
    """A number for people: ``digits`` significant digits, "—" when not recorded."""
    if value is None or not math.isfinite(value):
        return DASH
    if value == 0:
        return "0"
    text = f"{value:.{digits}g}"
    return text.replace("e+0", "e").replace("e-0", "e-")


def fmt_interval(interval: tuple[float, float] | None, scale: float = 1.0) -> str:
    if interval is None:
        return DASH
    return f"[{fmt(interval[0] * scale)}, {fmt(interval[1] * scale)}]"


def number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    result = float(value)
    return result if math.isfinite(result) else None


def interval(value: Any) -> tuple[float, float] | None:
    if isinstance(value, list | tuple) and len(value) == 2:
        lo, hi = number(value[0]), number(value[1])
        if lo is not None and hi is not None:
            return (lo, hi)
    return None


def mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _num_attr(value: float) -> str:
    return f"{value:.1f}"


class Scale:
    """A linear map from data to pixels (``log``: of log10 of the data); values outside the
    domain are clamped just outside the frame."""

    __slots__ = ("_lo", "_max", "_min", "_offset", "_slope", "end", "hi", "lo", "log", "start")

    def __init__(
        self, lo: float, hi: float, start: float, end: float, *, log: bool = False
    ) -> None:
        self.lo, self.hi, self.start, self.end, self.log = lo, hi, start, end, log
        low, high = (math.log10(lo), math.log10(hi)) if log else (lo, hi)
        self._lo = low
        self._slope = (end - start) / (high - low) if high != low else 0.0
        self._offset = start if high != low else (start + end) / 2
        margin = 0.02 * (end - start)
        self._min, self._max = sorted((start - margin, end + margin))

    def __call__(self, value: float) -> float:
        v = math.log10(max(value, 1e-300)) if self.log else value
        pixel = self._offset + (v - self._lo) * self._slope
        return self._min if pixel < self._min else self._max if pixel > self._max else pixel


def span(values: Sequence[float], *, include_zero: bool = False) -> tuple[float, float]:
    """A padded range holding ``values`` (and 0 when asked)."""
    finite = [v for v in values if math.isfinite(v)]
    if include_zero:
        finite.append(0.0)
    if not finite:
        return (0.0, 1.0)
    lo, hi = min(finite), max(finite)
    if hi == lo:
        pad = abs(hi) * 0.1 or 1.0
        return (lo - pad, hi + pad)
    pad = (hi - lo) * 0.06
    return (lo - pad if not (include_zero and lo == 0) else lo, hi + pad)


def ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values inside [lo, hi]."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(lo / step) * step
    out = []
    value = first
    while value <= hi + step * 1e-9:
        out.append(round(value, 12))
        value += step
    return out


def _text(x: float, y: float, text: str, cls: str = "label", anchor: str = "start") -> Shape:
    return Shape(
        "text",
        cls,
        (("x", _num_attr(x)), ("y", _num_attr(y)), ("text-anchor", anchor)),
        text=text,
    )


def _line(x1: float, y1: float, x2: float, y2: float, cls: str, *, tip: str = "") -> Shape:
    attrs = (("x1", _num_attr(x1)), ("y1", _num_attr(y1)), ("x2", _num_attr(x2)))
    return Shape("line", cls, (*attrs, ("y2", _num_attr(y2))), tip=tip)


def _x_axis(scale: Scale, y: float, unit: str, *, scale_by: float = 1.0) -> list[Shape]:
    shapes = [_line(scale.start, y, scale.end, y, "axis")]
    for value in ticks(scale.lo, scale.hi):
        x = scale(value)
        shapes.append(_line(x, y, x, y + 4, "axis"))
        shapes.append(_text(x, y + 16, fmt(value * scale_by, 3), "tick", "middle"))
    if unit:
        shapes.append(_text(scale.end, y + 30, unit, "tick", "end"))
    return shapes


def _verdict_line(name: str, verdict: str, margin: str, critical: bool) -> Shape:
    words = f"{name}: verdict {verdict or DASH}" + (" · critical" if critical else "")
    return _text(8, 20, f"{words} — {margin}" if margin else words, f"verdict verdict-{verdict}")


def _dense_paths(
    marks: Sequence[tuple[str, str, str]], *, width: float, data_name: str
) -> list[Shape]:
    """Many small marks as one ``path`` per class: ``marks`` are (class, path segment, id).

    Beyond :data:`TIPS_UP_TO` looks a chart's per-look marks are a pixel or less apart, and an
    element each (with its attributes, link and numbers) made a long rollout's page several
    times heavier than its picture needs. Each path lists the ids it draws, in order, in
    ``data_name`` (so a test can still match every mark to the table beside the chart, which
    has every number); ``width`` is the stroke width the marks are drawn with."""
    grouped: dict[str, tuple[list[str], list[str]]] = {}
    for cls, segment, ident in marks:
        segments, ids = grouped.setdefault(cls, ([], []))
        segments.append(segment)
        ids.append(ident)
    return [
        Shape(
            "path",
            f"dense {cls}",
            (("d", "".join(segments)), ("stroke-width", _num_attr(width))),
            data=((data_name, " ".join(ids)),),
        )
        for cls, (segments, ids) in grouped.items()
    ]


# --- per metric: canary vs baseline -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ArmPoint:
    estimate: float | None
    ci: tuple[float, float] | None


@dataclass(frozen=True, slots=True)
class ArmRow:
    """One row of a dot-and-whisker chart: both arms of one quantity, and the allowed band."""

    label: str
    baseline: ArmPoint
    canary: ArmPoint
    allowed: tuple[float, float] | None = None  # the band the canary may fall in
    comparison: str = DASH  # difference or ratio with its interval, for the table


@dataclass(frozen=True, kw_only=True, slots=True)
class MetricPicture:
    """What one metric's chart shows; also the row of the evidence table (``evidence.py``)."""

    name: str
    kind: str
    verdict: str
    critical: bool
    rows: tuple[ArmRow, ...]
    unit: str
    scale_by: float  # shown value = recorded value x scale_by (rates in %)
    tolerance: str
    boundary: str
    margin: str
    decided_look: int | None
    n_baseline: int | None
    n_canary: int | None
    shares: tuple[tuple[str, float | None, float | None], ...] = ()  # categorical mix


def wilson(events: float, total: float, z: float = 1.959964) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion (descriptive, per arm)."""
    if total <= 0:
        return None
    p = events / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def _e_margin(statistic: Mapping[str, Any]) -> tuple[str, str]:
    """(boundary, margin) of an e-process: the threshold and where the e-value stands."""
    e_value, threshold = number(statistic.get("e_value")), number(statistic.get("threshold"))
    if threshold is None:
        return DASH, ""
    boundary = f"e-value ≥ {fmt(threshold)} fails"
    if e_value is None:
        return boundary, ""
    return boundary, f"e-value {fmt(e_value)} of {fmt(threshold)}"


def metric_picture(metric: Mapping[str, Any]) -> MetricPicture:
    """The picture (and table row) of one recorded metric result, whatever its kind."""
    kind = str(metric.get("kind", ""))
    estimate, statistic = mapping(metric.get("estimate")), mapping(metric.get("statistic"))
    n = mapping(metric.get("n"))
    tolerance = number(statistic.get("tolerance"))
    decided = statistic.get("decided_look")
    boundary, margin = _e_margin(statistic)
    rows: tuple[ArmRow, ...] = ()
    unit, scale_by, tolerance_text = "", 1.0, DASH
    shares: tuple[tuple[str, float | None, float | None], ...] = ()
    if kind == "histogram":
        rows = _quantile_rows(estimate, tolerance)
        unit = "latency (as recorded)"
        if tolerance is not None:
            tolerance_text = f"canary ≤ baseline × {fmt(1 + tolerance)}"
    elif kind == "proportion":
        rows = (_rate_row(estimate, statistic, n, tolerance),)
        unit, scale_by = "rate (%)", 100.0
        if tolerance is not None:
            tolerance_text = f"difference ≤ {fmt(100 * tolerance)} pp"
    elif kind == "samples":
        rows = (_means_row(estimate, statistic),)
        unit = "mean"
        band = number(statistic.get("tolerance"))
        tolerance_text = f"±{fmt(band)} × |shift|" if band is not None else DASH
        ci = interval(estimate.get("ci"))
        boundary = f"{fmt(100 * (number(estimate.get('confidence')) or 0.98), 3)} % interval"
        margin = f"shift {fmt(number(estimate.get('shift')))} {fmt_interval(ci)}"
    elif kind == "threshold":
        rows = (_threshold_row(estimate, statistic),)
        unit = "value"
        low, high = number(statistic.get("min")), number(statistic.get("max"))
        tolerance_text = f"{fmt(low) if low is not None else '−∞'} … " + (
            fmt(high) if high is not None else "+∞"
        )
        boundary = "fixed bound"
        margin = f"canary {fmt(number(estimate.get('canary')))} within {tolerance_text}?"
    elif kind == "categorical":
        shares = _shares(estimate)
        unit, scale_by = "share (%)", 100.0
        tolerance_text = "no change of the mix"
    return MetricPicture(
        name=str(metric.get("name", "")),
        kind=kind,
        verdict=str(metric.get("verdict", "")),
        critical=metric.get("critical") is True,
        rows=rows,
        unit=unit,
        scale_by=scale_by,
        tolerance=tolerance_text,
        boundary=boundary,
        margin=margin,
        decided_look=decided
        if isinstance(decided, int) and not isinstance(decided, bool)
        else None,
        n_baseline=_count(n.get("baseline")),
        n_canary=_count(n.get("canary")),
        shares=shares,
    )


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _quantile_rows(estimate: Mapping[str, Any], tolerance: float | None) -> tuple[ArmRow, ...]:
    rows = []
    for q in QUANTILES:
        found = mapping(estimate.get(q))
        if not found:
            continue
        base = number(found.get("baseline"))
        ratio = number(found.get("ratio"))
        allowed = (base, base * (1 + tolerance)) if base is not None and tolerance else None
        rows.append(
            ArmRow(
                label=q,
                baseline=ArmPoint(base, interval(found.get("baseline_ci"))),
                canary=ArmPoint(number(found.get("canary")), interval(found.get("canary_ci"))),
                allowed=allowed,
                comparison=f"ratio {fmt(ratio)}" if ratio is not None else DASH,
            )
        )
    return tuple(rows)


def _rate_row(
    estimate: Mapping[str, Any],
    statistic: Mapping[str, Any],
    n: Mapping[str, Any],
    tolerance: float | None,
) -> ArmRow:
    events = mapping(statistic.get("events"))
    base, canary = number(estimate.get("baseline_rate")), number(estimate.get("canary_rate"))

    def arm_ci(arm: str) -> tuple[float, float] | None:
        count, total = number(events.get(arm)), number(n.get(arm))
        return wilson(count, total) if count is not None and total is not None else None

    diff = number(estimate.get("diff"))
    cs = interval(mapping(estimate.get("intervals")).get("rate"))
    comparison = DASH
    if diff is not None:
        comparison = f"difference {fmt(100 * diff)} pp {fmt_interval(cs, 100)}"
    allowed = (base, base + tolerance) if base is not None and tolerance is not None else None
    return ArmRow(
        label="rate",
        baseline=ArmPoint(base, arm_ci("baseline")),
        canary=ArmPoint(canary, arm_ci("canary")),
        allowed=allowed,
        comparison=comparison,
    )


def _means_row(estimate: Mapping[str, Any], statistic: Mapping[str, Any]) -> ArmRow:
    ci = interval(estimate.get("ci"))
    shift = number(estimate.get("shift"))
    band = number(statistic.get("band"))
    base = number(estimate.get("mean_baseline"))
    allowed = (base - band, base + band) if base is not None and band is not None else None
    return ArmRow(
        label="mean",
        baseline=ArmPoint(base, None),
        canary=ArmPoint(number(estimate.get("mean_canary")), None),
        allowed=allowed,
        comparison=f"shift {fmt(shift)} {fmt_interval(ci)}" if shift is not None else DASH,
    )


def _threshold_row(estimate: Mapping[str, Any], statistic: Mapping[str, Any]) -> ArmRow:
    low, high = number(statistic.get("min")), number(statistic.get("max"))
    canary = number(estimate.get("canary"))
    if low is None and high is None:
        allowed = None
    else:
        reach = [v for v in (low, high, canary, number(estimate.get("baseline"))) if v is not None]
        allowed = (
            low if low is not None else min(reach),
            high if high is not None else max(reach),
        )
    return ArmRow(
        label="value",
        baseline=ArmPoint(number(estimate.get("baseline")), None),
        canary=ArmPoint(canary, None),
        allowed=allowed,
    )


def _shares(estimate: Mapping[str, Any]) -> tuple[tuple[str, float | None, float | None], ...]:
    base, canary = mapping(estimate.get("baseline_shares")), mapping(estimate.get("canary_shares"))
    names = list(dict.fromkeys([*base, *canary]))
    return tuple((str(c), number(base.get(c)), number(canary.get(c))) for c in names)


def metric_chart(metric: Mapping[str, Any], key: str) -> Chart | None:
    """Canary vs baseline for one metric of an analysis, or None when nothing can be drawn."""
    picture = metric_picture(metric)
    if picture.kind == "categorical":
        return _mix_chart(picture, key) if picture.shares else None
    if not picture.rows or all(
        r.baseline.estimate is None and r.canary.estimate is None for r in picture.rows
    ):
        return None
    return _arms_chart(picture, key)


_KIND_TITLES = {
    "histogram": "latency quantiles, canary vs baseline",
    "proportion": "rate, canary vs baseline",
    "samples": "mean, canary vs baseline",
    "threshold": "canary value vs its bound",
}


def _arms_chart(picture: MetricPicture, key: str) -> Chart:
    rows = picture.rows
    height = TOP + ROW * 2 * len(rows) + AXIS
    values: list[float] = []
    for row in rows:
        for side in (row.baseline, row.canary):
            values += [v for v in (side.estimate, *(side.ci or ())) if v is not None]
        values += list(row.allowed or ())
    scale = Scale(*span(values), LEFT, WIDTH - RIGHT)
    shapes: list[Shape] = [
        _verdict_line(picture.name, picture.verdict, picture.margin, picture.critical)
    ]
    table_rows: list[tuple[str, ...]] = []
    k = picture.scale_by
    for i, row in enumerate(rows):
        top = TOP + i * 2 * ROW
        if row.allowed is not None:
            x1, x2 = scale(row.allowed[0]), scale(row.allowed[1])
            shapes.append(
                Shape(
                    "rect",
                    "band",
                    (("x", _num_attr(min(x1, x2))), ("y", _num_attr(top + 2)),
                     ("width", _num_attr(max(abs(x2 - x1), 1.0))),
                     ("height", _num_attr(2 * ROW - 4))),
                    data=(("data-metric", picture.name), ("data-row", row.label),
                          ("data-allowed-lo", repr(row.allowed[0])),
                          ("data-allowed-hi", repr(row.allowed[1]))),
                    tip=f"allowed for the canary: {fmt(row.allowed[0] * k)} … "
                    f"{fmt(row.allowed[1] * k)} ({picture.tolerance})",
                )
            )  # fmt: skip
        for j, (arm, point) in enumerate((("baseline", row.baseline), ("canary", row.canary))):
            y = top + ROW * j + ROW / 2
            shapes.append(_text(LEFT - 8, y + 4, f"{row.label} {arm}", "label", "end"))
            if point.ci is not None:
                shapes.append(_line(scale(point.ci[0]), y, scale(point.ci[1]), y,
                                    f"whisker arm-{arm}", tip=f"{arm} {row.label} interval "
                                    f"{fmt_interval(point.ci, k)}"))  # fmt: skip
                for end in point.ci:
                    shapes.append(_line(scale(end), y - 5, scale(end), y + 5, f"whisker arm-{arm}"))
            if point.estimate is not None:
                shapes.append(
                    Shape(
                        "circle",
                        f"dot arm-{arm}",
                        (("cx", _num_attr(scale(point.estimate))), ("cy", _num_attr(y)),
                         ("r", "5")),
                        data=(("data-metric", picture.name), ("data-row", row.label),
                              ("data-arm", arm), ("data-estimate", repr(point.estimate)),
                              *((("data-lo", repr(point.ci[0])), ("data-hi", repr(point.ci[1])))
                                if point.ci is not None else ())),
                        tip=f"{arm} {row.label} {fmt(point.estimate * k)}"
                        f" {fmt_interval(point.ci, k) if point.ci else ''}".rstrip(),
                    )
                )  # fmt: skip
        table_rows.append(
            (
                row.label,
                _estimate_text(row.baseline, k),
                _estimate_text(row.canary, k),
                row.comparison,
                DASH
                if row.allowed is None
                else f"{fmt(row.allowed[0] * k)} … {fmt(row.allowed[1] * k)}",
            )
        )
    shapes += _x_axis(scale, height - AXIS + 6, picture.unit, scale_by=k)
    title = f"{picture.name}: {_KIND_TITLES.get(picture.kind, picture.kind)}"
    return Chart(
        key=key,
        kind=picture.kind,
        title=title,
        desc=_arms_desc(picture, table_rows),
        width=WIDTH,
        height=height,
        shapes=tuple(shapes),
        table=DataTable(
            caption=f"{picture.name}: the numbers in the chart",
            columns=(
                "quantity",
                "baseline [interval]",
                "canary [interval]",
                "comparison [interval]",
                "allowed for the canary",
            ),
            rows=tuple(table_rows),
        ),
        verdict=picture.verdict,
    )


def _estimate_text(point: ArmPoint, scale_by: float) -> str:
    if point.estimate is None:
        return DASH
    text = fmt(point.estimate * scale_by)
    return f"{text} {fmt_interval(point.ci, scale_by)}" if point.ci is not None else text


def _arms_desc(picture: MetricPicture, rows: list[tuple[str, ...]]) -> str:
    parts = [f"{r[0]}: baseline {r[1]}, canary {r[2]}" for r in rows]
    return (
        f"Dot-and-whisker chart of {picture.name} ({picture.kind}): "
        + "; ".join(parts)
        + f". Allowed: {picture.tolerance}. Verdict {picture.verdict}"
        + (f", {picture.margin}." if picture.margin else ".")
    )


def _mix_chart(picture: MetricPicture, key: str) -> Chart:
    bar = 12
    group = 2 * bar + 10
    height = TOP + group * len(picture.shares) + AXIS
    peak = max([v for _, b, c in picture.shares for v in (b, c) if v is not None] or [1.0])
    scale = Scale(0.0, max(peak * 1.08, 1e-9), LEFT, WIDTH - RIGHT)
    shapes: list[Shape] = [
        _verdict_line(picture.name, picture.verdict, picture.margin, picture.critical)
    ]
    rows: list[tuple[str, ...]] = []
    for i, (category, base, canary) in enumerate(picture.shares):
        top = TOP + i * group
        shapes.append(_text(LEFT - 8, top + bar + 4, category, "label", "end"))
        for j, (arm, share) in enumerate((("baseline", base), ("canary", canary))):
            if share is None:
                continue
            shapes.append(
                Shape(
                    "rect",
                    f"bar arm-{arm}",
                    (("x", _num_attr(LEFT)), ("y", _num_attr(top + j * bar)),
                     ("width", _num_attr(max(scale(share) - LEFT, 0.5))),
                     ("height", _num_attr(bar - 1))),
                    data=(("data-metric", picture.name), ("data-category", category),
                          ("data-arm", arm), ("data-share", repr(share))),
                    tip=f"{category} {arm} {fmt(100 * share)} %",
                )
            )  # fmt: skip
        change = DASH if base is None or canary is None else f"{fmt(100 * (canary - base))} pp"
        rows.append((category, _pct(base), _pct(canary), change))
    shapes += _x_axis(scale, height - AXIS + 6, picture.unit, scale_by=100.0)
    return Chart(
        key=key,
        kind="mix",
        title=f"{picture.name}: decision mix, canary vs baseline",
        desc=f"Paired bars of {picture.name}: "
        + "; ".join(f"{r[0]} baseline {r[1]}, canary {r[2]}" for r in rows)
        + f". Verdict {picture.verdict}"
        + (f", {picture.margin}." if picture.margin else "."),
        width=WIDTH,
        height=height,
        shapes=tuple(shapes),
        table=DataTable(
            caption=f"{picture.name}: shares in the chart",
            columns=("category", "baseline share", "canary share", "change"),
            rows=tuple(rows),
        ),
        verdict=picture.verdict,
    )


def _pct(share: float | None) -> str:
    return DASH if share is None else f"{fmt(100 * share)} %"


# --- per analysis: the evidence over looks ---------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class MetricAtLook:
    verdict: str
    e_value: float | None
    threshold: float | None
    interval: tuple[float, float] | None  # a proportion's confidence sequence of the difference
    tolerance: float | None
    kind: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Look:
    """One ``analysis_recorded`` entry of a rollout, numbered from 1 in recorded order."""

    number: int
    seq: int
    recorded_at: datetime
    verdict: str
    score: float | None
    metrics: dict[str, MetricAtLook] = field(default_factory=dict)
    score_text: str = ""  # set from verdict and score: "n/a" for an inconclusive look, never 0

    def __post_init__(self) -> None:
        decided = self.verdict in ("pass", "fail") and self.score is not None
        object.__setattr__(self, "score_text", fmt(self.score) if decided else NA)


@dataclass(frozen=True, slots=True)
class LookParts:
    """What a look's entry says, apart from its place in the rollout (cacheable per entry)."""

    verdict: str
    score: float | None
    metrics: dict[str, MetricAtLook]


def look_parts(data: Mapping[str, Any]) -> LookParts | None:
    """The verdict, score and each metric's sequential numbers of an analysis entry's data."""
    result = data.get("result")
    source = mapping(result) if isinstance(result, Mapping) else data
    verdict = source.get("verdict")
    if not isinstance(verdict, str):
        return None
    metrics: dict[str, MetricAtLook] = {}
    for m in source.get("metrics") or ():
        if not isinstance(m, Mapping):
            continue
        statistic, estimate = mapping(m.get("statistic")), mapping(m.get("estimate"))
        metrics[str(m.get("name", ""))] = MetricAtLook(
            verdict=str(m.get("verdict", "")),
            e_value=number(statistic.get("e_value")),
            threshold=number(statistic.get("threshold")),
            interval=interval(mapping(estimate.get("intervals")).get("rate")),
            tolerance=number(statistic.get("tolerance")),
            kind=str(m.get("kind", "")),
        )
    return LookParts(verdict=verdict, score=number(source.get("score")), metrics=metrics)


def look_of(number_: int, seq: int, recorded_at: datetime, data: Mapping[str, Any]) -> Look | None:
    parts = look_parts(data)
    if parts is None:
        return None
    return Look(
        number=number_,
        seq=seq,
        recorded_at=recorded_at,
        verdict=parts.verdict,
        score=parts.score,
        metrics=parts.metrics,
    )


def _look_scale(looks: Sequence[Look]) -> Scale:
    return Scale(0.5, max(len(looks), 1) + 0.5, LEFT, WIDTH - RIGHT)


def _look_axis(scale: Scale, y: float) -> list[Shape]:
    shapes = [_line(scale.start, y, scale.end, y, "axis")]
    for value in ticks(1, scale.hi - 0.5):
        if value != int(value):
            continue
        x = scale(value)
        shapes.append(_line(x, y, x, y + 4, "axis"))
        shapes.append(_text(x, y + 16, str(int(value)), "tick", "middle"))
    shapes.append(_text(scale.end, y + 30, "look", "tick", "end"))
    return shapes


def evidence_chart(looks: Sequence[Look], key: str) -> Chart | None:
    """Each metric's e-value over the looks on a log scale, with its boundary."""
    names = list(dict.fromkeys(n for look in looks for n, m in look.metrics.items()
                               if m.e_value is not None))  # fmt: skip
    if not names:
        return None
    height = 260
    values = [m.e_value for look in looks for m in look.metrics.values() if m.e_value is not None]
    thresholds = sorted({m.threshold for lk in looks for m in lk.metrics.values()
                         if m.threshold is not None})  # fmt: skip
    lo = min([*values, *thresholds, 1.0])
    hi = max([*values, *thresholds, 1.0])
    y_scale = Scale(lo / 2, hi * 2, height - AXIS, TOP, log=True)
    x_scale = _look_scale(looks)
    shapes: list[Shape] = []
    for t in thresholds:
        y = y_scale(t)
        shapes.append(_line(LEFT, y, WIDTH - RIGHT, y, "boundary", tip=f"boundary {fmt(t)}"))
        shapes.append(_text(WIDTH - RIGHT, y - 4, f"boundary {fmt(t)}", "tick", "end"))
    one = y_scale(1.0)
    shapes.append(_line(LEFT, one, WIDTH - RIGHT, one, "zero", tip="e-value 1: no evidence"))
    for power in range(math.floor(math.log10(lo / 2)), math.ceil(math.log10(hi * 2)) + 1):
        y = y_scale(10.0**power)
        if TOP <= y <= height - AXIS:
            shapes.append(_text(LEFT - 6, y + 4, f"{10.0**power:g}", "tick", "end"))
    for index, name in enumerate(names):
        series = f"series-{index % 6}"
        points = [(lk, lk.metrics[name]) for lk in looks if name in lk.metrics]
        path = " ".join(
            f"{_num_attr(x_scale(lk.number))},{_num_attr(y_scale(m.e_value))}"
            for lk, m in points
            if m.e_value is not None
        )
        shapes.append(Shape("polyline", f"trace {series}", (("points", path),), tip=name))
        dots = len(points) <= 120  # beyond, the table carries the numbers and the line the shape
        for lk, m in points:
            if m.e_value is None or (not dots and lk is not looks[-1]):
                continue
            shapes.append(
                Shape(
                    "circle",
                    f"point {series}",
                    (("cx", _num_attr(x_scale(lk.number))), ("cy", _num_attr(y_scale(m.e_value))),
                     ("r", "3")),
                    data=(("data-metric", name), ("data-look", str(lk.number)),
                          ("data-e-value", repr(m.e_value))),
                    tip=f"{name} look {lk.number}: e-value {fmt(m.e_value)}",
                    href=f"/ui/events/{lk.seq}",
                )
            )  # fmt: skip
        shapes.append(_text(LEFT + 4 + 150 * index, 20, f"— {name}", f"legend {series}"))
    shapes += _look_axis(x_scale, height - AXIS + 6)
    rows = tuple(
        (str(lk.number), f"#{lk.seq}", lk.verdict, lk.score_text,
         *(fmt(lk.metrics[n].e_value) if n in lk.metrics else DASH for n in names))
        for lk in looks
    )  # fmt: skip
    return Chart(
        key=key,
        kind="evidence",
        title="Evidence over the looks (e-value against its boundary)",
        desc=f"Line chart on a log scale of the e-values of {', '.join(names)} over "
        f"{len(looks)} looks; a metric fails when its e-value reaches the boundary "
        f"({', '.join(fmt(t) for t in thresholds) or DASH}). "
        f"Last look {looks[-1].number}: verdict {looks[-1].verdict}.",
        width=WIDTH,
        height=height,
        shapes=tuple(shapes),
        table=DataTable(
            caption="Each look: verdict, score and each metric's e-value",
            columns=("look", "entry", "verdict", "score", *(f"{n} e-value" for n in names)),
            rows=rows,
        ),
        verdict=looks[-1].verdict,
    )


def score_chart(looks: Sequence[Look], key: str) -> Chart | None:
    """The score per look; an inconclusive look is marked "n/a" (no bar), never drawn as 0."""
    if not looks:
        return None
    height = 170
    y_scale = Scale(0.0, 100.0, height - AXIS, TOP)
    x_scale = _look_scale(looks)
    width = max(min((x_scale.end - x_scale.start) / len(looks) - 1, 14), 0.6)
    shapes: list[Shape] = []
    for value in (0, 50, 100):
        y = y_scale(value)
        shapes.append(_line(LEFT, y, WIDTH - RIGHT, y, "grid"))
        shapes.append(_text(LEFT - 6, y + 4, str(value), "tick", "end"))
    tips = len(looks) <= TIPS_UP_TO
    bottom = height - AXIS
    if not tips:  # one path per kind of bar: each bar a vertical stroke of the bar's width
        marks = [
            ("na", f"M{_num_attr(x_scale(lk.number))},{_num_attr(bottom)}v-6", str(lk.number))
            if lk.score_text == NA
            else (f"bar verdict-{lk.verdict}",
                  f"M{_num_attr(x_scale(lk.number))},{_num_attr(bottom)}"
                  f"V{_num_attr(min(y_scale(lk.score or 0.0), bottom - 1))}", str(lk.number))
            for lk in looks
        ]  # fmt: skip
        shapes += _dense_paths(marks, width=width, data_name="data-looks")
    for lk in looks if tips else ():
        x = x_scale(lk.number) - width / 2
        common = (("data-look", str(lk.number)), ("data-verdict", lk.verdict),
                  ("data-score", lk.score_text))  # fmt: skip
        if lk.score_text == NA:
            shapes.append(
                Shape(
                    "rect", "na",
                    (("x", _num_attr(x)), ("y", _num_attr(height - AXIS - 6)),
                     ("width", _num_attr(width)), ("height", "6")),
                    data=common, tip=f"look {lk.number}: {lk.verdict}, score n/a" if tips else "",
                    href=f"/ui/events/{lk.seq}",
                )
            )  # fmt: skip
            continue
        assert lk.score is not None
        top = y_scale(lk.score)
        shapes.append(
            Shape(
                "rect", f"bar verdict-{lk.verdict}",
                (("x", _num_attr(x)), ("y", _num_attr(top)), ("width", _num_attr(width)),
                 ("height", _num_attr(max(height - AXIS - top, 1.0)))),
                data=common,
                tip=f"look {lk.number}: {lk.verdict}, score {lk.score_text}" if tips else "",
                href=f"/ui/events/{lk.seq}",
            )
        )  # fmt: skip
    shapes.append(_text(8, 20, "score per look (grey mark: inconclusive, n/a)", "label"))
    shapes += _look_axis(x_scale, height - AXIS + 6)
    decided = [lk for lk in looks if lk.score_text != NA]
    return Chart(
        key=key,
        kind="score",
        title="Score per look",
        desc=f"Bar chart of the score of each of {len(looks)} looks; {len(looks) - len(decided)} "
        "inconclusive looks have no score (n/a) and are drawn as grey marks, not as 0.",
        width=WIDTH,
        height=height,
        shapes=tuple(shapes),
        table=DataTable(
            caption="Score per look",
            columns=("look", "verdict", "score"),
            rows=tuple((str(lk.number), lk.verdict, lk.score_text) for lk in looks),
        ),
        verdict=looks[-1].verdict,
    )


def sequence_chart(looks: Sequence[Look], name: str, key: str) -> Chart | None:
    """A rate metric's confidence sequence of the difference (canary − baseline) over looks,
    with the tolerance it must stay under."""
    points = [(lk, lk.metrics[name]) for lk in looks if name in lk.metrics]
    drawn = [(lk, m, m.interval) for lk, m in points if m.interval is not None]
    if not drawn:
        return None
    height = 220
    tolerance = next((m.tolerance for _, m in reversed(points) if m.tolerance is not None), None)
    values = [v for _, _, ci in drawn for v in ci] + ([tolerance] if tolerance is not None else [])
    y_scale = Scale(*span(values, include_zero=True), height - AXIS, TOP)
    x_scale = _look_scale(looks)
    shapes: list[Shape] = []
    zero = y_scale(0.0)
    shapes.append(_line(LEFT, zero, WIDTH - RIGHT, zero, "zero", tip="no difference"))
    if tolerance is not None:
        y = y_scale(tolerance)
        shapes.append(_line(LEFT, y, WIDTH - RIGHT, y, "boundary",
                            tip=f"tolerance +{fmt(100 * tolerance)} pp"))  # fmt: skip
        shapes.append(_text(WIDTH - RIGHT, y - 4, f"tolerance +{fmt(100 * tolerance)} pp",
                            "tick", "end"))  # fmt: skip
    for value in ticks(y_scale.lo, y_scale.hi, 4):
        shapes.append(_text(LEFT - 6, y_scale(value) + 4, f"{fmt(100 * value, 3)} pp", "tick",
                            "end"))  # fmt: skip
    texts = [fmt_interval(ci, 100) for _, _, ci in drawn]
    tips = len(drawn) <= TIPS_UP_TO
    if not tips:  # one path per verdict, each interval a vertical stroke
        marks = [
            (f"whisker verdict-{m.verdict}",
             f"M{_num_attr(x_scale(lk.number))},{_num_attr(y_scale(ci[0]))}"
             f"V{_num_attr(y_scale(ci[1]))}", str(lk.number))
            for lk, m, ci in drawn
        ]  # fmt: skip
        shapes += _dense_paths(marks, width=2, data_name="data-looks")
    for (lk, m, ci), ci_text in zip(drawn, texts, strict=True) if tips else ():
        x = x_scale(lk.number)
        shapes.append(
            Shape(
                "line", f"whisker verdict-{m.verdict}",
                (("x1", _num_attr(x)), ("y1", _num_attr(y_scale(ci[0]))), ("x2", _num_attr(x)),
                 ("y2", _num_attr(y_scale(ci[1])))),
                data=(("data-metric", name), ("data-look", str(lk.number)),
                      ("data-lo", repr(ci[0])), ("data-hi", repr(ci[1]))),
                tip=f"look {lk.number}: difference in {ci_text} pp" if tips else "",
            )
        )  # fmt: skip
    shapes.append(_text(8, 20, f"{name}: confidence sequence of canary − baseline", "label"))
    shapes += _look_axis(x_scale, height - AXIS + 6)
    last = drawn[-1]
    return Chart(
        key=key,
        kind="sequence",
        title=f"{name}: confidence sequence of the difference over the looks",
        desc=f"Interval chart: at each of {len(drawn)} looks, the always-valid interval of the "
        f"rate difference canary − baseline for {name}"
        + (f", against the tolerance of +{fmt(100 * tolerance)} pp" if tolerance else "")
        + f". At look {last[0].number} it is {fmt_interval(last[2], 100)} pp.",
        width=WIDTH,
        height=height,
        shapes=tuple(shapes),
        table=DataTable(
            caption=f"{name}: interval of the difference per look (pp)",
            columns=("look", "verdict", "difference interval (pp)"),
            rows=tuple(
                (str(lk.number), m.verdict, text)
                for (lk, m, _), text in zip(drawn, texts, strict=True)
            ),
        ),
        verdict=last[1].verdict,
    )


# --- per rollout: the traffic staircase ------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class TrafficPoint:
    seq: int
    at: datetime
    weight: float
    source: str  # confirmed / observed
    cause: str
    actor: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Marker:
    seq: int
    at: datetime
    kind: str  # verdict-pass, verdict-fail, verdict-inconclusive, gate-open, gate-closed,
    # approval, aborted, promoted, failed
    label: str
    actor: str


MARKER_LANES = ("verdict", "gate", "approval", "outcome")


def _lane(kind: str) -> int:
    if kind.startswith("verdict"):
        return 0
    if kind.startswith("gate"):
        return 1
    if kind == "approval":
        return 2
    return 3


def traffic_chart(
    points: Sequence[TrafficPoint],
    markers: Sequence[Marker],
    *,
    start: datetime,
    end: datetime,
    key: str,
) -> Chart:
    """The canary's share of traffic over time as a staircase (confirmed changes filled,
    observed ones hollow), and lanes of markers below it for verdicts, gate checks,
    approvals and the outcome (abort, promotion, failure). Markers link to their entries."""
    lane_height = 16
    plot_bottom = 190
    height = plot_bottom + 14 + lane_height * len(MARKER_LANES) + AXIS
    t0 = start.timestamp()
    t1 = max(end.timestamp(), t0 + 1)
    x_scale = Scale(t0, t1, LEFT, WIDTH - RIGHT)
    y_scale = Scale(0.0, 100.0, plot_bottom, TOP)
    shapes: list[Shape] = []
    for value in (0, 25, 50, 75, 100):
        y = y_scale(value)
        shapes.append(_line(LEFT, y, WIDTH - RIGHT, y, "grid"))
        shapes.append(_text(LEFT - 6, y + 4, f"{value} %", "tick", "end"))
    ordered = sorted(points, key=lambda p: (p.at, p.seq))
    corners: list[str] = [f"{_num_attr(LEFT)},{_num_attr(y_scale(0))}"]
    for p in ordered:
        x = x_scale(p.at.timestamp())
        corners.append(f"{_num_attr(x)},{corners[-1].split(',')[1]}")
        corners.append(f"{_num_attr(x)},{_num_attr(y_scale(p.weight))}")
    corners.append(f"{_num_attr(x_scale(t1))},{corners[-1].split(',')[1]}")
    shapes.append(Shape("polyline", "staircase", (("points", " ".join(corners)),),
                        tip="canary share of traffic"))  # fmt: skip
    for p in ordered:
        shapes.append(
            Shape(
                "circle", f"change source-{p.source}",
                (("cx", _num_attr(x_scale(p.at.timestamp()))),
                 ("cy", _num_attr(y_scale(p.weight))), ("r", "4")),
                data=(("data-seq", str(p.seq)), ("data-weight", fmt(p.weight)),
                      ("data-source", p.source), ("data-at", p.at.isoformat())),
                tip=f"#{p.seq} {clock_time(p.at)} canary {fmt(p.weight)} % ({p.source}, {p.cause})",
                href=f"/ui/events/{p.seq}",
            )
        )  # fmt: skip
    for index, lane in enumerate(MARKER_LANES):
        y = plot_bottom + 14 + lane_height * index + lane_height / 2
        shapes.append(_text(LEFT - 6, y + 4, lane, "tick", "end"))
    tips = len(markers) <= TIPS_UP_TO
    dense = [] if tips else [m for m in markers if _lane(m.kind) == 0]
    if dense:  # the verdicts of a long bake: a round dot per look, one path per verdict
        y = plot_bottom + 14 + lane_height / 2
        shapes += _dense_paths(
            [(f"dots marker-{m.kind}", f"M{_num_attr(x_scale(m.at.timestamp()))},{_num_attr(y)}h0",
              str(m.seq)) for m in dense],
            width=7, data_name="data-seqs",
        )  # fmt: skip
    for m in markers if not dense else [m for m in markers if _lane(m.kind) != 0]:
        row = _lane(m.kind)
        y = plot_bottom + 14 + lane_height * row + lane_height / 2
        shapes.append(
            Shape(
                "circle", f"marker marker-{m.kind}",
                (("cx", _num_attr(x_scale(m.at.timestamp()))), ("cy", _num_attr(y)),
                 ("r", "5" if row == 3 else "3.5")),
                data=(("data-seq", str(m.seq)), ("data-kind", m.kind),
                      ("data-at", m.at.isoformat())),
                tip=f"#{m.seq} {clock_time(m.at)} {m.label}" if tips or row else "",
                href=f"/ui/events/{m.seq}",
            )
        )  # fmt: skip
    axis_y = height - AXIS + 6
    shapes.append(_line(LEFT, axis_y, WIDTH - RIGHT, axis_y, "axis"))
    for share in (0.0, 0.5, 1.0):
        moment = datetime.fromtimestamp(t0 + share * (t1 - t0), tz=start.tzinfo)
        x = x_scale(moment.timestamp())
        anchor = "start" if share == 0 else "end" if share == 1 else "middle"
        shapes.append(_text(x, axis_y + 16, f"{moment:%H:%M:%S}", "tick", anchor))
    shapes.append(_text(WIDTH - RIGHT, axis_y + 30, "time (UTC)", "tick", "end"))
    shapes.append(_text(8, 20, "canary share of traffic; hollow: observed on the target", "label"))
    rows = tuple(
        (f"{p.at.isoformat()[:19]}Z", f"#{p.seq}", "traffic", f"canary {fmt(p.weight)} %",
         f"{p.source}, {p.cause}", p.actor)
        for p in ordered
    ) + tuple(
        (f"{m.at.isoformat()[:19]}Z", f"#{m.seq}", m.kind, m.label, "", m.actor)
        for m in markers if not m.kind.startswith("verdict")
    )  # fmt: skip
    verdicts = [m for m in markers if m.kind.startswith("verdict")]
    outcomes = [m.label for m in markers if _lane(m.kind) == 3]
    return Chart(
        key=key,
        kind="traffic",
        title="Traffic staircase: the canary's share over time",
        desc=f"Step chart of the canary's share of traffic from {start:%H:%M:%S} to "
        f"{end:%H:%M:%S} UTC through {len(ordered)} recorded changes ("
        f"{sum(1 for p in ordered if p.source == 'observed')} observed on the target), "
        f"ending at {fmt(ordered[-1].weight) if ordered else '0'} %; with {len(verdicts)} "
        f"verdicts, {sum(1 for m in markers if m.kind.startswith('gate'))} gate checks, "
        f"{sum(1 for m in markers if m.kind == 'approval')} approvals"
        + (f" and the outcome: {'; '.join(outcomes)}." if outcomes else "."),
        width=WIDTH,
        height=height,
        shapes=tuple(shapes),
        table=DataTable(
            caption="Traffic changes, gate checks, approvals and the outcome (verdicts: see the "
            "evidence over the looks)",
            columns=("recorded (UTC)", "entry", "what", "value", "how", "actor"),
            rows=tuple(sorted(rows, key=lambda r: (r[0], int(r[1][1:])))),
        ),
    )
