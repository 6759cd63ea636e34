"""Moving a fleet's models: each batch's intents are appended to the ledger
(``traffic_change_requested``) and committed *before* the target calls, the confirmations
(``traffic_changed``, weight 100 on the model's revision) or errors (``target_error``) after,
so a crash leaves intents, never silence. Moves run a few at a time: models load in seconds each
on ModelMesh, and a wave of 200 moved one by one would take many minutes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import structlog

from analyzer.domain.errors import IntegrationError, InvalidInputError, NotFoundError
from analyzer.domain.events import EventType, LedgerEvent
from analyzer.domain.model import ModelRef
from analyzer.fleets.entries import ACTOR
from analyzer.fleets.ports import FleetTarget
from analyzer.fleets.repository import FleetRecord, OldVersion
from analyzer.fleets.spec import FleetSpec
from analyzer.fleets.store import FleetStore


class FleetMover:
    def __init__(self, *, store: FleetStore, target: FleetTarget, concurrency: int) -> None:
        if concurrency < 1:
            raise InvalidInputError("must be at least 1", field="move_concurrency")
        self._store = store
        self._target = target
        self._concurrency = concurrency
        self._log = structlog.get_logger("analyzer.fleets")

    def models(self, spec: FleetSpec) -> list[str]:
        """The fleet's models: the explicit list, or the selector resolved now."""
        return list(spec.models) or self._target.select(spec.namespace, spec.selector)

    def read_old(self, spec: FleetSpec, models: Sequence[str]) -> dict[str, OldVersion]:
        """What each model serves now (where a rollback sends it), from one list of the
        namespace; a model missing from it (or not in ModelMesh mode) is refused."""
        listed = self._target.read_all(spec.namespace)
        old: dict[str, OldVersion] = {}
        for i, name in enumerate(models):
            served = listed.get(name)
            if served is None:
                ref = ModelRef(namespace=spec.namespace, name=name)
                try:  # ask the model itself: its own error says why it is not there
                    served = self._target.read(ref)
                except NotFoundError as exc:
                    raise InvalidInputError(str(exc), field=f"models[{i}]") from exc
            old[name] = OldVersion(storage_uri=served.storage_uri, runtime=served.runtime)
        return old

    def move(
        self, record: FleetRecord, models: Sequence[str], *, to_new: bool, why: str
    ) -> dict[str, str]:
        """Move ``models`` (to the new version or back); return the ones that failed, why."""
        if not models:
            return {}
        spec = record.spec
        revision = spec.version.name if to_new else spec.from_version
        wave = record.state.wave

        def where(name: str) -> tuple[str, str | None]:
            if to_new:
                return spec.version.uri_for(name), spec.version.runtime
            old = record.old[name]
            return old.storage_uri, old.runtime

        def event(kind: EventType, name: str, data: Mapping[str, Any]) -> LedgerEvent:
            ref = ModelRef(namespace=spec.namespace, name=name)
            return LedgerEvent(
                type=kind, actor=ACTOR, model=ref, rollout_id=record.id, revision=revision,
                data=data,
            )  # fmt: skip

        self._store.append(
            [
                event(
                    EventType.TRAFFIC_CHANGE_REQUESTED,
                    m,
                    {"to": revision, "artifact_uri": where(m)[0], "wave": wave, "reason": why},
                )
                for m in models
            ]
        )

        def move(m: str) -> str | None:
            uri, runtime = where(m)
            try:
                self._target.move(
                    ModelRef(namespace=spec.namespace, name=m), storage_uri=uri, runtime=runtime
                )
            except (IntegrationError, NotFoundError) as exc:
                return f"{type(exc).__name__}: {exc}"
            return None

        with ThreadPoolExecutor(max_workers=self._concurrency) as pool:
            outcomes = list(pool.map(move, models))
        failed: dict[str, str] = {}
        done: list[LedgerEvent] = []
        for m, error in zip(models, outcomes, strict=True):
            if error is not None:
                failed[m] = error
                done.append(event(EventType.TARGET_ERROR, m, {"error": error, "wave": wave}))
                continue
            split = [{"revision": revision, "weight": 100}]
            data = {"split": split, "step": wave, "artifact_uri": where(m)[0], "reason": why}
            done.append(event(EventType.TRAFFIC_CHANGED, m, data))
        self._store.append(done)
        if failed:
            self._log.warning("fleet.moves.failed", fleet=record.id, failed=len(failed))
        return failed
