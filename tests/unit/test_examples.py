"""docs/examples/: every file runs, and gives the verdict docs/examples/README.md says it does."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from analyzer.cli import main
from analyzer.profiles import load_preset, load_profile, preset_names

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
README = (EXAMPLES / "README.md").read_text(encoding="utf-8")
STATISTICS = (EXAMPLES.parent / "statistics.md").read_text(encoding="utf-8")


def rows(header: str) -> list[list[str]]:
    """The rows of the README table whose header line starts with ``header``."""
    lines = README.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    table = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        table.append([cell.strip() for cell in line.strip("|").split("|")])
    return table


def link(cell: str) -> Path:
    match = re.search(r"\]\(([^)]+)\)", cell)
    assert match, cell
    return EXAMPLES / match.group(1)


def cli(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


JUDGE_ROWS = rows("| file | what it shows | verdict |")


def test_every_judge_example_is_listed() -> None:
    listed = {link(row[0]).name for row in JUDGE_ROWS}
    assert listed == {p.name for p in (EXAMPLES / "judge").glob("*.json")}
    assert {row[2] for row in JUDGE_ROWS} == {"`pass`", "`fail`", "`error`"}


@pytest.mark.parametrize("row", JUDGE_ROWS, ids=lambda r: link(r[0]).name)
def test_judge_example_gives_its_documented_verdict(row: list[str]) -> None:
    result = json.loads(cli("judge", str(link(row[0]))))
    assert f"`{result['verdict']}`" == row[2], result["reason"]
    assert result["metrics"]


def test_backtest_example_gives_its_documented_verdicts() -> None:
    table = rows("| file | line | verdict | decided at look |")
    results = [json.loads(line) for line in cli("backtest", str(link(table[0][0]))).splitlines()]
    assert len(results) == len(table)
    for row, result in zip(table, results, strict=True):
        assert f"`{result['verdict']}`" == row[2]
        assert str(result["decided_at"]) == row[3]


@pytest.mark.parametrize("preset", preset_names())
def test_every_preset_has_an_example_profile_using_all_its_metrics(preset: str) -> None:
    table = {row[0].strip("`"): link(row[1]) for row in rows("| preset | example |")}
    path = table[preset]
    loaded = load_profile(path)
    used = [m["use"] for m in yaml.safe_load(path.read_text(encoding="utf-8"))["metrics"]]
    preset_metrics = {m.name for m in load_preset(preset).profile.metrics}
    assert {u.split("/")[1] for u in used if u.startswith(f"{preset}/")} == preset_metrics
    assert set(loaded.queries) == {m.name for m in loaded.profile.metrics}
    assert "canary-analyzer analyze --profile docs/examples/profiles/" in path.read_text()


def test_the_statistics_page_example_is_a_working_judge_input(tmp_path: Path) -> None:
    (block,) = re.findall(r"```json\n(.*?)```", STATISTICS, flags=re.S)
    document = tmp_path / "input.json"
    document.write_text(block, encoding="utf-8")
    result = json.loads(cli("judge", str(document)))
    assert result["verdict"] == "fail"  # as the page says
    assert "error_rate" in result["reason"]


def test_the_demos_next_steps_name_files_and_commands_that_exist() -> None:
    from analyzer.demo import NEXT_STEPS

    for path in re.findall(r"(docs/[\w./-]+\w)", NEXT_STEPS):
        assert (EXAMPLES.parents[1] / path).exists(), path
    assert "--output shell" in NEXT_STEPS
