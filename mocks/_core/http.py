"""Request reading and error answers shared by the mock ASGI apps (Starlette).

Every mock endpoint reads its body through `read_body` / `parse_json_object`, so malformed,
oversized or non-UTF-8 input becomes an `HTTPProblem` — answered in the endpoint's own error
envelope — and never a 500, never a traceback, and never a state change (parsing happens
before any handler touches the store). The envelopes themselves are data:
`wire.envelopes`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from wire import strictjson

__all__ = [
    "MAX_BODY_BYTES",
    "HTTPProblem",
    "json_response",
    "parse_form",
    "parse_json_object",
    "read_body",
]

MAX_BODY_BYTES = 64 * 1024

log = logging.getLogger("provspec.mock.http")


class HTTPProblem(Exception):
    """An error answer: status, error code, human message, and how to wrap it."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})


def json_response(
    body: Any,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    *,
    media_type: str = "application/json",
) -> Response:
    return JSONResponse(
        body, status_code=status, headers=dict(headers or {}), media_type=media_type
    )


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The raw body, refused past `limit` bytes without reading the rest into memory."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise HTTPProblem(400, "invalid_request", "Content-Length is not a number")
        if int(declared) > limit:
            raise HTTPProblem(413, "body_too_large", f"the body exceeds {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise HTTPProblem(413, "body_too_large", f"the body exceeds {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        # A client that gives up mid-upload is not a mock failure: one line, no traceback
        # (none at all when the server closed it for being too slow; that was logged).
        if "provspec.closed" not in request.scope:
            log.info(
                "%s %s: the client closed the connection before its body arrived",
                request.method,
                request.url.path[:200],
            )
        raise HTTPProblem(
            400, "client_disconnected", "the connection closed before the body arrived"
        ) from None
    return b"".join(chunks)


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """A JSON object parsed strictly (no duplicate keys, NaN, deep nesting)."""
    if not raw.strip():
        raise HTTPProblem(400, "invalid_request", "the body is empty; a JSON object is required")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPProblem(400, "body_not_readable", "the body is not UTF-8") from None
    try:
        value = strictjson.loads(text)
    except strictjson.StrictJSONError as error:
        raise HTTPProblem(
            400, "body_not_decodable", f"the body is not acceptable JSON: {error}"
        ) from None
    if not isinstance(value, dict):
        raise HTTPProblem(400, "invalid_request", "the body must be a JSON object")
    return value


def parse_form(raw: bytes) -> dict[str, str]:
    """A form-encoded body; a repeated parameter is refused (RFC 6749 §3.2)."""
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise HTTPProblem(400, "invalid_request", "the form body is not ASCII") from None
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text))
    except ValueError:
        raise HTTPProblem(400, "invalid_request", "the form body is malformed") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise HTTPProblem(400, "invalid_request", f"parameter {name!r} is repeated")
        form[name] = value
    return form
