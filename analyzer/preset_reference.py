"""The reference table of every shipped preset metric, as it appears in ``docs/metrics.md``.

Generated from the preset files, so the docs cannot drift from them (a test compares the two).
Regenerate after editing a preset::

    python -m analyzer.preset_reference --write docs/metrics.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from analyzer.metrics.base import MetricQuery
from analyzer.profiles import load_preset, preset_label_defaults, preset_names

BEGIN = (
    "<!-- preset-reference:begin (python -m analyzer.preset_reference --write docs/metrics.md) -->"
)
END = "<!-- preset-reference:end -->"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _selectors(query: MetricQuery) -> str:
    parts = [
        f"{key}: `{_cell(value)}`"
        for key in ("selector", "events", "total", "expr")
        if (value := getattr(query, key)) is not None
    ]
    if query.unit_scale != 1.0:
        parts.append(f"unit_scale: {query.unit_scale:g}")
    return "<br>".join(parts)


def preset_table() -> str:
    """The Markdown table: one row per preset metric, with the default label names."""
    rows = [
        "| preset | metric | kind | direction | tolerance | critical | query | category label |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in preset_names():
        loaded = load_preset(name)
        for spec in loaded.profile.metrics:
            query = loaded.queries[spec.name]
            bound = ""
            if spec.bound is not None:
                pairs = (("≥", spec.bound.min), ("≤", spec.bound.max))
                bound = " (" + ", ".join(f"{k} {v:g}" for k, v in pairs if v is not None) + ")"
            tolerance = "—" if spec.tolerance is None else f"{spec.tolerance:g}"
            rows.append(
                f"| `{name}` | `{spec.name}` | {spec.kind.value}{bound} | {spec.direction.value} "
                f"| {tolerance} | {'yes' if spec.critical else 'no'} | {_selectors(query)} "
                f"| {f'`{query.category_label}`' if query.category_label else '—'} |"
            )
    rows += ["", "Label roles and their default names (rename with `labels:`):", ""]
    rows += ["| preset | roles |", "|---|---|"]
    for name in preset_names():
        roles = ", ".join(f"`{r}` = `{v}`" for r, v in preset_label_defaults(name).items())
        rows.append(f"| `{name}` | {roles or '—'} |")
    return "\n".join(rows) + "\n"


def replaced(document: str) -> str:
    """``document`` with the text between the markers replaced by the current table."""
    start, end = document.index(BEGIN) + len(BEGIN), document.index(END)
    return document[:start] + "\n" + preset_table() + document[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, help="rewrite the table inside this Markdown file")
    args = parser.parse_args(argv)
    if args.write is None:
        sys.stdout.write(preset_table())
        return 0
    args.write.write_text(replaced(args.write.read_text(encoding="utf-8")), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
