"""The MLflow model registry over its REST API (``/api/2.0/mlflow/…``) with httpx.

REST rather than ``mlflow-skinny``'s client: the four calls needed here are plain JSON over HTTP,
while the client library pulls in a large runtime (protobuf, GitPython, OpenTelemetry, its own
``requests`` stack) and retries for minutes by default — a rollout tick must be bounded by a
timeout of its own. See docs/registry.md.

Paths used (MLflow 2.x and 3.x):

* ``GET  registered-models/get?name=``          → ``registered_model.aliases[{alias, version}]``
* ``GET  model-versions/get?name=&version=``    → ``model_version``
* ``GET  registered-models/alias?name=&alias=`` → ``model_version``
* ``POST registered-models/alias {name, alias, version}``

Errors come back as ``{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": …}`` (HTTP 404).
"""

from __future__ import annotations

import re
from typing import Any

import httpx
from pydantic import SecretStr

from analyzer.registry.base import (
    RegistryNotFoundError,
    RegistryRefusedError,
    RegistryUnavailableError,
    ResolvedVersion,
)

_API = "/api/2.0/mlflow"
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
DEFAULT_DIGEST_TAG = "artifact_digest"
DEFAULT_SIGNATURE_TAG = "cosign_signature"


class MlflowRegistry:
    """A :class:`~analyzer.registry.base.ModelRegistry` on an MLflow tracking server."""

    kind = "mlflow"

    def __init__(
        self,
        base_url: str,
        *,
        token: SecretStr | None = None,
        timeout_seconds: float = 5.0,
        digest_tag: str = DEFAULT_DIGEST_TAG,
        signature_tag: str = DEFAULT_SIGNATURE_TAG,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._token = token
        self._digest_tag = digest_tag
        self._signature_tag = signature_tag
        # Redirects are not followed: a proxy's login page must not pass for an answer.
        self._http = httpx.Client(
            timeout=timeout_seconds, follow_redirects=False, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    # -- reads -------------------------------------------------------------------------------
    def get_version(self, name: str, version: str) -> ResolvedVersion:
        body = self._call("GET", "model-versions/get", params={"name": name, "version": version})
        return self._version(body, what=f"version {version} of registered model {name!r}")

    def get_by_alias(self, name: str, alias: str) -> ResolvedVersion:
        body = self._call("GET", "registered-models/alias", params={"name": name, "alias": alias})
        return self._version(body, what=f"alias {alias!r} of registered model {name!r}")

    def aliases(self, name: str) -> dict[str, str]:
        body = self._call("GET", "registered-models/get", params={"name": name})
        model = body.get("registered_model")
        if not isinstance(model, dict):
            raise RegistryRefusedError("MLflow answered without a registered_model")
        found: dict[str, str] = {}
        for item in model.get("aliases") or []:
            if isinstance(item, dict) and "alias" in item and "version" in item:
                found[str(item["alias"])] = str(item["version"])
        return found

    # -- writes ------------------------------------------------------------------------------
    def set_alias(self, name: str, alias: str, version: str) -> None:
        self._call(
            "POST",
            "registered-models/alias",
            json={"name": name, "alias": alias, "version": version},
        )

    # -- plumbing ----------------------------------------------------------------------------
    def _version(self, body: dict[str, Any], *, what: str) -> ResolvedVersion:
        mv = body.get("model_version")
        if not isinstance(mv, dict) or "version" not in mv or "name" not in mv:
            raise RegistryRefusedError(f"MLflow answered for {what} without a model_version")
        tags = {
            str(t["key"]): str(t.get("value", ""))
            for t in mv.get("tags") or []
            if isinstance(t, dict) and "key" in t
        }
        digest = tags.get(self._digest_tag)
        if digest is not None and not _DIGEST.fullmatch(digest):
            # A malformed digest is not "no digest": the signature gate must see that it is bad.
            raise RegistryRefusedError(
                f"{what} has tag {self._digest_tag}={digest[:80]!r}, not sha256:<64 hex>"
            )
        run_id = mv.get("run_id") or None
        return ResolvedVersion(
            name=str(mv["name"]), version=str(mv["version"]), source=str(mv.get("source") or ""),
            run_id=str(run_id) if run_id else None, status=str(mv.get("status") or "UNKNOWN"),
            digest=digest, signature=tags.get(self._signature_tag) or None,
            aliases=tuple(str(a) for a in mv.get("aliases") or ()), tags=tags,
        )  # fmt: skip

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token.get_secret_value()}"
        url = f"{self._base}{_API}/{path}"
        try:
            response = self._http.request(method, url, params=params, json=json, headers=headers)
        except httpx.TimeoutException as exc:
            raise RegistryUnavailableError(f"MLflow did not answer in time ({path})") from exc
        except httpx.HTTPError as exc:
            raise RegistryUnavailableError(
                f"MLflow could not be reached ({type(exc).__name__})"
            ) from exc
        body = _json(response)
        message = str(body.get("message") or response.reason_phrase)[:300]
        code = body.get("error_code")
        if response.status_code == 404 or code == "RESOURCE_DOES_NOT_EXIST":
            raise RegistryNotFoundError(message)
        # MLflow answers a missing alias with 400 INVALID_PARAMETER_VALUE "… alias X not found."
        if code == "INVALID_PARAMETER_VALUE" and "not found" in message.casefold():
            raise RegistryNotFoundError(message)
        if response.status_code >= 500 or response.status_code == 429:
            raise RegistryUnavailableError(f"MLflow answered {response.status_code}: {message}")
        if response.status_code >= 300:
            raise RegistryRefusedError(
                f"MLflow refused {method} {path} ({response.status_code} {code or ''}: {message})"
            )
        return body


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        if response.status_code < 300:
            raise RegistryRefusedError(
                f"MLflow answered {response.status_code} with a body that is not JSON"
            ) from None
        return {}
    return body if isinstance(body, dict) else {}
