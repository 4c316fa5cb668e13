"""Caller authentication: who sent a provisioning call, and whether it may be believed.

* app-0.1d: the `Stripe-Signature` HMAC over the raw body with the shared secret, plus the
  `API-Version` header (PostHog's provider, wire-facts §1.5).
* app-next: the `APP-Attestation` JWS, verified against the orchestrator's JWKS (signature,
  issuer, audience, lifetime, replay, body binding): PyJWT for the standard parts, so the
  suite's signer (`wire.jose`) is not also the judge of its own tokens (`_attestation`).

Failures answer with the profile's `invalid_signature` / `invalid_api_version` codes; the
route wrapper renders them in the flat envelope on every endpoint.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from mocks._core.http import HTTPProblem
from mocks.provider._attestation import SIGNATURE_FAULTS, FaultySignature, verify_attestation
from mocks.provider._context import Caller, ProviderContext
from mocks.provider._orchestrator import OrchestratorLink
from wire import jose, stripe_signature
from wire.attestation import REQUIRED_CLAIMS

__all__ = ["CallerAuthentication"]


class CallerAuthentication:
    def __init__(self, ctx: ProviderContext, orchestrator: OrchestratorLink) -> None:
        self.ctx = ctx
        self.orchestrator = orchestrator
        self.params = ctx.params
        self.faults = ctx.faults
        self._faulty_signature = FaultySignature(ctx.faults)

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
                return verify_attestation(  # PyJWT's standard verification (_attestation)
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
                    signature_fault=self._faulty_signature
                    if any(faults.active(name) for name in SIGNATURE_FAULTS)
                    else None,
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
