"""The fake apiserver's object store: resources, Status errors, patch semantics, write rules.

Part of the fake Kubernetes API server (see :mod:`tests.fakes.kube_api` for what it promises).
"""

from __future__ import annotations

import copy
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from tests.fakes.kube_history import ChangeHistory, StoredEvent, managed_fields

JSON = dict[str, Any]
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"


@dataclass(frozen=True)
class Resource:
    """A custom resource type the fake serves (both have the status subresource enabled)."""

    group: str
    version: str
    plural: str
    kind: str
    short_names: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    @property
    def qualified(self) -> str:
        return f"{self.plural}.{self.group}"


INFERENCE_SERVICES = Resource(
    "serving.kserve.io", "v1beta1", "inferenceservices", "InferenceService", ("isvc",)
)
ROLLOUTS = Resource("argoproj.io", "v1alpha1", "rollouts", "Rollout", ("ro",))
# Istio's VirtualService (the CRD has the status subresource too, for validation messages).
VIRTUAL_SERVICES = Resource(
    "networking.istio.io", "v1", "virtualservices", "VirtualService", ("vs",)
)
RESOURCES = (INFERENCE_SERVICES, ROLLOUTS, VIRTUAL_SERVICES)


class ApiError(Exception):
    """Raised inside the fake to answer with a ``Status`` object."""

    def __init__(self, code: int, reason: str, message: str, details: JSON | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.details = code, reason, details

    def status_body(self) -> JSON:
        body: JSON = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": str(self),
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def not_found(res: Resource, name: str) -> ApiError:
    return ApiError(
        404,
        "NotFound",
        f'{res.qualified} "{name}" not found',
        {"name": name, "group": res.group, "kind": res.plural},
    )


def invalid_list(detail: str) -> ApiError:
    return ApiError(422, "Invalid", f'ListOptions.meta.k8s.io "" is invalid: {detail}')


def conflict(res: Resource, name: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {res.qualified} "{name}": the object has '
        "been modified; please apply your changes to the latest version and try again",
        {"name": name, "group": res.group, "kind": res.plural},
    )


def invalid(res: Resource, name: str, field_path: str, detail: str) -> ApiError:
    return ApiError(
        422,
        "Invalid",
        f'{res.kind}.{res.group} "{name}" is invalid: {field_path}: {detail}',
        {
            "name": name,
            "group": res.group,
            "kind": res.kind,
            "causes": [{"reason": "FieldValueInvalid", "message": detail, "field": field_path}],
        },
    )


# Patch semantics


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge recursively, ``null`` deletes, the rest replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ValueError(f"JSON pointer {path!r} must start with '/'")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _container(doc: Any, tokens: list[str]) -> Any:
    for token in tokens:
        doc = doc[int(token)] if isinstance(doc, list) else doc[token]
    return doc


def _json_patch_op(doc: Any, op: JSON) -> Any:
    kind, tokens = op["op"], _pointer(op["path"])
    if not tokens:
        raise ValueError("operations on the document root are not supported")
    parent, last = _container(doc, tokens[:-1]), tokens[-1]
    if kind == "test":
        current = parent[int(last)] if isinstance(parent, list) else parent[last]
        if current != op["value"]:
            raise ValueError(f"test operation failed at {op['path']}")
    elif kind == "remove":
        del parent[int(last) if isinstance(parent, list) else last]
    elif kind in ("add", "replace"):
        value = copy.deepcopy(op["value"])
        if isinstance(parent, list):
            index = len(parent) if last == "-" else int(last)
            if kind == "add":
                parent.insert(index, value)
            else:
                parent[index] = value
        else:
            if kind == "replace" and last not in parent:
                raise ValueError(f"replace operation does not apply: {op['path']} is missing")
            parent[last] = value
    elif kind in ("move", "copy"):
        value = copy.deepcopy(_container(doc, _pointer(op["from"])))
        if kind == "move":
            doc = _json_patch_op(doc, {"op": "remove", "path": op["from"]})
        doc = _json_patch_op(doc, {"op": "add", "path": op["path"], "value": value})
    else:
        raise ValueError(f"unknown JSON patch operation {kind!r}")
    return doc


def json_patch(target: Any, ops: Any) -> Any:
    """RFC 6902 JSON patch (add, remove, replace, move, copy, test) applied atomically."""
    if not isinstance(ops, list):
        raise ApiError(
            400, "BadRequest", "json: cannot unmarshal object into Go value of type jsonpatch.Patch"
        )
    doc = copy.deepcopy(target)
    try:
        for op in ops:
            doc = _json_patch_op(doc, op)
    except (KeyError, IndexError, ValueError, TypeError) as exc:
        # The apiserver answers a patch that does not apply with 422 and the library's message.
        raise ApiError(
            422, "Invalid", f"the server rejected our request due to an error in our request: {exc}"
        ) from exc
    return doc


# The object store


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def with_status(obj: JSON, status: JSON) -> JSON:
    return {**obj, "status": copy.deepcopy(status)}


def without(obj: JSON, *keys: str) -> JSON:
    return {k: v for k, v in obj.items() if k not in keys}


class ObjectStore:
    """Thread-safe storage with the apiserver's write rules: resourceVersion, generation, status,
    managedFields, and the change history that watches and exact lists are served from."""

    def __init__(self, *, history_limit: int = 10_000) -> None:
        self.lock = threading.RLock()
        self._objects: dict[tuple[str, str, str], JSON] = {}
        self._rv = itertools.count(1000)
        self.last_rv = 999  # etcd's current revision: every write (and delete) moves it
        self.history = ChangeHistory(self.lock, limit=history_limit, first_rv=self.last_rv)
        self.validators: dict[str, Callable[[JSON], None]] = {}
        self.on_write: list[Callable[[Resource, JSON], None]] = []

    def _key(self, res: Resource, ns: str, name: str) -> tuple[str, str, str]:
        return (res.qualified, ns, name)

    def get(self, res: Resource, ns: str, name: str) -> JSON:
        with self.lock:
            obj = self._objects.get(self._key(res, ns, name))
            if obj is None:
                raise not_found(res, name)
            return copy.deepcopy(obj)

    def list(
        self, res: Resource, ns: str | None, *, rv: str | None = None, match: str | None = None
    ) -> JSON:
        """The collection (one namespace, or all with ``ns=None``) under the list RV rules.

        ``rv`` unset or ``"0"``: the current state. ``match="NotOlderThan"``: the current
        state, or 504 when ``rv`` is newer than anything the server has seen (the real one
        waits ~3 s first). ``match="Exact"``: the state at ``rv``, rebuilt from the history, or
        410 Gone when that version was compacted. A plain ``rv`` means NotOlderThan.
        """
        with self.lock:
            objects = self._list_objects(res, rv, match)
            items = [
                copy.deepcopy(o)
                for (q, n, _), o in sorted(objects.items())
                if q == res.qualified and ns in (None, n)
            ]
            version = int(rv) if match == "Exact" and rv else self.last_rv
            return {
                "apiVersion": res.api_version,
                "kind": f"{res.kind}List",
                "metadata": {"resourceVersion": str(version)},
                "items": items,
            }

    def _list_objects(
        self, res: Resource, rv: str | None, match: str | None
    ) -> dict[tuple[str, str, str], JSON]:
        if match not in (None, "", "Exact", "NotOlderThan"):
            raise invalid_list(f'resourceVersionMatch: Unsupported value: "{match}"')
        if match and not rv:
            raise invalid_list(
                "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless "
                "resourceVersion is provided"
            )
        if not rv or rv == "0":
            if match == "Exact":
                raise invalid_list(
                    'resourceVersionMatch: Forbidden: resourceVersionMatch "exact" is '
                    'forbidden for resourceVersion "0"'
                )
            return self._objects
        try:
            wanted = int(rv)
        except ValueError as exc:
            raise ApiError(400, "BadRequest", f"invalid resource version: {rv}") from exc
        if wanted > self.last_rv:
            raise ApiError(
                504,
                "Timeout",
                f"Too large resource version: {wanted}, current: {self.last_rv}",
                {"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large"}]},
            )
        if match != "Exact":
            return self._objects
        if wanted < self.history.horizon:
            raise ApiError(410, "Expired", "The resourceVersion for the provided list is too old.")
        objects = copy.deepcopy(self._objects)
        self.history.undo_after(wanted, objects)
        return objects

    def compact(self) -> int:
        """Test hook: forget all history up to now (a watch from any older RV gets 410)."""
        with self.lock:
            self.history.compact(self.last_rv)
            return self.last_rv

    def create(self, res: Resource, ns: str, body: JSON, *, manager: str = "unknown") -> JSON:
        self._check_identity(res, ns, body, None)
        meta = body.setdefault("metadata", {})
        name = meta.get("name")
        if not name:
            raise invalid(res, "", "metadata.name", "Required value: name is required")
        if meta.get("resourceVersion"):
            raise invalid(
                res,
                name,
                "metadata.resourceVersion",
                "Invalid value: resourceVersion should not be set on objects to be created",
            )
        obj = without(body, "status")  # the status subresource is enabled: status is dropped
        obj["metadata"] = {
            **meta,
            "namespace": ns,
            "uid": str(uuid4()),
            "generation": 1,
            "creationTimestamp": now_rfc3339(),
        }
        self._validate(res, obj)
        with self.lock:
            if self._key(res, ns, name) in self._objects:
                raise ApiError(
                    409,
                    "AlreadyExists",
                    f'{res.qualified} "{name}" already exists',
                    {"name": name, "group": res.group, "kind": res.plural},
                )
            return self._store(res, obj, None, manager=manager, status=False)

    def delete(self, res: Resource, ns: str, name: str) -> JSON:
        with self.lock:
            obj = self.get(res, ns, name)
            del self._objects[self._key(res, ns, name)]
            # The DELETED event carries the object's last state at the deletion's revision.
            self.last_rv = next(self._rv)
            gone = {**obj, "metadata": {**obj["metadata"], "resourceVersion": str(self.last_rv)}}
            self.history.append(
                StoredEvent(self.last_rv, "DELETED", res.qualified, ns, name, gone, obj)
            )
            return copy.deepcopy(gone)

    def write(
        self,
        res: Resource,
        ns: str,
        name: str,
        change: Callable[[JSON], JSON],
        *,
        status: bool,
        require_rv: bool = False,
        manager: str = "unknown",
    ) -> JSON:
        """Apply ``change`` to the stored object under the main-resource or status rules."""
        with self.lock:
            old = self.get(res, ns, name)
            new = change(copy.deepcopy(old))
            if not isinstance(new, dict):
                raise ApiError(400, "BadRequest", "the patched object is not a JSON object")
            self._check_identity(res, ns, new, name)
            self._check_precondition(res, name, old, new, require_rv)
            result = self._merge_rules(old, new, status=status)
            self._validate(res, result)
            if result == old:
                return old  # a no-op write does not bump resourceVersion
            return self._store(res, result, old, manager=manager, status=status)

    def _check_precondition(
        self, res: Resource, name: str, old: JSON, new: JSON, require_rv: bool
    ) -> None:
        sent = (new.get("metadata") or {}).get("resourceVersion")
        if require_rv and not sent:
            raise invalid(
                res,
                name,
                "metadata.resourceVersion",
                "Invalid value: 0x0: must be specified for an update",
            )
        if sent and sent != old["metadata"]["resourceVersion"]:
            raise conflict(res, name)
        uid = (new.get("metadata") or {}).get("uid")
        if uid and uid != old["metadata"]["uid"]:
            # A UID is a precondition too: the object was deleted and re-created meanwhile.
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {res.qualified} "{name}": Precondition '
                f"failed: UID in precondition: {uid}, UID in object meta: "
                f"{old['metadata']['uid']}",
                {"name": name, "group": res.group, "kind": res.plural},
            )

    @staticmethod
    def _merge_rules(old: JSON, new: JSON, *, status: bool) -> JSON:
        if status:
            # The status endpoint keeps everything from the stored object except `status`.
            result = copy.deepcopy(old)
            result.pop("status", None)
            if "status" in new:
                result["status"] = new["status"]
            return result
        result = without(new, "status")
        if "status" in old:
            result["status"] = old["status"]
        immutable = (
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "generation",
            "resourceVersion",
        )
        result["metadata"] = {
            **(new.get("metadata") or {}),
            **{k: old["metadata"][k] for k in immutable},
        }
        if without(result, "metadata", "status") != without(old, "metadata", "status"):
            result["metadata"]["generation"] = old["metadata"]["generation"] + 1
        return result

    def _store(
        self, res: Resource, obj: JSON, old: JSON | None, *, manager: str, status: bool
    ) -> JSON:
        meta = obj["metadata"]
        meta["managedFields"] = managed_fields(
            old, obj, manager=manager, status=status, api_version=res.api_version,
            now=now_rfc3339(),
        )  # fmt: skip
        self.last_rv = next(self._rv)
        meta["resourceVersion"] = str(self.last_rv)
        self._objects[self._key(res, meta["namespace"], meta["name"])] = obj
        kind = "ADDED" if old is None else "MODIFIED"
        self.history.append(
            StoredEvent(
                self.last_rv, kind, res.qualified, meta["namespace"], meta["name"],
                copy.deepcopy(obj), old,
            )
        )  # fmt: skip
        for hook in self.on_write:
            hook(res, copy.deepcopy(obj))
        return copy.deepcopy(obj)

    @staticmethod
    def _check_identity(res: Resource, ns: str, body: JSON, name: str | None) -> None:
        if body.get("apiVersion") != res.api_version or body.get("kind") != res.kind:
            raise ApiError(
                400,
                "BadRequest",
                f"the API version in the data ({body.get('apiVersion')}) or kind "
                f"({body.get('kind')}) does not match the expected "
                f"{res.api_version}, Kind={res.kind}",
            )
        meta = body.get("metadata") or {}
        if meta.get("namespace") not in (None, "", ns):
            raise ApiError(
                400,
                "BadRequest",
                "the namespace of the provided object does not "
                "match the namespace sent on the request",
            )
        if name is not None and meta.get("name") not in (None, name):
            raise ApiError(
                400,
                "BadRequest",
                "the name of the object "
                f"({meta.get('name')}) does not match the name on the URL ({name})",
            )

    def _validate(self, res: Resource, obj: JSON) -> None:
        validator = self.validators.get(res.qualified)
        if validator is not None:
            validator(obj)


