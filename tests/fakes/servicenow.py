"""A fake ServiceNow instance serving the Table API and the OAuth token endpoint over real HTTP.

Stdlib only (``http.server`` in a daemon thread on a random 127.0.0.1 port). What it mirrors
from ServiceNow's documented behaviour:

* ``GET /api/now/table/{table}`` and ``/api/now/{version}/table/{table}`` (and ``/{sys_id}``),
  answering ``{"result": [...]}`` (a single object for ``/{sys_id}``) with ``X-Total-Count``.
* ``sysparm_query`` with ``^`` (AND), ``=``, ``!=``, ``STARTSWITH``, ``IN`` (comma-separated),
  ``ORDERBY``/``ORDERBYDESC``;
  a condition on a field the table does not have is *ignored*, as ServiceNow does by default
  (so a typo widens the result). ``^OR``/``^NQ`` are refused with 400 rather than mis-served.
* ``sysparm_fields`` (unknown names ignored), ``sysparm_limit`` (default 10000),
  ``sysparm_offset``, ``sysparm_exclude_reference_link``, ``sysparm_display_value``:
  ``false`` → stored values, references ``{"link", "value"}``; ``true`` → display values,
  references ``{"link", "display_value"}``; ``all`` → ``{"display_value", "value"}`` for every
  field (plus ``link`` for references). Date-time display values are rendered in the API
  user's time zone and format, values stay UTC, as on a real instance.
* Basic auth and bearer tokens from ``POST /oauth_token.do`` (password and client-credentials
  grants); failures answer ServiceNow's error body
  ``{"error": {"message", "detail"}, "status": "failure"}`` (the token endpoint answers
  ``{"error", "error_description"}``).
* Fault injection for the next N Table API requests: any status, a delay (for client
  timeouts), or a non-JSON body (a hibernating instance answers 200 with an HTML page).

Every request is recorded so tests can assert what a client actually sent.

Stopping is safe with requests in flight (issue 13: a CI run printed ``start() the fake first``
from a handler thread of ``test_timeout_closes``): a delayed request whose client gave up kept
sleeping after the test, then rendered reference links through ``url`` after ``stop()`` had
cleared the server. Now the address outlives ``stop()``, an injected delay ends early when the
fake stops (the request is dropped, as by an instance going away), a client that hung up is
not an error, and any other handler exception is kept in ``errors`` for tests to assert.
"""

from __future__ import annotations

import base64
import json
import secrets
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

DEFAULT_LIMIT = 10000
SN_FORMAT = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True)
class Ref:
    """A reference field: the referenced record's table, sys_id and display value."""

    table: str
    sys_id: str
    display: str


@dataclass(frozen=True)
class Choice:
    """A choice field: the stored value (``-2``) and its label (``Scheduled``)."""

    value: str
    display: str


@dataclass(frozen=True)
class DateTime:
    """A glide_date_time field, stored as UTC ``YYYY-MM-DD HH:MM:SS``."""

    value: str


FieldData = str | Ref | Choice | DateTime


@dataclass
class Fault:
    """What to do to the next ``times`` Table API requests instead of answering normally."""

    status: int | None = None
    delay_seconds: float = 0.0
    body: str | None = None
    content_type: str = "application/json"
    times: int = 1


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    params: dict[str, str]
    auth_scheme: str | None


def error_body(message: str, detail: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "detail": detail}, "status": "failure"}


