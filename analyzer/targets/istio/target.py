"""``IstioMirrorTarget``: a shadow run's request mirror on an Istio VirtualService.

KServe has no mirror field; Istio's ``VirtualService`` (``networking.istio.io/v1``) does: an
HTTP route's ``mirror`` (a destination that receives a copy of each request, its answer
discarded) and ``mirrorPercentage.value`` (the share of requests copied, 0..100). This target
sets both on one HTTP route of the model's VirtualService for a shadow run and removes them at
its end; live routing (``route``) is never touched.

Which route: the VirtualService named by ``virtual_service`` (default ``{model}``, the name
KServe gives the route of an InferenceService) in the model's namespace, and in it the HTTP
route named ``route_name`` or, without one, the first. The challenger's host comes from
``mirror_host`` (default ``{revision}.{namespace}.svc.cluster.local``: the Kubernetes Service
Knative creates for every revision). A VirtualService that does not exist, or an API without
``networking.istio.io`` (no mesh), raises :class:`NotFoundError` saying so: a shadow run is
refused, never silently run without copies. Writes are merge patches carrying
``metadata.resourceVersion`` (the ``http`` list is replaced whole, so a concurrent change is a
409 and the read-modify-write is retried), and every write is read back before it is reported.
A controller that rewrites the VirtualService (KServe reconciling its own route) would remove
the mirror; the next read shows it and the engine pauses the run (docs/strategies.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from analyzer.domain.errors import FatalIntegrationError, NotFoundError
from analyzer.domain.model import ModelRef
from analyzer.targets.base import MirrorState, check_weight
from analyzer.targets.kube import (
    FIELD_MANAGER,
    JSON,
    MERGE_PATCH,
    CustomObjectTarget,
    RetryPolicy,
    call_with_retry,
)

GROUP, VERSION, PLURAL = "networking.istio.io", "v1", "virtualservices"


@dataclass(frozen=True, kw_only=True, slots=True)
class IstioMirrorSettings:
    virtual_service: str = "{model}"
    route_name: str | None = None
    mirror_host: str = "{revision}.{namespace}.svc.cluster.local"
    request_timeout: float = 10.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)


class IstioMirrorTarget(CustomObjectTarget[IstioMirrorSettings]):
    """A :class:`~analyzer.targets.base.MirrorTarget` over Istio VirtualServices."""

    RESOURCE = (GROUP, VERSION, PLURAL, "VirtualService")
    LOGGER = "analyzer.targets.istio"

    @classmethod
    def default_settings(cls) -> IstioMirrorSettings:
        return IstioMirrorSettings()

    # -- the MirrorTarget contract ------------------------------------------------------------
    def read_mirror(self, ref: ModelRef) -> MirrorState:
        return self._state(ref, self._get(ref))

    def start_mirror(self, ref: ModelRef, revision: str, percent: int) -> MirrorState:
        if check_weight(percent) == 0:
            return self.stop_mirror(ref)
        host = self._host(ref, revision)
        mirror = {"mirror": {"host": host}, "mirrorPercentage": {"value": float(percent)}}
        state = self._write(ref, lambda route: route | mirror, f"mirror {percent} % to {host}")
        if state.mirror_revision != revision or state.mirror_percent != percent:
            raise FatalIntegrationError(
                f"{ref}: the VirtualService does not show the mirror just written "
                f"(shows {state.mirror_revision} at {state.mirror_percent} %)"
            )
        return state

    def stop_mirror(self, ref: ModelRef) -> MirrorState:
        def without(route: JSON) -> JSON:
            return {k: v for k, v in route.items() if k not in ("mirror", "mirrorPercentage")}

        state = self._write(ref, without, "remove the mirror")
        if state.mirror_revision is not None:
            raise FatalIntegrationError(f"{ref}: the VirtualService still shows a mirror")
        return state

    # -- helpers ------------------------------------------------------------------------------
    def _name(self, ref: ModelRef) -> str:
        return self._settings.virtual_service.format(model=ref.name, namespace=ref.namespace)

    def _host(self, ref: ModelRef, revision: str) -> str:
        return self._settings.mirror_host.format(revision=revision, namespace=ref.namespace)

    def _get(self, ref: ModelRef) -> JSON:
        """The VirtualService that routes ``ref`` (named by ``virtual_service``)."""
        name = self._name(ref)
        try:
            return super()._get(ModelRef(namespace=ref.namespace, name=name))
        except NotFoundError as exc:
            raise NotFoundError(
                f"no Istio VirtualService {ref.namespace}/{name} to mirror {ref}'s requests on "
                f"(is the mesh installed and the model routed by it?): {exc}"
            ) from exc

    def _route_index(self, ref: ModelRef, obj: JSON) -> int:
        routes = (obj.get("spec") or {}).get("http") or []
        if not routes:
            raise FatalIntegrationError(
                f"VirtualService {ref.namespace}/{self._name(ref)} has no HTTP route to mirror"
            )
        wanted = self._settings.route_name
        if wanted is None:
            return 0
        for i, route in enumerate(routes):
            if isinstance(route, dict) and route.get("name") == wanted:
                return i
        raise FatalIntegrationError(
            f"VirtualService {ref.namespace}/{self._name(ref)} has no HTTP route named {wanted!r}"
        )

    def _state(self, ref: ModelRef, obj: JSON) -> MirrorState:
        route = obj["spec"]["http"][self._route_index(ref, obj)]
        destinations = [
            d.get("destination", {}).get("host")
            for d in route.get("route") or []
            if isinstance(d, dict) and (d.get("weight") is None or d.get("weight", 0) > 0)
        ]
        serving = ", ".join(str(h) for h in destinations if h) or None
        host = (route.get("mirror") or {}).get("host")
        if not host:
            return MirrorState(serving_revision=serving, mirror_revision=None, mirror_percent=0)
        # Istio mirrors 100 % when a mirror is set without mirrorPercentage
        value = (route.get("mirrorPercentage") or {}).get("value", 100.0)
        return MirrorState(
            serving_revision=serving,
            mirror_revision=self._revision_of(ref, str(host)),
            mirror_percent=round(float(value)),
        )

    def _revision_of(self, ref: ModelRef, host: str) -> str:
        """The revision a mirror host names (the host itself when it is not of our form)."""
        before, _, after = self._settings.mirror_host.partition("{revision}")
        prefix = before.format(namespace=ref.namespace)
        suffix = after.format(namespace=ref.namespace)
        if host.startswith(prefix) and host.endswith(suffix) and len(host) > len(prefix + suffix):
            return host[len(prefix) : len(host) - len(suffix)]
        return host

    def _write(self, ref: ModelRef, change: Callable[[JSON], JSON], what: str) -> MirrorState:
        name = self._name(ref)

        def read_modify_write() -> None:
            obj = self._get(ref)
            index = self._route_index(ref, obj)
            routes = list(obj["spec"]["http"])
            changed = change(dict(routes[index]))
            if changed == routes[index]:
                return  # already so: no write
            routes[index] = changed
            body = {
                "metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]},
                "spec": {"http": routes},
            }
            self._api.patch_namespaced_custom_object(
                GROUP, VERSION, ref.namespace, PLURAL, name, body,
                field_manager=FIELD_MANAGER, _content_type=MERGE_PATCH,
                _request_timeout=self._settings.request_timeout,
            )  # fmt: skip
            self._log.info("istio_mirror_patched", model=str(ref), change=what)

        call_with_retry(
            read_modify_write, what=f"{what} on VirtualService {ref.namespace}/{name}",
            policy=self._settings.retry, sleep=self._sleep, log=self._log,
        )  # fmt: skip
        return self.read_mirror(ref)
