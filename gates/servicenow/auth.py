"""Credentials for the ServiceNow Table API: basic auth or OAuth2 via ``/oauth_token.do``.

Secrets travel as :class:`pydantic.SecretStr` from settings (or files mounted by a Vault agent
or the CSI driver, read with :func:`read_secret_file`) and are unwrapped only when a request is
built. Nothing here logs, and ``repr`` of every credential type masks the secret, so a
credential object printed in a traceback or a ledger entry leaks nothing.

OAuth2 tokens are fetched lazily and reused until ServiceNow answers 401, then fetched once
more. That needs no clock (``expires_in`` would), and an expired or revoked token costs one
extra round trip, which is cheap against a gate checked once per tick.
"""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx
from pydantic import SecretStr

from analyzer.domain.errors import ConfigurationError
from gates.servicenow.errors import (
    ServiceNowAuthError,
    ServiceNowMalformedResponseError,
    ServiceNowTimeoutError,
    ServiceNowUnavailableError,
)

TOKEN_PATH = "/oauth_token.do"


def read_secret_file(path: str | Path) -> SecretStr:
    """Read a secret mounted as a file; the trailing newline editors and ``echo`` add is dropped."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        # The path may be logged by the caller; the content never is.
        raise ConfigurationError(f"cannot read secret file {path}: {exc.strerror}") from exc
    return SecretStr(text.rstrip("\r\n"))


@dataclass(frozen=True, kw_only=True, slots=True)
class BasicCredentials:
    """A ServiceNow integration user for HTTP basic auth."""

    username: str
    password: SecretStr


@dataclass(frozen=True, kw_only=True, slots=True)
class OAuth2Credentials:
    """An OAuth application registry entry.

    With ``username``/``password`` the *password* grant is used; without them the *client
    credentials* grant (available on instances that enable it for the application).
    """

    client_id: str
    client_secret: SecretStr
    username: str | None = None
    password: SecretStr | None = None
    token_path: str = TOKEN_PATH

    def __post_init__(self) -> None:
        if (self.username is None) != (self.password is None):
            raise ConfigurationError("OAuth2 password grant needs both username and password")

    def grant(self) -> dict[str, str]:
        form = {
            "client_id": self.client_id,
            "client_secret": self.client_secret.get_secret_value(),
        }
        if self.username is not None and self.password is not None:
            return form | {
                "grant_type": "password",
                "username": self.username,
                "password": self.password.get_secret_value(),
            }
        return form | {"grant_type": "client_credentials"}


Credentials = BasicCredentials | OAuth2Credentials


class Authorizer(Protocol):
    """Produces the Authorization header; ``invalidate`` drops anything cached after a 401."""

    def header(self, http: httpx.Client) -> str: ...

    def invalidate(self) -> bool:
        """Forget cached state; True when a retry could succeed with fresh state."""
        ...


class BasicAuthorizer:
    def __init__(self, credentials: BasicCredentials) -> None:
        self._credentials = credentials

    def header(self, http: httpx.Client) -> str:
        pair = f"{self._credentials.username}:{self._credentials.password.get_secret_value()}"
        return "Basic " + base64.b64encode(pair.encode()).decode("ascii")

    def invalidate(self) -> bool:
        return False  # the same password will be refused again


class OAuth2Authorizer:
    """Bearer tokens from ServiceNow's token endpoint, cached until refused."""

    def __init__(self, credentials: OAuth2Credentials) -> None:
        self._credentials = credentials
        self._token: SecretStr | None = None
        self._lock = threading.Lock()  # one token fetch at a time across scheduler threads

    def header(self, http: httpx.Client) -> str:
        with self._lock:
            if self._token is None:
                self._token = self._fetch(http)
            return "Bearer " + self._token.get_secret_value()

    def invalidate(self) -> bool:
        with self._lock:
            had_token = self._token is not None
            self._token = None
            return had_token

    def _fetch(self, http: httpx.Client) -> SecretStr:
        try:
            response = http.post(self._credentials.token_path, data=self._credentials.grant())
        except httpx.TimeoutException as exc:
            raise ServiceNowTimeoutError("the OAuth token request timed out") from exc
        except httpx.TransportError as exc:
            raise ServiceNowUnavailableError(
                f"the OAuth token request failed ({type(exc).__name__})"
            ) from exc
        if response.status_code >= 500:
            raise ServiceNowUnavailableError(
                f"the OAuth token endpoint answered {response.status_code}"
            )
        if response.status_code != 200:
            raise ServiceNowAuthError(
                f"ServiceNow refused the OAuth2 credentials ({response.status_code})"
            )
        try:
            token = response.json()["access_token"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ServiceNowMalformedResponseError(
                "the OAuth token response has no access_token"
            ) from exc
        if not isinstance(token, str) or not token:
            raise ServiceNowMalformedResponseError("the OAuth token response has no access_token")
        return SecretStr(token)


def make_authorizer(credentials: Credentials) -> Authorizer:
    if isinstance(credentials, BasicCredentials):
        return BasicAuthorizer(credentials)
    return OAuth2Authorizer(credentials)