@dataclass
class FakeServiceNow:
    """The instance state: tables, users, OAuth clients, tokens and pending faults."""

    users: dict[str, str] = field(default_factory=lambda: {"gate.bot": "bot-password"})
    oauth_clients: dict[str, str] = field(default_factory=lambda: {"canary-gate": "client-secret"})
    user_timezone: str = "America/Los_Angeles"
    tables: dict[str, list[dict[str, FieldData]]] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    # PATCHed work notes per (table, sys_id), oldest first: a journal field only ever grows
    work_notes: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    _faults: list[Fault] = field(default_factory=list)
    _tokens: set[str] = field(default_factory=set)
    errors: list[BaseException] = field(default_factory=list)  # raised in handler threads
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _address: tuple[str, int] | None = None  # kept after stop(): late handlers still render
    _stopped: threading.Event = field(default_factory=threading.Event)

    # -- state ---------------------------------------------------------------------------------
    def add_table(self, name: str) -> None:
        self.tables.setdefault(name, [])

    def add_record(self, table: str, **fields: FieldData) -> str:
        """Insert a record; returns its sys_id (generated unless given)."""
        sys_id = str(fields.pop("sys_id", uuid.uuid4().hex))
        record: dict[str, FieldData] = {"sys_id": sys_id, **fields}
        with self._lock:
            self.tables.setdefault(table, []).append(record)
        return sys_id

    def inject(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def revoke_tokens(self) -> None:
        with self._lock:
            self._tokens.clear()

    def table_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if "/table/" in r.path]

    # -- server --------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._address is not None, "start() the fake first"
        host, port = self._address
        return f"http://{host!s}:{port}"

    def start(self) -> FakeServiceNow:
        server = _Server(("127.0.0.1", 0), _handler_for(self))
        server.fake = self
        self._stopped.clear()
        self._address = (str(server.server_address[0]), int(server.server_address[1]))
        server.daemon_threads = True
        server.block_on_close = False
        threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="fake-servicenow",
            daemon=True,
        ).start()
        self._server = server
        return self

    def stop(self) -> None:
        self._stopped.set()  # delayed requests end now instead of outliving the test
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # -- behaviour used by the handler ---------------------------------------------------------
    def delay(self, seconds: float) -> bool:
        """Sleep ``seconds`` unless the fake stops first; True when it stopped."""
        return self._stopped.wait(seconds)

    def next_fault(self) -> Fault | None:
        with self._lock:
            if not self._faults:
                return None
            fault = self._faults[0]
            fault.times -= 1
            if fault.times <= 0:
                self._faults.pop(0)
            return fault

    def authenticate(self, header: str | None) -> bool:
        if not header:
            return False
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() == "bearer":
            with self._lock:
                return credentials in self._tokens
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(credentials).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return False
            return self.users.get(user) == password
        return False

    def issue_token(self, form: dict[str, str]) -> str | None:
        client_ok = self.oauth_clients.get(form.get("client_id", "")) == form.get("client_secret")
        grant = form.get("grant_type")
        if not client_ok or grant not in ("password", "client_credentials"):
            return None
        if grant == "password" and self.users.get(form.get("username", "")) != form.get("password"):
            return None
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._tokens.add(token)
        return token

    def render(self, record: dict[str, FieldData], mode: str, links: bool) -> dict[str, Any]:
        return {name: self._render_field(value, mode, links) for name, value in record.items()}

    def _render_field(self, value: FieldData, mode: str, links: bool) -> Any:
        if isinstance(value, Ref):
            return _render_ref(value, mode, links, self.url)
        if isinstance(value, DateTime):
            stored, shown = value.value, self._display_datetime(value.value)
        elif isinstance(value, Choice):
            stored, shown = value.value, value.display
        else:
            stored = shown = value
        if mode == "all":
            return {"display_value": shown, "value": stored}
        return shown if mode == "true" else stored

    def _display_datetime(self, value: str) -> str:
        if not value:
            return ""
        utc = datetime.strptime(value, SN_FORMAT).replace(tzinfo=UTC)
        # The instance shows the API user's own zone and date format in display values.
        return utc.astimezone(ZoneInfo(self.user_timezone)).strftime("%m/%d/%Y %I:%M:%S %p")

    def __enter__(self) -> FakeServiceNow:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _render_ref(ref: Ref, mode: str, links: bool, base: str) -> Any:
    link = f"{base}/api/now/table/{ref.table}/{ref.sys_id}"
    if mode == "all":
        out: dict[str, str] = {"display_value": ref.display, "value": ref.sys_id}
    elif mode == "true":
        out = {"display_value": ref.display}
    else:
        out = {"value": ref.sys_id}
    if not links:
        return out if mode == "all" else next(iter(out.values()))
    return out | {"link": link}


