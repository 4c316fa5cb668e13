"""app-next request signing: the `APP-Attestation` JWS, minted and verified.

DESIGN.md §2 (app-next, items 1 and 4): every orchestrator → provider call, and every
provider → orchestrator redemption, carries a compact JWS in `APP-Attestation` with
`typ: app-attestation+jwt`, `alg` EdDSA or ES256, claims `iss`, `sub`, `aud` (one value: the
callee's base URL), `iat`, `exp` (at most 300 s after `iat`), single-use `jti` and
`body_sha256` binding it to the raw body. Verification order: signature with the caller's
allow-list (conformance.jose), claims with exact `iss`/`aud`, body binding, then the replay
cache — so a replay of a *valid* token is what `jti` rejects, not a forgery.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from conformance import jose
from conformance.profiles import ProfileParameters
from conformance.schemas import default_store
from mocks._core.store import Store

__all__ = [
    "ATTESTATION_TYP",
    "PAYMENT_TOKEN_TYP",
    "REQUIRED_CLAIMS",
    "ReplayCache",
    "SignatureVerifier",
    "attestation_claims",
    "mint_attestation",
    "verify_attestation",
]

ATTESTATION_TYP = "app-attestation+jwt"
PAYMENT_TOKEN_TYP = "app-payment+jwt"
# Header name, lifetimes and the alg allow-list are profile parameters
# (schemas/<profile>/profile.toml [parameters]); callers pass the active profile's values,
# and a caller that passes none gets the built-in app-next's.
REQUIRED_CLAIMS = ("iss", "sub", "aud", "exp", "iat", "jti", "body_sha256")


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


class ReplayCache:
    """Seen `jti` values, kept until their token expires."""

    def __init__(self, store: Store, table: str = "seen_jti") -> None:
        self._store = store
        self._table = table

    def first_use(self, issuer: str, jti: str, exp: int, now: int) -> bool:
        """Record (issuer, jti); False when it was already recorded and is not yet expired."""
        key = f"{issuer}\x1f{jti}"
        with self._store.transaction():
            seen = self._store.get(self._table, key)
            if seen is not None and int(seen) > now:
                return False
            self._store.put(self._table, key, max(exp, now + 1))
        return True


def attestation_claims(
    *,
    issuer: str,
    audience: str,
    subject: str,
    body: bytes,
    now: int,
    lifetime: int | None = None,
    claims: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The claims of a fresh attestation (a new `jti`), bound to `body`."""
    lifetime = _builtin().attestation_lifetime if lifetime is None else lifetime
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
    lifetime: int | None = None,
    claims: Mapping[str, Any] | None = None,
    header: Mapping[str, Any] | None = None,
) -> str:
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
    replay: ReplayCache | None,
    check_body: bool = True,
    check_audience: bool = True,
    verify_signature: SignatureVerifier = jose.verify_signature,
    same_issuer: Callable[[Any], bool] | None = None,
    leeway: int = 30,
    max_lifetime: int | None = None,
    require: Sequence[str] = REQUIRED_CLAIMS,
    algorithms: Sequence[str] | None = None,
    header_name: str | None = None,
) -> dict[str, Any]:
    """The verified claims, or `JOSEError` with a stable reason.

    Every argument after `replay` loosens or replaces one rule (`replay=None` drops the replay
    cache); only the mocks' named faults pass them. `same_issuer`, when given, decides
    whether the token's `iss` is the trusted `issuer` instead of exact comparison.
    """
    defaults = _builtin()
    max_lifetime = defaults.attestation_lifetime if max_lifetime is None else max_lifetime
    if not token:
        raise jose.JOSEError("missing", f"no {header_name or defaults.attestation_header} header")
    _, claims = verify_signature(
        token,
        keys=keys,
        algorithms=tuple(algorithms or defaults.algorithms),
        typ=ATTESTATION_TYP,
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


def _builtin() -> ProfileParameters:
    return default_store().profile("app-next").params


def _aud_of(claims: Mapping[str, Any]) -> str:
    aud = claims.get("aud")
    if isinstance(aud, list) and len(aud) == 1:
        aud = aud[0]
    return aud if isinstance(aud, str) else ""
