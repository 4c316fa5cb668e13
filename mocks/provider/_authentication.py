"""Caller authentication: who sent a provisioning call, and whether it may be believed.

* app-0.1d: the `Stripe-Signature` HMAC over the raw body with the shared secret, plus the
  `API-Version` header (PostHog's provider, wire-facts §1.5).
* app-next: the `APP-Attestation` JWS, verified against the orchestrator's JWKS (issuer,
  audience, lifetime, replay, body binding: `wire.attestation.verify_attestation`).

Failures answer with the profile's `invalid_signature` / `invalid_api_version` codes; the
route wrapper renders them in the flat envelope on every endpoint.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519
from starlette.requests import Request

from mocks._core.http import HTTPProblem
from mocks.faults import FaultName
from mocks.provider._context import Caller, ProviderContext
from mocks.provider._orchestrator import OrchestratorLink
from wire import jose, stripe_signature
from wire.attestation import REQUIRED_CLAIMS, verify_attestation

__all__ = ["CallerAuthentication"]

SIGNATURE_FAULTS: tuple[FaultName, ...] = (
    "empty-signature-accepted",
    "signature-result-ignored",
    "attestation-hs256-accepted",
    "psychic-signature-accepted",
    "jwk-header-honoured",
    "typ-not-checked",
    "crit-ignored",
    "duplicate-claims-last-wins",
    "typ-compared-exactly",
)
"""Faults of the attestation signature step; any of them swaps in `_faulty_signature`."""


class CallerAuthentication:
    def __init__(self, ctx: ProviderContext, orchestrator: OrchestratorLink) -> None:
        self.ctx = ctx
        self.orchestrator = orchestrator
        self.params = ctx.params
        self.faults = ctx.faults

    async def authenticate(self, request: Request, raw: bytes) -> Caller:
        """The caller of a signed endpoint, or an HTTPProblem (version, signature)."""
        if not self.ctx.settings.verify_requests:
            return unverified_caller(request.headers.get(self.params.attestation_header))
        self.check_version(request)
        if not self.ctx.next:
            signature = request.headers.get(self.params.signature_header)
            if signature is None and self.faults.active("signature-optional"):
                return Caller()  # verifies a signature only when one is sent
            if self.faults.active("bearer-skips-signature") and "authorization" in request.headers:
                return Caller()  # takes the bearer token as enough authentication
            self.verify_hmac(request, raw)
            return Caller()
        token = request.headers.get(self.params.attestation_header)
        if token is None and self.faults.active("attestation-optional"):
            return Caller()  # the middleware verifies an attestation only when one is sent
        claims = await self.verify_attestation(token, raw)
        return Caller(
            issuer=str(claims["iss"]),
            subject=str(claims["sub"]),
            email=claims.get("email") if isinstance(claims.get("email"), str) else None,
            email_verified=claims.get("email_verified") is True,
        )

    def check_version(self, request: Request) -> None:
        expected = self.params.api_version
        version = request.headers.get(self.params.version_header)
        if version != expected and not self.faults.active("ignore-api-version"):
            error = self.params.error("invalid_api_version")
            raise HTTPProblem(
                error.status, error.code, f"Supported {self.params.version_header}s: {expected}"
            )

    # --- app-0.1d: Stripe-Signature -------------------------------------------------------
    def verify_hmac(self, request: Request, raw: bytes) -> None:
        if not self.ctx.settings.verify_requests:
            return
        tolerance = (
            10**9 if self.faults.active("accept-stale-signature") else self.params.hmac_tolerance
        )
        header = request.headers.get(self.params.signature_header)
        if header and self.faults.active("crash-on-malformed-signature"):
            _hand_rolled_signature_parse(header)
        if header and self.faults.active("first-v1-only"):
            header = _first_v1_only(header)
        try:
            stripe_signature.verify(
                header,
                raw,
                self.ctx.settings.hmac_secret,
                now=self.ctx.clock.timestamp(),
                tolerance=tolerance,
            )
        except stripe_signature.SignatureError as error:
            if error.reason == "mismatch" and self.faults.active("accept-bad-signature"):
                return
            error_code = self.params.error("invalid_signature")
            raise HTTPProblem(error_code.status, error_code.code, str(error)) from None

    # --- app-next: the attestation JWS ------------------------------------------------------
    async def verify_attestation(self, token: str | None, raw: bytes) -> dict[str, Any]:
        """The attestation's claims, verified; an HTTPProblem with the profile's
        invalid_signature code when it does not verify."""
        if not self.ctx.settings.verify_requests:
            try:
                return jose.unverified_parts(token or "")[1]
            except jose.JOSEError:
                return {"iss": "", "sub": ""}
        if token and self.faults.active("accept-alg-none"):
            try:
                header, claims, _ = jose.unverified_parts(token)
            except jose.JOSEError:
                header, claims = {}, {}
            if str(header.get("alg", "")).lower() == "none":
                return claims
        faults = self.faults
        for attempt in range(2):
            keys = await self.orchestrator.keys_to_verify(
                token,
                refresh=attempt == 1,
                trust_header_keys=faults.active("jku-header-honoured"),
            )
            try:
                return verify_attestation(
                    token,
                    keys=keys,
                    issuer=self.ctx.settings.orchestrator_issuer,
                    audience=self.ctx.resource_id,
                    body=raw,
                    now=self.ctx.clock.timestamp(),
                    replay=None
                    if faults.active("accept-replayed-attestation")
                    else self.ctx.replay,
                    check_body=not faults.active("skip-body-binding"),
                    check_audience=not faults.active("accept-wrong-aud"),
                    verify_signature=self._signature,
                    same_issuer=self._same_issuer if faults.active("issuer-normalised") else None,
                    # .NET's default clock skew: five minutes, where APP allows at most 60 s
                    leeway=300 if faults.active("five-minute-leeway") else 30,
                    max_lifetime=86400
                    if faults.active("attestation-lifetime-unchecked")
                    else self.params.attestation_lifetime,
                    # PyJWT's default: exp is checked when present, never required
                    require=tuple(c for c in REQUIRED_CLAIMS if c != "exp")
                    if faults.active("exp-not-required")
                    else REQUIRED_CLAIMS,
                    algorithms=self.params.algorithms,
                    header_name=self.params.attestation_header,
                )
            except jose.JOSEError as error:
                if error.reason == "unknown_kid" and attempt == 0:
                    continue  # the orchestrator may have rotated its keys: refetch once
                refused = self.params.error("invalid_signature")
                raise HTTPProblem(
                    refused.status, refused.code, f"attestation refused: {error}"
                ) from None
        raise AssertionError("unreachable")

    def _same_issuer(self, iss: Any) -> bool:
        """The issuer-normalised fault: iss compared after stripping '/' and case-folding."""
        trusted = self.ctx.settings.orchestrator_issuer.rstrip("/").casefold()
        return isinstance(iss, str) and iss.rstrip("/").casefold() == trusted

    def _signature(
        self,
        token: str,
        *,
        keys: Mapping[str, jose.PublicKey],
        algorithms: Sequence[str],
        typ: str,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The attestation signature step: `jose.verify_signature` in the reference mock;
        under a signature fault, a hand-rolled copy of it with the one mistake it names."""
        if not any(self.faults.active(name) for name in SIGNATURE_FAULTS):
            return jose.verify_signature(token, keys=keys, algorithms=algorithms, typ=typ)
        return self._faulty_signature(token, keys=keys, algorithms=algorithms, typ=typ)

    def _faulty_signature(
        self,
        token: str,
        *,
        keys: Mapping[str, jose.PublicKey],
        algorithms: Sequence[str],
        typ: str,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """A hand-rolled `jose.verify_signature` with the active fault's one mistake; every
        other rule stays as jose enforces it."""
        faults = self.faults
        if faults.active("duplicate-claims-last-wins"):
            header, claims, signature = _lenient_parts(token)
        else:
            header, claims, signature = jose.unverified_parts(token)
        head, body, _ = token.split(".")
        signing_input = f"{head}.{body}".encode("ascii")
        alg, kid = header.get("alg"), header.get("kid")
        if faults.active("jwk-header-honoured") and isinstance(header.get("jwk"), dict):
            # CVE-2018-0114: the key embedded in the token's own header is trusted
            keys = {**keys, **jose.parse_jwks({"keys": [header["jwk"]]})}
        confused = faults.active("attestation-hs256-accepted") and alg == "HS256" and kid in keys
        if confused and _hs256_with_public_key(keys[str(kid)], signing_input, signature):
            return header, claims
        if not isinstance(alg, str) or alg not in algorithms:
            raise jose.JOSEError("alg_not_allowed", f"alg {alg!r} is not allowed")
        if "crit" in header and not faults.active("crit-ignored"):
            raise jose.JOSEError("crit_not_understood", "crit names unknown extensions")
        header_typ = header.get("typ")
        typ_ok = isinstance(header_typ, str) and (
            header_typ == typ
            if faults.active("typ-compared-exactly")
            else header_typ.lower().removeprefix("application/") == typ.lower()
        )
        if not typ_ok and not faults.active("typ-not-checked"):
            raise jose.JOSEError("wrong_typ", f"typ {header_typ!r} is not {typ!r}")
        if not isinstance(kid, str) or kid not in keys:
            raise jose.JOSEError("unknown_kid", f"kid {str(kid)[:64]!r} is not trusted")
        key = keys[kid]
        r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        psychic = alg == "ES256" and len(signature) == 64 and (not r or not s)
        if psychic and faults.active("psychic-signature-accepted"):
            # CVE-2022-21449: the verifier follows the header's alg and never range-checks
            # r and s, so r = s = 0 satisfies its equation for any key
            return header, claims
        if key.alg != alg:
            raise jose.JOSEError("alg_not_allowed", f"key {kid!r} is for {key.alg}, not {alg}")
        if not signature and faults.active("empty-signature-accepted"):
            return header, claims  # `if signature: verify(...)`: nothing to verify, so valid
        try:
            key.verify(signature, signing_input)
        except jose.JOSEError:
            # a verify() that answers False instead of raising, its result never read; only
            # the signature's length is checked
            if not (faults.active("signature-result-ignored") and len(signature) == 64):
                raise
        return header, claims


def unverified_caller(token: str | None) -> Caller:
    """The suite's instrument (verify_requests off): the attestation's claims, unverified."""
    try:
        _, claims, _ = jose.unverified_parts(token or "")
    except jose.JOSEError:
        return Caller()
    email = claims.get("email")
    return Caller(
        issuer=str(claims.get("iss")),
        subject=str(claims.get("sub")),
        email=email if isinstance(email, str) else None,
        email_verified=claims.get("email_verified") is True,
    )


def _hand_rolled_signature_parse(header: str) -> None:
    """The crash-on-malformed-signature fault: `garbage` or `t=abc` raises, and the error
    escapes to the framework's 500 handler."""
    try:
        elements = dict(item.split("=", 1) for item in header.split(","))
        int(elements["t"]), elements["v1"]
    except (ValueError, KeyError):
        raise HTTPProblem(500, "server_error", "internal server error") from None


def _first_v1_only(header: str) -> str:
    """The first-v1-only fault: compares the first v1 it finds and drops the rest (secret
    rotation breaks)."""
    parts = header.split(",")
    signatures = [part for part in parts if part.strip().startswith("v1=")]
    return ",".join([part for part in parts if not part.strip().startswith("v1=")] + signatures[:1])


def _hs256_with_public_key(key: jose.PublicKey, signing_input: bytes, signature: bytes) -> bool:
    """The attestation-hs256-accepted fault (algorithm confusion): the header picks HMAC,
    keyed with the public key's text."""
    public = key.key
    if not isinstance(public, ed25519.Ed25519PublicKey):
        return False
    secret = jose.b64url_encode(public.public_bytes_raw()).encode()
    mac = hmac.new(secret, signing_input, hashlib.sha256).digest()
    return hmac.compare_digest(mac, signature)


def _lenient_parts(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    """The duplicate-claims-last-wins fault: a JWS split and parsed with Python's json, where
    a repeated member silently keeps its last value."""
    parts = token.split(".") if isinstance(token, str) else []
    if len(parts) != 3:
        raise jose.JOSEError("malformed", "compact JWS has 3 segments")
    try:
        header = json.loads(jose.b64url_decode(parts[0]))
        claims = json.loads(jose.b64url_decode(parts[1]))
    except ValueError:
        raise jose.JOSEError("malformed", "header or claims are not JSON") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise jose.JOSEError("malformed", "header and claims must be JSON objects")
    return header, claims, jose.b64url_decode(parts[2])
