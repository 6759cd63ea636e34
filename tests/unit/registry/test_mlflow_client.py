"""The MLflow client's failure mapping (the happy paths run against a real server in
tests/integration/registry/)."""

from __future__ import annotations

import json

import httpx
import pytest
from pydantic import SecretStr

from analyzer.domain.errors import FatalIntegrationError, RetryableError
from analyzer.registry.base import (
    RegistryNotFoundError,
    RegistryRefusedError,
    RegistryUnavailableError,
)
from analyzer.registry.mlflow import MlflowRegistry


def client(handler: httpx.MockTransport, **kwargs: object) -> MlflowRegistry:
    return MlflowRegistry("http://mlflow.test", transport=handler, **kwargs)  # type: ignore[arg-type]


def answering(
    status: int, body: object, seen: list[httpx.Request] | None = None
) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return httpx.Response(status, content=content)

    return httpx.MockTransport(handle)


VERSION = {
    "model_version": {
        "name": "fraud", "version": "3", "source": "s3://m/3", "run_id": "r3", "status": "READY",
        "tags": [{"key": "artifact_digest", "value": "sha256:" + "a" * 64},
                 {"key": "cosign_signature", "value": "MEUCIQ=="}],
        "aliases": ["champion"],
    }
}  # fmt: skip


def test_a_version_is_read_with_digest_signature_and_bearer_token() -> None:
    seen: list[httpx.Request] = []
    registry = client(answering(200, VERSION, seen), token=SecretStr("s3cret"))
    found = registry.get_version("fraud", "3")
    assert (found.version, found.source, found.run_id) == ("3", "s3://m/3", "r3")
    assert (found.digest, found.signature) == ("sha256:" + "a" * 64, "MEUCIQ==")
    assert found.aliases == ("champion",)
    assert seen[0].url.path == "/api/2.0/mlflow/model-versions/get"
    assert seen[0].url.params["version"] == "3"
    assert seen[0].headers["Authorization"] == "Bearer s3cret"


@pytest.mark.parametrize(
    ("status", "body", "error", "kind"),
    [
        (404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "nope"}, RegistryNotFoundError,
         FatalIntegrationError),
        (400, {"error_code": "INVALID_PARAMETER_VALUE",
               "message": "Registered model alias x not found."}, RegistryNotFoundError,
         FatalIntegrationError),
        (503, b"<html>maintenance</html>", RegistryUnavailableError, RetryableError),
        (429, {"error_code": "REQUEST_LIMIT_EXCEEDED"}, RegistryUnavailableError, RetryableError),
        (401, {"error_code": "UNAUTHENTICATED", "message": "bad token"}, RegistryRefusedError,
         FatalIntegrationError),
        (302, b"", RegistryRefusedError, FatalIntegrationError),
        (200, b"<html>login</html>", RegistryRefusedError, FatalIntegrationError),
        (200, {"something": "else"}, RegistryRefusedError, FatalIntegrationError),
    ],
)  # fmt: skip
def test_failures_map_to_the_error_taxonomy(
    status: int, body: object, error: type[Exception], kind: type[Exception]
) -> None:
    registry = client(answering(status, body))
    with pytest.raises(error) as caught:
        registry.get_version("fraud", "3")
    assert isinstance(caught.value, kind)


def test_a_malformed_digest_tag_is_refused_not_ignored() -> None:
    bad = json.loads(json.dumps(VERSION))
    bad["model_version"]["tags"][0]["value"] = "md5:abc"
    with pytest.raises(RegistryRefusedError, match="not sha256"):
        client(answering(200, bad)).get_version("fraud", "3")


def test_no_answer_in_time_is_unavailable() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with pytest.raises(RegistryUnavailableError, match="did not answer in time"):
        client(httpx.MockTransport(slow)).aliases("fraud")


def test_set_alias_posts_name_alias_version() -> None:
    seen: list[httpx.Request] = []
    client(answering(200, {}, seen)).set_alias("fraud", "champion", "3")
    assert seen[0].method == "POST"
    assert seen[0].url.path == "/api/2.0/mlflow/registered-models/alias"
    assert json.loads(seen[0].content) == {"name": "fraud", "alias": "champion", "version": "3"}
