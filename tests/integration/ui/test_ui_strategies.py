"""The pages show each rollout's strategy, and a shadow run as mirrored, never served."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import Engine

from analyzer.domain.model import Tier
from analyzer.domain.verdict import Verdict
from tests.integration.rollouts.harness import MODEL, Rig
from tests.integration.rollouts.test_strategies import BLUE_GREEN, SHADOW
from tests.integration.ui.conftest import Site, text_of

pytestmark = pytest.mark.postgres


def test_rollout_pages_name_the_strategy(pg_engine: Engine, make_site: Callable[..., Site]) -> None:
    rig = Rig(pg_engine, lambda r: Verdict.PASS, mirror=True)
    shadow = rig.start(plan=SHADOW, tier=Tier.REGULATED, model_version="18")
    rig.run(minutes=5)
    blue_green = rig.start(plan=BLUE_GREEN, tier=Tier.STANDARD)
    rig.run(minutes=1)
    site = make_site(seed=False)
    listing = text_of(site.get("/ui/rollouts").text)
    assert "shadow (mirrored requests, never served)" in listing
    assert "blue/green (cut, then verify against the previous revision)" in listing
    page = site.get(f"/ui/rollouts/{shadow.id}")
    assert page.status_code == 200, page.text
    text = text_of(page.text)
    assert "Strategy shadow (mirrored requests, never served)" in text
    assert "never served: its answers are discarded" not in text  # passed: nothing mirrored now
    assert "shadow passed for model version 18" in text  # the shadow_judged entry
    assert "answers discarded, never served" in text  # the mirror_changed entry
    assert "mirror of 50 % of requests requested" in text
    assert "end of the shadow run (mirror removal) requested" in text
    pack = site.get(f"/api/v1/rollouts/{shadow.id}/evidence-pack", params={"format": "html"})
    assert pack.status_code == 200, pack.text
    assert "— shadow passed" in text_of(pack.text)
    during = site.get("/ui/serving", params={"model": str(MODEL), "at": "2026-03-04T02:01:30Z"})
    assert during.status_code == 200, during.text
    assert "50 % of requests were mirrored to fraud-00002" in text_of(during.text)
    assert "it never served" in text_of(during.text)
    bg = text_of(site.get(f"/ui/rollouts/{blue_green.id}").text)
    assert "canary weight 100 %" in bg
    assert "cut to 100 % requested" in bg
    assert str(MODEL) in bg
