"""The error envelopes an APP answer comes in, as plain data.

app-0.1d has four (wire-facts §1.5, PostHog `exceptions.py`): `flat_error` (health, catalog),
`typed_error` (account requests, OAuth-adjacent endpoints), `status_error` (provisioning,
with the resource id) and `oauth_error` (RFC 6749 §5.2 on the token endpoint). app-next
answers errors in RFC 9457 problem details (`problem`, media type `PROBLEM_JSON`). Which
envelope carries which code is the profile's `[parameters.error_codes]` map; the mocks
answer in these shapes and the schemas under `schemas/<profile>/error_*.schema.json` check
them.

    >>> typed_error("unknown_user", "no such user")
    {'type': 'error', 'error': {'code': 'unknown_user', 'message': 'no such user'}}
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = [
    "PROBLEM_JSON",
    "Envelope",
    "flat_error",
    "oauth_error",
    "problem",
    "status_error",
    "typed_error",
]

PROBLEM_JSON = "application/problem+json"
"""RFC 9457 §3's media type."""

Envelope = Callable[[str, str], dict[str, Any]]
"""An envelope builder: (code, message) -> the answer's body."""


def flat_error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def typed_error(code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"code": code, "message": message}}


def status_error(code: str, message: str, resource_id: str = "") -> dict[str, Any]:
    return {"status": "error", "id": resource_id, "error": {"code": code, "message": message}}


def oauth_error(code: str, message: str) -> dict[str, Any]:
    return {"error": code, "error_description": message}


_TITLES = {400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden",
           404: "Not Found", 405: "Method Not Allowed", 409: "Conflict", 413: "Content Too Large",
           415: "Unsupported Media Type", 422: "Unprocessable Content"}  # fmt: skip


def problem(status: int, code: str, message: str) -> dict[str, Any]:
    """RFC 9457 problem details, with the APP error code in the `code` extension member."""
    return {
        "type": f"https://provspec.invalid/problems/{code}",
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": message,
        "code": code,
    }
