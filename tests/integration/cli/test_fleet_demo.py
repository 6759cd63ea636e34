"""``canary-analyzer demo --fleet``: 120 in-memory models, the harmful ones rolled back while the
waves go on, the rest upgraded, in a scratch database (the service's own is never touched)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_the_fleet_demo_rolls_back_the_harmful_models_and_upgrades_the_rest(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANARY_ANALYZER_")}
    env["CANARY_ANALYZER_DATA_DIR"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "analyzer.cli", "demo", "--fleet"], env=env,
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    out = result.stdout
    assert "completed: 117 models on v2, 3 rolled back" in out
    assert out.count("rolled back: merchant-") == 3
    assert out.count(": pass —") == 3
    assert "ledger intact" in out
    assert list(tmp_path.iterdir()) == []  # the embedded database was not created or written
