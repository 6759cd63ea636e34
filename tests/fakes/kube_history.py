"""The fake apiserver's change history: watch events, compaction, managedFields.

Part of the fake Kubernetes API server (see :mod:`tests.fakes.kube_api`). The real apiserver
serves watches from its watch cache, a bounded window of recent events per resource: a watch
from a resourceVersion older than the window is answered with an ``ERROR`` event carrying a
``Status`` of code 410 (reason ``Expired``, "too old resource version"), and a list with
``resourceVersionMatch=Exact`` for a compacted version with HTTP 410. :class:`ChangeHistory`
keeps such a window (bounded, plus :meth:`ChangeHistory.compact` for tests) and can rebuild the
state at an older version from it (each event keeps the object as it was before).

:func:`managed_fields` keeps ``metadata.managedFields`` the way the apiserver does for
``Update`` operations (PUT and PATCH): the writer's manager entry (its ``fieldManager`` query
parameter, else the User-Agent's product token, as ``kubectl/v1.30`` gives ``kubectl``) takes
ownership of the leaf fields the write changed, other managers lose them, and each entry carries
the time of its latest write and whether it was made on the ``status`` subresource. Server-side
apply is not implemented, so every entry's operation is ``Update``.
"""

from __future__ import annotations

import copy
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

JSON = dict[str, Any]
# Fields the apiserver itself maintains: never owned by a manager.
_SERVER_FIELDS = frozenset(
    {"managedFields", "resourceVersion", "generation", "uid", "creationTimestamp"}
)


@dataclass(frozen=True)
class StoredEvent:
    """One change as a watch reports it, with what the object was before (for Exact lists)."""

    rv: int
    type: str  # ADDED | MODIFIED | DELETED
    resource: str  # the Resource's qualified name
    namespace: str
    name: str
    obj: JSON
    before: JSON | None


class ChangeHistory:
    """A bounded window of events and the version below which history is gone.

    ``horizon`` is the newest version whose successors are not all kept: a watch or an exact
    list from a version ``v`` is possible when ``v >= horizon``.
    """

    def __init__(self, lock: threading.RLock, *, limit: int = 10_000, first_rv: int = 999) -> None:
        self.changed = threading.Condition(lock)
        self.limit = limit
        self.horizon = first_rv
        self._events: deque[StoredEvent] = deque()

    def append(self, event: StoredEvent) -> None:
        self._events.append(event)
        while len(self._events) > self.limit:
            self.horizon = self._events.popleft().rv
        self.changed.notify_all()

    def compact(self, up_to: int) -> None:
        """Forget every event at or below ``up_to`` (etcd compaction plus a watch-cache trim)."""
        while self._events and self._events[0].rv <= up_to:
            self._events.popleft()
        self.horizon = max(self.horizon, up_to)
        self.changed.notify_all()

    def since(self, rv: int, resource: str, namespace: str | None) -> list[StoredEvent] | None:
        """Events after ``rv`` of one resource (in one namespace, or all); None if compacted."""
        if rv < self.horizon:
            return None
        return [
            e
            for e in self._events
            if e.rv > rv and e.resource == resource and namespace in (None, e.namespace)
        ]

    def undo_after(self, rv: int, objects: dict[tuple[str, str, str], JSON]) -> None:
        """Turn ``objects`` (the current state) into the state at ``rv`` (caller checked it)."""
        for event in reversed(self._events):
            if event.rv <= rv:
                break
            key = (event.resource, event.namespace, event.name)
            if event.before is None:
                objects.pop(key, None)
            else:
                objects[key] = copy.deepcopy(event.before)


def _leaves(value: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    if isinstance(value, dict) and value:
        for key, sub in value.items():
            yield from _leaves(sub, (*path, str(key)))
    else:
        yield path, value


def _changed_paths(old: JSON, new: JSON) -> set[tuple[str, ...]]:
    before, after = dict(_leaves(old)), dict(_leaves(new))
    return {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}


def _fields_v1(paths: set[tuple[str, ...]]) -> JSON:
    tree: JSON = {}
    for path in sorted(paths):
        node = tree
        for part in path:
            node = node.setdefault(f"f:{part}", {})
    return tree


def _paths_of(fields: JSON, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    if not fields:
        return {prefix} if prefix else set()
    found: set[tuple[str, ...]] = set()
    for key, sub in fields.items():
        found |= _paths_of(sub, (*prefix, key.removeprefix("f:")))
    return found


def _owned(path: tuple[str, ...], status: bool) -> bool:
    if not path:
        return False
    if path[0] == "metadata":
        return len(path) > 1 and path[1] not in _SERVER_FIELDS
    return (path[0] == "status") == status and path[0] not in ("apiVersion", "kind")


def manager_of(field_manager: str | None, user_agent: str | None) -> str:
    """The apiserver's default manager name: ``fieldManager``, else the User-Agent's prefix."""
    if field_manager:
        return field_manager
    return (user_agent or "unknown").split("/", 1)[0].strip() or "unknown"


def managed_fields(
    old: JSON | None, new: JSON, *, manager: str, status: bool, api_version: str, now: str
) -> list[JSON]:
    """``new``'s managedFields after ``manager`` wrote it (``old`` is None on create)."""
    changed = {p for p in _changed_paths(old or {}, new) if _owned(p, status)}
    entries = copy.deepcopy((old or {}).get("metadata", {}).get("managedFields") or [])
    subresource = "status" if status else None
    result: list[JSON] = []
    mine: JSON | None = None
    for entry in entries:
        owned = _paths_of(entry.get("fieldsV1") or {})
        if entry["manager"] == manager and entry.get("subresource") == subresource:
            mine = entry
            continue
        remaining = owned - changed
        if remaining:
            result.append({**entry, "fieldsV1": _fields_v1(remaining)})
    owned_now = (_paths_of(mine.get("fieldsV1") or {}) if mine else set()) | changed
    if owned_now:
        entry = {
            "manager": manager,
            "operation": "Update",
            "apiVersion": api_version,
            "time": now if changed or mine is None else mine["time"],
            "fieldsType": "FieldsV1",
            "fieldsV1": _fields_v1(owned_now),
        }
        if subresource:
            entry["subresource"] = subresource
        result.append(entry)
    return result
