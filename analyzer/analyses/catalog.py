"""Analysis profiles the API can name: files in a profiles directory, shipped presets, or inline.

Names are checked against a strict pattern before any path is built, so ``../../etc/passwd`` is
a 422, not a file read. Loaded files are cached by modification time.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from analyzer.domain.errors import InvalidInputError
from analyzer.profiles import LoadedProfile, load_preset, load_profile, parse_profile, preset_names

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


class ProfileCatalog:
    """Resolves the ``profile`` of an analysis request to a loaded profile and a name."""

    def __init__(self, directory: Path | None = None) -> None:
        self._directory = directory
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, LoadedProfile]] = {}

    def names(self) -> list[str]:
        found = set(preset_names())
        if self._directory is not None and self._directory.is_dir():
            found |= {p.stem for p in self._directory.glob("*.yaml") if _NAME.match(p.stem)}
        return sorted(found)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.names()

    def resolve(self, ref: str | Mapping[str, Any]) -> tuple[str, LoadedProfile]:
        """``(name, profile)`` for a name or an inline profile; ``InvalidInputError`` if bad."""
        if isinstance(ref, Mapping):
            return self._inline(ref)
        if not _NAME.match(ref):
            raise InvalidInputError(
                "a profile name is letters, digits, '.', '_' and '-' (at most 128)",
                field="profile",
            )
        path = self._directory / f"{ref}.yaml" if self._directory is not None else None
        if path is not None and path.is_file():
            return ref, self._load_file(ref, path)
        if ref in preset_names():
            return ref, self._load_preset(ref)
        raise InvalidInputError(
            f"unknown profile {ref!r}; known: {', '.join(self.names())}", field="profile"
        )

    def _load_file(self, name: str, path: Path) -> LoadedProfile:
        mtime = path.stat().st_mtime
        with self._lock:
            hit = self._cache.get(f"file:{name}")
            if hit is not None and hit[0] == mtime:
                return hit[1]
        loaded = load_profile(path)
        with self._lock:
            self._cache[f"file:{name}"] = (mtime, loaded)
        return loaded

    def _load_preset(self, name: str) -> LoadedProfile:
        with self._lock:
            hit = self._cache.get(f"preset:{name}")
        if hit is not None:
            return hit[1]
        loaded = load_preset(name)
        with self._lock:
            self._cache[f"preset:{name}"] = (0.0, loaded)
        return loaded

    @staticmethod
    def _inline(document: Mapping[str, Any]) -> tuple[str, LoadedProfile]:
        try:
            loaded = parse_profile(yaml.safe_dump(dict(document)), source="inline profile")
        except InvalidInputError as exc:
            inner = f"profile.{exc.field}" if exc.field else "profile"
            raise InvalidInputError(str(exc), field=inner) from exc
        except yaml.YAMLError as exc:
            raise InvalidInputError("not a valid profile document", field="profile") from exc
        return f"inline:{loaded.profile.name}"[:128], loaded
