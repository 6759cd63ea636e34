"""Starting rollouts from registry URIs over HTTP: 201 pinned, 422 for unpinned or unknown
URIs naming the field, 502 when the registry does not answer (nothing started)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from analyzer.registry.mlflow import MlflowRegistry
from tests.integration.api.conftest import (  # noqa: F401  (make_api is a fixture)
    Harness,
    make_api,
    model_ref,
    start_body,
)
from tests.mlflow_server import MlflowAdmin, free_port

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

DIGEST = "sha256:" + "3" * 64


@pytest.fixture
def registered(mlflow_admin: MlflowAdmin, model_name: str) -> str:
    mlflow_admin.create_model(model_name)
    mlflow_admin.create_version(model_name, "s3://m/1", run_id="run-1", artifact_digest=DIGEST)
    mlflow_admin.set_alias(model_name, "candidate", "1")
    return model_name


@pytest.fixture
def api(make_api: Callable[..., Harness], mlflow_url: str) -> Iterator[Harness]:  # noqa: F811
    registry = MlflowRegistry(mlflow_url)
    harness = make_api(registry=registry)
    harness.target.add_model(
        model_ref(), stable_revision="base-00001", canary_revision="good-00002", weight=0
    )
    yield harness
    registry.close()


def post(api: Harness, **body: Any) -> Any:
    return api.call("POST", "/api/v1/rollouts", "operator", json=start_body(**body))


def test_an_alias_starts_a_rollout_pinned_to_its_version(api: Harness, registered: str) -> None:
    response = post(api, artifact_uri=f"models:/{registered}@candidate")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["artifact_uri"] == f"models:/{registered}/1"
    assert (body["model_version"], body["artifact_digest"]) == ("1", DIGEST)


@pytest.mark.parametrize(
    ("uri", "field", "message"),
    [
        ("models:/{name}/latest", "artifact_uri", "is not pinned to one model version"),
        ("models:/{name}/Staging", "artifact_uri", "stage 'Staging' moves"),
        ("models:/{name}/9", "artifact_uri", "is not in the registry"),
        ("models:/{name}@gone", "artifact_uri", "is not in the registry"),
    ],
)
def test_unpinned_or_unknown_uris_are_422_naming_the_field(
    api: Harness, registered: str, uri: str, field: str, message: str
) -> None:
    response = post(api, artifact_uri=uri.format(name=registered))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["field"] == field
    assert message in error["message"]
    assert api.call("GET", "/api/v1/rollouts", "viewer").json()["rollouts"] == []


def test_a_registry_that_does_not_answer_is_502_and_starts_nothing(
    make_api: Callable[..., Harness],  # noqa: F811
) -> None:
    dead = MlflowRegistry(f"http://127.0.0.1:{free_port()}", timeout_seconds=1.0)
    api = make_api(registry=dead)
    api.target.add_model(model_ref(), stable_revision="base-00001", canary_revision="good-00002")
    response = post(api, artifact_uri="models:/fraud-scorer@champion")
    assert response.status_code == 502, response.text
    assert "could not be reached" in response.json()["error"]["message"]
    assert api.call("GET", "/api/v1/rollouts", "viewer").json()["rollouts"] == []
    dead.close()


def test_a_malformed_signature_is_422(api: Harness) -> None:
    response = post(api, artifact_signature="not base64 <script>")
    assert response.status_code == 422
