"""The evidence pack as a file: a self-contained, printable HTML report with the pack inside.

Who started the rollout under which change request, who approved it in which role (four-eyes
or change board), the change requests' states as the gates saw them, the traffic over time, the
evidence over the looks, the last analysis as tables and charts, and every entry; then the pack
document itself (``analyzer/ledger/pack.py``) in a ``<pre>`` block, which is what
``canary-analyzer ledger verify --pack FILE`` checks. The stylesheet is inlined (a file opened
from disk cannot fetch it), there is no script, and links point inside the file only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib.resources import files
from typing import Any, Literal

from fastapi.responses import Response
from jinja2 import Environment

from analyzer.api.deps import Services
from analyzer.api.ui.charts import mapping
from analyzer.api.ui.pictures import RolloutPictures, pictures_of
from analyzer.api.ui.rendering import build_templates
from analyzer.api.ui.summaries import change_request_states, summary_of
from analyzer.domain.events import EventType
from analyzer.domain.rollout import Rollout
from analyzer.ledger.chain import EntryRecord
from analyzer.ledger.compact import expand_all
from analyzer.ledger.pack import (
    PACK_ELEMENT_ID,
    build_pack,
    check_pack,
    pack_digest,
    pack_json,
    record_of,
)

# A downloaded report is opened from disk, where no server header applies; served, it may use
# its own inline stylesheet and nothing else.
PACK_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
_OUTCOMES = {
    EventType.ROLLOUT_PROMOTED.value,
    EventType.ROLLOUT_ABORTED.value,
    EventType.ROLLOUT_FAILED.value,
    EventType.SHADOW_JUDGED.value,  # a shadow run that passed ends with its verdict
}


def outcome_label(event_type: str, data: dict[str, Any]) -> str:
    """The outcome in words: promoted, aborted, failed, or "shadow passed"/"shadow failed"."""
    if event_type == EventType.SHADOW_JUDGED.value:
        return f"shadow {data.get('verdict') or '?'}"
    return event_type.replace("rollout_", "")


_ENTRY_LINK = re.compile(r'href="/ui/events/(\d+)(?:#[^"]*)?"')


@dataclass(frozen=True, kw_only=True, slots=True)
class Approval:
    seq: int
    at: datetime
    who: str
    role: str  # "four-eyes approver" or "change board (CAB) approver"
    change_request: str
    detail: str


def _approvals(entries: list[tuple[EntryRecord, dict[str, Any]]]) -> list[Approval]:
    found: list[Approval] = []
    for entry, data in entries:
        if entry.event_type == EventType.APPROVAL_GIVEN.value:
            step = data.get("step")
            found.append(
                Approval(
                    seq=entry.seq, at=entry.recorded_at, who=entry.actor,
                    role="four-eyes approver", change_request=str(data.get("change_request") or ""),
                    detail=(f"step {step}" if step is not None else "")
                    + (f": {data['comment']}" if data.get("comment") else ""),
                )
            )  # fmt: skip
        elif entry.event_type == EventType.GATE_CHECKED.value:
            for decision in _decisions(data):
                evidence = mapping(decision.get("evidence"))
                approvers = evidence.get("approvers")
                number = str(evidence.get("change_request") or "")
                # A change system's approvers are its change board; a gate without a change
                # request counts four-eyes approvals, which have entries of their own.
                role = "change board (CAB) approver" if number else "four-eyes approver"
                for who in approvers if isinstance(approvers, list) else ():
                    if any(a.who == str(who) and a.role == role for a in found):
                        continue  # the same approval, seen again by a later gate check
                    found.append(
                        Approval(
                            seq=entry.seq, at=entry.recorded_at, who=str(who), role=role,
                            change_request=number,
                            detail=f"named by gate {decision.get('gate', '?')}",
                        )
                    )  # fmt: skip
    return found


def _decisions(data: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    nested = mapping(data.get("evidence"))
    decisions = nested.get("decisions", data.get("decisions"))
    return [d for d in decisions if isinstance(d, Mapping)] if isinstance(decisions, list) else []


def pack_report(templates: Environment, pack: Mapping[str, Any], *, stylesheet: str) -> str:
    """The printable HTML report of a pack, with the pack document inside."""
    # a compact look's base is in the pack (verify_pack checks it): expand from the pack alone
    records = expand_all([record_of(e) for e in pack.get("entries") or ()], lambda _: ())
    check, payload_data = check_pack(pack)  # decodes every payload once: read from here on
    decoded = [(r, _data_of(r, payload_data)) for r in records]
    started = dict(
        next((d for r, d in decoded if r.event_type == EventType.ROLLOUT_STARTED.value), {})
    )
    for record, data in decoded:  # the canary's registration names its artifact
        if record.event_type == EventType.REVISION_REGISTERED.value:
            for key in ("artifact_uri", "artifact_digest", "model_version"):
                if not started.get(key):
                    started[key] = data.get(key)
    outcome = next(((r, d) for r, d in decoded if r.event_type in _OUTCOMES), None)
    generated = datetime.fromisoformat(str(pack["generated_at"]).replace("Z", "+00:00"))
    pictures: RolloutPictures | None = None
    if records:
        end = outcome[0].recorded_at if outcome is not None else generated
        pictures = pictures_of(
            records, start=records[0].recorded_at, end=max(end, records[-1].recorded_at)
        )
    html = templates.get_template("pack.html").render(
        pack=pack,
        pack_text=pack_json(pack),
        digest=pack_digest(pack),
        check=check,
        started=started,
        outcome=outcome,
        outcome_label=outcome_label(outcome[0].event_type, outcome[1]) if outcome else "",
        approvals=_approvals(decoded),
        change_requests=change_request_states(decoded),
        pictures=pictures,
        rows=[(r, _line(r, d, pictures)) for r, d in decoded],
    )
    # Our own stylesheet, inlined after rendering: autoescaping would mangle its quotes.
    html = html.replace("/* STYLESHEET */", stylesheet, 1)
    # Links point inside the file. The pack document at the end is escaped text with no link in
    # it (and most of the file): only the report before it is searched.
    cut = html.find(f'<pre id="{PACK_ELEMENT_ID}"')
    cut = len(html) if cut < 0 else cut
    return _ENTRY_LINK.sub(r'href="#entry-\1"', html[:cut]) + html[cut:]


def _data_of(record: EntryRecord, payload_data: Mapping[int, Any]) -> dict[str, Any]:
    """What ``record.data()`` says, without decoding its payload again."""
    if record.expanded is None and isinstance(found := payload_data.get(record.seq), dict):
        return found
    return record.data()


def _line(record: EntryRecord, data: Mapping[str, Any], pictures: RolloutPictures | None) -> str:
    """The entry's one-line summary: the pictures made it for the looks (same readers)."""
    line = pictures.summary(record.seq) if pictures is not None else None
    return line if line is not None else summary_of(record.event_type, data)


