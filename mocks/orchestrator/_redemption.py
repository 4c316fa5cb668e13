"""Redemptions and refunds, once the caller and the body are known: the payment token
verified, amount and currency held against it, then the single use and the spend cap
checked and the redemption recorded in one store transaction (DESIGN.md §2, app-next).
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from mocks._core.http import HTTPProblem
from mocks._core.store import Store
from mocks.faults import FaultSet
from mocks.orchestrator.ledger import CapExceeded, CapState, SpendLedger
from spec.profiles import ProfileParameters
from wire import jose
from wire.attestation import PAYMENT_TOKEN_CLAIMS, PAYMENT_TOKEN_TYP
from wire.clock import Clock, iso_utc
from wire.envelopes import problem

__all__ = ["Redemptions"]

REDEEMED = "redeemed_tokens"
REDEMPTIONS = "redemptions"
_MINTED = "minted_tokens"

Answer = tuple[int, dict[str, Any]]


class Redemptions:
    def __init__(
        self,
        *,
        store: Store,
        ledger: SpendLedger,
        clock: Clock,
        faults: FaultSet,
        params: ProfileParameters,
        issuer: str,
        payment_keys: Callable[[], dict[str, jose.PublicKey]],
    ) -> None:
        self.store = store
        self.ledger = ledger
        self.clock = clock
        self.faults = faults
        self.params = params
        self.issuer = issuer
        """The issuer payment tokens name (as announced: faults may skew it)."""
        self.payment_keys = payment_keys
        if faults.active("cap-charges-expired-tokens"):
            ledger.holds = self._expired_unredeemed

    def transaction(self) -> AbstractContextManager[Any]:
        # The cap-not-atomic fault drops the transaction that makes check-and-charge one step.
        if self.faults.active("cap-not-atomic"):
            return nullcontext()
        transaction: AbstractContextManager[Any] = self.store.transaction()
        return transaction

    def redeem(self, caller: str, body: dict[str, Any]) -> Answer:
        claims = self.verify_payment_token(str(body["payment_token"]), caller)
        amount, currency = int(body["amount"]), str(body["currency"])
        self._hold_to_token(claims, amount, currency)
        user, jti = str(claims["sub"]), str(claims["jti"])
        with self.transaction():
            used = self.store.get(REDEEMED, jti)
            if used is not None and not self.faults.active("redemption-reuses-token"):
                raise HTTPProblem(
                    402, "payment_token_used", "this payment token was already redeemed"
                )
            try:
                state = self._charge(user, caller, amount)
            except CapExceeded as refused:
                return self._cap_refusal(refused)
            redemption_id = "rdm_" + secrets.token_hex(8)
            record = {
                "id": redemption_id,
                "user": user,
                "provider": caller,
                "amount": amount,
                "currency": currency,
                "period": state.period,
                "refunded": 0,
                "jti": jti,
                "resource_id": body.get("resource_id"),
                "created": self.clock.timestamp(),
            }
            self.store.put(REDEMPTIONS, redemption_id, record)
            self.store.put(REDEEMED, jti, redemption_id)
        return 201, {
            "id": redemption_id,
            "object": "redemption",
            "amount": amount,
            "currency": currency,
            "status": "succeeded",
            "resource_id": body.get("resource_id"),
            "created": self.clock.timestamp()
            if self.faults.active("redemption-created-as-timestamp")
            else iso_utc(self.clock.timestamp()),
            "cap": state.as_json(),
        }

    def _hold_to_token(self, claims: dict[str, Any], amount: int, currency: str) -> None:
        """The amount within the token's max_amount, the currency the token's (402)."""
        if amount > int(claims["max_amount"]) and not self.faults.active(
            "redemption-over-max-amount"
        ):
            raise HTTPProblem(
                402,
                "amount_exceeds_token",
                f"{amount} exceeds the token's max_amount {claims['max_amount']}",
            )
        if currency != claims["currency"] and not self.faults.active(
            "redemption-currency-mismatch"
        ):
            raise HTTPProblem(
                402,
                "currency_mismatch",
                f"{currency} differs from the token's {claims['currency']}",
            )

    def _charge(self, user: str, caller: str, amount: int) -> CapState:
        if amount == 0 and self.faults.active("redemption-zero-amount-accepted"):
            return self.ledger.state(user, caller)
        return self.ledger.charge(user, caller, amount)

    def _cap_refusal(self, refused: CapExceeded) -> Answer:
        code = self.params.error("spend_cap_exceeded")
        if self.faults.active("cap-refusal-without-figures"):
            return code.status, problem(code.status, code.code, str(refused))
        status = 400 if self.faults.active("cap-refusal-wrong-status") else code.status
        return status, {**problem(status, code.code, str(refused)), "cap": refused.state.as_json()}

    def refund(self, caller: str, body: dict[str, Any]) -> Answer:
        amount = int(body["amount"])
        with self.store.transaction():
            record = self.store.get(REDEMPTIONS, str(body["redemption_id"]))
            if record is None or (
                record["provider"] != caller and not self.faults.active("refund-by-any-provider")
            ):
                raise HTTPProblem(
                    404, "redemption_not_found", "no such redemption for this provider"
                )
            refunded = (
                0
                if self.faults.active("refund-limit-ignores-earlier-refunds")
                else int(record["refunded"])
            )
            if amount > int(record["amount"]) - refunded:
                raise HTTPProblem(
                    400,
                    "refund_exceeds_redemption",
                    "the refund exceeds what remains of the redemption",
                )
            record["refunded"] = int(record["refunded"]) + amount
            self.store.put(REDEMPTIONS, record["id"], record)
            # The money goes back to the provider that was paid, in the month it was charged in.
            provider, period = str(record["provider"]), str(record["period"])
            if self.faults.active("refund-credits-current-month"):
                period = self.ledger.current_period()
            if not self.faults.active("refund-keeps-spend"):
                self.ledger.credit(record["user"], provider, amount, period)
            state = self.ledger.state(record["user"], provider)
        return 201, {
            "id": "rfd_" + secrets.token_hex(8),
            "object": "refund",
            "redemption_id": record["id"],
            "amount": amount,
            "currency": record["currency"],
            "status": "succeeded",
            "created": iso_utc(self.clock.timestamp()),
            "cap": state.as_json(),
        }

    def verify_payment_token(self, token: str, caller: str) -> dict[str, Any]:
        """The token's claims, once its signature and claims verify for `caller` (402)."""
        try:
            # Parsed unverified only for the fault: verify_signature parses it again.
            alg_none = self.faults.active("redemption-token-alg-none-accepted")
            header, unverified, _ = jose.unverified_parts(token) if alg_none else ({}, {}, b"")
            if alg_none and header.get("alg") == "none":
                claims = unverified
            else:
                _, claims = jose.verify_signature(
                    token,
                    keys=self.payment_keys(),
                    algorithms=self.params.algorithms,
                    typ=PAYMENT_TOKEN_TYP,
                )
            expired_accepted = self.faults.active("redemption-accepts-expired")
            jose.validate_claims(
                claims,
                issuer=self.issuer,
                audience=claims.get("aud")
                if self.faults.active("redemption-any-audience")
                else caller,  # type: ignore[arg-type]
                now=self.clock.timestamp(),
                leeway=10**9 if expired_accepted else 30,
                max_lifetime=10**9 if expired_accepted else self.params.payment_token_lifetime,
                require=PAYMENT_TOKEN_CLAIMS,
            )
        except jose.JOSEError as error:
            code = "payment_token_expired" if error.reason == "expired" else "payment_token_invalid"
            raise HTTPProblem(402, code, f"payment token refused: {error}") from None
        # Signed by this orchestrator is not well formed: a token minted with a bad value
        # (or by a faulty minting path) is refused like any other invalid token, never a 500.
        max_amount, currency = claims.get("max_amount"), claims.get("currency")
        if isinstance(max_amount, bool) or not isinstance(max_amount, int) or max_amount < 0:
            raise HTTPProblem(
                402,
                "payment_token_invalid",
                "payment token refused: max_amount is not a non-negative integer in minor units",
            )
        if not isinstance(currency, str):
            raise HTTPProblem(
                402, "payment_token_invalid", "payment token refused: currency is not a string"
            )
        return claims

    def charge_again(self, answer: dict[str, Any]) -> None:
        """The replay-double-charges fault: a replayed redemption charges its amount again."""
        record = self.store.get(REDEMPTIONS, str(answer.get("id")))
        if record is not None:
            with contextlib.suppress(CapExceeded):
                self.ledger.charge(record["user"], record["provider"], int(record["amount"]))

    def minted(self, claims: dict[str, Any]) -> None:
        """Told of every payment token the engine mints (only the fault below keeps them)."""
        if self.faults.active("cap-charges-expired-tokens"):
            self.store.put(
                _MINTED,
                str(claims["jti"]),
                {k: claims.get(k) for k in ("sub", "aud", "exp", "max_amount")},
            )

    def _expired_unredeemed(self, user: str, provider: str, period: str) -> int:
        """The cap-charges-expired-tokens fault: tokens that expired unredeemed in `period`
        count against the cap at their max_amount, as if the orchestrator captured them."""
        now = self.clock.timestamp()
        total = 0
        for jti, token in self.store.items(_MINTED):
            exp = token.get("exp")
            if (
                token.get("sub") == user
                and token.get("aud") == provider
                and isinstance(exp, int)
                and exp <= now
                and iso_utc(exp)[:7] == period
                and self.store.get(REDEEMED, jti) is None
            ):
                total += int(token.get("max_amount") or 0)
        return total
