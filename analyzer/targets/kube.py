"""What the Kubernetes-backed targets share: client construction, error mapping, bounded retries.

Errors from the ``kubernetes`` client are mapped onto the taxonomy in
:mod:`analyzer.domain.errors` here and nowhere else:

* 404 becomes :class:`NotFoundError`;
* 409 (a stale ``resourceVersion``), 429, 5xx, timeouts and refused or broken connections become
  :class:`RetryableError`;
* every other status (400, 401, 403, 415, 422, ...) becomes :class:`FatalIntegrationError`, with
  the apiserver's ``Status.message``.

:func:`call_with_retry` is the one retry loop: bounded attempts, exponential backoff through the
injected ``sleep``, every failed attempt logged. Callers pass the *whole* read-modify-write as
the retried function, so a 409 is answered by reading the object again, never by resending the
stale body.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import structlog
import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from analyzer.domain.errors import (
    FatalIntegrationError,
    IntegrationError,
    NotFoundError,
    RetryableError,
)
from analyzer.domain.model import ModelRef

T = TypeVar("T")
JSON = dict[str, Any]
MERGE_PATCH = "application/merge-patch+json"
# Sent as ``fieldManager`` with every write, so ``metadata.managedFields`` names this service
# as the writer and the traffic observer can tell our changes from anyone else's.
FIELD_MANAGER = "canary-analyzer"

_RETRYABLE_STATUS = frozenset({409, 429, 500, 502, 503, 504})


@dataclass(frozen=True, kw_only=True, slots=True)
class KubeConnectionSettings:
    """How to reach the cluster.

    ``in_cluster=None`` chooses automatically: the pod's service account when
    ``KUBERNETES_SERVICE_HOST`` is set, otherwise the kubeconfig (``kubeconfig`` or
    ``$KUBECONFIG`` or ``~/.kube/config``, with an optional ``context``).
    """

    in_cluster: bool | None = None
    kubeconfig: str | None = None
    context: str | None = None


def build_api_client(settings: KubeConnectionSettings) -> k8s.ApiClient:
    """Build an ``ApiClient`` from in-cluster config or a kubeconfig (never the global default).

    urllib3's own retries are switched off so that every retry is ours: bounded, with backoff,
    and logged.
    """
    configuration = k8s.Configuration()
    in_cluster = settings.in_cluster
    if in_cluster is None:
        in_cluster = "KUBERNETES_SERVICE_HOST" in os.environ
    if in_cluster:
        # The loader (not load_incluster_config) so the global default configuration stays
        # untouched; the kubernetes config helpers are not annotated.
        loader = k8s_config.incluster_config.InClusterConfigLoader(  # type: ignore[no-untyped-call]
            token_filename=k8s_config.incluster_config.SERVICE_TOKEN_FILENAME,
            cert_filename=k8s_config.incluster_config.SERVICE_CERT_FILENAME,
        )
        loader.load_and_set(configuration)  # type: ignore[no-untyped-call]
    else:
        k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=settings.kubeconfig,
            context=settings.context,
            client_configuration=configuration,
        )
    configuration.retries = False
    return k8s.ApiClient(configuration)


@dataclass(frozen=True, kw_only=True, slots=True)
class RetryPolicy:
    """Bounded exponential backoff: ``initial_backoff * 2**(attempt-1)``, capped."""

    max_attempts: int = 5
    initial_backoff: float = 0.2
    max_backoff: float = 5.0

    def delay(self, attempt: int) -> float:
        return float(min(self.max_backoff, self.initial_backoff * 2 ** (attempt - 1)))


def status_message(exc: ApiException) -> str:
    """The apiserver's ``Status.message`` if the body is a Status, else the HTTP reason."""
    try:
        body = json.loads(exc.body or "")
    except (TypeError, ValueError):
        body = None
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return str(exc.reason or "no message")


def classify(exc: Exception, what: str) -> IntegrationError | NotFoundError:
    """Map a client exception to the error taxonomy (see the module docstring)."""
    if isinstance(exc, ApiException):
        code = int(exc.status or 0)
        message = f"{what}: HTTP {code}: {status_message(exc)}"
        if code == 404:
            return NotFoundError(message)
        if code == 0 or code in _RETRYABLE_STATUS:
            return RetryableError(message)
        return FatalIntegrationError(message)
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError):
        return RetryableError(f"{what}: {type(exc).__name__}: {exc}")
    return FatalIntegrationError(f"{what}: {type(exc).__name__}: {exc}")


