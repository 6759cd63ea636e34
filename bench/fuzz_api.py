"""A long randomized fuzz of every route: Hypothesis values for every parameter, every role.

The CI sweep (``tests/integration/api/test_fuzz_every_route.py``) sends a fixed catalogue; this
run draws values from Hypothesis strategies instead: ISO 8601 times anywhere in years 1–9999
with any offset up to ±23:59, arbitrary Unicode text (control characters and surrogates
included), arbitrary bytes percent-encoded (mostly not UTF-8), integers up to ±2^70, floats
with NaN and infinities, and arbitrary JSON documents in place of each body field. Same
property: no 5xx, every 2xx body parses. The server is the test harness's (uvicorn on
127.0.0.1, a scratch PostgreSQL database migrated by Alembic, the fixed analyzer).

    CANARY_ANALYZER_TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test \\
        .venv/bin/python bench/fuzz_api.py [--examples 100] [--seed 13]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote_from_bytes

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from alembic import command  # noqa: E402
from hypothesis import HealthCheck, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from analyzer.db import alembic_config, make_engine  # noqa: E402
from analyzer.logging import configure_logging  # noqa: E402
from tests import pg  # noqa: E402
from tests.integration.api.conftest import ROLES, build_harness  # noqa: E402
from tests.integration.api.hostile import QUERY_VALUES, Raw, RouteShape, route_shapes  # noqa: E402
from tests.integration.api.test_fuzz_every_route import (  # noqa: E402
    BODY_EXAMPLES,
    QUERY_EXAMPLES,
    Sweep,
    _fill,
    _json,
    _seed,
)


def _instant(moment: datetime, minutes: int, fraction: bool) -> str:
    sign = "-" if minutes < 0 else "+"
    hours, rest = divmod(abs(minutes), 60)
    text = moment.isoformat(timespec="microseconds" if fraction else "seconds")
    return f"{text}{sign}{hours:02d}:{rest:02d}"


INSTANTS = st.builds(
    _instant,
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)),
    st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59),
    st.booleans(),
)
QUERY_STRATEGY: st.SearchStrategy[str | Raw] = st.one_of(
    INSTANTS,
    st.text(max_size=300),
    st.binary(max_size=200).map(lambda b: Raw(quote_from_bytes(b, safe=""))),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats().map(str),
    st.sampled_from(QUERY_VALUES),
)
JSON_STRATEGY = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats() | st.text(max_size=200) | INSTANTS,
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=20), children, max_size=5),
    max_leaves=30,
)  # fmt: skip


def _admitted(sweep: Sweep, shape: RouteShape, path: str, query: dict[str, Any]) -> list[str]:
    content, kind = _json(BODY_EXAMPLES[shape.path]() if shape.path in BODY_EXAMPLES else None)
    admitted = []
    for role in ROLES:
        response = sweep.send(
            shape, role, path=path, query=query, content=content, content_type=kind, what="valid"
        )
        if response is not None and response.status_code not in (401, 403):
            admitted.append(role)
    return admitted or ["admin"]


def _json_with_nan(document: Any) -> bytes:
    """JSON as Python writes it by default: NaN and ±Infinity as bare words. Not RFC 8259, but
    what a Python client sends, and what Python's own parser (the server's) accepts."""
    return json.dumps(document, allow_nan=True).encode()


class _Route:
    """One route's valid request, and sends it with one part replaced by a drawn value."""

    def __init__(self, sweep: Sweep, shape: RouteShape, ids: dict[str, str]) -> None:
        self.sweep, self.shape, self.ids = sweep, shape, ids
        self.query = {q: QUERY_EXAMPLES[q] for q in shape.query_params if q in QUERY_EXAMPLES}
        self.path = _fill(shape, ids, {})
        self.body = BODY_EXAMPLES[shape.path]() if shape.path in BODY_EXAMPLES else None
        self.content, self.kind = _json(self.body)
        self.roles = itertools.cycle(_admitted(sweep, shape, self.path, self.query))

    def query_value(self, name: str, value: Any) -> None:
        self.sweep.send(
            self.shape, next(self.roles), path=self.path, query={**self.query, name: value},
            content=self.content, content_type=self.kind, what=f"{name}={value!r:.60}",
        )  # fmt: skip

    def path_value(self, name: str, value: Any) -> None:
        self.sweep.send(
            self.shape, next(self.roles), path=_fill(self.shape, self.ids, {name: value}),
            query=self.query, content=self.content, content_type=self.kind,
            what=f"path {name}={value!r:.60}",
        )  # fmt: skip

    def body_value(self, key: str | None, value: Any) -> None:
        assert self.body is not None
        document = value if key is None else {**self.body, key: value}
        self.sweep.send(
            self.shape, next(self.roles), path=self.path, query=self.query,
            content=_json_with_nan(document), content_type="application/json",
            what=f"body {key}={value!r:.60}",
        )  # fmt: skip


def _run(strategy: st.SearchStrategy[Any], send: Any, examples: int, run_seed: int) -> None:
    @seed(run_seed)
    @settings(
        max_examples=examples, deadline=None, database=None,
        suppress_health_check=list(HealthCheck),
    )  # fmt: skip
    @given(value=strategy)
    def case(value: Any) -> None:
        send(value)

    case()


def fuzz(sweep: Sweep, ids: dict[str, str], examples: int, run_seed: int) -> None:
    for shape in route_shapes(sweep.api.app):
        route = _Route(sweep, shape, ids)
        for name in shape.query_params:
            _run(QUERY_STRATEGY, partial(route.query_value, name), examples, run_seed)
        for name in shape.path_params:
            _run(QUERY_STRATEGY, partial(route.path_value, name), examples, run_seed)
        if route.body is not None:
            for key in [*route.body, None]:  # each field, then the whole body
                _run(JSON_STRATEGY, partial(route.body_value, key), examples, run_seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=100, help="per parameter and route")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    configure_logging("critical", force=True)
    server = pg.maintenance_url()
    with pg.scratch_database(server) as url:
        command.upgrade(alembic_config(url.render_as_string(hide_password=False)), "head")
        engine = make_engine(url.render_as_string(hide_password=False))
        api = build_harness(engine)
        try:
            ids = _seed(api)
            sweep = Sweep(api)
            started = time.monotonic()
            fuzz(sweep, ids, args.examples, args.seed)
            seconds = time.monotonic() - started
            intact = api.ledger.verify().intact
        finally:
            api.analyses.close()
            api.looks.close()
            api.http.close()
            api._running.stop()  # type: ignore[attr-defined]
            engine.dispose()
    five = sum(n for s, n in sweep.statuses.items() if s >= 500)
    print(f"routes: {len(route_shapes(api.app))}; requests: {sweep.sent} in {seconds:.0f} s")
    print(f"statuses: {dict(sorted(sweep.statuses.items()))}")
    print(f"5xx: {five}; property failures: {len(sweep.failures)}; ledger intact: {intact}")
    for failure in sweep.failures[:20]:
        print("  " + failure[:300])
    sys.exit(1 if sweep.failures or not intact else 0)


if __name__ == "__main__":
    main()
