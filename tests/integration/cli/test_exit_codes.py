"""The exit-code table (analyzer/cli_exits.py, docs/cli.md) holds for every command.

Each code is provoked for real: usage errors on every command, a broken chain, a refused and an
unreachable API, an unreachable database, a port in use, and a bug.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from sqlalchemy import text

from analyzer.cli import main, run
from analyzer.cli_exits import (
    EXIT_CODES,
    EXIT_INTERNAL,
    EXIT_NEGATIVE,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    exit_code_table,
)
from analyzer.db import make_engine
from analyzer.ledger.store import Ledger
from tests.integration.ledger.helpers import T0, SteppingClock, traffic

REPO = Path(__file__).resolve().parents[3]
UNREACHABLE_PG = "postgresql+psycopg://postgres@127.0.0.1:9/nowhere"  # discard port: refused


def cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CANARY_ANALYZER_")}
    return subprocess.run(
        [sys.executable, "-m", "analyzer.cli", *args], env={**clean, **(env or {})},
        capture_output=True, text=True, timeout=timeout, check=False, cwd=REPO,
    )  # fmt: skip


def leaf_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from leaf_commands(command, (*prefix, name))
        else:
            yield (*prefix, name)


EVERY_COMMAND = sorted(leaf_commands(main))


def test_the_table_names_each_code_once_and_docs_print_it() -> None:
    codes = [code for code, _, _ in EXIT_CODES]
    assert codes == sorted(set(codes))
    assert {EXIT_OK, EXIT_NEGATIVE, EXIT_USAGE, EXIT_UNAVAILABLE, EXIT_INTERNAL} == set(codes)
    assert exit_code_table() in (REPO / "docs" / "cli.md").read_text(encoding="utf-8")


def test_every_command_is_covered() -> None:
    assert ("token", "create") in EVERY_COMMAND
    assert ("rollout", "list") in EVERY_COMMAND
    assert len(EVERY_COMMAND) >= 18


@pytest.mark.parametrize("command", EVERY_COMMAND, ids=" ".join)
def test_every_command_help_is_0_and_an_unknown_option_is_2(
    command: tuple[str, ...], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for args, expected in (((*command, "--help"), EXIT_OK),
                           ((*command, "--no-such-option"), EXIT_USAGE)):  # fmt: skip
        monkeypatch.setattr(sys, "argv", ["canary-analyzer", *args])
        with pytest.raises(SystemExit) as exited:
            run()
        assert exited.value.code == expected, (args, capsys.readouterr())
    assert "No such option" in capsys.readouterr().err


def test_negative_outcome_is_1(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/ledger.sqlite3"
    assert cli("migrate", env={"CANARY_ANALYZER_DATABASE_URL": url}).returncode == EXIT_OK
    engine = make_engine(url)
    ledger = Ledger(engine, clock=SteppingClock(T0))
    ledger.record(traffic({"a": 100}))
    ledger.record(traffic({"a": 90, "b": 10}))
    with engine.begin() as conn:
        conn.execute(text("DROP TRIGGER ledger_entries_no_update"))
        conn.execute(text("UPDATE ledger_entries SET actor='mallory' WHERE seq=2"))
    engine.dispose()
    broken = cli("ledger", "verify", env={"CANARY_ANALYZER_DATABASE_URL": url})
    assert broken.returncode == EXIT_NEGATIVE
    assert "seq 2" in broken.stdout


@pytest.mark.parametrize(
    ("args", "stdin", "says"),
    [
        (("judge", "-"), "{not json", "not valid JSON"),
        (("judge", "no-such-file.json"), None, "cannot read"),
        (("backtest", "-"), '{"x": 1}\n', "line 1"),
        (("ledger", "export", "--since", "yesterday"), None, "ISO 8601"),
        (("token", "create", "--subject", "a", "--role", "root"), None, "root"),
        (
            (
                "rollout",
                "start",
                "--model",
                "nonamespace",
                "--baseline",
                "a",
                "--canary",
                "b",
                "--profile",
                "p",
            ),
            None,
            "NAMESPACE/NAME",
        ),
    ],
)
def test_bad_input_is_2(
    args: tuple[str, ...], stdin: str | None, says: str, tmp_path: Path
) -> None:
    env = {"CANARY_ANALYZER_DATA_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "analyzer.cli", *args], input=stdin, capture_output=True,
        text=True, timeout=120, check=False, cwd=REPO,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("CANARY_ANALYZER_")},
             **env},
    )  # fmt: skip
    assert result.returncode == EXIT_USAGE, result.stderr
    assert says in result.stderr


def test_a_bad_setting_is_2(tmp_path: Path) -> None:
    result = cli("ledger", "verify", env={"CANARY_ANALYZER_LOG_LEVEL": "loud"})
    assert result.returncode == EXIT_USAGE
    assert "log_level" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("rollout", "list", "--url", "http://127.0.0.1:9", "--token", "t"),
        ("rollout", "--url", "http://127.0.0.1:9", "show", "r-1"),
        ("evaluation", "list", "--url", "http://127.0.0.1:9", "--model", "a/b"),
    ],
)
def test_an_unreachable_api_is_3(args: tuple[str, ...]) -> None:
    result = cli(*args)
    assert result.returncode == EXIT_UNAVAILABLE, result.stderr
    assert "cannot reach http://127.0.0.1:9" in result.stderr


@pytest.mark.parametrize("args", [("migrate",), ("ledger", "verify"), ("ledger", "export")])
def test_an_unreachable_database_is_3(args: tuple[str, ...]) -> None:
    result = cli(*args, env={"CANARY_ANALYZER_DATABASE_URL": UNREACHABLE_PG})
    assert result.returncode == EXIT_UNAVAILABLE, result.stderr
    assert "Traceback" not in result.stderr
    assert "127.0.0.1" in result.stderr


@pytest.mark.slow
def test_serve_on_a_port_in_use_is_3(tmp_path: Path) -> None:
    env = {
        "CANARY_ANALYZER_DATA_DIR": str(tmp_path),
        "CANARY_ANALYZER_PROMETHEUS__LOOK_PROCESSES": "0",
    }
    assert cli("migrate", env=env).returncode == EXIT_OK
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli("serve", "--port", str(port), env=env, timeout=240)
    assert result.returncode == EXIT_UNAVAILABLE, result.stderr[-2000:]


def test_a_bug_is_70_with_its_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(document: object) -> object:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr("analyzer.judge.io.judge_document", broken)
    monkeypatch.setattr(sys, "stdin", __import__("io").StringIO(json.dumps({"metrics": []})))
    monkeypatch.setattr(sys, "argv", ["canary-analyzer", "judge", "-"])
    with pytest.raises(SystemExit) as exited:
        run()
    assert exited.value.code == EXIT_INTERNAL
    err = capsys.readouterr().err
    assert "Traceback" in err
    assert "this is a bug" in err
