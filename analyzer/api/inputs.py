"""Validators shared by every route, so hostile input is a 422 and never a 500.

Three kinds of input got past the per-route schemas before (issue 13) and reached code that
cannot take them:

* **Instants at the calendar's edges.** ``9999-12-31T23:59:59-01:00`` is a valid ISO 8601 time
  whose UTC form is in year 10000, which ``datetime`` cannot hold (``OverflowError`` deep in a
  query). :func:`utc_instant` converts once, at the edge, and refuses what does not convert.
* **Control characters.** PostgreSQL text cannot hold NUL (``rollout=%00`` was a psycopg
  ``DataError``); no identifier, name or filter of this API has a use for C0 controls either.
  :func:`refuse_control_characters` is an app-wide dependency over query and path parameters.
* **Deeply nested JSON.** An inline profile nested 900 deep overflowed the interpreter's
  recursion limit (``RecursionError``) in validation. :class:`JsonBodyGuardMiddleware` measures
  the nesting of every JSON body with a loop (no recursion) before anything parses it, and also
  refuses the ``\\u0000`` escape and lone surrogates, which decode to strings PostgreSQL cannot
  store or UTF-8 cannot encode.
"""

from __future__ import annotations

import email.message
import json
from datetime import UTC, datetime

from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from analyzer.domain.errors import InvalidInputError

MAX_JSON_DEPTH = 64
# C0 controls and DEL: never part of a name, an identifier, a cursor or a time.
_CONTROL = frozenset(chr(c) for c in range(0x20)) | {"\x7f"}


def utc_instant(value: datetime | None, field: str) -> datetime | None:
    """``value`` in UTC, or ``InvalidInputError`` naming ``field``.

    Refused: a time without a zone (it would be read in a zone nobody chose) and a time whose
    UTC form is outside the years 1–9999 (``9999-12-31T23:59:59-01:00``).
    """
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInputError(
            "needs a time zone, e.g. 2026-03-04T02:13:00Z or +01:00", field=field
        )
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise InvalidInputError(
            f"{value.isoformat()} is outside the years 1 to 9999 once converted to UTC",
            field=field,
        ) from exc


def control_character_in(text: str) -> str | None:
    """The first control character in ``text`` (as ``U+XXXX``), or None."""
    for char in text:
        if char in _CONTROL:
            return f"U+{ord(char):04X}"
    return None


async def refuse_control_characters(request: Request) -> None:
    """App-wide dependency: no query or path parameter (name or value) holds a control char.

    ``async``: it does no I/O, and a plain ``def`` dependency would cost every request a hop to
    the threadpool."""
    pairs = [*request.query_params.multi_items(), *request.path_params.items()]
    for name, value in pairs:
        for text in (name, str(value)):
            found = control_character_in(text)
            if found is not None:
                raise InvalidInputError(
                    f"contains the control character {found}; remove it", field=_printable(name)
                )


def _printable(name: str) -> str:
    return "".join(c if c not in _CONTROL else "?" for c in name)[:64] or "query"


def json_body_problem(raw: bytes, *, max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """Why ``raw`` must not reach the JSON parser, or None.

    A single pass with a counter, no recursion and no parsing: nesting deeper than
    ``max_depth``, a ``\\u0000`` escape, or a lone UTF-16 surrogate escape. Anything else
    (including malformed JSON) is left to the parser, which reports it as a 422.
    """
    # Fast path, at C speed: with no ``\u`` escape and fewer brackets in all than the limit
    # (strings included, so an over-count), neither problem can be present. An Argo call's
    # body always takes it (the byte loop below cost ~16 µs for its 160 bytes).
    if b"\\u" not in raw and raw.count(b"[") + raw.count(b"{") <= max_depth:
        return None
    return _scanned_body_problem(raw, max_depth)


def _scanned_body_problem(raw: bytes, max_depth: int) -> str | None:
    depth = 0
    in_string = False
    index = 0
    size = len(raw)
    pending_high = False  # the previous escape was a high surrogate awaiting its low half
    while index < size:
        byte = raw[index]
        if in_string:
            if byte == 0x5C:  # backslash
                escape = raw[index + 1 : index + 2]
                if escape == b"u":
                    code = _hex4(raw[index + 2 : index + 6])
                    if code is not None:
                        if code == 0:
                            return "a string contains the NUL character (\\u0000)"
                        if pending_high and 0xDC00 <= code <= 0xDFFF:
                            pending_high = False
                        elif pending_high or 0xDC00 <= code <= 0xDFFF:
                            return "a string contains a lone UTF-16 surrogate escape"
                        else:
                            pending_high = 0xD800 <= code <= 0xDBFF
                        index += 6
                        continue
                if pending_high:
                    return "a string contains a lone UTF-16 surrogate escape"
                index += 2
                continue
            if pending_high:
                return "a string contains a lone UTF-16 surrogate escape"
            if byte == 0x22:  # closing quote
                in_string = False
            index += 1
            continue
        if byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > max_depth:
                return f"JSON nested deeper than {max_depth} levels"
        elif byte in (0x5D, 0x7D):
            depth -= 1
        index += 1
    return None


def _hex4(chunk: bytes) -> int | None:
    if len(chunk) != 4:
        return None
    try:
        return int(chunk, 16)
    except ValueError:
        return None


def _parsed_as_json(content_type: str | None) -> bool:
    # The same rule FastAPI uses to decide that a body is JSON: no content type, or
    # application/json, or application/*+json.
    if not content_type:
        return True
    message = email.message.Message()
    message["content-type"] = content_type
    if message.get_content_maintype() != "application":
        return False
    subtype = message.get_content_subtype()
    return subtype == "json" or subtype.endswith("+json")


class JsonBodyGuardMiddleware:
    """Reads a JSON request body, refuses it with 422 when :func:`json_body_problem` objects,
    and otherwise replays it to the app unchanged.

    Installed inside ``BodyLimitMiddleware``, so the body it buffers is already bounded.
    """

    def __init__(self, app: ASGIApp, *, max_depth: int = MAX_JSON_DEPTH) -> None:
        self.app = app
        self.max_depth = max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        content_type = headers.get(b"content-type")
        if content_type != b"application/json" and not _parsed_as_json(
            content_type.decode("latin-1") if content_type else None
        ):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                await self.app(scope, _replay([message]), send)
                return
            chunks.append(message.get("body", b""))
            more = bool(message.get("more_body", False))
        body = b"".join(chunks)
        problem = json_body_problem(body, max_depth=self.max_depth)
        if problem is not None:
            await _refuse(send, problem)
            return
        replayed: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]
        await self.app(scope, _replay(replayed, then=receive), send)


def _replay(messages: list[Message], then: Receive | None = None) -> Receive:
    queue = list(messages)

    async def receive() -> Message:
        if queue:
            return queue.pop(0)
        if then is not None:
            return await then()
        return {"type": "http.disconnect"}

    return receive


async def _refuse(send: Send, problem: str) -> None:
    body = json.dumps(
        {"error": {"code": "invalid_input", "message": problem, "field": "body"}}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 422,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
