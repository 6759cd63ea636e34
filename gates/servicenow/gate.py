"""The ServiceNow change-request gate.

Open only when the change request named on the rollout

1. exists, exactly once (the number is matched back, because ServiceNow silently drops an
   invalid part of an encoded query and would otherwise return unrelated records);
2. is approved (``approval=approved``);
3. is in an implementable state (default Scheduled ``-2`` or Implement ``-1``);
4. has a planned window ``start_date``–``end_date`` containing ``now`` (UTC values);
5. references this model and version (configurable fields, e.g. ``cmdb_ci`` and a custom
   ``u_model_version``); and
6. has at least one approver on record (``sysapproval_approver``, or a configured field),
   unless that is switched off.

Everything else — including every transport, auth and format failure — is closed, with the
reason and as much evidence as was read.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from analyzer.domain.errors import IntegrationError
from gates.base import GateContext, GateDecision, JsonValue, closed, opened
from gates.servicenow.client import DisplayValue, Record
from gates.servicenow.errors import ServiceNowMalformedResponseError
from gates.servicenow.records import field, is_change_number, is_field_name, parse_datetime

_SYS_ID = re.compile(r"^[0-9a-f]{32}$")
_MAX_APPROVERS = 50


class TableReader(Protocol):
    """The part of :class:`~gates.servicenow.client.ServiceNowTableClient` the gate uses."""

    def query(
        self,
        table: str,
        query: str,
        *,
        fields: Sequence[str],
        limit: int,
        display_value: DisplayValue = "all",
    ) -> list[Record]: ...


class ServiceNowGateConfig(BaseModel):
    """What counts as an implementable, matching change request on this instance."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    table: str = "change_request"
    implementable_states: frozenset[str] = frozenset({"-2", "-1"})
    model_field: str | None = "cmdb_ci"
    model_template: str = "{name}"
    version_field: str | None = "u_model_version"
    approvers_from: Literal["sysapproval_approver", "field", "none"] = "sysapproval_approver"
    approver_field: str | None = None
    require_approver: bool = True
    # The name of a ServiceNow group (sys_user_group) at least one approver must belong to,
    # e.g. the model-risk owners who sign off regulated promotions; None checks no membership.
    approver_group: str | None = None

    @field_validator("table", "model_field", "version_field", "approver_field")
    @classmethod
    def _field_names(cls, value: str | None) -> str | None:
        if value is not None and not is_field_name(value):
            raise ValueError(f"not a ServiceNow field name: {value!r}")
        return value

    @field_validator("model_template")
    @classmethod
    def _template(cls, value: str) -> str:
        try:
            value.format(namespace="ns", name="n", model="ns/n")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"model_template may use {{namespace}}, {{name}}, {{model}}: {exc}"
            ) from exc
        return value

    @field_validator("approver_group")
    @classmethod
    def _group_name(cls, value: str | None) -> str | None:
        # It travels inside an encoded query: '^' would start a new condition.
        if value is not None and (
            not value.strip() or len(value) > 80 or "^" in value or not value.isprintable()
        ):
            raise ValueError(
                f"approver_group must be a group name (1-80 printable characters, no '^'): "
                f"{value!r}"
            )
        return value

    @model_validator(mode="after")
    def _approver_field_given(self) -> ServiceNowGateConfig:
        if self.approvers_from == "field" and not self.approver_field:
            raise ValueError("approvers_from='field' needs approver_field")
        if self.approver_group and self.approvers_from == "none":
            raise ValueError("approver_group needs approvers (approvers_from is 'none')")
        return self

    def fields(self) -> list[str]:
        names = ["sys_id", "number", "state", "approval", "start_date", "end_date"]
        extra = [self.model_field, self.version_field]
        if self.approvers_from == "field":
            extra.append(self.approver_field)
        return names + [n for n in extra if n and n not in names]


