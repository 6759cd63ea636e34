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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import httpx
import yaml

from analyzer.analyses.catalog import ProfileCatalog
from analyzer.backtests.discover import infer_canaries, read_activity, traffic_query
from analyzer.backtests.ledger import canaries_from_ledger
from analyzer.backtests.manifest import parse_manifest, select
from analyzer.backtests.replay import CanaryReplay, RecordedCanary, Truth
from analyzer.backtests.report import report_json, report_text
from analyzer.backtests.runner import BacktestRunner, NamedProfile
from analyzer.domain.errors import InvalidInputError
from analyzer.domain.model import ModelRef
from analyzer.domain.verdict import Verdict
from analyzer.ledger.store import Ledger
from analyzer.metrics.prometheus.client import PrometheusClient, RetryPolicy
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
    # discovery (--from prometheus without a manifest): one look every interval, at most max_looks
    interval: timedelta = timedelta(minutes=1)
    max_looks: int = 60


AS_RUN = "as-run"  # --profile as-run: each ledger canary with the profile it ran with


def as_run_profiles(catalog: ProfileCatalog) -> Callable[[RecordedCanary], NamedProfile]:
    """``--profile as-run``: each canary's recorded profile, from the catalog by name."""

    def resolve(canary: RecordedCanary) -> NamedProfile:
        if canary.profile is None:
            raise InvalidInputError(f"{canary.id} recorded no profile", field="--profile")
        try:
            return NamedProfile(label=AS_RUN, loaded=catalog.resolve(canary.profile)[1])
        except InvalidInputError as exc:
            raise InvalidInputError(
                f"{canary.id} ran with profile {canary.profile!r}, which the catalog "
                f"(api.profiles_dir) cannot load: {exc}",
                field="--profile",
            ) from None

    return resolve


def load_profiles(refs: Sequence[str], catalog: ProfileCatalog | None = None) -> list[NamedProfile]:
    """Each ``--profile``: a YAML file, a profile of the service's catalog by name (what the
    ledger's rollouts name), or a preset; labelled by its file stem or name. The same label
    twice gets ``#2`` so the columns stay apart."""
    named: list[NamedProfile] = []
    for i, ref in enumerate(refs):
        try:
            if catalog is not None and not Path(ref).exists() and ref in catalog:
                loaded = catalog.resolve(ref)[1]
            else:
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


def discover(
    request: BacktestRequest, profile: NamedProfile, settings: Any, closables: list[Any]
) -> list[RecordedCanary]:
    """``--from prometheus`` without a manifest: the canaries the traffic series show."""
    if request.model is None or request.since is None:
        raise InvalidInputError(
            "--from prometheus without --canaries finds canaries in the traffic of one model: "
            "give --model and --since (or a manifest with --canaries)"
        )
    model = ModelRef.parse(request.model)
    until = request.until or datetime.now(UTC)
    http = httpx.Client()
    closables.append(http)
    client = PrometheusClient(
        base_url=request.prometheus_url or settings.prometheus.url, http=http,
        timeout=settings.prometheus.timeout_seconds,
        retry=RetryPolicy(attempts=settings.prometheus.retries + 1),
    )  # fmt: skip
    step = min(request.interval, timedelta(minutes=1))
    query = traffic_query(profile.loaded, model)
    activity = read_activity(client, query, since=request.since, until=until, step=step)
    return infer_canaries(activity, model=model, step=step, interval=request.interval,
                          max_looks=request.max_looks)  # fmt: skip


def find_canaries(
    request: BacktestRequest,
    ledger: Ledger | None,
    *,
    found_in_prometheus: Callable[[], list[RecordedCanary]] | None = None,
) -> list[RecordedCanary]:
    model = ModelRef.parse(request.model) if request.model else None
    if request.origin == "prometheus" and request.manifest is None and found_in_prometheus:
        found = found_in_prometheus()
    elif request.origin == "ledger":
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
    catalog = ProfileCatalog(settings.api.profiles_dir)
    as_run = AS_RUN in request.profile_refs
    if as_run and request.origin != "ledger":
        raise InvalidInputError("as-run replays the profile each rollout recorded: --from ledger",
                                field="--profile")  # fmt: skip
    profiles = load_profiles([r for r in request.profile_refs if r != AS_RUN], catalog)
    labels = ([AS_RUN] if as_run else []) + [p.label for p in profiles]
    closables: list[Any] = []
    try:
        canaries = find_canaries(
            request, ledger,
            found_in_prometheus=lambda: discover(request, profiles[0], settings, closables),
        )  # fmt: skip
        if not canaries:
            click.echo("no canaries in that period", err=True)
        resolve = as_run_profiles(catalog) if as_run else None
        ran_with = [resolve(c) for c in canaries] if resolve is not None else []
        languages = {q.language for p in [*profiles, *ran_with] for q in p.loaded.queries.values()}
        source = build_backtest_source(
            settings, languages, closables, prometheus_url=request.prometheus_url
        )
        runner = BacktestRunner(source, workers=request.workers)
        total = sum(len(c.looks) for c in canaries)
        with click.progressbar(length=total, label="replaying looks", file=sys.stderr) as bar:
            replays = runner.run(
                canaries, profiles, progress=bar.update, every_look=request.every_look,
                as_run=resolve,
            )  # fmt: skip
    finally:
        for closable in closables:
            closable.close()
    document = report_json(replays, labels)
    if json_out is not None:
        try:
            Path(json_out).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            raise InvalidInputError(f"cannot write {json_out}: {exc.strerror}",
                                    field="--json-out") from None  # fmt: skip
    if fmt == "json":
        click.echo(json.dumps(document))
    else:
        click.echo(report_text(replays, labels), nl=False)
    if _nothing_answered(replays):
        click.echo("error: the metric source answered no look (every look is an error)", err=True)
        return EXIT_UNAVAILABLE
    return EXIT_OK
