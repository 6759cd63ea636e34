"""The chart tables' markup, escaped in one pass, is the markup of escaping cell by cell. Pure."""

from __future__ import annotations

import random
import string

from analyzer.api.ui.svg import _table_rows, escaped


def one_by_one(rows: tuple[tuple[str, ...], ...]) -> str:
    return "\n".join(
        "<tr><td>" + "</td><td>".join([escaped(cell) for cell in row]) + "</td></tr>"
        for row in rows
    )


def test_tables_escaped_in_one_pass_equal_tables_escaped_cell_by_cell() -> None:
    rng = random.Random(14)
    # markup characters and the separators themselves: a cell holding one takes the slow path
    alphabet = string.ascii_letters + "<>&\"' \n\x1f\x1e"
    for _ in range(2000):
        rows = tuple(
            tuple(
                "".join(rng.choice(alphabet) for _ in range(rng.randrange(6)))
                for _ in range(rng.randrange(4))
            )
            for _ in range(rng.randrange(5))
        )
        assert _table_rows(rows) == one_by_one(rows)


def test_recorded_markup_in_a_cell_stays_text() -> None:
    rows = (("<script>alert(1)</script>", 'a"b'), ("x", "&amp;"))
    assert _table_rows(rows) == (
        "<tr><td>&lt;script&gt;alert(1)&lt;/script&gt;</td><td>a&#34;b</td></tr>\n"
        "<tr><td>x</td><td>&amp;amp;</td></tr>"
    )
