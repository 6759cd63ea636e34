"""Property-based requests generated from /openapi.json: no answer may be a server error.

Bounded (``MAX_EXAMPLES`` per operation, derandomized) so it runs in CI. Requests carry an admin
token so generated bodies reach the handlers instead of stopping at authentication. The cases
are driven with Hypothesis directly: schemathesis' pytest plugin does not load under pytest 9.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.integration.api.conftest import Harness, static_token

pytestmark = pytest.mark.postgres

MAX_EXAMPLES = 15


def test_no_server_errors_on_generated_requests(api: Harness) -> None:
    schema = schemathesis.openapi.from_url(api.url + "/openapi.json")
    headers = {"Authorization": f"Bearer {static_token('admin')}"}
    failures: list[str] = []
    operations = 0
    calls = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def check(case: schemathesis.Case) -> None:
            nonlocal calls
            calls += 1
            case.headers = {**(case.headers or {}), **headers}  # a real token, not a generated one
            response = case.call(base_url=api.url)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path}: {response.text[:200]}")
            elif "application/json" in str(response.headers.get("content-type", "")):
                response.json()  # every JSON answer parses

        check()
    print(f"schemathesis: {operations} operations, {calls} generated requests")
    assert operations >= 18
    assert calls >= operations
    assert failures == []
