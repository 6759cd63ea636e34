"""The entry table written in Python is the Jinja macro it replaced, byte for byte. Pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from jinja2 import ChoiceLoader, DictLoader, Environment, StrictUndefined

from analyzer.api.ui.rendering import build_templates, utc_precise, utc_text
from analyzer.ledger.chain import EntryRecord

# The macro as it was (git history of templates/_macros.html), the reference.
OLD_MACROS = """{% macro when(moment) -%}
<time datetime="{{ moment|utc_precise }}">{{ moment|utc }}</time>
{%- endmacro %}

{% macro entry_link(entry) -%}
<a href="/ui/events/{{ entry.seq }}">#{{ entry.seq }}</a>
{%- endmacro %}

{% macro badge(text) -%}
<span class="badge badge-{{ text|lower|replace(' ', '-') }}">{{ text }}</span>
{%- endmacro %}

{% macro entry_rows(rows, show_model=True) %}
<table class="entries">
  <thead>
    <tr>
      <th scope="col">Seq</th>
      <th scope="col">Recorded (UTC)</th>
      <th scope="col">Type</th>
{% if show_model %}
      <th scope="col">Model</th>
{% endif %}
      <th scope="col">Actor</th>
      <th scope="col">What</th>
    </tr>
  </thead>
  <tbody>
{% for entry, summary in rows %}
    <tr>
      <td class="num">{{ entry_link(entry) }}</td>
      <td class="time">{{ when(entry.recorded_at) }}</td>
      <td>{{ badge(entry.event_type) }}</td>
{% if show_model %}
      <td class="model">{{ entry.model or "—" }}</td>
{% endif %}
      <td class="actor">{{ entry.actor }}</td>
      <td class="what">{{ summary }}</td>
    </tr>
{% endfor %}
  </tbody>
</table>
{% endmacro %}
"""
PAGE = """{% from "m.html" import entry_rows %}
<main>
{{ entry_rows(rows) }}
{{ entry_rows(rows, show_model=False) }}
{{ entry_rows([]) }}
</main>
"""


def entry(seq: int, kind: str, actor: str, model: str | None, at: datetime) -> EntryRecord:
    return EntryRecord(
        seq=seq, recorded_at=at, event_type=kind, schema_version=1, actor=actor, model=model,
        rollout_id="r", revision=None, payload="{}", prev_hash="0" * 64, hash="1" * 64,
    )  # fmt: skip


def old_environment() -> Environment:
    env = Environment(
        loader=DictLoader({"m.html": OLD_MACROS, "page.html": PAGE}),
        autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
    )  # fmt: skip
    env.filters["utc"] = utc_text
    env.filters["utc_precise"] = utc_precise
    return env


def test_the_entry_table_is_the_old_macros_markup() -> None:
    at = datetime(2026, 3, 4, 2, 13, 7, 123456, tzinfo=UTC)
    rows = [
        (entry(1, "analysis_recorded", "canary-analyzer/engine", "ns/m", at), "pass, score 100"),
        (entry(22, "Odd Type", "<script>alert(1)</script>", None, at + timedelta(seconds=1)),
         'a "quoted" & <b>bold</b> \'reason\''),
        (entry(3, "approval_given", "bob", "ns/<m>", at.astimezone(timezone(timedelta(hours=2)))),
         "approved — step 2"),
    ]  # fmt: skip
    new = build_templates()
    assert new.loader is not None
    page = PAGE.replace('"m.html"', '"_macros.html"')
    new.loader = ChoiceLoader([DictLoader({"page.html": page}), new.loader])
    made = new.get_template("page.html").render(rows=rows)
    assert "&lt;script&gt;alert(1)" in made
    assert made.count("<tr>") == 3 * 2 + 3  # three tables' heads, twice three rows
    assert made == old_environment().get_template("page.html").render(rows=rows)
