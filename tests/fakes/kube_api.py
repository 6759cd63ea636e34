"""A strict fake Kubernetes API server for namespaced custom objects, over real HTTP.

No kube-apiserver can run on the development machines (see shared/research/environment.md), so
this fake reproduces the parts of the apiserver's behaviour that the traffic targets rely on, as
strictly as the real server, so that code passing against it passes against a cluster:

* the real REST paths for ``inferenceservices`` (serving.kserve.io/v1beta1) and ``rollouts``
  (argoproj.io/v1alpha1), with the ``/status`` subresource, plus discovery (``/apis``,
  ``/apis/{group}/{version}``);
* create answers 201 (409 ``AlreadyExists``); errors are ``Status`` objects (``kind: Status``,
  ``reason``, ``code``, ``details``) like the real ones;
* ``metadata.resourceVersion`` comes from one cluster-wide counter and changes on every write that
  changes the object (a no-op write leaves it alone, as etcd3's store does); a write carrying a
  stale ``metadata.resourceVersion`` is a 409 ``Conflict``; an update (PUT) without one is 422,
  because custom resources do not allow unconditional updates;
* ``metadata.generation`` starts at 1 and grows only when something other than ``metadata`` and
  ``status`` changes;
* with the status subresource enabled (as for both CRDs), ``status`` is dropped on create, the main
  endpoint ignores changes to ``status`` and ``/status`` ignores changes to everything else;
* PATCH accepts ``application/merge-patch+json`` (RFC 7386) and ``application/json-patch+json``
  (RFC 6902); strategic merge is refused with 415 as for every custom resource; server-side
  apply is not implemented (415 too, documented as a gap);
* fault injection (:meth:`KubeApiFake.fail_next`, :attr:`KubeApiFake.latency`,
  :meth:`KubeApiFake.interfere_next` for a concurrent writer) and a request log.

Controllers are simulated by explicit calls (:class:`KServeControllerSim`,
:class:`ArgoControllerSim`) so tests decide when "the cluster" reacts.

This module is the HTTP front and the entry point; the object store, ``Status`` errors and patch
rules live in :mod:`tests.fakes.kube_store`, the controller simulations in
:mod:`tests.fakes.kube_controllers`.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

from kubernetes import client as k8s

from tests.fakes.kube_controllers import ArgoControllerSim, KServeControllerSim
from tests.fakes.kube_history import manager_of
from tests.fakes.kube_store import (
    INFERENCE_SERVICES,
    JSON,
    JSON_PATCH,
    MERGE_PATCH,
    RESOURCES,
    ROLLOUTS,
    VIRTUAL_SERVICES,
    ApiError,
    ObjectStore,
    Resource,
    json_patch,
    merge_patch,
    validate_inference_service,
    validate_virtual_service,
)
from tests.fakes.kube_watch import StreamDroppedError, WatchHub, encode_event, is_watch
from tests.fakes.modelmesh import ModelMeshControllerSim

__all__ = [
    "INFERENCE_SERVICES",
    "ROLLOUTS",
    "VIRTUAL_SERVICES",
    "ArgoControllerSim",
    "KServeControllerSim",
    "KubeApiFake",
    "ObjectStore",
    "RecordedRequest",
    "Resource",
    "json_patch",
    "merge_patch",
]


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake received it, for assertions."""

    method: str
    path: str
    query: dict[str, list[str]]
    content_type: str | None
    body: Any
    status: int
    response: Any = None


_CLUSTER_COLLECTION = re.compile(r"^/apis/(?P<group>[^/]+)/(?P<version>[^/]+)/(?P<plural>[^/]+)$")
_OBJECT_PATH = re.compile(
    r"^/apis/(?P<group>[^/]+)/(?P<version>[^/]+)/namespaces/(?P<ns>[^/]+)/"
    r"(?P<plural>[^/]+)(?:/(?P<name>[^/]+)(?:/(?P<sub>[^/]+))?)?$"
)


@dataclass
class _Fault:
    status: int
    remaining: int
    method: str | None
    path_contains: str | None

    def matches(self, method: str, path: str) -> bool:
        return (
            self.remaining > 0
            and self.method in (None, method)
            and (self.path_contains is None or self.path_contains in path)
        )


