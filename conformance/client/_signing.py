"""How the suite signs what it sends as the orchestrator, written from the wire itself.

- app-0.1d, `Stripe-Signature` (PostHog `signature.py`; Stripe's webhook scheme,
  https://docs.stripe.com/webhooks#verify-manually): `t=<unix seconds>,v1=<hex>` where the hex
  is the lowercase HMAC-SHA256, under the shared secret, of the ASCII timestamp, a `.`, and the
  raw body bytes. Elements are joined by `,` with no spaces (PostHog splits without stripping).
  While a secret rotates, a header may carry several `v1` values; any one may match.
- app-next, `APP-Attestation` (DESIGN.md §2 item 1): a compact JWS, `typ
  app-attestation+jwt`, claims `iss`, `sub`, `aud` (the provider's base URL), `iat`, `exp`,
  a fresh `jti`, `body_sha256` (base64url SHA-256 of the raw body, no padding) and the
  user's `email`, `email_verified` and `orchestrator_account`.

Kept apart from the mocks' own signing and verifying code on purpose: a mistake shared by
the suite's signer and the mock provider's verifier would cancel out in the self-test.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from typing import Any

from wire import jose

__all__ = ["ATTESTATION_TYP", "attestation", "stripe_signature", "stripe_v1"]

ATTESTATION_TYP = "app-attestation+jwt"


def stripe_v1(secret: str, timestamp: int, raw: bytes) -> str:
    """The `v1` value for `raw` signed at `timestamp`."""
    signed = str(timestamp).encode("ascii") + b"." + raw
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def stripe_signature(
    secret: str, raw: bytes, timestamp: int, *, other_v1: Sequence[str] = ()
) -> str:
    """The header value; `other_v1` are further `v1` values placed before the real one (as a
    rotating orchestrator signs with the old secret and the new)."""
    values = [*other_v1, stripe_v1(secret, timestamp, raw)]
    return ",".join([f"t={timestamp}", *(f"v1={value}" for value in values)])


def attestation(
    key: jose.SigningKey,
    *,
    issuer: str,
    audience: str,
    subject: str,
    raw: bytes,
    now: int,
    lifetime: int,
    claims: dict[str, Any] | None = None,
) -> str:
    """A fresh attestation of `raw`, valid from `now` for `lifetime` seconds."""
    payload: dict[str, Any] = {
        "iss": issuer,
        "sub": subject,
        "aud": audience,
        "iat": now,
        "exp": now + lifetime,
        "jti": secrets.token_urlsafe(16),
        "body_sha256": jose.b64url_encode(hashlib.sha256(raw).digest()),
        **(claims or {}),
    }
    return jose.sign(payload, key, typ=ATTESTATION_TYP)
