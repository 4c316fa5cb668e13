"""HTTP plumbing of the independent provider: bounded bodies, strict parsing, the four error
envelopes of the draft (flat, typed, status, OAuth) and the Bearer challenge."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tests.independent._jws import strict_loads

__all__ = [
    "MAX_BODY",
    "BodyTooLarge",
    "flat_error",
    "oauth_error",
    "parse_form",
    "parse_json_object",
    "read_body",
    "status_error",
    "typed_error",
]

MAX_BODY = 1024 * 1024  # PRV-PRO-012: the provider's own limit; larger bodies get 413


class BodyTooLarge(Exception):
    pass


async def read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise BodyTooLarge
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise BodyTooLarge
    return body


def parse_json_object(body: bytes) -> dict[str, Any] | None:
    """The body as a JSON object, or None (malformed, duplicate members, not an object)."""
    try:
        value = strict_loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def parse_form(body: bytes) -> dict[str, str] | None:
    """application/x-www-form-urlencoded; None when a parameter repeats (RFC 6749 §3.2)."""
    try:
        pairs = parse_qsl(body.decode("ascii"), keep_blank_values=True, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        return None
    form: dict[str, str] = {}
    for key, value in pairs:
        if key in form:
            return None
        form[key] = value
    return form


def _json(status: int, content: Any, headers: dict[str, str] | None) -> JSONResponse:
    return JSONResponse(content, status_code=status, headers=headers)


def flat_error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    """health, services (and deep_links' flat variant): {error: {code, message}}."""
    return _json(status, {"error": {"code": code, "message": message}}, headers)


def typed_error(
    status: int,
    code: str,
    message: str,
    request_id: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    """account_requests: {id?, type: error, error: {code, message}}."""
    body: dict[str, Any] = {"type": "error", "error": {"code": code, "message": message}}
    if request_id:
        body["id"] = request_id
    body.update(extra)
    return _json(status, body, headers)


def status_error(
    status: int,
    code: str,
    message: str,
    resource_id: str = "",
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    """resource endpoints: {status: error, id, error: {code, message}} (+ cap when relayed)."""
    body: dict[str, Any] = {
        "status": "error",
        "id": resource_id,
        "error": {"code": code, "message": message},
    }
    body.update(extra)
    return _json(status, body, headers)


def oauth_error(
    status: int, error: str, description: str, headers: dict[str, str] | None = None
) -> Response:
    """token and revocation endpoints: RFC 6749 §5.2."""
    merged = {"Cache-Control": "no-store", "Pragma": "no-cache", **(headers or {})}
    return _json(status, {"error": error, "error_description": description}, merged)