def call_with_retry(
    fn: Callable[[], T], *, what: str, policy: RetryPolicy, sleep: Callable[[float], None], log: Any
) -> T:
    """Run ``fn``, retrying transient failures with bounded backoff; raise the mapped error."""
    for attempt in range(1, policy.max_attempts + 1):
        try:
            return fn()
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            error = classify(exc, what)
            retry = isinstance(error, RetryableError) and attempt < policy.max_attempts
            log.warning(
                "kube_call_failed",
                what=what,
                attempt=attempt,
                max_attempts=policy.max_attempts,
                error=str(error),
                error_type=type(error).__name__,
                will_retry=retry,
            )
            if not retry:
                if isinstance(error, RetryableError):
                    error = RetryableError(f"{error} (gave up after {attempt} attempts)")
                raise error from exc
            sleep(policy.delay(attempt))
    raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover


def get_custom_object(
    api: k8s.CustomObjectsApi,
    kind: tuple[str, str, str, str],
    ref: ModelRef,
    *,
    timeout: float,
    policy: RetryPolicy,
    sleep: Callable[[float], None],
    log: Any,
) -> JSON:
    """GET one namespaced custom object, with the bounded retries of :func:`call_with_retry`.

    ``kind`` is ``(group, version, plural, label)``, the label naming it in errors and logs.
    """
    group, version, plural, label = kind

    def get() -> JSON:
        obj = api.get_namespaced_custom_object(
            group, version, ref.namespace, plural, ref.name, _request_timeout=timeout
        )
        return as_json(obj, f"{label} {ref}")

    return call_with_retry(get, what=f"get {label} {ref}", policy=policy, sleep=sleep, log=log)


class TargetTiming(Protocol):
    """The settings every custom-object target has (its own settings add the rest)."""

    @property
    def request_timeout(self) -> float: ...

    @property
    def retry(self) -> RetryPolicy: ...


SettingsT = TypeVar("SettingsT", bound=TargetTiming)


class CustomObjectTarget(Generic[SettingsT]):
    """What the targets over one kind of namespaced custom object share: the API, their
    settings, the injected ``clock`` and ``sleep`` (tests control time), the logger, and one
    bounded-retry GET.

    A subclass names its object with ``RESOURCE`` (``(group, version, plural, label)``, see
    :func:`get_custom_object`), its logger with ``LOGGER`` and its default settings with
    :meth:`default_settings`. ``api_client`` is injected (build it with
    :func:`build_api_client`).
    """

    RESOURCE: ClassVar[tuple[str, str, str, str]]
    LOGGER: ClassVar[str]

    def __init__(
        self,
        api_client: k8s.ApiClient,
        *,
        settings: SettingsT | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        logger: Any = None,
    ) -> None:
        self._api = k8s.CustomObjectsApi(api_client)
        self._settings: SettingsT = settings or self.default_settings()
        self._clock = clock
        self._sleep = sleep
        self._log = logger or structlog.get_logger(self.LOGGER)

    @classmethod
    def default_settings(cls) -> SettingsT:
        raise NotImplementedError

    def _get(self, ref: ModelRef) -> JSON:
        return get_custom_object(
            self._api, self.RESOURCE, ref,
            timeout=self._settings.request_timeout, policy=self._settings.retry,
            sleep=self._sleep, log=self._log,
        )  # fmt: skip


def as_json(obj: object, what: str) -> JSON:
    """The client returns custom objects as plain dicts; anything else is a broken answer."""
    if not isinstance(obj, dict):
        raise FatalIntegrationError(f"{what}: expected a JSON object, got {type(obj).__name__}")
    return obj


def observed_generation_current(obj: JSON) -> bool:
    """True when the controller has seen the latest spec (``observedGeneration >= generation``).

    Argo Rollouts stores ``observedGeneration`` as a string, KServe as an integer.
    """
    generation = int((obj.get("metadata") or {}).get("generation") or 0)
    observed = (obj.get("status") or {}).get("observedGeneration")
    try:
        return observed is not None and int(observed) >= generation
    except (TypeError, ValueError):
        return False


def condition(obj: JSON, kind: str) -> JSON | None:
    """The status condition of type ``kind``, if present."""
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == kind:
            return cond
    return None
