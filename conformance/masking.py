"""Secrets never reach a report: how the recorder masks what it keeps.

Credential headers keep their scheme and a short fingerprint, JSON members that carry
secrets (tokens, keys, `access_configuration` values, payment tokens, PKCE verifiers) are
replaced, and so are form fields of the same names. Credentials also travel inside URLs: a
dashboard deep link's login token (`…/dashboard?login=…`, `…/login?token=…`), an OAuth
authorization code in a redirect's `Location` and in the callback the browser follows
(`?code=…`). Every query or fragment parameter with a credential-like name (`_SECRET_PARAM`)
is masked wherever a URL appears: the exchange's own URL, every header value, JSON strings,
form fields, free text and the verdicts the checks write.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx

__all__ = [
    "ATTESTATION_HEADERS",
    "CREDENTIAL_HEADERS",
    "MAX_BODY",
    "SECRET_HEADERS",
    "SECRET_MEMBERS",
    "SIGNING_HEADERS",
    "fingerprint",
    "mask_body",
    "mask_headers",
    "mask_text",
    "mask_values",
    "shows",
]

MAX_BODY = 16 * 1024
CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "set-cookie"})
SIGNING_HEADERS = frozenset({"stripe-signature", "app-attestation"})
"""The built-in profiles' signature and attestation headers."""
SECRET_HEADERS = CREDENTIAL_HEADERS | SIGNING_HEADERS
"""Masked in every run."""
ATTESTATION_HEADERS = frozenset({"app-attestation"})
"""Shown as their decoded header and claims (never their signature)."""