def validate_inference_service(obj: JSON) -> None:
    """The CRD schema types canaryTrafficPercent as an integer; KServe allows 0..100."""
    name = obj["metadata"]["name"]
    spec = obj.get("spec") or {}
    for component in ("predictor", "transformer", "explainer"):
        value = (spec.get(component) or {}).get("canaryTrafficPercent")
        path = f"spec.{component}.canaryTrafficPercent"
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise invalid(
                INFERENCE_SERVICES,
                name,
                path,
                f'Invalid value: "{type(value).__name__}": {path} in body must be of type integer',
            )
        if not 0 <= value <= 100:
            raise invalid(
                INFERENCE_SERVICES, name, path, f"Invalid value: {value}: must be between 0 and 100"
            )


def validate_virtual_service(obj: JSON) -> None:
    """What Istio's CRD schema and validating webhook refuse on the fields a mirror touches:
    ``http`` must be a list of objects, ``mirror.host`` a non-empty string and
    ``mirrorPercentage.value`` a number in 0..100."""
    name = obj["metadata"]["name"]
    http = (obj.get("spec") or {}).get("http", [])
    if not isinstance(http, list):
        raise invalid(VIRTUAL_SERVICES, name, "spec.http", "must be an array")
    for i, route in enumerate(http):
        if not isinstance(route, dict):
            raise invalid(VIRTUAL_SERVICES, name, f"spec.http[{i}]", "must be an object")
        mirror = route.get("mirror")
        if mirror is not None and not (isinstance(mirror, dict) and mirror.get("host")):
            raise invalid(VIRTUAL_SERVICES, name, f"spec.http[{i}].mirror.host", "Required value")
        share = route.get("mirrorPercentage")
        if share is not None:
            value = share.get("value") if isinstance(share, dict) else None
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            if not ok or not 0 <= value <= 100:
                raise invalid(
                    VIRTUAL_SERVICES, name, f"spec.http[{i}].mirrorPercentage.value",
                    f"must be a number between 0 and 100, got {value!r}",
                )  # fmt: skip