@cache
def pack_templates() -> Environment:
    """The UI's templates (the same macros draw the charts), built once."""
    return build_templates()


@cache
def pack_stylesheet() -> str:
    """The pages' stylesheet, inlined: a report opened from disk cannot fetch it."""
    return files("analyzer.api.ui").joinpath("static").joinpath("ui.css").read_text("utf-8")


def pack_file(pack: Mapping[str, Any]) -> str:
    """The whole pack file (what the API answers and ``ledger pack`` writes)."""
    return pack_report(pack_templates(), pack, stylesheet=pack_stylesheet())


def pack_response(
    services: Services, rollout: Rollout, subject: str, format: Literal["html", "json"]
) -> Response:
    """The pack file of ``rollout`` as a download (the API's and the pages' answer)."""
    pack = build_pack(
        services.ledger,
        rollout.id,
        model=str(rollout.model),
        generated_at=services.clock(),
        generated_by=subject,
    )
    name = f"evidence-pack-{rollout.id}"
    if format == "json":
        return Response(
            pack_json(pack) + "\n",
            media_type="application/json",
            headers={"Content-Disposition": f'attachment; filename="{name}.json"'},
        )
    return Response(
        pack_file(pack),
        media_type="text/html; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{name}.html"',
            "Content-Security-Policy": PACK_CSP,
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        },
    )