SECRET_MEMBERS = {
    "access_token",
    "refresh_token",
    "api_key",
    "code",
    "code_verifier",
    "client_secret",
    "confirmation_secret",
    "payment_token",
    "app_payment_token",
    "stripe_payment_token",
    "token",
    "password",
    "secret",
    "hmac_secret",
    "d",
}
SECRET_PARAM_NAMES = (
    r"(?:[a-z0-9.\-]*_)?"
    r"(?:token|secret|password|passwd|pwd|code|key|apikey|signature|sig|session|sessionid|sid"
    r"|ticket|otp|login|verifier|auth|jwt|assertion|credential|credentials)"
)
"""Parameter names whose values are credentials: `code`, `login`, `token`, `access_token`,
`api_key`, `code_verifier`, … (`code_challenge`, `state` and `login_hint` are not)."""
_SECRET_PARAM = re.compile(rf"(?i)(?<=[?&;#])({SECRET_PARAM_NAMES}=)(?!«)([^&#\s\"'<>\\]+)")
_SECRET_PARAM_NAME = re.compile(rf"(?i){SECRET_PARAM_NAMES}")
_TOKENISH = re.compile(r"\b(?:pm[akr]_|pha_|phr_|phc_|phx_|spt_|whsec_|sk_)[A-Za-z0-9_\-]{6,}")
_JWS = re.compile(r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*")


def fingerprint(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:8]


def _masked(value: str) -> str:
    return f"«masked {fingerprint(value)}»"


def shows(recorded: object, secret: str) -> bool:
    """Whether a value read from a recorded exchange is `secret`, in the clear or masked."""
    return recorded == secret or recorded == _masked(secret)


@functools.lru_cache(maxsize=8192)
def mask_text(text: str) -> str:
    """Mask token-shaped substrings in free text (error messages, CLI output, URLs): JWSs,
    known credential prefixes, and the values of credential-named URL parameters.

    Cached: a run masks the same header values and members thousands of times (a pure
    function of its text; ~13 % of a provider run's CPU before)."""
    text = _JWS.sub(lambda match: _masked(match.group(0)), text)
    text = _TOKENISH.sub(lambda match: _masked(match.group(0)), text)
    return _SECRET_PARAM.sub(lambda match: match.group(1) + _masked(match.group(2)), text)


def _secret_field(name: str) -> bool:
    return name in SECRET_MEMBERS or _SECRET_PARAM_NAME.fullmatch(name) is not None


def mask_values(text: str, values: Iterable[str]) -> str:
    """Mask known secret values (e.g. credentials the suite handed out) wherever they occur."""
    for value in sorted({v for v in values if len(v) >= 6}, key=len, reverse=True):
        text = text.replace(value, _masked(value))
    return mask_text(text)


_ERROR_CODE = re.compile(r"[a-z]+(?:_[a-z]+)*")


def _error_code(key: str, item: str, siblings: dict[str, Any]) -> bool:
    """An error envelope's code (`{"code": "invalid_signature", "message": …}`) is not an
    OAuth authorization code: kept, so evidence and replays show which error it was."""
    return (
        key == "code"
        and len(item) <= 64
        and _ERROR_CODE.fullmatch(item) is not None
        and bool({"message", "type", "error", "status"} & set(siblings))
    )


def _mask_json(value: Any, *, inside_credentials: bool = False) -> Any:
    if isinstance(value, dict):
        masked: dict[str, Any] = {}
        for key, item in value.items():
            if isinstance(item, str) and _error_code(key, item, value) and not inside_credentials:
                masked[key] = item
            elif isinstance(item, str) and (inside_credentials or key in SECRET_MEMBERS):
                masked[key] = _masked(item)
            else:
                masked[key] = _mask_json(
                    item,
                    inside_credentials=inside_credentials
                    or key in ("access_configuration", "variables"),
                )
        return masked
    if isinstance(value, list):
        return [_mask_json(item, inside_credentials=inside_credentials) for item in value]
    if isinstance(value, str):
        return mask_text(value)
    return value


def mask_body(raw: bytes, content_type: str) -> str:
    """A body as a report may show it (JSON members, form fields and free text masked).

    Cached (a pure function of its bytes and type): a run records the same answers again
    and again, a catalog hundreds of times, and parsing and masking one costs far more
    than hashing it. Only bodies up to `MAX_BODY` are kept: a cache holding a hostile
    megabyte answer per entry would hold the process's memory too."""
    if len(raw) > MAX_BODY:
        return _mask_body(bytes(raw), content_type)
    return _mask_body_cached(bytes(raw), content_type)


@functools.lru_cache(maxsize=1024)
def _mask_body_cached(raw: bytes, content_type: str) -> str:
    return _mask_body(raw, content_type)


def _mask_body(raw: bytes, content_type: str) -> str:
    if not raw:
        return ""
    clipped = raw[:MAX_BODY]
    note = f"\n«{len(raw) - MAX_BODY} more bytes not kept»" if len(raw) > MAX_BODY else ""
    text = clipped.decode("utf-8", errors="replace")
    if "json" in content_type or text.lstrip()[:1] in ("{", "["):
        try:
            return json.dumps(_mask_json(json.loads(text)), ensure_ascii=False) + note
        except (ValueError, RecursionError):  # RecursionError: a hostile, deeply nested body
            return mask_text(text) + note
    if "x-www-form-urlencoded" in content_type:
        pairs = [
            (k, _masked(v) if _secret_field(k) else mask_text(v))
            for k, v in parse_qsl(text, keep_blank_values=True)
        ]
        return urlencode(pairs) + note
    return mask_text(text) + note


def _decoded_jws(token: str) -> str:
    """A JWS shown as its header and claims (signed, not secret) with the signature masked,
    so evidence shows which claim broke a rule while the token cannot be replayed."""
    parts = token.split(".")
    if len(parts) != 3:
        return _masked(token)
    shown = []
    for part in parts[:2]:
        try:
            shown.append(
                base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)).decode("utf-8", "replace")
            )
        except (ValueError, UnicodeError):
            shown.append("«not base64url»")
    signature = "«empty signature»" if not parts[2] else _masked(parts[2])
    return f"header {shown[0]} claims {shown[1]} signature {signature}"


def mask_headers(
    headers: httpx.Headers,
    secret: frozenset[str] = SECRET_HEADERS,
    attestation: frozenset[str] = ATTESTATION_HEADERS,
) -> dict[str, str]:
    """Header values as a report may show them: `secret` ones masked (an Authorization keeps
    its scheme), `attestation` ones decoded without their signature, credentials in any other
    value (a Location carrying ?code=…) masked by name."""
    shown: dict[str, str] = {}
    for name, value in headers.multi_items():
        lower = name.lower()
        if lower in attestation:
            value = _decoded_jws(value)
        elif lower in secret:
            scheme = value.split(" ", 1)[0] if lower == "authorization" and " " in value else ""
            value = f"{scheme} {_masked(value)}".strip()
        else:
            value = mask_text(value)  # a Location carrying ?code=…, a Link, a Refresh
        shown[lower] = value if lower not in shown else f"{shown[lower]}, {value}"
    return shown