class ServiceNowChangeGate:
    """Looks up the rollout's change request through the Table API and judges it."""

    def __init__(
        self,
        reader: TableReader,
        config: ServiceNowGateConfig | None = None,
        *,
        name: str = "servicenow-change",
    ) -> None:
        self._reader = reader
        self._config = config or ServiceNowGateConfig()
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    def check(self, context: GateContext) -> GateDecision:
        number = context.change_request
        if not number:
            return closed(self._name, context, "the rollout names no change request")
        if not is_change_number(number):
            return closed(
                self._name,
                context,
                f"{number!r} is not a change request number",
                {"change_request": number},
            )
        try:
            return self._check_change(number, context)
        except IntegrationError as exc:
            return closed(
                self._name,
                context,
                f"change request {number} could not be checked: {exc}",
                {"change_request": number, "error": type(exc).__name__},
            )
        except Exception as exc:  # a bug or an unforeseen answer must close, never open
            return closed(
                self._name,
                context,
                f"change request {number} could not be checked ({type(exc).__name__})",
                {"change_request": number, "error": type(exc).__name__},
            )

    def _check_change(self, number: str, context: GateContext) -> GateDecision:
        records = self._reader.query(
            self._config.table, f"number={number}", fields=self._config.fields(), limit=2
        )
        if not records:
            return closed(
                self._name,
                context,
                f"change request {number} was not found in ServiceNow",
                {"change_request": number},
            )
        if len(records) > 1:
            return closed(
                self._name,
                context,
                f"ServiceNow returned more than one record for change request {number}",
                {"change_request": number, "records": len(records)},
            )
        record = records[0]
        evidence = self._summarize(record)
        problem = self._problem(number, record, context)
        if problem is not None:
            return closed(self._name, context, problem, evidence)
        approvers = self._approvers(record)
        evidence["approvers"] = [a["name"] for a in approvers]
        evidence["approver_records"] = approvers
        needs_approver = self._config.require_approver or self._config.approver_group
        if needs_approver and not approvers:
            reason = f"change request {number} is approved but no approver is on record"
            return closed(self._name, context, reason, evidence)
        if self._config.approver_group:
            problem = self._group_problem(number, approvers, evidence)
            if problem is not None:
                return closed(self._name, context, problem, evidence)
        reason = f"change request {number} is approved, implementable and in its planned window"
        return opened(self._name, context, reason, evidence)

    def _summarize(self, record: Record) -> dict[str, JsonValue]:
        state = field(record, "state")
        evidence: dict[str, JsonValue] = {
            "change_request": field(record, "number").value,
            "sys_id": field(record, "sys_id").value,
            "state": state.value,
            "state_display": state.display,
            "approval": field(record, "approval").value,
            "planned_start": field(record, "start_date").value,
            "planned_end": field(record, "end_date").value,
        }
        for name in (self._config.model_field, self._config.version_field):
            if name:
                evidence[name] = field(record, name).shown()
        return evidence

    def _problem(self, number: str, record: Record, context: GateContext) -> str | None:
        """The first reason the record does not allow the step, or None."""
        returned = field(record, "number").value
        if returned != number:
            return f"ServiceNow returned change {returned or '(no number)'} for {number}"
        approval = field(record, "approval")
        if approval.value != "approved":
            return f"change request {number} is not approved (approval: {approval.shown()})"
        state = field(record, "state")
        if state.value not in self._config.implementable_states:
            allowed = ", ".join(sorted(self._config.implementable_states))
            return (
                f"change request {number} is in state {state.shown()} ({state.value}), "
                f"not an implementable state ({allowed})"
            )
        return self._window_problem(number, record, context.now) or self._match_problem(
            number, record, context
        )

    def _window_problem(self, number: str, record: Record, now: datetime) -> str | None:
        start = parse_datetime(field(record, "start_date").value)
        end = parse_datetime(field(record, "end_date").value)
        if start is None or end is None:
            return f"change request {number} has no planned start and end date"
        if now < start:
            return f"the window of change request {number} opens at {start:%Y-%m-%d %H:%M} UTC"
        if now >= end:
            return f"the window of change request {number} closed at {end:%Y-%m-%d %H:%M} UTC"
        return None

    def _match_problem(self, number: str, record: Record, context: GateContext) -> str | None:
        config = self._config
        if config.model_field:
            model = context.model
            expected = config.model_template.format(
                namespace=model.namespace, name=model.name, model=str(model)
            )
            found = field(record, config.model_field)
            if not found.matches(expected):
                return (
                    f"change request {number} is for {found.shown() or 'nothing'} "
                    f"({config.model_field}), not model {expected}"
                )
        if config.version_field:
            version = context.canary_version
            if not version:
                return (
                    "the rollout names no model version; start it with model_version to match "
                    f"change request field {config.version_field}"
                )
            found = field(record, config.version_field)
            if not found.matches(version):
                return (
                    f"change request {number} is for version {found.shown() or 'none'}, "
                    f"not {version}"
                )
        return None

    def _approvers(self, record: Record) -> list[dict[str, str]]:
        """Who approved the change: name, user sys_id and (for approval rows) when."""
        config = self._config
        if config.approvers_from == "none":
            return []
        if config.approvers_from == "field" and config.approver_field:
            approver = field(record, config.approver_field)
            return (
                [{"name": approver.shown(), "sys_id": approver.value}] if approver.shown() else []
            )
        sys_id = field(record, "sys_id").value
        if not _SYS_ID.match(sys_id):
            raise ServiceNowMalformedResponseError(
                f"the change request's sys_id {sys_id!r} is not a sys_id"
            )
        rows = self._reader.query(
            "sysapproval_approver",
            f"sysapproval={sys_id}^state=approved",
            fields=["approver", "state", "sys_updated_on"],
            limit=_MAX_APPROVERS,
        )
        return _approver_records(rows)

    def _group_problem(
        self, number: str, approvers: list[dict[str, str]], evidence: dict[str, JsonValue]
    ) -> str | None:
        """None when an approver belongs to ``approver_group`` (named in ``evidence``)."""
        group = self._config.approver_group
        assert group is not None
        evidence["approver_group"] = group
        # ServiceNow ignores a condition it cannot parse and returns every row: keep only rows
        # that really match, here and for the memberships below.
        groups = [
            g
            for g in self._reader.query(
                "sys_user_group", f"name={group}", fields=["sys_id", "name"], limit=2
            )
            if field(g, "name").value == group
        ]
        if len(groups) != 1:
            many = "more than one group" if groups else "no group"
            return f"ServiceNow has {many} named {group!r} (the gate's approver_group)"
        group_id = field(groups[0], "sys_id").value
        users = [a["sys_id"] for a in approvers if _SYS_ID.match(a["sys_id"])]
        if not _SYS_ID.match(group_id) or not users:
            return f"the approvers of change request {number} cannot be matched to group {group!r}"
        rows = self._reader.query(
            "sys_user_grmember",
            f"group={group_id}^userIN{','.join(users)}",
            fields=["user", "group"],
            limit=_MAX_APPROVERS,
        )
        members = {field(r, "user").value for r in rows if field(r, "group").value == group_id}
        signed = [a["name"] for a in approvers if a["sys_id"] in members]
        evidence["group_approvers"] = list(signed)
        if not signed:
            names = ", ".join(a["name"] for a in approvers)
            return f"change request {number} was approved by {names}, none of them in {group!r}"
        return None


def _approver_records(rows: list[dict[str, Any]]) -> list[dict[str, str]]:
    records: list[dict[str, str]] = []
    for row in rows:
        approver = field(row, "approver")
        if approver.shown() and approver.shown() not in [r["name"] for r in records]:
            records.append(
                {
                    "name": approver.shown(),
                    "sys_id": approver.value,
                    "approved_at": field(row, "sys_updated_on").value,
                }
            )
    return records
