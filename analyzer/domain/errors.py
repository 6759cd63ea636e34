"""The error taxonomy of canary-analyzer.

Every exception the service raises on purpose derives from :class:`CanaryAnalyzerError`.

    CanaryAnalyzerError
    ├── InvalidInputError        bad user input (judge file, API body, profile, PromQL label value);
    │                            never retried; the CLI exits 2, the API answers 422
    ├── ConfigurationError       invalid settings or wiring; raised at start-up, never retried
    ├── NotFoundError            a rollout, model or ledger entry that does not exist (API 404)
    ├── ConflictError            a state transition that is not allowed now (API 409)
    ├── PermissionDeniedError    an authenticated actor without the right (API 403)
    ├── DatabaseNotReadyError    the database is unreachable or not migrated to head
    ├── LedgerIntegrityError     the hash chain does not verify (names the first bad entry)
    └── IntegrationError         an external system failed (metric source, traffic target, gate)
        ├── RetryableError       transient: timeouts, 5xx, 409 on a stale resourceVersion, refused
        │                        connections. Retried at the edge, bounded, with backoff.
        └── FatalIntegrationError  will not get better by retrying: 4xx, unsupported mode, bad data

Failures of integrations are *data* in the core: a metric source that fails produces an ``error``
observation, a gate that cannot decide is closed. Exceptions cross layer boundaries only at the
edges (API, CLI, scheduler), where they are turned into responses, exit codes or ledger entries.
"""

from __future__ import annotations


class CanaryAnalyzerError(Exception):
    """Base class of every deliberate error in canary-analyzer."""


class InvalidInputError(CanaryAnalyzerError, ValueError):
    """Input that does not satisfy the documented contract.

    ``field`` names the offending field in dotted/indexed form (``metrics[2].baseline``) so the
    message can tell the user exactly what to fix.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class ConfigurationError(CanaryAnalyzerError):
    """Settings or wiring that cannot work; raised at start-up."""


class NotFoundError(CanaryAnalyzerError):
    """The named object does not exist."""


class ConflictError(CanaryAnalyzerError):
    """The requested transition is not allowed in the object's current state."""


class PermissionDeniedError(CanaryAnalyzerError):
    """The actor is authenticated but lacks the role or tenant for this action."""


class DatabaseNotReadyError(CanaryAnalyzerError):
    """The database is unreachable or its schema is not at the migrations' head."""


class DatabaseUnreachableError(DatabaseNotReadyError):
    """The database cannot be connected to (retry later), as opposed to an unmigrated one."""


class LedgerIntegrityError(CanaryAnalyzerError):
    """The ledger's hash chain does not verify."""

    def __init__(self, message: str, *, seq: int | None = None) -> None:
        self.seq = seq
        super().__init__(message)


class LedgerHeadMissingError(LedgerIntegrityError, DatabaseNotReadyError):
    """The ledger's head row (``ledger_head`` id 1) is gone.

    Nothing can be appended (the row is the writers' lock and the chain's anchor) and nothing
    proves the tail complete, so the service is not ready (503) and verification fails.
    """

    def __init__(self) -> None:
        super().__init__(
            "the ledger's head row (ledger_head id 1) is missing: nothing can be appended and the "
            "end of the chain cannot be checked; restore it from a backup or a signed checkpoint "
            "(docs/ledger.md)"
        )


class IntegrationError(CanaryAnalyzerError):
    """An external system (metric source, traffic target, gate backend) failed."""


class RetryableError(IntegrationError):
    """A transient failure; the edge may retry with bounded backoff."""


class FatalIntegrationError(IntegrationError):
    """A failure that retrying will not fix."""
