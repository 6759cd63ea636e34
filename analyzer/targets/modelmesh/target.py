"""``ModelMeshTarget``: moves InferenceServices in ModelMesh mode to a new artifact or runtime.

ModelMesh (annotation ``serving.kserve.io/deploymentMode: ModelMesh``) packs many small models
into shared serving pods and has no traffic split: there is no ``canaryTrafficPercent``. A model
is upgraded by pointing its InferenceService at the new artifact (``spec.predictor.model.
storageUri``) and, for a new runtime image, at the new ``spec.predictor.model.runtime``. ModelMesh
loads the new model beside the old one, which keeps answering until the new one is loaded, so a
move that fails to load leaves the old model serving. That is why fleets exist: each model moves
whole, and evidence comes from comparing models (see ``docs/fleets.md``).

A move is a merge patch carrying the ``metadata.resourceVersion`` it was computed from (a 409 is
answered by reading again), then a wait, polling with the injected clock and sleep, until the
status shows the controller saw this spec (``status.observedGeneration >= metadata.generation``)
and the model is in place: ``status.modelStatus.transitionStatus == "UpToDate"``,
``states.activeModelState`` ``Loaded`` or ``Standby`` and ``Ready``. ``Standby`` counts: ModelMesh
Serving's InferenceService docs (kserve/modelmesh-serving, ``docs/predictors/
inferenceservice-cr.md``) call it a model not in memory anywhere that is loaded on first use, and
an unused model may go from ``Loaded`` to ``Standby`` by itself when capacity is short — a quiet
per-merchant model can do so between its load and our poll, and must not count as a failed move.
``BlockedByFailedLoad``, ``InvalidSpec`` or a target state ``FailedToLoad`` is a failed load
(:class:`FatalIntegrationError`, with ``lastFailureInfo``); not there in ``ready_timeout`` is a
:class:`RetryableError`.

Refused: InferenceServices in any other mode (their canaries belong to the KServe target).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from analyzer.domain.errors import FatalIntegrationError, InvalidInputError, RetryableError
from analyzer.domain.fleet import ServedModel
from analyzer.domain.model import ModelRef
from analyzer.targets.kube import (
    FIELD_MANAGER,
    JSON,
    MERGE_PATCH,
    CustomObjectTarget,
    RetryPolicy,
    as_json,
    call_with_retry,
    condition,
    observed_generation_current,
)

GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
MODELMESH = "ModelMesh"
FAILED = frozenset({"BlockedByFailedLoad", "InvalidSpec"})
# the active model is the spec's (Standby: not in memory, loaded again on first use)
IN_PLACE = frozenset({"Loaded", "Standby"})
_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelMeshTargetSettings:
    """Timing of the ModelMesh target (seconds)."""

    poll_interval: float = 2.0
    ready_timeout: float = 300.0
    request_timeout: float = 10.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)


def label_selector(labels: Mapping[str, str]) -> str:
    """``k=v,...`` from validated label keys and values (nothing else reaches the query)."""
    if not labels:
        raise InvalidInputError("a selector needs at least one label", field="selector")
    for key, value in labels.items():
        if not _LABEL_KEY.match(key) or len(key.split("/")[-1]) > 63:
            raise InvalidInputError(f"{key!r} is not a label key", field=f"selector.{key}")
        if not _LABEL_VALUE.match(value):
            raise InvalidInputError(f"{value!r} is not a label value", field=f"selector.{key}")
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _model_spec(obj: JSON) -> JSON:
    return ((obj.get("spec") or {}).get("predictor") or {}).get("model") or {}


def _model_status(obj: JSON) -> JSON:
    return (obj.get("status") or {}).get("modelStatus") or {}


def served(obj: JSON) -> ServedModel:
    spec, status = _model_spec(obj), _model_status(obj)
    states = status.get("states") or {}
    ready = condition(obj, "Ready") or {}
    return ServedModel(
        storage_uri=str(spec.get("storageUri") or ""),
        runtime=spec.get("runtime"),
        ready=observed_generation_current(obj)
        and status.get("transitionStatus") == "UpToDate"
        and states.get("activeModelState") in IN_PLACE
        and ready.get("status") == "True",
    )


class ModelMeshTarget(CustomObjectTarget[ModelMeshTargetSettings]):
    """A fleet target over ``serving.kserve.io/v1beta1`` InferenceServices in ModelMesh mode.

    ``api_client`` is injected (build it with :func:`analyzer.targets.kube.build_api_client`);
    ``clock`` and ``sleep`` are injected so tests control time.
    """

    RESOURCE = (GROUP, VERSION, PLURAL, "inferenceservice")
    LOGGER = "analyzer.targets.modelmesh"

    @classmethod
    def default_settings(cls) -> ModelMeshTargetSettings:
        return ModelMeshTargetSettings()

    def _list(self, namespace: str, selector: str | None) -> list[JSON]:
        def list_them() -> JSON:
            timeout = self._settings.request_timeout
            if selector:
                got = self._api.list_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, label_selector=selector,
                    _request_timeout=timeout,
                )  # fmt: skip
            else:
                got = self._api.list_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, _request_timeout=timeout
                )
            return as_json(got, f"inferenceservices in {namespace}")

        listed = call_with_retry(
            list_them,
            what=f"list inferenceservices {selector or ''} in {namespace}",
            policy=self._settings.retry,
            sleep=self._sleep,
            log=self._log,
        )
        return [i for i in listed.get("items") or [] if isinstance(i, dict)]

    def read_all(self, namespace: str) -> dict[str, ServedModel]:
        """Every ModelMesh InferenceService of ``namespace`` in one list (others left out)."""
        return {
            str(i["metadata"]["name"]): served(i)
            for i in self._list(namespace, None)
            if _is_modelmesh(i)
        }

    def select(self, namespace: str, labels: Mapping[str, str]) -> list[str]:
        selector = label_selector(labels)
        items = self._list(namespace, selector)
        others = [i["metadata"]["name"] for i in items if not _is_modelmesh(i)]
        if others:
            raise FatalIntegrationError(
                f"the selector {selector} picks InferenceServices not in ModelMesh mode: "
                f"{', '.join(sorted(others)[:10])}; a fleet moves ModelMesh models only"
            )
        return sorted(str(i["metadata"]["name"]) for i in items)

    def read(self, ref: ModelRef) -> ServedModel:
        return served(self._supported(self._get(ref), ref))

    def move(self, ref: ModelRef, *, storage_uri: str, runtime: str | None) -> ServedModel:
        self._patch_model(ref, storage_uri, runtime)
        return self._wait(ref, storage_uri, runtime)

    # -- internals --------------------------------------------------------------------------
    @staticmethod
    def _supported(obj: JSON, ref: ModelRef) -> JSON:
        if not _is_modelmesh(obj):
            mode = ((obj.get("metadata") or {}).get("annotations") or {}).get(MODE_ANNOTATION)
            raise FatalIntegrationError(
                f"{ref}: deploymentMode {mode or 'Serverless'!r} is not ModelMesh: its "
                "canaries belong to the KServe target"
            )
        return obj

    def _patch_model(self, ref: ModelRef, storage_uri: str, runtime: str | None) -> None:
        def read_modify_write() -> None:
            obj = self._supported(self._get(ref), ref)
            spec = _model_spec(obj)
            wanted = {"storageUri": storage_uri}
            if runtime is not None:
                wanted["runtime"] = runtime
            if all(spec.get(k) == v for k, v in wanted.items()):
                return  # already there: no write, no new generation
            body = {
                "metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]},
                "spec": {"predictor": {"model": wanted}},
            }
            self._api.patch_namespaced_custom_object(
                GROUP, VERSION, ref.namespace, PLURAL, ref.name, body,
                field_manager=FIELD_MANAGER, _content_type=MERGE_PATCH,
                _request_timeout=self._settings.request_timeout,
            )  # fmt: skip
            self._log.info("modelmesh_model_patched", model=str(ref), **wanted)

        call_with_retry(
            read_modify_write,
            what=f"patch the model of {ref}",
            policy=self._settings.retry,
            sleep=self._sleep,
            log=self._log,
        )

    def _wait(self, ref: ModelRef, storage_uri: str, runtime: str | None) -> ServedModel:
        deadline = self._clock() + self._settings.ready_timeout
        while True:
            obj = self._supported(self._get(ref), ref)
            now = served(obj)
            status = _model_status(obj)
            target_state = (status.get("states") or {}).get("targetModelState")
            if observed_generation_current(obj) and (
                status.get("transitionStatus") in FAILED or target_state == "FailedToLoad"
            ):
                failure = status.get("lastFailureInfo") or {}
                raise FatalIntegrationError(
                    f"{ref}: {storage_uri} did not load ({status.get('transitionStatus')}): "
                    f"{failure.get('reason')}: {failure.get('message')}"
                )
            if (
                now.ready
                and now.storage_uri == storage_uri
                and (runtime is None or now.runtime == runtime)
            ):
                return now
            if self._clock() >= deadline:
                raise RetryableError(
                    f"{ref}: {storage_uri} not loaded after {self._settings.ready_timeout:g}s "
                    f"(transitionStatus={status.get('transitionStatus')}, "
                    f"states={status.get('states')})"
                )
            self._sleep(self._settings.poll_interval)


def _is_modelmesh(obj: JSON) -> bool:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    return annotations.get(MODE_ANNOTATION) == MODELMESH