# -- encoded queries ---------------------------------------------------------------------------
class UnsupportedQueryError(ValueError):
    pass


def _stored(value: FieldData | None) -> str:
    if value is None:
        return ""
    if isinstance(value, Ref):
        return value.sys_id
    if isinstance(value, Choice | DateTime):
        return value.value
    return value


def _condition(term: str, known: set[str]) -> Any:
    """A predicate for one encoded-query term, or None to ignore it (as ServiceNow does)."""
    for op in ("!=", "STARTSWITH", "IN", "="):
        name, sep, wanted = term.partition(op)
        if sep and name and name.replace("_", "").isalnum():
            if name not in known:
                return None
            if op == "!=":
                return lambda r, n=name, w=wanted: _stored(r.get(n)) != w
            if op == "IN":
                choices = wanted.split(",")
                return lambda r, n=name, w=choices: _stored(r.get(n)) in w
            if op == "STARTSWITH":
                return lambda r, n=name, w=wanted: _stored(r.get(n)).startswith(w)
            return lambda r, n=name, w=wanted: _stored(r.get(n)) == w
    return None


def select(records: list[dict[str, FieldData]], query: str) -> list[dict[str, FieldData]]:
    known = {name for record in records for name in record}
    terms = [t for t in query.split("^") if t]
    if any(t.startswith(("OR", "NQ")) for t in terms):
        raise UnsupportedQueryError("the fake does not implement ^OR / ^NQ")
    rows = list(records)
    for term in terms:
        if term.startswith("ORDERBYDESC") or term.startswith("ORDERBY"):
            desc = term.startswith("ORDERBYDESC")
            key = term.removeprefix("ORDERBYDESC" if desc else "ORDERBY")
            rows.sort(key=lambda r: _stored(r.get(key)), reverse=desc)
            continue
        predicate = _condition(term, known)
        if predicate is not None:
            rows = [r for r in rows if predicate(r)]
    return rows


