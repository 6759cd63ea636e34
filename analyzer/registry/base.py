"""The model-registry contract: pinned model URIs, resolved versions and alias moves.

A rollout may name its canary by a registry URI, ``models:/NAME/VERSION`` or
``models:/NAME@ALIAS``. Both are resolved *once*, when the rollout starts, to an immutable
version (an alias is a pointer that moves; the version it pointed to is what is rolled out and
recorded). Mutable or unpinned forms — ``models:/NAME/latest``, a stage name such as
``models:/NAME/Production``, ``models:/NAME`` — are refused: the same URI could name another
model tomorrow, and the ledger must say exactly what was rolled out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Protocol

from analyzer.domain.errors import (
    FatalIntegrationError,
    InvalidInputError,
    RetryableError,
)

MODELS_SCHEME = "models:/"
# MLflow's registered-model names are free text; ours are kept to what can be shown and put in a
# URL path without escaping surprises (letters, digits, '.', '_', '-', spaces inside).
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,254}$")
_VERSION = re.compile(r"^[1-9][0-9]{0,17}$")  # MLflow versions are 1, 2, 3, ...
_ALIAS = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,254}$")
# Stage names MLflow knows (deprecated "stages"): a stage is a moving pointer, never a version.
STAGE_NAMES = frozenset({"none", "staging", "production", "archived"})
# The alias moves that follow a rollout (docs/registry.md).
CHALLENGER = "challenger"
CHAMPION = "champion"


class RegistryError(Exception):
    """Marker base: every registry failure is also an ``IntegrationError`` below."""


class RegistryUnavailableError(RetryableError, RegistryError):
    """The registry did not answer, or answered 5xx/429: try again later."""


class RegistryRefusedError(FatalIntegrationError, RegistryError):
    """The registry answered, and said no (4xx other than 404, or an answer we cannot read)."""


class RegistryNotFoundError(FatalIntegrationError, RegistryError):
    """The registered model, version or alias does not exist."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelUri:
    """A parsed ``models:/`` URI: exactly one of ``version`` and ``alias`` is set."""

    name: str
    version: str | None = None
    alias: str | None = None

    @property
    def pinned(self) -> str:
        """The immutable form, ``models:/NAME/VERSION`` (only for a version URI)."""
        if self.version is None:
            raise ValueError("an alias URI is pinned only after it is resolved")
        return pinned_uri(self.name, self.version)

    def __str__(self) -> str:
        if self.alias is not None:
            return f"{MODELS_SCHEME}{self.name}@{self.alias}"
        return f"{MODELS_SCHEME}{self.name}/{self.version}"


def pinned_uri(name: str, version: str) -> str:
    return f"{MODELS_SCHEME}{name}/{version}"


def is_registry_uri(uri: str | None) -> bool:
    return uri is not None and uri.startswith(MODELS_SCHEME)


def parse_model_uri(uri: str, *, field_name: str = "artifact_uri") -> ModelUri:
    """Parse ``models:/NAME/VERSION`` or ``models:/NAME@ALIAS``; refuse anything that is not
    pinned to one version (``latest``, stage names, no version) with a message saying why."""
    if not uri.startswith(MODELS_SCHEME):
        raise InvalidInputError(
            f"{uri!r} is not a registry URI: expected models:/NAME/VERSION or models:/NAME@ALIAS",
            field=field_name,
        )
    rest = uri[len(MODELS_SCHEME) :]
    if "@" in rest:
        name, _, alias = rest.partition("@")
        _check_name(name, uri, field_name)
        if not _ALIAS.fullmatch(alias):
            raise InvalidInputError(f"{uri!r} does not name a valid alias", field=field_name)
        if alias.casefold() == "latest":
            raise _mutable(uri, "'latest' is not an alias but whatever was registered last",
                           field_name)  # fmt: skip
        return ModelUri(name=name, alias=alias)
    name, sep, version = rest.rpartition("/")
    if not sep:
        raise _mutable(uri, "it names no version", field_name)
    _check_name(name, uri, field_name)
    if version.casefold() == "latest":
        raise _mutable(uri, "'latest' moves whenever a version is registered", field_name)
    if version.casefold() in STAGE_NAMES:
        raise _mutable(uri, f"stage {version!r} moves whenever a version is transitioned",
                       field_name)  # fmt: skip
    if not _VERSION.fullmatch(version):
        raise _mutable(uri, f"{version!r} is not a registry version number", field_name)
    return ModelUri(name=name, version=version)


def _check_name(name: str, uri: str, field_name: str) -> None:
    if not _NAME.fullmatch(name) or name != name.strip():
        raise InvalidInputError(
            f"{uri!r} does not name a registered model (letters, digits, '.', '_', '-')",
            field=field_name,
        )


def _mutable(uri: str, why: str, field_name: str) -> InvalidInputError:
    return InvalidInputError(
        f"{uri!r} is not pinned to one model version ({why}); use models:/NAME/VERSION or "
        "models:/NAME@ALIAS, which is resolved to a version when the rollout starts",
        field=field_name,
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class ResolvedVersion:
    """One registered model version, as the registry describes it."""

    name: str
    version: str
    source: str  # where the artifact lives (s3://…, mlflow-artifacts:/…, runs:/…)
    run_id: str | None
    status: str  # MLflow: READY, PENDING_REGISTRATION, FAILED_REGISTRATION
    digest: str | None  # sha256:<hex> when the registry records one (a version tag)
    signature: str | None  # a cosign sign-blob signature (base64) when recorded (a version tag)
    aliases: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def pinned(self) -> str:
        return pinned_uri(self.name, self.version)


class ModelRegistry(Protocol):
    """What canary-analyzer needs from a model registry.

    Errors: ``RegistryNotFoundError`` (no such model, version or alias),
    ``RegistryUnavailableError`` (no answer, 5xx; retry later), ``RegistryRefusedError``
    (credentials refused, malformed answer). Every call is bounded by a timeout.
    """

    @property
    def kind(self) -> str:
        """Short name recorded in the ledger (``mlflow``)."""
        ...

    def get_version(self, name: str, version: str) -> ResolvedVersion: ...

    def get_by_alias(self, name: str, alias: str) -> ResolvedVersion: ...

    def aliases(self, name: str) -> dict[str, str]:
        """The registered model's aliases: alias → version."""
        ...

    def set_alias(self, name: str, alias: str, version: str) -> None:
        """Point ``alias`` at ``version`` (idempotent)."""
        ...


def resolve(registry: ModelRegistry, uri: ModelUri) -> ResolvedVersion:
    """The version ``uri`` names now; an alias is resolved to the version it points to."""
    if uri.alias is not None:
        return registry.get_by_alias(uri.name, uri.alias)
    assert uri.version is not None, "a parsed URI has a version or an alias"
    return registry.get_version(uri.name, uri.version)
