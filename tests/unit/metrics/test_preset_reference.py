"""docs/metrics.md's preset reference is the table generated from the preset files."""

from __future__ import annotations

from pathlib import Path

import pytest

from analyzer.domain.errors import InvalidInputError
from analyzer.preset_reference import BEGIN, END, preset_table
from analyzer.profiles import load_preset, parse_profile, preset_label_defaults, preset_names

DOCS = Path(__file__).resolve().parents[3] / "docs" / "metrics.md"


def test_the_docs_table_matches_the_preset_files() -> None:
    text = DOCS.read_text(encoding="utf-8")
    between = text[text.index(BEGIN) + len(BEGIN) : text.index(END)]
    assert between == "\n" + preset_table(), (
        "docs/metrics.md is stale: run python -m analyzer.preset_reference --write docs/metrics.md"
    )


def test_the_table_has_one_row_per_preset_metric_with_its_settings() -> None:
    table = preset_table()
    for name in preset_names():
        for spec in load_preset(name).profile.metrics:
            row = next(r for r in table.splitlines() if r.startswith(f"| `{name}` | `{spec.name}`"))
            assert spec.kind.value in row
            assert ("yes" if spec.critical else "no") in row


def test_every_preset_resolves_all_its_label_markers() -> None:
    for name in preset_names():
        assert preset_label_defaults(name), f"{name} declares no label roles"
        loaded = load_preset(name)
        for query in loaded.queries.values():
            for text in (query.selector, query.events, query.total, query.expr):
                assert text is None or "<" not in text.replace("<br>", ""), text


def test_knative_counters_match_with_and_without_total() -> None:
    total = load_preset("knative").queries["errors"].total or ""
    assert '__name__=~"revision_app_request_count(_total)?"' in total


def test_an_entry_may_rename_a_role_and_unknown_roles_are_refused() -> None:
    loaded = parse_profile(
        "name: t\nmetrics:\n  - use: knative/errors\n    labels: {code_class: status_class}\n"
    )
    assert 'status_class="5xx"' in (loaded.queries["errors"].events or "")
    with pytest.raises(InvalidInputError, match="no label role 'nope'") as bad:
        parse_profile("name: t\nmetrics:\n  - use: knative/errors\n    labels: {nope: x}\n")
    assert bad.value.field == "metrics[0].labels"
    with pytest.raises(InvalidInputError, match="label name"):
        parse_profile('name: t\nmetrics:\n  - use: knative/errors\n    labels: {revision: "a-b"}\n')