# -- HTTP ------------------------------------------------------------------------------------
class _Server(ThreadingHTTPServer):
    fake: FakeServiceNow

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (its timeout) is no error of the fake's: a real instance
        writes into a closed connection the same way. Anything else is kept for the tests."""
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError):
            return
        if error is not None:
            self.fake.errors.append(error)
        super().handle_error(request, client_address)


def _handler_for(instance: FakeServiceNow) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        fake = instance

    return Handler


class _Handler(BaseHTTPRequestHandler):
    fake: FakeServiceNow
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        return

    def _send(
        self,
        status: int,
        body: str,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload), headers=headers)

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        self.fake.requests.append(RecordedRequest("POST", url.path, {}, None))
        if url.path != "/oauth_token.do":
            self._json(405, error_body("Method not Supported", "POST is not supported here"))
            return
        token = self.fake.issue_token(form)
        if token is None:
            self._json(401, {"error_description": "access_denied", "error": "server_error"})
            return
        self._json(
            200,
            {
                "access_token": token,
                "refresh_token": secrets.token_urlsafe(24),
                "scope": "useraccount",
                "token_type": "Bearer",
                "expires_in": 1799,
            },
        )

    def do_PATCH(self) -> None:
        """``PATCH /api/now/table/{table}/{sys_id}``: ``work_notes`` appends a journal entry,
        other string fields replace the stored value, as on an instance."""
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        auth = self.headers.get("Authorization")
        scheme = auth.split(" ", 1)[0] if auth else None
        self.fake.requests.append(RecordedRequest("PATCH", url.path, {}, scheme))
        fault = self.fake.next_fault()
        if fault is not None and self._apply(fault):
            return
        if not self.fake.authenticate(auth):
            self._json(401, error_body("User Not Authenticated", "Required"))
            return
        parts = [p for p in url.path.split("/") if p]
        try:
            changes = json.loads(raw)
        except ValueError:
            self._json(400, error_body("Exception while reading request", "not JSON"))
            return
        if parts[:3] != ["api", "now", "table"] or len(parts) != 5 or not isinstance(changes, dict):
            self._json(400, error_body("Requested URI does not represent any resource", None))
            return
        table, sys_id = parts[3], parts[4]
        record = next(
            (r for r in self.fake.tables.get(table, []) if _stored(r.get("sys_id")) == sys_id),
            None,
        )
        if record is None:
            self._json(404, error_body("No Record found", "Record doesn't exist"))
            return
        with self.fake._lock:
            for name, value in changes.items():
                if name == "work_notes":
                    self.fake.work_notes.setdefault((table, sys_id), []).append(str(value))
                else:
                    record[name] = str(value)
        self._json(200, {"result": {"sys_id": sys_id}})

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        params = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        auth = self.headers.get("Authorization")
        scheme = auth.split(" ", 1)[0] if auth else None
        self.fake.requests.append(RecordedRequest("GET", url.path, params, scheme))
        fault = self.fake.next_fault()
        if fault is not None and self._apply(fault):
            return
        if not self.fake.authenticate(auth):
            self._json(
                401, error_body("User Not Authenticated", "Required to provide Auth information")
            )
            return
        self._table(url.path, params)

    def _apply(self, fault: Fault) -> bool:
        """Carry out a fault; True when it replaced the normal answer."""
        if fault.delay_seconds and self.fake.delay(fault.delay_seconds):
            self.close_connection = True  # stopped meanwhile: no answer, as from a dead instance
            return True
        if fault.status is None and fault.body is None:
            return False
        status = fault.status or 200
        body = (
            fault.body
            if fault.body is not None
            else json.dumps(error_body(f"Fault injected: HTTP {status}", None))
        )
        self._send(status, body, fault.content_type)
        return True

    def _table(self, path: str, params: dict[str, str]) -> None:
        parts = [p for p in path.split("/") if p]
        if parts[:2] != ["api", "now"]:
            self._json(400, error_body("Requested URI does not represent any resource", None))
            return
        rest = parts[3:] if len(parts) > 2 and parts[2].startswith("v") else parts[2:]
        if not rest or rest[0] != "table" or len(rest) not in (2, 3):
            self._json(400, error_body("Requested URI does not represent any resource", None))
            return
        table = rest[1]
        if table not in self.fake.tables:
            self._json(400, error_body(f"Invalid table {table}", None))
            return
        if len(rest) == 3:
            self._one(table, rest[2], params)
        else:
            self._many(table, params)

    def _shape(
        self, table: str, record: dict[str, FieldData], params: dict[str, str]
    ) -> dict[str, Any]:
        mode = params.get("sysparm_display_value", "false").lower()
        mode = mode if mode in ("true", "false", "all") else "false"
        links = params.get("sysparm_exclude_reference_link", "false").lower() != "true"
        wanted = [f for f in params.get("sysparm_fields", "").split(",") if f]
        if wanted:
            record = {name: record[name] for name in wanted if name in record}
        return self.fake.render(record, mode, links)

    def _one(self, table: str, sys_id: str, params: dict[str, str]) -> None:
        for record in self.fake.tables[table]:
            if _stored(record.get("sys_id")) == sys_id:
                self._json(200, {"result": self._shape(table, record, params)})
                return
        self._json(
            404,
            error_body(
                "No Record found", "Record doesn't exist or ACL restricts the record retrieval"
            ),
        )

    def _many(self, table: str, params: dict[str, str]) -> None:
        try:
            rows = select(self.fake.tables[table], params.get("sysparm_query", ""))
            limit = int(params.get("sysparm_limit", DEFAULT_LIMIT))
            offset = int(params.get("sysparm_offset", 0))
        except (UnsupportedQueryError, ValueError) as exc:
            self._json(400, error_body("Invalid query", str(exc)))
            return
        page = rows[offset : offset + limit]
        result = [self._shape(table, r, params) for r in page]
        self._json(200, {"result": result}, headers={"X-Total-Count": str(len(rows))})


def running_fake(**kwargs: Any) -> Iterator[FakeServiceNow]:
    """Generator for a pytest fixture: ``yield from running_fake()``."""
    fake = FakeServiceNow(**kwargs).start()
    try:
        yield fake
    finally:
        fake.stop()
