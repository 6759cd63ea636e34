"""``canary-analyzer backtest --from prometheus|ledger``: load, replay, report.

The CLI parses options into a :class:`BacktestRequest`; this module finds the canaries (a
manifest, or the ledger), loads the profiles, builds the metric source from the settings, runs
the replay with a progress bar on stderr and prints the report. Exit codes: 0 the replay ran
(whatever the verdicts), 3 the metric source answered no look at all (nothing was replayed, so
no summary may be trusted); bad input raises ``InvalidInputError`` (the CLI exits 2).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import click
import yaml

from analyzer.backtests.ledger import canaries_from_ledger
from analyzer.backtests.manifest import parse_manifest, select
from analyzer.backtests.replay import CanaryReplay, RecordedCanary, Truth
from analyzer.backtests.report import report_json, report_text
from analyzer.backtests.runner import BacktestRunner, NamedProfile
from analyzer.domain.errors import InvalidInputError
from analyzer.domain.model import ModelRef
from analyzer.domain.verdict import Verdict
from analyzer.ledger.store import Ledger
from analyzer.profiles import load_profile
from analyzer.wiring import build_backtest_source

EXIT_OK, EXIT_UNAVAILABLE = 0, 3


@dataclass(frozen=True, kw_only=True, slots=True)
class BacktestRequest:
    profile_refs: Sequence[str]
    origin: str  # "prometheus" | "ledger"
    manifest: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    model: str | None = None
    truth_file: str | None = None
    prometheus_url: str | None = None
    workers: int = 4
    every_look: bool = False


def load_profiles(refs: Sequence[str]) -> list[NamedProfile]:
    """Each ``--profile`` (a YAML file or a preset), labelled by its file stem or preset name;
    the same label twice gets ``#2`` so the columns stay apart."""
    named: list[NamedProfile] = []
    for i, ref in enumerate(refs):
        try:
            loaded = load_profile(ref)
        except InvalidInputError as exc:
            raise InvalidInputError(str(exc), field=f"--profile[{i}]") from None
        label = Path(ref).stem if Path(ref).suffix in (".yaml", ".yml") else ref
        if any(n.label == label for n in named):
            label = f"{label}#{i + 1}"
        named.append(NamedProfile(label=label, loaded=loaded))
    return named


def read_truth(path: str) -> dict[str, Truth]:
    """``--truth``: ``{rollout id, canary id or canary revision: bad|good}``."""
    try:
        document: Any = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidInputError(f"cannot read {path}: {exc.strerror}", field="--truth") from None
    except yaml.YAMLError as exc:
        raise InvalidInputError(f"not valid YAML: {exc}", field="--truth") from None
    if not isinstance(document, Mapping):
        raise InvalidInputError("must map rollout ids or canaries to bad or good", field="--truth")
    truth: dict[str, Truth] = {}
    for key, value in document.items():
        try:
            truth[str(key)] = Truth(str(value))
        except ValueError:
            raise InvalidInputError(
                f"{value!r} is not bad or good", field=f"--truth.{key}"
            ) from None
    return truth


def with_truth(
    canaries: Sequence[RecordedCanary], truth: Mapping[str, Truth]
) -> list[RecordedCanary]:
    out = []
    for canary in canaries:
        known = truth.get(canary.id) or truth.get(canary.canary)
        out.append(canary if known is None else replace(canary, truth=known))
    return out


def find_canaries(request: BacktestRequest, ledger: Ledger | None) -> list[RecordedCanary]:
    model = ModelRef.parse(request.model) if request.model else None
    if request.origin == "ledger":
        if ledger is None:
            raise InvalidInputError("--from ledger needs the ledger's database")
        found = canaries_from_ledger(ledger, since=request.since, until=request.until, model=model)
    else:
        if request.manifest is None:
            raise InvalidInputError(
                "--from prometheus needs --canaries MANIFEST (which canaries, when, their truth)"
            )
        try:
            text = Path(request.manifest).read_text(encoding="utf-8")
        except OSError as exc:
            raise InvalidInputError(
                f"cannot read {request.manifest}: {exc.strerror}", field="--canaries"
            ) from None
        everything = parse_manifest(text, source=request.manifest)
        found = select(everything, since=request.since, until=request.until, model=model)
    if request.truth_file is not None:
        found = with_truth(found, read_truth(request.truth_file))
    return found


def _nothing_answered(replays: Sequence[CanaryReplay]) -> bool:
    judged = [v for r in replays for v in r.verdicts if v is not None]
    return bool(judged) and all(v is Verdict.ERROR for v in judged)


def run_backtest(
    request: BacktestRequest,
    *,
    settings: Any,
    ledger: Ledger | None = None,
    fmt: str = "table",
    json_out: str | None = None,
) -> int:
    """Replay and print; the exit code (see the module docstring)."""
    profiles = load_profiles(request.profile_refs)
    canaries = find_canaries(request, ledger)
    labels = [p.label for p in profiles]
    if not canaries:
        click.echo("no canaries in that period", err=True)
    languages = {q.language for p in profiles for q in p.loaded.queries.values()}
    closables: list[Any] = []
    try:
        source = build_backtest_source(
            settings, languages, closables, prometheus_url=request.prometheus_url
        )
        runner = BacktestRunner(source, workers=request.workers)
        total = sum(len(c.looks) for c in canaries)
        with click.progressbar(length=total, label="replaying looks", file=sys.stderr) as bar:
            replays = runner.run(
                canaries, profiles, progress=bar.update, every_look=request.every_look
            )
    finally:
        for closable in closables:
            closable.close()
    document = report_json(replays, labels)
    if json_out is not None:
        Path(json_out).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    if fmt == "json":
        click.echo(json.dumps(document))
    else:
        click.echo(report_text(replays, labels), nl=False)
    if _nothing_answered(replays):
        click.echo("error: the metric source answered no look (every look is an error)", err=True)
        return EXIT_UNAVAILABLE
    return EXIT_OK
