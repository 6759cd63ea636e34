"""Secrets read from files, and read again when the file changes.

Every secret setting reachable by an environment variable (``CANARY_ANALYZER_DATABASE_URL``,
``CANARY_ANALYZER_REGISTRY__TOKEN``, ``CANARY_ANALYZER_SERVICENOW__PASSWORD``, ...) may instead be
given as a path in the same name with ``_FILE`` appended: where a Vault Agent injector renders
it, where the Secrets Store CSI driver mounts it, or a Kubernetes Secret volume. Giving both is
refused, as is a missing or empty file at start.

The setting then holds a :class:`FileSecret`: a ``SecretStr`` whose ``get_secret_value()``
checks the file's identity (inode, size, mtime: one ``stat``) on every use and reads it again
when it changed. Code that unwraps the secret when it uses it (every request to the model
registry and ServiceNow, every new database connection: analyzer/db.py) therefore sees a rotated
value without a restart. Kubernetes and the CSI driver replace such files by an atomic symlink
swap and Vault Agent rewrites them, both of which change the identity. If a rotation leaves the
file briefly unreadable, the last value is kept and a warning logged.

Sections that already have their own ``<name>_file`` setting (``datadog.api_key_file``) keep it;
no second mechanism is layered over theirs.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, get_args

import structlog
from pydantic import BaseModel, SecretStr
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource

from analyzer.domain.errors import ConfigurationError

log = structlog.get_logger(__name__)

FILE_SUFFIX = "_FILE"


class FileSecret(SecretStr):
    """A secret held in a file, re-read when the file changes (module docstring)."""

    def __init__(self, path: Path, *, name: str = "secret") -> None:
        self._path = path
        self._name = name
        self._lock = threading.Lock()
        self._identity: tuple[int, int, int] | None = None
        value = self._read(initial=True)
        super().__init__(value)

    @property
    def path(self) -> Path:
        return self._path

    def _stat(self) -> tuple[int, int, int]:
        stat = os.stat(self._path)
        return (stat.st_ino, stat.st_size, stat.st_mtime_ns)

    def _read(self, *, initial: bool = False) -> str:
        try:
            identity = self._stat()
            value = self._path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            if initial:
                raise ConfigurationError(
                    f"{self._name}{FILE_SUFFIX}={self._path}: {exc.strerror or exc}"
                ) from exc
            raise
        if not value:
            if initial:
                raise ConfigurationError(f"{self._name}{FILE_SUFFIX}={self._path} is empty")
            raise ValueError("empty")
        self._identity = identity
        return value

    def get_secret_value(self) -> str:
        with self._lock:
            try:
                if self._stat() != self._identity:
                    self._secret_value = self._read()
                    log.info(
                        "config.secret_file.reloaded", setting=self._name, path=str(self._path)
                    )
            except (OSError, ValueError) as exc:
                log.warning(
                    "config.secret_file.unreadable",
                    setting=self._name,
                    path=str(self._path),
                    error=str(exc),
                    keeping="the last value read",
                )
            return self._secret_value

    def __reduce__(self) -> tuple[Any, ...]:
        # Worker processes get the path and read the file themselves.
        return (_file_secret, (self._path, self._name))


def _file_secret(path: Path, name: str) -> FileSecret:
    return FileSecret(path, name=name)


def _is_secret(annotation: Any) -> bool:
    return annotation is SecretStr or any(_is_secret(a) for a in get_args(annotation))


def secret_field_paths(
    model: type[BaseModel], prefix: tuple[str, ...] = ()
) -> Iterator[tuple[str, ...]]:
    """The dotted paths of every secret an environment variable can set (not list items)."""
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from secret_field_paths(annotation, (*prefix, name))
        elif _is_secret(annotation) and f"{name}_file" not in model.model_fields:
            yield (*prefix, name)


def env_name(prefix: str, path: tuple[str, ...]) -> str:
    return prefix + "__".join(part.upper() for part in path)


def secret_file_env_names(
    settings_cls: type[BaseSettings], prefix: str
) -> dict[str, tuple[str, ...]]:
    """``CANARY_ANALYZER_…_FILE`` → the setting's path, for every secret setting."""
    return {env_name(prefix, p) + FILE_SUFFIX: p for p in secret_field_paths(settings_cls)}


class EnvWithoutSecretFiles(EnvSettingsSource):
    """The environment source, minus the ``…_FILE`` variables :class:`SecretFilesSource` reads
    (pydantic would otherwise take ``REGISTRY__TOKEN_FILE`` for an unknown ``token_file`` key)."""

    def __init__(self, settings_cls: type[BaseSettings], prefix: str) -> None:
        self._file_envs = {n.lower() for n in secret_file_env_names(settings_cls, prefix)}
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        loaded = super()._load_env_vars()
        return {k: v for k, v in loaded.items() if k.lower() not in self._file_envs}


class SecretFilesSource(PydanticBaseSettingsSource):
    """Settings from ``…_FILE`` variables: each a :class:`FileSecret` at its setting's place."""

    def __init__(
        self, settings_cls: type[BaseSettings], prefix: str, environ: Mapping[str, str]
    ) -> None:
        super().__init__(settings_cls)
        self._prefix = prefix
        self._environ = {k.upper(): v for k, v in environ.items()}

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # everything is done in __call__

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for file_env, path in secret_file_env_names(self.settings_cls, self._prefix).items():
            location = self._environ.get(file_env)
            if not location:
                continue
            plain_env = file_env[: -len(FILE_SUFFIX)]
            if self._environ.get(plain_env):
                raise ConfigurationError(f"{plain_env} and {file_env} are both set: keep one")
            node = values
            for part in path[:-1]:
                node = node.setdefault(part, {})
            node[path[-1]] = FileSecret(Path(location), name=plain_env)
        return values
