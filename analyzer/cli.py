"""The ``canary-analyzer`` command line.

Exit codes (one table for every command, analyzer/cli_exits.py, docs/cli.md): 0 success; 1 a
negative outcome the command exists to report (a broken ledger chain); 2 bad usage, invalid
input or a refused request (stderr names what to fix); 3 something needed is unavailable (API,
database, listen port); 70 a bug.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any, NoReturn, TypeVar

import click

from analyzer.cli_config import config
from analyzer.cli_evaluations import evaluation
from analyzer.cli_exits import (
    EXIT_INTERNAL,
    EXIT_NEGATIVE,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
)
from analyzer.cli_fleets import fleet
from analyzer.cli_profiles import profiles
from analyzer.cli_rollouts import rollout
from analyzer.cli_tokens import token
from analyzer.domain.errors import (
    CanaryAnalyzerError,
    ConfigurationError,
    DatabaseNotReadyError,
    DatabaseUnreachableError,
    InvalidInputError,
)

F = TypeVar("F", bound=Callable[..., Any])


def _fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _fail_not_ready(exc: DatabaseNotReadyError) -> NoReturn:
    """Unreachable: 3 (retry later); unmigrated: 2 (the message says to run migrate)."""
    _fail(str(exc), EXIT_UNAVAILABLE if isinstance(exc, DatabaseUnreachableError) else EXIT_USAGE)


def _settings() -> Any:
    from analyzer.config import load_settings
    from analyzer.logging import configure_logging

    try:
        settings = load_settings()
    except ConfigurationError as exc:
        _fail(str(exc))
    configure_logging(settings.log_level, settings.log_format)
    return settings


def _ledger() -> Any:
    """A ledger on the configured database, refusing an unmigrated one."""
    from analyzer.db import ensure_schema_current, make_engine
    from analyzer.ledger.store import Ledger

    engine = make_engine(_settings().effective_database_url())
    try:
        ensure_schema_current(engine)
    except DatabaseNotReadyError as exc:
        _fail_not_ready(exc)
    return Ledger(engine)


def _read_input(path: str) -> str:
    try:
        if path == "-":
            return sys.stdin.read()
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError as exc:
        _fail(f"cannot read {path}: {exc.strerror}")


def _parse_time(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        _fail(f"{option}: {value!r} is not an ISO 8601 time (e.g. 2026-03-04T02:13:00Z)")
    if moment.tzinfo is None:
        _fail(f"{option}: {value!r} has no time zone; add Z or an offset such as +01:00")
    return moment


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="canary-analyzer")
def main() -> None:
    """Judge, drive, gate and record canary rollouts of ML models.

    Configuration comes from CANARY_ANALYZER_* environment variables (see README).
    """


@main.command()
def migrate() -> None:
    """Apply the database migrations (creates the schema on an empty database)."""
    from alembic import command

    from analyzer.db import alembic_config, current_revision, head_revision, make_engine

    url = _settings().effective_database_url()
    try:
        command.upgrade(alembic_config(url), "head")
        engine = make_engine(url)
        current = current_revision(engine)
        engine.dispose()
    except Exception as exc:  # any failure here is reported as a message, not a traceback
        code = EXIT_UNAVAILABLE if _is_unreachable_database(exc) else EXIT_USAGE
        _fail(f"migration failed: {exc.__class__.__name__}: {exc}", code)
    click.echo(f"database at revision {current} (head {head_revision()})")


@main.command()
@click.option("--host", default=None, help="Listen address (default from settings).")
@click.option("--port", type=int, default=None, help="Listen port (default from settings).")
def serve(host: str | None, port: int | None) -> None:
    """Run the HTTP API and the rollout scheduler until interrupted."""
    from analyzer.api.server import run_server

    settings = _settings()
    try:
        run_server(settings, host=host, port=port)
    except DatabaseNotReadyError as exc:
        _fail_not_ready(exc)
    except ConfigurationError as exc:
        _fail(str(exc))


@main.command()
@click.option(
    "--fleet",
    is_flag=True,
    help="A fleet rollout of 120 in-memory models instead (docs/fleets.md), in a scratch "
    "database with simulated time.",
)
@click.option(
    "--step-seconds",
    type=click.IntRange(1, 60),
    default=3,
    show_default=True,
    help="Wall-clock seconds each traffic step dwells (time is compressed: a high simulated "
    "request rate gives each step minutes' worth of evidence).",
)
def demo(fleet: bool, step_seconds: int) -> None:
    """Run two canaries on the embedded default: a good one promoted, a bad one aborted."""
    from analyzer.logging import configure_logging

    settings = _settings()
    if "CANARY_ANALYZER_LOG_LEVEL" not in os.environ:
        # The demo narrates on stdout; the service's info logs would drown it.
        configure_logging("warning", settings.log_format, force=True)
    if fleet:
        from analyzer.demo_fleet import run_fleet_demo

        sys.exit(run_fleet_demo(echo=click.echo))
    from analyzer.demo import run_demo

    try:
        code = run_demo(settings, echo=click.echo, step_seconds=step_seconds)
    except DatabaseNotReadyError as exc:
        _fail_not_ready(exc)
    sys.exit(code)


@main.command()
@click.argument("file", type=str)
def judge(file: str) -> None:
    """Judge one analysis from FILE (JSON, or - for stdin); print the verdict JSON."""
    from analyzer.judge.io import judge_document

    document = _load_json(file)
    try:
        result = judge_document(document)
    except InvalidInputError as exc:
        _fail(str(exc))
    click.echo(json.dumps(result))


@main.command()
@click.argument("file", type=str, required=False)
@click.option(
    "--profile",
    "profile_refs",
    multiple=True,
    help="Profile YAML file, catalog profile name or preset; repeat to compare side by side.",
)
@click.option(
    "--from",
    "origin",
    type=click.Choice(["prometheus", "ledger"]),
    default=None,
    help="Where the recorded canaries come from: Prometheus history (a --canaries manifest, "
    "or found in the revision traffic of --model), or the ledger's rollouts and analysis "
    "sessions (their looks re-read from the metric source).",
)
@click.option("--canaries", "manifest", default=None,
              help="Canaries manifest (--from prometheus); docs/backtests.md.")  # fmt: skip
@click.option("--since", default=None, help="Only canaries started at or after (ISO 8601).")
@click.option("--until", default=None, help="Only canaries started before (ISO 8601).")
@click.option("--model", default=None, help="Only canaries of NAMESPACE/NAME.")
@click.option("--truth", "truth_file", default=None, help="YAML: rollout id or canary -> bad/good.")
@click.option("--prometheus-url", default=None, help="Prometheus base URL (default: settings).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              help="A table per canary and per profile, or the JSON report.")  # fmt: skip
@click.option("--json-out", default=None, help="Also write the JSON report to this file.")
@click.option(
    "--interval", default="1m", help="Look interval of discovered canaries (no manifest)."
)
@click.option("--max-looks", type=click.IntRange(1, 10_000), default=60,
              help="At most this many looks per discovered canary.")  # fmt: skip
@click.option("--workers", type=click.IntRange(1, 64), default=4, help="Canaries in parallel.")
@click.option("--every-look", is_flag=True, help="Judge looks after a decision too (benchmarks).")
def backtest(
    file: str | None,
    profile_refs: tuple[str, ...],
    origin: str | None,
    manifest: str | None,
    since: str | None,
    until: str | None,
    model: str | None,
    truth_file: str | None,
    prometheus_url: str | None,
    fmt: str,
    json_out: str | None,
    interval: str,
    max_looks: int,
    workers: int,
    every_look: bool,
) -> None:
    """Replay recorded canaries look by look through one or more profiles.

    With --from, print per canary what each profile would have said and at which look, next to
    its truth and what happened, and a summary per profile (false aborts, misses, time to
    decide). Without it, FILE (JSON Lines, or -) holds judge inputs with looks: one result per
    line, the offline contract. Exit 0 when the replay ran, 2 for bad input, 3 when the metric
    source answered no look at all.
    """
    if origin is None:
        if file is None:
            _fail("give FILE (JSON Lines of replays) or --from prometheus|ledger with --profile")
        _backtest_jsonl(file)
        return
    if file is not None:
        _fail("FILE is the JSON Lines replay; with --from the canaries come from --canaries "
              "or the ledger")  # fmt: skip
    if not profile_refs:
        _fail("--profile is required with --from (repeat it to compare profiles)")
    from analyzer.backtests.command import BacktestRequest, run_backtest
    from analyzer.backtests.manifest import parse_duration
    from analyzer.domain.errors import IntegrationError

    try:
        look_interval = parse_duration(interval)
    except ValueError as exc:
        _fail(f"--interval: {exc}")
    request = BacktestRequest(
        profile_refs=profile_refs, origin=origin, manifest=manifest,
        since=_parse_time(since, "--since"), until=_parse_time(until, "--until"),
        model=model, truth_file=truth_file, prometheus_url=prometheus_url, workers=workers,
        every_look=every_look, interval=look_interval, max_looks=max_looks,
    )  # fmt: skip
    ledger = _ledger() if origin == "ledger" else None
    try:
        code = run_backtest(request, settings=_settings(), ledger=ledger, fmt=fmt,
                            json_out=json_out)  # fmt: skip
    except InvalidInputError as exc:
        _fail(str(exc))
    except ConfigurationError as exc:
        _fail(str(exc))
    except IntegrationError as exc:  # discovery could not read Prometheus
        _fail(f"cannot read the metric source: {exc}", EXIT_UNAVAILABLE)
    sys.exit(code)


def _backtest_jsonl(file: str) -> None:
    from analyzer.judge.io import backtest_replay

    for number, line in enumerate(_read_input(file).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            document = json.loads(line)
            result = backtest_replay(document)
        except json.JSONDecodeError as exc:
            _fail(f"line {number}: not valid JSON: {exc.msg} at column {exc.colno}")
        except InvalidInputError as exc:
            _fail(f"line {number}: {exc}")
        click.echo(json.dumps(result))


def _load_json(file: str) -> Any:
    try:
        return json.loads(_read_input(file))
    except json.JSONDecodeError as exc:
        _fail(f"{file}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")


@main.command()
@click.option("--profile", "profile_path", required=True, help="Profile YAML file or preset name.")
@click.option("--model", required=True, help="NAMESPACE/NAME of the model.")
@click.option("--baseline", required=True, help="Baseline (stable) revision.")
@click.option("--canary", required=True, help="Canary revision.")
@click.option("--since", default=None, help="Window start: a duration (30m, 2h) or ISO 8601.")
@click.option("--prometheus-url", default=None, help="Prometheus base URL (default: settings).")
def analyze(
    profile_path: str,
    model: str,
    baseline: str,
    canary: str,
    since: str | None,
    prometheus_url: str | None,
) -> None:
    """Fetch a profile's metrics, judge them, print the verdict JSON.

    A profile in Datadog's query language (``query_language: datadog``) reads the Datadog API
    configured in ``datadog`` settings; any other reads Prometheus."""
    from analyzer.analysis import analyze_command
    from analyzer.metrics.base import MetricSource, QueryLanguage
    from analyzer.profiles import load_profile
    from analyzer.wiring import build_datadog_source

    settings = _settings()
    closables: list[Any] = []
    try:
        languages = {q.language for q in load_profile(profile_path).queries.values()}
        source: MetricSource | None = None
        if QueryLanguage.DATADOG in languages:
            try:
                source = build_datadog_source(settings, closables)
            except ConfigurationError as exc:
                _fail(str(exc))
        result = analyze_command(
            profile=profile_path, model=model, baseline=baseline, canary=canary, since=since,
            prometheus_url=prometheus_url or settings.prometheus.url,
            timeout=settings.prometheus.timeout_seconds, source=source,
        )  # fmt: skip
    except InvalidInputError as exc:
        _fail(str(exc))
    finally:
        for closable in closables:
            closable.close()
    click.echo(json.dumps(result))


@main.group()
def ledger() -> None:
    """Verify, checkpoint, pack or export the audit ledger."""


@ledger.command("verify")
@click.option(
    "--pack",
    "pack_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="Verify this evidence pack (HTML report or JSON) instead of the whole chain.",
)
@click.option(
    "--against-ledger",
    is_flag=True,
    default=False,
    help="With --pack: also check its hashes against the ledger's verified chain.",
)
@click.option(
    "--checkpoints",
    "checkpoints_dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Also prove the chain holds every signed head checkpoint in this directory.",
)
@click.option(
    "--key",
    "keys",
    multiple=True,
    type=click.Path(),
    help="With --checkpoints: a trusted public key (PEM file, or a directory of them); "
    "repeat for keys used before a rotation.",
)
def ledger_verify(
    pack_path: str | None, against_ledger: bool, checkpoints_dir: str | None, keys: tuple[str, ...]
) -> None:
    """Recompute the whole hash chain; exit 1 naming the first bad entry when broken.

    With --checkpoints DIR --key PUBKEY, also check every signed checkpoint there: a bad
    signature, a checkpoint beyond the chain's end (the tail cut) or one whose hash the chain no
    longer has (the tail rewritten) each exit 1. With --pack, check an evidence pack offline
    (its hashes, payloads and chain links; no database needed) and, with --against-ledger, that
    the ledger holds the same hashes.
    """
    if checkpoints_dir is not None or keys:
        _verify_with_checkpoints(pack_path, checkpoints_dir, keys)
    if pack_path is None:
        if against_ledger:
            _fail("--against-ledger needs --pack FILE")
        report = _ledger().verify()
        click.echo(report.summary())
        sys.exit(EXIT_OK if report.intact else EXIT_NEGATIVE)
    from analyzer.ledger.pack import check_against_ledger, extract_pack, verify_pack

    try:
        with open(pack_path, encoding="utf-8") as handle:
            pack = extract_pack(handle.read())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        _fail(f"--pack: {exc}")
    checked = verify_pack(pack)
    click.echo(checked.summary())
    problems = list(checked.problems)
    if against_ledger:
        anchored = check_against_ledger(pack, _ledger())
        click.echo(
            "against the ledger: the same hashes at every seq, chain intact"
            if not anchored
            else "against the ledger: " + "; ".join(anchored[:10])
        )
        problems += anchored
    sys.exit(EXIT_OK if not problems else EXIT_NEGATIVE)


def _verify_with_checkpoints(
    pack_path: str | None, checkpoints_dir: str | None, keys: tuple[str, ...]
) -> NoReturn:
    from pathlib import Path

    from analyzer.ledger.anchoring import verify_with_checkpoints
    from analyzer.ledger.checkpoint import (
        CheckpointDirectory,
        CheckpointError,
        TrustedKeys,
        load_public_keys,
    )

    if pack_path is not None:
        _fail("--checkpoints checks the database's chain; --pack checks a file: run them apart")
    if checkpoints_dir is None or not keys:
        _fail("--checkpoints DIR and --key PUBKEY go together (the key checks the signatures)")
    directory = Path(checkpoints_dir)
    if not directory.is_dir():
        _fail(f"--checkpoints: {directory} is not a directory")
    try:
        trusted = TrustedKeys(load_public_keys(Path(k) for k in keys))
    except CheckpointError as exc:
        _fail(f"--key: {exc}")
    if not len(trusted):
        _fail("--key: no public key found (a directory needs *.pem or *.pub files)")
    report = verify_with_checkpoints(_ledger(), CheckpointDirectory(directory), trusted)
    for line in report.lines():
        click.echo(line)
    sys.exit(EXIT_OK if report.intact else EXIT_NEGATIVE)


@ledger.command("checkpoint-key")
@click.option(
    "--private-key",
    "private_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="Write the private key here (mode 0600): the server's ledger.checkpoint_key_file.",
)
@click.option(
    "--public-key",
    "public_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="Write the public key here: what `ledger verify --checkpoints` is given as --key.",
)
def ledger_checkpoint_key(private_path: str, public_path: str) -> None:
    """Make an Ed25519 key pair for signing ledger head checkpoints (never overwrites a file)."""
    from analyzer.ledger.checkpoint import generate_key_pair, key_id_of, load_private_key

    private, public = generate_key_pair()
    for path, content, mode in ((private_path, private, 0o600), (public_path, public, 0o644)):
        try:
            handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        except FileExistsError:
            _fail(f"{path} exists: a key is never overwritten; move it away first")
        except OSError as exc:
            _fail(f"cannot write {path}: {exc.strerror}")
        with os.fdopen(handle, "wb") as out:
            out.write(content)
    key_id = key_id_of(load_private_key(private, source=private_path).public_key())
    click.echo(
        f"key {key_id}: private key {private_path} (a secret: ledger.checkpoint_key_file), "
        f"public key {public_path} (for `ledger verify --checkpoints DIR --key`)"
    )


@ledger.command("checkpoint")
@click.option(
    "--dir",
    "directory",
    default=None,
    type=click.Path(file_okay=False),
    help="Write it here (default: the ledger.checkpoint_dir setting).",
)
def ledger_checkpoint(directory: str | None) -> None:
    """Verify the whole chain, then sign its head with ledger.checkpoint_key_file and write the
    checkpoint now; exit 1 (and write nothing) when the chain is broken."""
    from datetime import UTC, datetime
    from pathlib import Path

    from analyzer.checkpointing import build_checkpointing
    from analyzer.ledger.checkpoint import CheckpointDirectory

    checkpointing = build_checkpointing(_settings())
    if checkpointing is None:
        _fail(
            "no signing key: set ledger.checkpoint_key_file (CANARY_ANALYZER_LEDGER__"
            "CHECKPOINT_KEY_FILE); make one with `canary-analyzer ledger checkpoint-key`"
        )
    sink = CheckpointDirectory(Path(directory)) if directory else checkpointing.directory
    if sink is None:
        _fail("where to? give --dir or set ledger.checkpoint_dir")
    report = _ledger().verify()
    if not report.intact:
        click.echo(report.summary())
        click.echo("no checkpoint written: a broken chain is not signed")
        sys.exit(EXIT_NEGATIVE)
    if report.head_seq == 0:
        _fail("the ledger is empty: there is no head to sign yet")
    checkpoint = checkpointing.signer.sign(
        seq=report.head_seq, head_hash=report.head_hash, at=datetime.now(UTC)
    )
    try:
        path = sink.write(checkpoint)
    except OSError as exc:
        _fail(f"cannot write to {sink.directory}: {exc.strerror}")
    click.echo(f"wrote {path}: {checkpoint.describe()}")


@ledger.command("pack")
@click.argument("rollout_id")
@click.option("--format", "fmt", type=click.Choice(["html", "json"]), default="html")
@click.option(
    "--out",
    "out_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="Write the pack to this file (default: stdout).",
)
def ledger_pack(rollout_id: str, fmt: str, out_path: str | None) -> None:
    """Write ROLLOUT_ID's evidence pack: a printable report with its verifiable entries."""
    import getpass
    from datetime import UTC, datetime

    from analyzer.api.ui.pack_view import pack_file
    from analyzer.ledger.pack import build_pack, pack_json

    pack = build_pack(
        _ledger(), rollout_id, model=None, generated_at=datetime.now(UTC),
        generated_by=f"cli:{getpass.getuser()}",
    )  # fmt: skip
    if not pack["entries"]:
        _fail(f"no ledger entries for rollout {rollout_id!r}")
    text = pack_file(pack) if fmt == "html" else pack_json(pack) + "\n"
    if out_path is None:
        click.echo(text, nl=False)
        return
    with open(out_path, "w", encoding="utf-8") as handle:
        handle.write(text)
    click.echo(
        f"wrote {out_path}: {len(pack['entries'])} entries of rollout {rollout_id}", err=True
    )


