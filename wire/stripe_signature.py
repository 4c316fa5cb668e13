"""The APP 0.1d request signature: `Stripe-Signature: t=<unix>,v1=<hex>`.

`v1` is the lowercase hex HMAC-SHA256 of `"{t}.{raw body}"` under the orchestrator's shared
signing secret, accepted within 300 seconds of the verifier's clock — the scheme of Stripe
webhooks, as PostHog's provider implements it
(PostHog/posthog ee/partners/stripe/api/provisioning/signature.py). Several `v1` entries may
be present (secret rotation); one match is enough.
"""

from __future__ import annotations

import hashlib
import hmac
import re

__all__ = ["TOLERANCE_SECONDS", "SignatureError", "sign", "verify"]

TOLERANCE_SECONDS = 300
_ELEMENT = re.compile(r"([a-z0-9]+)=([^,]*)")


class SignatureError(ValueError):
    """Why a signature was refused; `reason` is stable: missing, malformed, expired, mismatch."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    signed = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The header value for `body` signed at `timestamp`."""
    return f"t={timestamp},v1={_mac(secret, timestamp, body)}"


def verify(
    header: str | None,
    body: bytes,
    secret: str,
    *,
    now: int,
    tolerance: int = TOLERANCE_SECONDS,
) -> int:
    """Check a header against the raw body; return its timestamp or raise `SignatureError`."""
    if not header:
        raise SignatureError("missing", "no Stripe-Signature header")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        match = _ELEMENT.fullmatch(part.strip())
        if match is None:
            raise SignatureError(
                "malformed", f"Stripe-Signature element {part[:40]!r} is not key=value"
            )
        key, value = match.groups()
        if key == "t":
            if timestamp is not None or not value.isdigit() or len(value) > 12:
                raise SignatureError("malformed", "Stripe-Signature needs exactly one numeric t=")
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        raise SignatureError("malformed", "Stripe-Signature needs t= and at least one v1=")
    if abs(now - timestamp) > tolerance:
        raise SignatureError(
            "expired",
            f"timestamp {timestamp} is {now - timestamp} s from now (tolerance {tolerance} s)",
        )
    expected = _mac(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, candidate) for candidate in candidates):
        raise SignatureError("mismatch", "no v1 signature matches the body")
    return timestamp