class KubeApiFake:
    """The fake apiserver: ``with KubeApiFake() as kube: ApiClient(host=kube.url)``."""

    def __init__(
        self,
        *,
        controller_lag_reads: int | None = None,
        history_limit: int = 10_000,
        mesh: bool = True,
    ) -> None:
        # mesh=False: a cluster without Istio (networking.istio.io is not served at all)
        self.resources = RESOURCES if mesh else tuple(r for r in RESOURCES if r != VIRTUAL_SERVICES)
        self.store = ObjectStore(history_limit=history_limit)
        self.store.validators[VIRTUAL_SERVICES.qualified] = validate_virtual_service
        self.watches = WatchHub(self.store)
        self.store.validators[INFERENCE_SERVICES.qualified] = validate_inference_service
        self.kserve = KServeControllerSim(self.store, lag_reads=controller_lag_reads)
        self.argo = ArgoControllerSim(self.store)
        self.modelmesh = ModelMeshControllerSim(self.store, lag_reads=controller_lag_reads)
        self.requests: list[RecordedRequest] = []
        self.latency = 0.0
        self._faults: list[_Fault] = []
        self._interfere = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._server is not None, "the fake is not started"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> KubeApiFake:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.watches.close()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> KubeApiFake:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def api_client(self, *, retries: int | bool = False) -> k8s.ApiClient:
        """A kubernetes ApiClient pointed at the fake (urllib3's own retries off by default)."""
        config = k8s.Configuration(host=self.url)
        config.retries = retries
        return k8s.ApiClient(config)

    # -- fault injection ------------------------------------------------------------------
    def fail_next(
        self,
        count: int,
        *,
        status: int = 503,
        method: str | None = None,
        path_contains: str | None = None,
    ) -> None:
        """Answer the next ``count`` matching requests with ``status`` (nothing is applied)."""
        with self._lock:
            self._faults.append(_Fault(status, count, method, path_contains))

    def interfere_next(self, count: int) -> None:
        """Before each of the next ``count`` writes, let another client change the object.

        The other writer adds an annotation (as ``kubectl annotate`` would), so the object's
        resourceVersion moves on and a write that carries the version it read gets a real 409.
        """
        with self._lock:
            self._interfere = count

    def drop_watches(self) -> None:
        """Cut every open watch stream (test hook; see :mod:`tests.fakes.kube_watch`)."""
        self.watches.drop_all()

    def compact(self) -> int:
        """Forget the change history up to now: watches and exact lists from older RVs get 410."""
        return self.store.compact()

    def watch_target(self, path: str, query: dict[str, list[str]]) -> tuple[Resource, str | None]:
        """Resolve a watch request's collection (faults and latency apply; it is logged)."""
        status, answer = 200, cast(JSON, {})
        try:
            if self.latency:
                time.sleep(self.latency)
            self._inject_fault("GET", path)
            everywhere = _CLUSTER_COLLECTION.match(path)
            match = everywhere or _OBJECT_PATH.match(path)
            if match is None or (everywhere is None and match["name"] is not None):
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            res = self._resource(match["group"], match["version"], match["plural"])
            rv = (query.get("resourceVersion") or ["0"])[0] or "0"
            if not rv.isdigit():
                raise ApiError(400, "BadRequest", f"invalid resource version: {rv}")
            return res, (None if everywhere else match["ns"])
        except ApiError as exc:
            status, answer = exc.code, exc.status_body()
            raise
        finally:
            self._log(RecordedRequest("GET", path, query, None, None, status, answer))

    # -- direct access for tests (no request is logged) -----------------------------------
    def seed(self, res: Resource, obj: JSON, *, status: JSON | None = None) -> JSON:
        """Create ``obj`` and, if given, write ``status`` through the status rules."""
        ns = obj["metadata"].get("namespace", "default")
        created = self.store.create(res, ns, copy.deepcopy(obj))
        if status is None:
            return created
        return self.store.write(
            res,
            ns,
            created["metadata"]["name"],
            lambda o: {**o, "status": copy.deepcopy(status)},
            status=True,
        )

    def person_sets_canary_percent(
        self, ns: str, name: str, percent: int | None, *, manager: str = "kubectl-patch"
    ) -> JSON:
        """Someone runs ``kubectl patch isvc NAME --type merge -p '{"spec": {"predictor":
        {"canaryTrafficPercent": P}}}'``; KServe then reconciles it (returns the result)."""
        patch = {"spec": {"predictor": {"canaryTrafficPercent": percent}}}
        self.store.write(
            INFERENCE_SERVICES, ns, name, lambda o: merge_patch(o, patch), status=False,
            manager=manager,
        )  # fmt: skip
        return self.kserve.reconcile(ns, name)

    def get(self, res: Resource, ns: str, name: str) -> JSON:
        return self.store.get(res, ns, name)

    def requests_to(self, method: str, path_contains: str = "") -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == method and path_contains in r.path]

    # -- request handling -----------------------------------------------------------------
    def handle(
        self,
        method: str,
        raw_path: str,
        content_type: str | None,
        raw_body: bytes,
        *,
        user_agent: str | None = None,
    ) -> tuple[int, JSON]:
        parts = urlsplit(raw_path)
        query = parse_qs(parts.query)
        manager = manager_of(query.get("fieldManager", [None])[0], user_agent)
        body: Any = None
        status, answer = 500, cast(JSON, {})
        try:
            body = json.loads(raw_body) if raw_body else None
            if self.latency:
                time.sleep(self.latency)
            self._inject_fault(method, parts.path)
            status, answer = self._dispatch(method, parts.path, query, content_type, body, manager)
        except ApiError as exc:
            status, answer = exc.code, exc.status_body()
        except json.JSONDecodeError as exc:
            status, answer = 400, ApiError(400, "BadRequest", str(exc)).status_body()
        self._log(RecordedRequest(method, parts.path, query, content_type, body, status, answer))
        return status, answer

    def _log(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(
                dataclasses.replace(request, response=copy.deepcopy(request.response))
            )

    def _inject_fault(self, method: str, path: str) -> None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    fault.remaining -= 1
                    reason = {
                        500: "InternalError",
                        503: "ServiceUnavailable",
                        504: "Timeout",
                        429: "TooManyRequests",
                    }.get(fault.status, "Unknown")
                    raise ApiError(fault.status, reason, f"injected fault ({fault.status})")
            if method in ("PUT", "PATCH") and self._interfere > 0:
                self._interfere -= 1
                self._foreign_write(path)

    def _foreign_write(self, path: str) -> None:
        match = _OBJECT_PATH.match(path)
        if match is None or match["name"] is None:
            return
        res = self._resource(match["group"], match["version"], match["plural"])

        def annotate(obj: JSON) -> JSON:
            notes = obj["metadata"].setdefault("annotations", {})
            notes["example.com/touched"] = str(int(notes.get("example.com/touched", "0")) + 1)
            return obj

        self.store.write(res, match["ns"], match["name"], annotate, status=False)

    def _resource(self, group: str, version: str, plural: str) -> Resource:
        for res in self.resources:
            if (res.group, res.version, res.plural) == (group, version, plural):
                return res
        raise ApiError(404, "NotFound", "the server could not find the requested resource")

    def _dispatch(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        content_type: str | None,
        body: Any,
        manager: str,
    ) -> tuple[int, JSON]:
        if path.rstrip("/") == "/apis" and method == "GET":
            return 200, _group_list(self.resources)
        discovery = re.match(r"^/apis/([^/]+)/([^/]+)/?$", path)
        if discovery and method == "GET":
            return 200, _resource_list(self.resources, discovery[1], discovery[2])
        everywhere = _CLUSTER_COLLECTION.match(path)
        if everywhere is not None and method == "GET":
            res = self._resource(everywhere["group"], everywhere["version"], everywhere["plural"])
            return 200, self.store.list(res, None, rv=_one(query, "resourceVersion"),
                                        match=_one(query, "resourceVersionMatch"))  # fmt: skip
        match = _OBJECT_PATH.match(path)
        if match is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        res = self._resource(match["group"], match["version"], match["plural"])
        ns, name, sub = match["ns"], match["name"], match["sub"]
        if sub not in (None, "status"):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if name is None:
            return self._collection(method, res, ns, query, content_type, body, manager)
        return self._object(method, res, ns, name, sub == "status", content_type, body, manager)

    def _collection(
        self,
        method: str,
        res: Resource,
        ns: str,
        query: dict[str, list[str]],
        content_type: str | None,
        body: Any,
        manager: str,
    ) -> tuple[int, JSON]:
        if method == "GET":
            rv, match = _one(query, "resourceVersion"), _one(query, "resourceVersionMatch")
            listed = self.store.list(res, ns, rv=rv, match=match)
            selector = _one(query, "labelSelector")
            if selector:
                listed["items"] = [o for o in listed["items"] if _labels_match(o, selector)]
            return 200, listed
        if method == "POST":
            _require_json(content_type)
            if not isinstance(body, dict):
                raise ApiError(400, "BadRequest", "the request body is not a JSON object")
            return 201, self.store.create(res, ns, body, manager=manager)
        raise _method_not_allowed(method)

    def _object(
        self,
        method: str,
        res: Resource,
        ns: str,
        name: str,
        status: bool,
        content_type: str | None,
        body: Any,
        manager: str,
    ) -> tuple[int, JSON]:
        if method == "GET":
            obj = self.store.get(res, ns, name)
            if res is INFERENCE_SERVICES and not status:
                self.kserve.observe_read(ns, name)
                self.modelmesh.observe_read(ns, name)
                obj = self.store.get(res, ns, name)
            return 200, obj
        if method == "DELETE" and not status:
            return 200, self.store.delete(res, ns, name)
        if method == "PUT":
            _require_json(content_type)
            if not isinstance(body, dict):
                raise ApiError(400, "BadRequest", "the request body is not a JSON object")
            return 200, self.store.write(
                res, ns, name, lambda _old: body, status=status, require_rv=True, manager=manager
            )
        if method == "PATCH":
            change = _patcher(content_type, body)
            return 200, self.store.write(res, ns, name, change, status=status, manager=manager)
        raise _method_not_allowed(method)


def _labels_match(obj: JSON, selector: str) -> bool:
    """Equality-based label selectors (``a=b,c==d,e!=f``), as the apiserver reads them."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for raw in selector.split(","):
        term = raw.strip()
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        else:
            raise ApiError(400, "BadRequest", f"unable to parse requirement: {term!r}")
    return True


def _one(query: dict[str, list[str]], key: str) -> str | None:
    values = query.get(key)
    return values[0] if values else None


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def _require_json(content_type: str | None) -> None:
    # Like the apiserver's NegotiateInputSerializer, a missing Content-Type means the first
    # supported type (JSON); the kubernetes client sends none on create.
    if _media_type(content_type) not in ("", "application/json"):
        raise ApiError(
            415,
            "UnsupportedMediaType",
            f"the body of the request was in an unknown format - accepted media "
            f"types include: application/json, application/yaml, "
            f'application/vnd.kubernetes.protobuf (got "{content_type}")',
        )


def _patcher(content_type: str | None, body: Any) -> Callable[[JSON], Any]:
    media = _media_type(content_type)
    if media == MERGE_PATCH:
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "merge patch body must be a JSON object")
        return lambda old: merge_patch(old, body)
    if media == JSON_PATCH:
        return lambda old: json_patch(old, body)
    # Custom resources accept neither strategic merge patch (no patch strategy in a CRD schema)
    # nor anything else; server-side apply is real but not implemented by this fake.
    raise ApiError(
        415,
        "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types "
        f"include: {JSON_PATCH}, {MERGE_PATCH}, application/apply-patch+yaml "
        f'(got "{content_type}")',
    )


def _method_not_allowed(method: str) -> ApiError:
    return ApiError(
        405,
        "MethodNotAllowed",
        f"the server does not allow this method on the requested resource ({method})",
    )


def _group_list(served: tuple[Resource, ...]) -> JSON:
    groups = []
    for res in served:
        gv = {"groupVersion": res.api_version, "version": res.version}
        groups.append({"name": res.group, "versions": [gv], "preferredVersion": gv})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def _resource_list(served: tuple[Resource, ...], group: str, version: str) -> JSON:
    found = [r for r in served if (r.group, r.version) == (group, version)]
    if not found:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    verbs = ["delete", "get", "list", "patch", "create", "update"]
    resources: list[JSON] = []
    for res in found:
        resources.append(
            {
                "name": res.plural,
                "singularName": res.kind.lower(),
                "namespaced": True,
                "kind": res.kind,
                "verbs": verbs,
                "shortNames": list(res.short_names),
            }
        )
        resources.append(
            {
                "name": f"{res.plural}/status",
                "singularName": "",
                "namespaced": True,
                "kind": res.kind,
                "verbs": ["get", "patch", "update"],
            }
        )
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}",
        "resources": resources,
    }


class _Handler(BaseHTTPRequestHandler):
    fake: KubeApiFake
    protocol_version = "HTTP/1.1"  # keep-alive, and chunked watch streams
    # Headers and body go out as two writes: with Nagle on, the body waits for the client's
    # delayed ACK (~40 ms a request), which made the crash-window sweeps take half a minute.
    disable_nagle_algorithm = True

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        if self.command == "GET" and is_watch(parse_qs(parts.query)):
            self._serve_watch(parts.path, parse_qs(parts.query))
            return
        status, answer = self.fake.handle(
            self.command,
            self.path,
            self.headers.get("Content-Type"),
            raw,
            user_agent=self.headers.get("User-Agent"),
        )
        self._send_json(status, answer)

    def _send_json(self, status: int, answer: JSON) -> None:
        data = json.dumps(answer).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (e.g. its timeout fired)

    def _serve_watch(self, path: str, query: dict[str, list[str]]) -> None:
        try:
            res, ns = self.fake.watch_target(path, query)
        except ApiError as exc:
            self._send_json(exc.code, exc.status_body())
            return

        def send(event: JSON) -> None:
            data = encode_event(event)
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.fake.watches.serve(res, ns, query, send)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except StreamDroppedError:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default per-request stderr logging; the request log is the record."""
