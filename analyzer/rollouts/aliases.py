"""Registry aliases that move with a rollout, and the registry resolution recorded at its start.

* ``challenger`` points at the canary's version when the canary first gets traffic (step 0);
* ``champion`` points at it before the promotion's traffic move — if the registry refuses or
  does not answer, the promotion is *held* (the engine asks again next tick), never made;
* an abort or failure leaves both aliases where they are.

Only a rollout whose ``artifact_uri`` is a pinned registry URI (``models:/NAME/VERSION``, which
``RolloutService.start`` writes after resolving) has aliases; any other rollout moves none.
"""

from __future__ import annotations

from typing import Any

from analyzer.domain.errors import InvalidInputError
from analyzer.domain.events import EventType, LedgerEvent
from analyzer.domain.rollout import MoveKind, PendingMove, Rollout
from analyzer.registry.base import (
    CHALLENGER,
    CHAMPION,
    ModelRegistry,
    ModelUri,
    ResolvedVersion,
    is_registry_uri,
    parse_model_uri,
)
from analyzer.rollouts import records


def registry_uri(rollout: Rollout) -> ModelUri | None:
    """The rollout's pinned registry URI, or None when it names no registry version."""
    if not is_registry_uri(rollout.artifact_uri):
        return None
    assert rollout.artifact_uri is not None, "is_registry_uri(None) is False"
    try:
        uri = parse_model_uri(rollout.artifact_uri)
    except InvalidInputError:
        return None  # written before registries were known; nothing to move
    return uri if uri.version is not None else None


class RegistryAliases:
    """Moves ``challenger`` and ``champion`` for the engine and records each move."""

    def __init__(
        self, registry: ModelRegistry, *, challenger: str = CHALLENGER, champion: str = CHAMPION
    ) -> None:
        self._registry = registry
        self.challenger = challenger
        self.champion = champion

    def alias_for(self, rollout: Rollout, move: PendingMove) -> str | None:
        """The alias this move carries along, if any."""
        if registry_uri(rollout) is None:
            return None
        if move.kind is MoveKind.PROMOTE:
            return self.champion
        if move.step == 0:
            return self.challenger
        return None

    def move(self, rollout: Rollout, alias: str, *, actor: str) -> LedgerEvent:
        """Point ``alias`` at the rollout's version; the ledger entry saying so (with the version
        it pointed to before). Raises the registry's errors (``IntegrationError``)."""
        uri = registry_uri(rollout)
        assert uri is not None, "alias_for said it names a registry version"
        assert uri.version is not None, "registry_uri returns pinned URIs only"
        before = self._registry.aliases(uri.name).get(alias)
        if before != uri.version:
            self._registry.set_alias(uri.name, alias, uri.version)
        return records.about(
            rollout, EventType.ALIAS_MOVED, actor, registry=self._registry.kind,
            registered_model=uri.name, alias=alias, version=uri.version,
            previous_version=before, moved=before != uri.version,
        )  # fmt: skip

    def restore(
        self, rollout: Rollout, alias: str, previous_version: str, *, actor: str, why: str
    ) -> LedgerEvent:
        """Point ``alias`` back at ``previous_version`` (a promotion the target refused after the
        champion had moved); the entry saying so. Raises the registry's errors."""
        uri = registry_uri(rollout)
        assert uri is not None, "only a registry rollout moved an alias"
        self._registry.set_alias(uri.name, alias, previous_version)
        return records.about(
            rollout, EventType.ALIAS_MOVED, actor, registry=self._registry.kind,
            registered_model=uri.name, alias=alias, version=previous_version,
            previous_version=uri.version, moved=True, restored=True, reason=why,
        )  # fmt: skip

    def refused(
        self,
        rollout: Rollout,
        alias: str,
        error: Exception,
        *,
        actor: str,
        operation: str = "set_alias",
    ) -> LedgerEvent:
        uri = registry_uri(rollout)
        return records.about(
            rollout, EventType.REGISTRY_ERROR, actor, registry=self._registry.kind,
            operation=operation, alias=alias,
            registered_model=uri.name if uri else None, version=uri.version if uri else None,
            error=str(error)[:500], error_type=type(error).__name__,
        )  # fmt: skip


def resolution_record(
    requested: str, resolved: ResolvedVersion, registry_kind: str
) -> dict[str, Any]:
    """What ``revision_registered`` records about the registry resolution (``registry``)."""
    return {
        "kind": registry_kind,
        "requested_uri": requested,
        "resolved_uri": resolved.pinned,
        "registered_model": resolved.name,
        "version": resolved.version,
        "source": resolved.source,
        "run_id": resolved.run_id,
        "status": resolved.status,
        "digest": resolved.digest,
        "signature": resolved.signature,
        "aliases": list(resolved.aliases),
    }
