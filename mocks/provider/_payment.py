"""Payment: what a paid service needs before it is provisioned.

* app-0.1d: a Stripe shared payment token, taken as opaque; the sandbox's stand-in for
  Stripe activates the tokens the mock orchestrator mints.
* app-next: an `app_payment_token` JWS from the orchestrator, verified (signature, issuer,
  audience, lifetime, service, project, user, currency, amount) and then redeemed at the
  orchestrator's `redemption_endpoint` with the provider's own attestation and an
  idempotency key; a spend-cap refusal is relayed with the profile's code.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import Any

import httpx

import mocks.provider.catalog as catalog
from mocks._core.http import HTTPProblem, parse_json_object
from mocks.provider._attestation import single_audience
from mocks.provider._context import ProviderContext
from mocks.provider._orchestrator import OrchestratorLink
from wire import jose
from wire.attestation import PAYMENT_TOKEN_CLAIMS, PAYMENT_TOKEN_TYP, mint_attestation
from wire.ssrf import SSRFError

__all__ = ["PaymentDesk"]

log = logging.getLogger("provspec.mock.provider")

# The sandbox's stand-in for Stripe activating a shared payment token: the tokens the mock
# orchestrator mints (spt_ + 24 hex digits) activate, anything else does not.
_SHARED_PAYMENT_TOKEN = re.compile(r"spt_[0-9a-f]{24}")


class PaymentDesk:
    def __init__(self, ctx: ProviderContext, orchestrator: OrchestratorLink) -> None:
        self.ctx = ctx
        self.orchestrator = orchestrator
        self.faults = ctx.faults
        self.tokens: list[str] = []
        """Every app-next payment token accepted, in order (`ProviderMock.tokens`)."""

    async def charge(
        self,
        credentials: Any,
        entry: catalog.Service,
        resource_id: str,
        project: Any,
        subject: str | None = None,
    ) -> None:
        """Takes payment for `entry` with `credentials`, or raises the refusal."""
        if not isinstance(credentials, dict):
            raise HTTPProblem(400, "requires_payment_credentials", f"{entry.id} is a paid service")
        if not self.ctx.next:
            self._shared_payment_token(credentials)
            return
        token = credentials.get("app_payment_token")
        if credentials.get("type") != "app_payment_token" or not isinstance(token, str):
            raise HTTPProblem(
                400, "requires_payment_credentials", "an app_payment_token is required"
            )
        claims = await self._verify_payment_token(token, entry, project, subject)
        self.tokens.append(token)
        if self.faults.active("skip-redemption") or not self.ctx.settings.redeem:
            return
        await self._redeem(token, claims, entry, resource_id)

    def _shared_payment_token(self, credentials: dict[str, Any]) -> None:
        """app-0.1d: the shared payment token activates, or the purchase is refused."""
        token = credentials.get("stripe_payment_token")
        spt = credentials.get("type") == "stripe_payment_token"
        if not spt and self.faults.active("non-spt-credentials-accepted"):
            return  # taken as a payment method already on file
        if (
            spt
            and isinstance(token, str)
            and token.startswith("spt_")
            and self.faults.active("spt-activated-after-provision")
        ):
            return  # activation runs after provisioning, and its failure is only logged
        if not spt or not isinstance(token, str) or _SHARED_PAYMENT_TOKEN.fullmatch(token) is None:
            raise HTTPProblem(
                400, "billing_activation_failed", "the shared payment token was refused"
            )

    async def _verify_payment_token(
        self, token: str, entry: catalog.Service, project: Any, subject: str | None = None
    ) -> dict[str, Any]:
        faults = self.faults
        for attempt in range(2):
            keys = await self.orchestrator.keys_to_verify(
                token,
                refresh=attempt == 1,
                trust_header_keys=faults.active("payment-token-header-key-honoured"),
            )
            try:
                claims = self._payment_token_signature(token, keys)
                audience = self.ctx.resource_id
                if faults.active("payment-token-aud-unchecked"):
                    audience = single_audience(claims)
                lifetime = self.ctx.params.payment_token_lifetime
                if faults.active("accept-long-lived-payment-token"):
                    lifetime = 86400  # only exp is checked; the 15-minute bound is forgotten
                jose.validate_claims(
                    claims,
                    issuer=self.ctx.settings.orchestrator_issuer,
                    audience=audience,
                    now=self.ctx.clock.timestamp(),
                    max_lifetime=lifetime,
                    require=(*PAYMENT_TOKEN_CLAIMS, "service_id"),
                )
                break
            except jose.JOSEError as error:
                if error.reason == "unknown_kid" and attempt == 0:
                    continue
                raise HTTPProblem(
                    400, "billing_activation_failed", f"payment token refused: {error}"
                ) from None
        self._check_purchase(claims, entry, project, subject)
        return claims

    def _check_purchase(
        self, claims: dict[str, Any], entry: catalog.Service, project: Any, subject: str | None
    ) -> None:
        """The verified token pays for this purchase: service, currency, user, project, price."""
        faults, currency = self.faults, self.ctx.currency
        amount = claims.get("max_amount")
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
            raise HTTPProblem(
                400, "billing_activation_failed", "max_amount must be an integer in minor units"
            )
        if claims.get("service_id") != entry.id and not faults.active(
            "payment-token-service-unchecked"
        ):
            raise HTTPProblem(
                400, "billing_activation_failed", "the payment token is for another service"
            )
        if claims.get("currency") != currency and not faults.active(
            "payment-token-currency-unchecked"
        ):
            raise HTTPProblem(
                400,
                "billing_activation_failed",
                f"the payment token's currency is not the price's ({currency})",
            )
        if (
            subject is not None
            and claims.get("sub") != subject
            and not faults.active("payment-token-sub-unchecked")
        ):
            raise HTTPProblem(
                400, "billing_activation_failed", "the payment token pays for another user"
            )
        if (
            project is not None
            and claims.get("project_id") != project
            and not faults.active("payment-token-project-unchecked")
        ):
            raise HTTPProblem(
                400, "billing_activation_failed", "the payment token is for another project"
            )
        if amount < entry.price and not faults.active("redeem-over-max-amount"):
            raise HTTPProblem(
                402,
                "amount_exceeds_token",
                f"{entry.id} costs {entry.price}; the token allows {amount}",
            )

    def _payment_token_signature(
        self, token: str, keys: Mapping[str, jose.PublicKey]
    ) -> dict[str, Any]:
        typ = PAYMENT_TOKEN_TYP
        if self.faults.active("payment-token-typ-unchecked"):
            # whatever typ the token says it is
            header_typ = jose.unverified_parts(token)[0].get("typ")
            typ = header_typ if isinstance(header_typ, str) else PAYMENT_TOKEN_TYP
        try:
            _, claims = jose.verify_signature(
                token, keys=keys, algorithms=self.ctx.params.algorithms, typ=typ
            )
        except jose.JOSEError as error:
            if error.reason != "bad_signature" or not self.faults.active(
                "payment-signature-unchecked"
            ):
                raise
            # verify() answered, and nobody read the answer
            claims = jose.unverified_parts(token)[1]
        return claims

    async def _redeem(
        self, token: str, claims: dict[str, Any], entry: catalog.Service, resource_id: str
    ) -> None:
        ctx, faults = self.ctx, self.faults
        endpoint = (await self.orchestrator.metadata())["metadata"].get("redemption_endpoint")
        if not isinstance(endpoint, str):
            raise HTTPProblem(
                502, "orchestrator_unreachable", "orchestrator metadata has no redemption_endpoint"
            )
        body = {
            "payment_token": token,
            # the fault: a rounding that charges one minor unit less than the price
            "amount": entry.price - 1 if faults.active("redeems-less-than-price") else entry.price,
            "currency": claims.get("currency", ctx.currency),
            "description": f"{ctx.settings.name} {entry.id}",
            "resource_id": resource_id,
        }
        raw = _canonical(body)
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json, application/problem+json",
        }
        if faults.active("idempotency-key-per-service"):
            # the key names the user and the service, not the payment: a second purchase
            # of the same service reuses the first one's key
            headers["Idempotency-Key"] = f"{claims.get('sub')}:{entry.id}"
        elif not faults.active("redeem-without-idempotency-key"):
            headers["Idempotency-Key"] = f"{claims['jti']}"
        if not faults.active("redeem-unsigned"):
            headers[ctx.params.attestation_header] = mint_attestation(
                ctx.signing_key,
                issuer=ctx.resource_id,
                audience=ctx.settings.orchestrator_issuer,
                subject=str(claims.get("sub", "")),
                body=raw,
                now=ctx.clock.timestamp(),
                lifetime=ctx.params.attestation_lifetime,
            )
        try:
            ctx.settings.ssrf.check_url(endpoint)
            async with ctx.client() as client:
                answer = await client.post(endpoint, content=raw, headers=headers)
        except (SSRFError, httpx.HTTPError) as error:
            raise HTTPProblem(
                502, "orchestrator_unreachable", f"redemption failed: {error}"
            ) from None
        if answer.status_code in (200, 201):
            return
        if answer.status_code >= 500 and faults.active("provision-on-redemption-error"):
            log.info("redemption failed (%s); provisioning now, charging later", answer.status_code)
            return
        self._refused(answer)

    def _refused(self, answer: httpx.Response) -> None:
        """The orchestrator's refusal of a redemption, relayed to the provider's caller."""
        try:
            refusal = parse_json_object(answer.content)
        except HTTPProblem:
            refusal = {}
        code = (
            refusal.get("code")
            if isinstance(refusal.get("code"), str)
            else "billing_activation_failed"
        )
        cap_code = self.ctx.params.error("spend_cap_exceeded")
        if code == cap_code.code:
            if self.faults.active("provision-on-cap-refusal"):
                return
            raise HTTPProblem(
                cap_code.status,
                cap_code.code,
                "the orchestrator refused the charge: the spend cap is reached",
                extra={"cap": refusal["cap"]} if isinstance(refusal.get("cap"), dict) else None,
            )
        raise HTTPProblem(
            402, str(code), f"the orchestrator refused the redemption ({answer.status_code})"
        )


def _canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
