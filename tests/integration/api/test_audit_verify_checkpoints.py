"""GET /api/v1/audit/verify with a checkpoint directory configured: a tail cut after the newest
signed checkpoint verifies on its own, and the route says broken all the same (PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from analyzer.config import LedgerSettings
from analyzer.ledger.checkpoint import (
    CheckpointDirectory,
    CheckpointSigner,
    generate_key_pair,
    load_private_key,
)
from tests.integration.api.conftest import Harness, api_settings, start_body
from tests.integration.ledger.test_checkpoints import cut_tail

pytestmark = pytest.mark.postgres


def test_verify_compares_the_chain_with_the_newest_checkpoint(
    make_api: Callable[..., Harness], tmp_path: Path
) -> None:
    private = generate_key_pair()[0]
    (tmp_path / "key.pem").write_bytes(private)
    ledger_settings = LedgerSettings(
        checkpoint_dir=tmp_path / "ckpt", checkpoint_key_file=tmp_path / "key.pem"
    )
    api = make_api(settings=api_settings().model_copy(update={"ledger": ledger_settings}))
    for name in ("fraud", "churn"):
        started = api.call("POST", "/api/v1/rollouts", "operator", json=start_body(name=name))
        assert started.status_code == 201, started.text
    seq, head_hash = api.ledger.head()
    signer = CheckpointSigner(load_private_key(private, source="test"))
    CheckpointDirectory(tmp_path / "ckpt").write(
        signer.sign(seq=seq, head_hash=head_hash, at=api.clock())
    )

    fine = api.call("GET", "/api/v1/audit/verify", "auditor").json()
    assert (fine["intact"], fine["checkpoint_checked"]) == (True, True)
    assert "it holds the newest signed head checkpoint" in page(api)

    cut_tail(api.engine, keep=seq - 2)
    assert api.ledger.verify().intact  # the chain alone
    cut = api.call("GET", "/api/v1/audit/verify", "auditor").json()
    assert cut["intact"] is False
    assert cut["first_bad_seq"] == seq - 1
    assert "cut from the tail" in cut["problem"]
    assert cut["summary"].startswith(f"ledger BROKEN at seq {seq - 1}")
    shown = page(api)  # the web page says the same
    assert "does not hold its newest signed checkpoint" in shown
    assert "cut from the tail" in shown
    assert "The ledger is intact" not in shown


def page(api: Harness) -> str:
    answer = api.call("GET", "/ui/verify", "auditor")
    assert answer.status_code == 200, answer.text
    return answer.text


def test_without_checkpoints_the_route_says_it_did_not_check_them(
    make_api: Callable[..., Harness],
) -> None:
    api = make_api()
    answer = api.call("GET", "/api/v1/audit/verify", "auditor").json()
    assert (answer["intact"], answer["checkpoint_checked"]) == (True, False)
