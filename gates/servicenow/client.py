"""A small, typed client for ServiceNow's Table API (``GET /api/now/table/{table}``), on httpx.

It runs an encoded query and returns the ``result`` list, and adds a work note to one record
(``PATCH /api/now/table/{table}/{sys_id}``: the signed ledger checkpoint of a promotion, written
into its change request), or raises one of the errors in :mod:`gates.servicenow.errors`. It
does not retry: the gate is asked again on the next scheduler tick, which is the bounded,
logged retry the project wants at its edge.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, Literal

import httpx

from gates.servicenow.auth import Credentials, make_authorizer
from gates.servicenow.errors import (
    ServiceNowAuthError,
    ServiceNowMalformedResponseError,
    ServiceNowRequestError,
    ServiceNowTimeoutError,
    ServiceNowUnavailableError,
)

DisplayValue = Literal["true", "false", "all"]
Record = dict[str, Any]

_TABLE = re.compile(r"^[a-z][a-z0-9_]*$")
_SYS_ID = re.compile(r"^[0-9a-f]{32}$")
# ServiceNow's own 404 for an empty list on the v1 API; any other 404 means a wrong URL/table.
_NO_RECORD = "No Record found"


class ServiceNowTableClient:
    """Reads records through the Table API with basic or OAuth2 credentials.

    ``base_url`` is the instance root (``https://acme.service-now.com``). ``transport`` and
    ``verify`` exist for tests and private CAs; nothing is sent anywhere at construction.
    """

    def __init__(
        self,
        base_url: str,
        credentials: Credentials,
        *,
        timeout_seconds: float = 5.0,
        verify: bool | str = True,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._authorizer = make_authorizer(credentials)
        self._timeout_seconds = timeout_seconds
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            timeout=httpx.Timeout(timeout_seconds),
            verify=verify,
            transport=transport,
            headers={"Accept": "application/json"},
            follow_redirects=False,  # a redirect to a login page must not look like success
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ServiceNowTableClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def query(
        self,
        table: str,
        query: str,
        *,
        fields: Sequence[str],
        limit: int,
        display_value: DisplayValue = "all",
    ) -> list[Record]:
        """Records of ``table`` matching the encoded ``query`` (at most ``limit``)."""
        if not _TABLE.match(table):
            raise ValueError(f"not a ServiceNow table name: {table!r}")
        params = {
            "sysparm_query": query,
            "sysparm_fields": ",".join(fields),
            "sysparm_limit": str(limit),
            "sysparm_display_value": display_value,
            "sysparm_exclude_reference_link": "true",
            "sysparm_no_count": "true",
        }
        response = self._get(f"/api/now/table/{table}", params)
        return _result_list(response, table)

    def add_work_note(self, table: str, sys_id: str, note: str) -> None:
        """Append ``note`` to the record's work notes (a journal field: it adds, never
        replaces). Needs write access to that field for the API user."""
        if not _TABLE.match(table) or not _SYS_ID.match(sys_id):
            raise ValueError(f"not a ServiceNow table and sys_id: {table!r}, {sys_id!r}")
        response = self._get(
            f"/api/now/table/{table}/{sys_id}",
            {"sysparm_fields": "sys_id"},
            json_body={"work_notes": note},
        )
        _raise_for_status(response, table)
        if response.status_code != 200:
            raise ServiceNowRequestError(
                f"ServiceNow answered {response.status_code} to a work note, expected 200"
            )

    def _get(
        self, path: str, params: dict[str, str], *, json_body: dict[str, str] | None = None
    ) -> httpx.Response:
        response = self._send(path, params, json_body)
        # An OAuth token may have expired or been revoked: fetch a new one once, then give up.
        if response.status_code == 401 and self._authorizer.invalidate():
            response = self._send(path, params, json_body)
        return response

    def _send(
        self, path: str, params: dict[str, str], json_body: dict[str, str] | None = None
    ) -> httpx.Response:
        try:
            headers = {"Authorization": self._authorizer.header(self._http)}
            if json_body is not None:
                return self._http.patch(path, params=params, headers=headers, json=json_body)
            return self._http.get(path, params=params, headers=headers)
        except httpx.TimeoutException as exc:
            raise ServiceNowTimeoutError(
                f"ServiceNow did not answer within {self._timeout_seconds:g} s"
            ) from exc
        except httpx.TransportError as exc:
            raise ServiceNowUnavailableError(
                f"ServiceNow could not be reached ({type(exc).__name__})"
            ) from exc


def _error_message(response: httpx.Response) -> str:
    """ServiceNow's ``error.message`` if the body is its error shape, else ''."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return ""
    error = body.get("error") if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return str(message)[:200] if message else ""


def _raise_for_status(response: httpx.Response, table: str) -> None:
    status = response.status_code
    if status < 400:
        return
    message = _error_message(response)
    detail = f": {message}" if message else ""
    if status >= 500:
        raise ServiceNowUnavailableError(f"ServiceNow answered {status}{detail}")
    if status == 401:
        raise ServiceNowAuthError(f"ServiceNow refused the credentials (401{detail})")
    if status == 403:
        raise ServiceNowAuthError(f"ServiceNow denied access to table {table} (403{detail})")
    raise ServiceNowRequestError(f"ServiceNow rejected the request ({status}{detail})")


def _result_list(response: httpx.Response, table: str) -> list[Record]:
    if response.status_code == 404 and _error_message(response) == _NO_RECORD:
        return []
    _raise_for_status(response, table)
    if response.status_code != 200:
        raise ServiceNowRequestError(f"ServiceNow answered {response.status_code}, expected 200")
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ServiceNowMalformedResponseError(
            f"ServiceNow's answer is not JSON (content type "
            f"{response.headers.get('content-type', 'none')!r})"
        ) from exc
    result = body.get("result") if isinstance(body, dict) else None
    if not isinstance(result, list) or not all(isinstance(r, dict) for r in result):
        raise ServiceNowMalformedResponseError(
            "ServiceNow's answer is not the Table API envelope {'result': [...]}"
        )
    return result
