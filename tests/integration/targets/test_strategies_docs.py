"""docs/strategies.md's VirtualService is what the Istio mirror target makes of the route."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

from analyzer.domain.model import ModelRef
from analyzer.targets.istio import IstioMirrorTarget
from tests.fakes.kube_api import VIRTUAL_SERVICES, KubeApiFake
from tests.integration.targets.support import FakeClock

DOC = Path(__file__).resolve().parents[3] / "docs" / "strategies.md"
CREDIT = ModelRef(namespace="credit-models", name="credit")


def documented() -> dict[str, Any]:
    match = re.search(
        r"<!-- docs-test: virtualservice -->\n```yaml\n(.*?)```", DOC.read_text(), re.S
    )
    assert match
    doc: dict[str, Any] = yaml.safe_load(match.group(1))
    return doc


def test_the_documented_route_is_what_a_shadow_run_makes(
    kube: KubeApiFake, clock: FakeClock
) -> None:
    after = documented()
    before = copy.deepcopy(after)
    route = before["spec"]["http"][0]
    del route["mirror"], route["mirrorPercentage"]
    kube.seed(VIRTUAL_SERVICES, before)
    mirror = IstioMirrorTarget(kube.api_client(), sleep=clock.sleep)  # the default settings
    state = mirror.start_mirror(CREDIT, "credit-predictor-00018", 50)
    assert (state.mirror_revision, state.mirror_percent) == ("credit-predictor-00018", 50)
    stored = kube.store.get(VIRTUAL_SERVICES, CREDIT.namespace, CREDIT.name)
    assert stored["spec"] == after["spec"]
    mirror.stop_mirror(CREDIT)
    assert kube.store.get(VIRTUAL_SERVICES, CREDIT.namespace, CREDIT.name)["spec"] == before["spec"]