@ledger.command("export")
@click.option("--format", "fmt", type=click.Choice(["json", "csv"]), default="json")
@click.option("--model", default=None, help="Only entries of NAMESPACE/NAME.")
@click.option("--since", default=None, help="From this time (inclusive), ISO 8601 with zone.")
@click.option("--until", default=None, help="Up to this time (exclusive), ISO 8601 with zone.")
def ledger_export(fmt: str, model: str | None, since: str | None, until: str | None) -> None:
    """Export ledger entries (with payloads and hashes) to stdout."""
    from analyzer.domain.model import ModelRef
    from analyzer.ledger.export import iter_selected, write_csv, write_json

    try:
        ref = ModelRef.parse(model) if model else None
    except InvalidInputError as exc:
        _fail(f"--model: {exc}")
    # The input is checked before the database is opened: a typo is named even without one.
    since_time, until_time = _parse_time(since, "--since"), _parse_time(until, "--until")
    entries = iter_selected(_ledger(), model=ref, since=since_time, until=until_time)
    writer = write_json if fmt == "json" else write_csv
    writer(entries, sys.stdout)


main.add_command(rollout)
main.add_command(fleet)
main.add_command(evaluation)
main.add_command(profiles)
main.add_command(token)
main.add_command(config)


def _is_unreachable_database(exc: BaseException) -> bool:
    """A database that cannot be connected to (or dropped the connection): exit 3, not a bug."""
    from sqlalchemy.exc import InterfaceError, OperationalError

    return isinstance(exc, OperationalError | InterfaceError)


def run() -> None:
    """Entry point: deliberate errors exit 2, an unreachable database 3, anything else 70 with
    its traceback (docs/cli.md: exit codes)."""
    try:
        main(standalone_mode=True)
    except CanaryAnalyzerError as exc:
        _fail(str(exc))
    except Exception as exc:
        if _is_unreachable_database(exc):
            _fail(f"cannot reach the database: {getattr(exc, 'orig', None) or exc}",
                  EXIT_UNAVAILABLE)  # fmt: skip
        import traceback

        traceback.print_exc()
        _fail(f"internal error ({type(exc).__name__}: {exc}); this is a bug, please report "
              "it with the traceback above", EXIT_INTERNAL)  # fmt: skip


if __name__ == "__main__":
    run()
