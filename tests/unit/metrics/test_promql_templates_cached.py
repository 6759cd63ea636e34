"""The cached ``render`` gives what the uncached one gave (issue 20): the same text or the same
refusal (message and field), for templates and values drawn widely, asked again and again; and
so do the arms ``PrometheusSource`` keeps per query and revision."""

from __future__ import annotations

import re
from collections.abc import Mapping

from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.domain.errors import InvalidInputError
from analyzer.domain.model import ModelRef
from analyzer.metrics import templates
from analyzer.metrics.base import MetricQuery, render_arm
from analyzer.metrics.prometheus import PrometheusSource
from analyzer.metrics.templates import PLACEHOLDERS, render

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SAFE_VALUE = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_WINDOW = re.compile(r"^[0-9]+[smhd]$")


def reference_render(template: str, values: Mapping[str, str], *, field: str | None) -> str:
    """``render`` as it was before its results were cached (verbatim but for names)."""
    templates.check_template(template, field=field)
    for name, value in values.items():
        pattern = _WINDOW if name == "window" else _SAFE_VALUE
        if not pattern.match(value):
            raise InvalidInputError(f"unsafe value {value!r} for {{{name}}}", field=field)
    out = []
    for segment in templates._segments(template):

        def value(match: re.Match[str], segment: templates._Segment = segment) -> str:
            name = match.group(1)
            if name not in values:
                raise InvalidInputError(f"no value for placeholder {{{name}}}", field=field)
            if segment.regex and segment.quote is not None and name != "window":
                return templates._regex_escaped(values[name], segment.quote)
            return values[name]

        text = _PLACEHOLDER.sub(value, segment.text)
        out.append(text if segment.quote is None else f"{segment.quote}{text}{segment.quote}")
    return "".join(out)


def outcome(
    fn: object, template: str, values: Mapping[str, str], field: str | None
) -> tuple[str, str | None]:
    try:
        return "ok", fn(template, values, field=field)  # type: ignore[operator]
    except InvalidInputError as exc:
        return f"refused: {exc}", exc.field


names = st.sampled_from(sorted(PLACEHOLDERS) * 4 + ["revison", "x"])
placeholder = names.map(lambda n: "{" + n + "}")
text = st.sampled_from(
    ["rate(", "sum by (le) ", "x", " ", ")", "[", "]", "{", "}", ",", "=~", "!~"]
)
quote = st.sampled_from(['"', "'", "`"])


@st.composite
def template_text(draw: st.DrawFn) -> str:
    parts = []
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.integers(0, 3))
        if kind == 0:
            parts.append(draw(text))
        elif kind == 1:
            parts.append(draw(placeholder))
        else:
            q = draw(quote)
            prefix = draw(st.sampled_from(["label=", "label=~", "label!~", "label !~ ", ""]))
            inner = "".join(draw(st.lists(st.one_of(placeholder, text), max_size=3)))
            closing = q if draw(st.integers(0, 9)) else ""  # sometimes unterminated
            parts.append(f"{prefix}{q}{inner}{closing}")
    return "".join(parts)


safe = {
    "namespace": st.sampled_from(["models", "a.b"]),
    "model": st.sampled_from(["fraud", "fraud.v2"]),
    "revision": st.sampled_from(["fraud-00002", "fraud.v2", "a.b.c"]),
    "window": st.sampled_from(["3600s", "60m"]),
}
unsafe = st.sampled_from(['x"}', "", "Fraud", "60", "3600s", "a.b"])  # some unsafe for a name
value_maps = st.one_of(
    st.fixed_dictionaries(safe),
    st.fixed_dictionaries({}, optional=safe),  # some missing
    st.builds(
        lambda d, name, bad: {**d, name: bad},
        st.fixed_dictionaries(safe),
        st.sampled_from(sorted(PLACEHOLDERS)),
        unsafe,
    ),
)


@settings(max_examples=600, deadline=None)
@given(template=template_text(), values=value_maps, field=st.sampled_from([None, "query.expr"]))
def test_cached_render_is_the_uncached_one(
    template: str, values: dict[str, str], field: str | None
) -> None:
    expected = outcome(reference_render, template, values, field)
    for _ in range(2):  # the second time from the caches
        assert outcome(render, template, values, field) == expected


def test_a_window_change_reuses_a_template_without_window() -> None:
    values = {"namespace": "models", "model": "fraud", "revision": "fraud.v2", "window": "60s"}
    template = 'x{revision=~"{revision}",ns="{namespace}"}'
    first = render(template, values)
    assert first == 'x{revision=~"fraud\\\\.v2",ns="models"}'
    before = templates._rendered.cache_info().hits
    assert render(template, {**values, "window": "66s"}) == first
    assert templates._rendered.cache_info().hits == before + 1


template_pool = st.sampled_from(
    [
        None,
        'm{revision="{revision}"}',
        'm{ns="{namespace}",model="{model}",revision=~"{revision}"}',
        'sum(increase(m{revision="{revision}"}[{window}]))',
        "m{revision={revision}}",  # misplaced: refused
        'm{revision="{revison}"}',  # a typo: refused
    ]
)
queries = st.builds(
    MetricQuery, selector=template_pool, events=template_pool, total=template_pool,
    expr=template_pool,
)  # fmt: skip
revisions = st.sampled_from(["fraud-00002", "fraud.v2", "Fraud", 'x"}'])
windows = st.sampled_from(["60s", "66s", "72s"])


@settings(max_examples=300, deadline=None)
@given(
    looks=st.lists(
        st.tuples(queries, revisions, windows, st.sampled_from(["baseline", "canary"])),
        min_size=1,
        max_size=8,
    )
)
def test_a_sources_cached_arms_are_render_arm(
    looks: list[tuple[MetricQuery, str, str, str]],
) -> None:
    """``PrometheusSource`` renders each arm once per (query, model, revision), per window
    length only when a template uses ``{window}``: the arms, and the refusals, are
    ``render_arm``'s whatever came before."""
    source = PrometheusSource(base_url="http://127.0.0.1:9")
    model = ModelRef(namespace="models", name="fraud")
    for query, revision, window, arm in looks * 2:
        try:
            expected: object = render_arm(
                query, model, revision, window=window, arm=arm, renderer=render
            )
        except InvalidInputError as exc:
            expected = (str(exc), exc.field)
        try:
            got: object = source._arm(query, model, revision, window=window, arm=arm)
        except InvalidInputError as exc:
            got = (str(exc), exc.field)
        assert got == expected
    source.close()
