"""Every route, every parameter, hostile values, every role: no 5xx, every 2xx body parses.

The routes come from the application itself (API and ``/ui/`` pages, included routers
flattened), so a route added later is fuzzed without editing this file; a test below fails when
a JSON-body route has no valid example body here to start from. Each query, path and body
parameter gets values from ``hostile.py`` (times at the calendar's edges with every kind of
offset, NUL and control characters, huge and negative numbers, bytes that are not UTF-8, deep
JSON) while the other parameters keep valid values, so the hostile one reaches the code behind
the schema. Each route is first asked with a valid request by every role and no token; hostile
requests then go to the roles it admits, in turn. About 2,400 requests; a longer randomized run
is ``bench/fuzz_api.py``.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from typing import Any

import httpx
import pytest

from analyzer.domain.events import EventType, LedgerEvent
from tests.integration.api.conftest import (
    ROLES,
    Harness,
    analysis_body,
    fleet_body,
    model_ref,
    start_body,
    static_token,
)
from tests.integration.api.hostile import (
    CONTROL,
    EDGE_INSTANTS,
    FORM_BODIES,
    NUMBERS,
    PATH_VALUES,
    RAW,
    RAW_BODIES,
    STRINGS,
    Raw,
    RouteShape,
    body_problem,
    body_variants,
    encoded,
    route_shapes,
)

pytestmark = pytest.mark.postgres

TIME_PARAMS = {"since", "until", "at"}
QUERY_EXAMPLES = {
    "model": "risk-prod/fraud", "at": "2026-11-27T03:00:00Z", "since": "2026-11-27T00:00:00Z",
    "until": "2026-11-28T00:00:00Z", "format": "json", "limit": "10", "type": "traffic_changed",
    "order": "newest", "state": "progressing", "next": "/ui/", "actor": "engine",
    "model_version": "17", "suite": "golden-set",
}  # fmt: skip


def _hook() -> dict[str, Any]:
    return {"name": "fraud", "namespace": "risk-prod", "phase": "Progressing",
            "metadata": {"tier": "long-tail"}}  # fmt: skip


def _evaluation() -> dict[str, Any]:
    return {
        "model": {"namespace": "risk-prod", "name": "fraud"}, "model_version": "17",
        "suite": "golden-set", "passed": True, "metrics": {"auc": 0.91},
        "report_url": "https://ci.bank.example/runs/1", "commit": "a" * 40,
    }  # fmt: skip


BODY_EXAMPLES: dict[str, Any] = {
    "/api/v1/analyses": analysis_body,
    "/api/v1/rollouts": lambda: start_body(name="fuzzed", tier="regulated"),
    "/api/v1/rollouts/{rollout_id}/abort": lambda: {"reason": "fuzz"},
    "/api/v1/rollouts/{rollout_id}/pause": lambda: {"reason": "fuzz"},
    "/api/v1/rollouts/{rollout_id}/approve": lambda: {"comment": "fuzz"},
    "/api/v1/evaluations": _evaluation,
    "/api/v1/fleets": fleet_body,
    "/api/v1/fleets/{fleet_id}/abort": lambda: {"reason": "fuzz"},
    "/api/v1/fleets/{fleet_id}/resume": lambda: {"reason": "fuzz"},
    "/api/v1/fleets/{fleet_id}/approvals": lambda: {"comment": "fuzz"},
    "/api/v1/flagger/confirm-promotion": _hook,
    "/api/v1/flagger/rollback": _hook,
    "/api/v1/flagger/pre-rollout": _hook,
}


class Sweep:
    """Sends requests, checks the property on each answer, and counts."""

    def __init__(self, api: Harness) -> None:
        self.api = api
        self.sent = 0
        self.statuses: Counter[int] = Counter()
        self.failures: list[str] = []

    def send(
        self,
        shape: RouteShape,
        role: str | None,
        *,
        path: str,
        query: dict[str, str | Raw] | None = None,
        content: bytes | None = None,
        content_type: str | None = None,
        what: str = "",
    ) -> httpx.Response | None:
        url = self.api.url + path
        if query:
            url += "?" + "&".join(f"{encoded(k)}={encoded(v)}" for k, v in query.items())
        headers = {"Authorization": f"Bearer {static_token(role)}"} if role else {}
        if content_type:
            headers["Content-Type"] = content_type
        self.sent += 1
        try:
            response = self.api.http.request(shape.method, url, headers=headers, content=content)
        except httpx.HTTPError as exc:  # a cut stream, a dropped connection
            self.failures.append(f"{shape.method} {path} [{what}] as {role}: {exc!r}")
            return None
        self.statuses[response.status_code] += 1
        problem = body_problem(response)
        if problem is not None:
            self.failures.append(f"{shape.method} {path} [{what}] as {role}: {problem}")
        return response


def _fill(shape: RouteShape, ids: dict[str, str], hostile: dict[str, str | Raw]) -> str:
    path = shape.path
    for name in shape.path_params:
        value = hostile.get(name, ids.get(name, "x"))
        path = path.replace("{" + name + ":path}", encoded(value)).replace(
            "{" + name + "}", encoded(value)
        )
    return path


def _query_values(index: int, name: str) -> list[str | Raw]:
    rest = [v for j, v in enumerate((*NUMBERS, *STRINGS)) if j % 2 == index % 2]
    values: list[str | Raw] = [*CONTROL, *RAW, *rest]
    if name in TIME_PARAMS:
        values.extend(EDGE_INSTANTS)
    return values


def _seed(api: Harness) -> dict[str, str]:
    api.target.add_model(model_ref(), stable_revision="base-00001", canary_revision="good-00002")
    api.target.add_model(
        model_ref(name="fuzzed"), stable_revision="base-00001", canary_revision="good-00002"
    )
    started = api.call("POST", "/api/v1/rollouts", "operator", json=start_body(tier="regulated"))
    assert started.status_code == 201, started.text
    api.ledger.record(
        LedgerEvent(
            type=EventType.TRAFFIC_CHANGED, actor="engine", model=model_ref(),
            rollout_id=started.json()["id"],
            data={"split": [{"revision": "base-00001", "weight": 100}], "step": 0},
        )
    )  # fmt: skip
    fleet = api.call(
        "POST", "/api/v1/fleets", "operator",
        json=fleet_body(name="seeded", selector={}, models=["merchant-000", "merchant-001"]),
    )  # fmt: skip
    assert fleet.status_code == 201, fleet.text
    return {
        "rollout_id": started.json()["id"], "fleet_id": fleet.json()["id"], "seq": "1",
        "unknown": "nothing-here",
    }  # fmt: skip


def test_every_json_body_route_has_an_example(api: Harness) -> None:
    with_body = {s.path for s in route_shapes(api.app) if s.body}
    assert with_body == set(BODY_EXAMPLES)


def _json(body: Any) -> tuple[bytes | None, str | None]:
    if body is None:
        return None, None
    return httpx.Request("POST", "/", json=body).content, "application/json"


def _sweep_route(sweep: Sweep, shape: RouteShape, ids: dict[str, str]) -> None:
    query = {q: QUERY_EXAMPLES[q] for q in shape.query_params if q in QUERY_EXAMPLES}
    example = BODY_EXAMPLES.get(shape.path)
    body = example() if example else None
    path = _fill(shape, ids, {})
    content, kind = _json(body)
    admitted = []
    for role in (*ROLES, None):  # a valid request by every role, and by nobody
        response = sweep.send(
            shape, role, path=path, query=query, content=content, content_type=kind, what="valid"
        )
        if role and response is not None and response.status_code not in (401, 403):
            admitted.append(role)
    roles = itertools.cycle(admitted or ["admin"])  # hostile values go to each admitted role
    for index, name in enumerate(shape.query_params):
        for value in _query_values(index, name):
            sweep.send(
                shape, next(roles), path=path, query={**query, name: value}, content=content,
                content_type=kind, what=f"{name}={value!r:.40}",
            )  # fmt: skip
    for name in shape.path_params:
        for value in PATH_VALUES:
            sweep.send(
                shape, next(roles), path=_fill(shape, ids, {name: value}), query=query,
                content=content, content_type=kind, what=f"path {name}={value!r:.40}",
            )  # fmt: skip
    if body is not None:
        for index, (field, variant) in enumerate(body_variants(body)):
            if index % 2 and field[0] not in "+-":  # half the values per field, in turn
                continue
            hostile, hostile_kind = _json(variant)
            sweep.send(
                shape, next(roles), path=path, query=query, content=hostile,
                content_type=hostile_kind, what=f"body {field}",
            )  # fmt: skip
        for raw, raw_kind in RAW_BODIES:
            sweep.send(
                shape, next(roles), path=path, query=query, content=raw, content_type=raw_kind,
                what=f"raw body {raw[:20]!r}",
            )  # fmt: skip
    if shape.form:
        for raw in FORM_BODIES:
            sweep.send(
                shape, next(roles), path=path, content=raw,
                content_type="application/x-www-form-urlencoded", what=f"form {raw[:30]!r}",
            )  # fmt: skip


def test_no_route_answers_5xx_or_an_unparsable_2xx_to_hostile_input(api: Harness) -> None:
    ids = _seed(api)
    shapes = route_shapes(api.app)
    assert len(shapes) >= 36
    sweep = Sweep(api)
    started = time.monotonic()
    for shape in shapes:
        _sweep_route(sweep, shape, ids)
    seconds = time.monotonic() - started
    print(
        f"fuzz: {len(shapes)} routes, {sweep.sent} requests in {seconds:.1f} s, "
        f"statuses {dict(sorted(sweep.statuses.items()))}, {len(sweep.failures)} failures"
    )
    assert sweep.failures == []
    assert sweep.sent >= 2000
    assert not [s for s in sweep.statuses if s >= 500]
    assert sum(n for s, n in sweep.statuses.items() if 200 <= s < 300) >= 100  # 2xx were checked
    assert api.ledger.verify().intact
