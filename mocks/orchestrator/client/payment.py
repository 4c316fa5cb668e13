"""Paying a provider: payment tokens minted under the user's monthly cap, the payment
credentials of a paid call, and the answer to a cap refusal (DESIGN §2.5).

app-next pays with an `app_payment_token` (a JWS this orchestrator signs and later redeems);
app-0.1d with a Stripe shared payment token whose usage limit the orchestrator holds.
"""

from __future__ import annotations

import secrets
from typing import Any

from mocks.orchestrator.client._records import AddOutcome, ProviderRecord, cap_outcome
from mocks.orchestrator.client.session import Session
from mocks.orchestrator.ledger import CapExceeded
from wire import jose
from wire.attestation import PAYMENT_TOKEN_TYP, payment_token_claims

__all__ = ["Payments"]

_TEST_CARD = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "314"}


class Payments:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.core = session.core
        self.faults = session.faults
        self.params = session.params

    def mint_payment_token(
        self,
        provider: ProviderRecord,
        service_id: str,
        project_id: str,
        max_amount: int,
        *,
        plan: bool = False,
    ) -> str:
        """A payment token for one provider call, never above the remaining cap (DESIGN §2.5)."""
        if isinstance(max_amount, bool) or not isinstance(max_amount, int) or max_amount <= 0:
            raise ValueError("max_amount is a positive integer in minor units")
        user = self.session.user()
        state = self.core.ledger.state(user.id, provider.base_url)
        if max_amount > state.remaining and not self.faults.active("token-over-cap"):
            raise CapExceeded(state, max_amount)
        lifetime = (
            7200
            if self.faults.active("payment-token-long-lived")
            else self.params.payment_token_lifetime
        )
        audience = (
            "https://other-provider.example/api/"
            if self.faults.active("payment-token-wrong-aud")
            else provider.base_url
        )
        claims = payment_token_claims(
            issuer=self.core.announced_issuer,
            audience=audience,
            subject=user.id,
            now=self.core.clock.timestamp(),
            lifetime=lifetime,
            max_amount=max_amount,
            currency="eur"
            if self.faults.active("payment-token-foreign-currency")
            else self.core.ledger.currency,
            service_id=service_id,
            project_id=project_id,
        )
        if self.faults.active("payment-token-decimal-amount"):
            claims["max_amount"] = max_amount / 100
        if self.faults.active("payment-token-project-mismatch"):
            claims["project_id"] = "proj_" + secrets.token_hex(6)
        if self.faults.active("payment-token-carries-card"):
            claims["payment_method"] = {"type": "card", "card": dict(_TEST_CARD)}
        key = self.core.signing_key
        if plan and self.faults.active("payment-token-unpublished-key"):
            key = self.core.unpublished_key()  # a "subscription key" never published
        self.core.minted(claims)
        return jose.sign(claims, key, typ=PAYMENT_TOKEN_TYP)

    def credentials(
        self,
        provider: ProviderRecord,
        service_id: str,
        project_id: str,
        max_amount: int | None,
        *,
        plan: bool = False,
        price: int | None = None,
    ) -> dict[str, Any]:
        """The payment credentials of one paid call. app-next (ORC-PAY-015, ORC-CAP-010):
        a price the catalog states in minor units is the token's max_amount, and a remaining
        cap below it mints nothing; a price stated only as text gets the remaining cap."""
        if self.session.family == "app-0.1d":
            return self._shared_payment_token(provider, plan=plan)
        state = self.core.ledger.state(self.session.user().id, provider.base_url)
        amount = max_amount if max_amount is not None else state.remaining
        if max_amount is None and price is not None:
            if price > state.remaining:
                raise CapExceeded(state, price)
            if self.session.store.get("config", "token_amount") != "remaining":
                amount = price  # least authority; "remaining" keeps the whole remaining cap
            if self.faults.active("payment-token-below-price"):
                amount = price - 1
        if max_amount is None and self.faults.active("token-over-cap"):
            amount = state.limit  # the whole cap, as if nothing had been spent this month
        if amount <= 0:
            raise CapExceeded(state, max(amount, 1))
        token = self.mint_payment_token(provider, service_id, project_id, amount, plan=plan)
        credentials = {"type": "app_payment_token", "app_payment_token": token}
        if self.faults.active("payment-credentials-with-spt"):
            credentials["stripe_payment_token"] = "spt_" + secrets.token_hex(12)
        return credentials

    def _shared_payment_token(self, provider: ProviderRecord, *, plan: bool) -> dict[str, Any]:
        # 0.1d charges through Stripe's shared payment token, whose usage limit the
        # orchestrator holds: a month with nothing left under the cap mints no token.
        user = self.session.user()
        state = self.core.ledger.state(user.id, provider.base_url)
        if state.remaining <= 0:
            raise CapExceeded(state, 1)
        legacy = plan and self.faults.active("spt-wrong-prefix")  # a card token for plans
        shared = ("tok_" if legacy else "spt_") + secrets.token_hex(12)
        if self.faults.active("spt-reused"):
            store = self.session.store
            shared = store.get("spt_reused", user.id) or shared
            store.put("spt_reused", user.id, shared)
        return {"type": "stripe_payment_token", "stripe_payment_token": shared}

    def capped(
        self, provider: ProviderRecord, cap: dict[str, Any], *, at_mint: bool = False
    ) -> AddOutcome:
        """The agent's answer to a cap refusal: the figures and a next step for the human."""
        outcome = cap_outcome(provider, cap)
        if self.faults.active("cap-refusal-without-next-step"):
            outcome.data.pop("cap", None)
            outcome.next_steps = []
        if at_mint and self.faults.active("cap-raised-on-refusal"):
            # "helpfully" makes room for the retry: only the human may do this (ORC-CAP-008)
            limit = int(cap.get("limit") or 0) + self.params.default_cap.limit
            self.core.ledger.set_limit(self.session.user().id, provider.base_url, limit)
        return outcome
