"""app-next's signed claims: the `APP-Attestation` JWS and the payment token, built and verified.

DESIGN.md §2 (app-next, items 1 and 4): every orchestrator → provider call, and every
provider → orchestrator redemption, carries a compact JWS in the attestation header with
`typ: app-attestation+jwt`, `alg` EdDSA or ES256, claims `iss`, `sub`, `aud` (one value: the
callee's base URL), `iat`, `exp` (at most the profile's `attestation_lifetime` after `iat`),
single-use `jti` and `body_sha256` binding it to the raw body. Verification order: signature
with the caller's allow-list (`wire.jose`), claims with exact `iss`/`aud`, body binding, then
the replay check — so a replay of a *valid* token is what `jti` rejects, not a forgery.

A payment token (§2.5) is a JWS with `typ: app-payment+jwt` whose claims bind an amount
ceiling in minor units, a currency, a service and a project to one user and one provider.

Everything a profile decides (the header's name, lifetimes, the algorithm allow-list) is an
argument: callers pass their profile's `[parameters]`. What needs state — remembering which
`jti` was used — is passed in as a `ReplayGuard` (the mocks keep one in their store).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from wire import jose

__all__ = [
    "ATTESTATION_TYP",
    "PAYMENT_TOKEN_CLAIMS",
    "PAYMENT_TOKEN_TYP",
    "REQUIRED_CLAIMS",
    "ReplayGuard",
    "SignatureVerifier",
    "attestation_claims",
    "mint_attestation",
    "payment_token_claims",
    "verify_attestation",
]

ATTESTATION_TYP = "app-attestation+jwt"
PAYMENT_TOKEN_TYP = "app-payment+jwt"
REQUIRED_CLAIMS = ("iss", "sub", "aud", "exp", "iat", "jti", "body_sha256")
"""The claims every attestation carries."""
PAYMENT_TOKEN_CLAIMS = ("iss", "aud", "sub", "jti", "iat", "exp", "max_amount", "currency")
"""The claims a redeemer needs in every payment token (a provider needs `service_id` too)."""


class SignatureVerifier(Protocol):
    """The signature step: `jose.verify_signature`'s shape (header, claims) or `JOSEError`."""

    def __call__(
        self,
        token: str,
        *,
        keys: Mapping[str, jose.PublicKey],
        algorithms: Sequence[str],
        typ: str,
    ) -> tuple[dict[str, Any], dict[str, Any]]: ...


class ReplayGuard(Protocol):
    """Remembers each (issuer, jti) until its token expires."""

    def first_use(self, issuer: str, jti: str, exp: int, now: int) -> bool:
        """Record (issuer, jti); False when it was already recorded and is not yet expired."""
        ...


def attestation_claims(
    *,
    issuer: str,
    audience: str,
    subject: str,
    body: bytes,
    now: int,
    lifetime: int,
    claims: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The claims of a fresh attestation (a new `jti`), bound to `body`, valid `lifetime` s."""
    payload: dict[str, Any] = {
        "iss": issuer,
        "sub": subject,
        "aud": audience,
        "iat": now,
        "exp": now + lifetime,
        "jti": secrets.token_urlsafe(16),
        "body_sha256": jose.sha256_b64url(body),
    }
    payload.update(claims or {})
    return payload


def mint_attestation(
    key: jose.SigningKey,
    *,
    issuer: str,
    audience: str,
    subject: str,
    body: bytes,
    now: int,
    lifetime: int,
    claims: Mapping[str, Any] | None = None,
    header: Mapping[str, Any] | None = None,
) -> str:
    """A signed attestation of `body` (`attestation_claims`), header members added."""
    payload = attestation_claims(
        issuer=issuer,
        audience=audience,
        subject=subject,
        body=body,
        now=now,
        lifetime=lifetime,
        claims=claims,
    )
    return jose.sign(payload, key, typ=ATTESTATION_TYP, **dict(header or {}))


def verify_attestation(
    token: str | None,
    *,
    keys: Mapping[str, jose.PublicKey],
    issuer: str,
    audience: str,
    body: bytes,
    now: int,
    replay: ReplayGuard | None,
    algorithms: Sequence[str],
    max_lifetime: int,
    header_name: str,
    check_body: bool = True,
    check_audience: bool = True,
    verify_signature: SignatureVerifier = jose.verify_signature,
    same_issuer: Callable[[Any], bool] | None = None,
    leeway: int = 30,
    require: Sequence[str] = REQUIRED_CLAIMS,
) -> dict[str, Any]:
    """The verified claims, or `JOSEError` with a stable reason.

    `algorithms`, `max_lifetime` and `header_name` (named in the "missing" message) are the
    profile's. Every argument after `header_name` loosens or replaces one rule, and
    `replay=None` drops the replay check; only the mocks' named faults pass them.
    `same_issuer`, when given, decides whether the token's `iss` is the trusted `issuer`
    instead of exact comparison.
    """
    if not token:
        raise jose.JOSEError("missing", f"no {header_name} header")
    _, claims = verify_signature(
        token, keys=keys, algorithms=tuple(algorithms), typ=ATTESTATION_TYP
    )
    expected_issuer = issuer
    if same_issuer is not None and same_issuer(claims.get("iss")):
        expected_issuer = str(claims["iss"])
    jose.validate_claims(
        claims,
        issuer=expected_issuer,
        audience=audience if check_audience else _aud_of(claims),
        now=now,
        leeway=leeway,
        max_lifetime=max_lifetime,
        require=require,
    )
    if check_body:
        bound = claims.get("body_sha256")
        if not isinstance(bound, str) or not hmac.compare_digest(bound, jose.sha256_b64url(body)):
            raise jose.JOSEError("body_mismatch", "body_sha256 does not match the request body")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > 256:
        raise jose.JOSEError("missing_claim", "jti must be a non-empty string")
    # Without exp (only when `require` lets it pass) the jti is kept for the longest lifetime.
    exp = claims.get("exp", now + max_lifetime)
    if replay is not None and not replay.first_use(issuer, jti, int(exp), now):
        raise jose.JOSEError("replayed", f"jti {jti[:32]!r} was already used")
    return claims


def payment_token_claims(
    *,
    issuer: str,
    audience: str,
    subject: str,
    now: int,
    lifetime: int,
    max_amount: int,
    currency: str,
    service_id: str,
    project_id: str,
    jti: str | None = None,
) -> dict[str, Any]:
    """The claims of a payment token for one provider call: at most `max_amount` minor units
    of `currency`, for `service_id` in `project_id`, valid `lifetime` s (a fresh `jti`)."""
    return {
        "iss": issuer,
        "aud": audience,
        "sub": subject,
        "jti": jti if jti is not None else "pt_" + secrets.token_urlsafe(12),
        "iat": now,
        "exp": now + lifetime,
        "max_amount": max_amount,
        "currency": currency,
        "service_id": service_id,
        "project_id": project_id,
    }


def _aud_of(claims: Mapping[str, Any]) -> str:
    aud = claims.get("aud")
    if isinstance(aud, list) and len(aud) == 1:
        aud = aud[0]
    return aud if isinstance(aud, str) else ""
