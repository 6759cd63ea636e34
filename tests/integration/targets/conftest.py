"""Fixtures for the traffic-target tests: the fake apiserver and a fake clock."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.kube_api import KubeApiFake
from tests.integration.targets.support import FakeClock


@pytest.fixture
def kube() -> Iterator[KubeApiFake]:
    """The fake apiserver with a KServe controller that reacts on the second read after a write."""
    with KubeApiFake(controller_lag_reads=1) as fake:
        yield fake


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
