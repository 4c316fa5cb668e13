"""Payment tokens the orchestrator mints for the suite's providers: a paid `add` through the
orchestrator's CLI, the token that reached the provider with the resource creation, and
whether the suite can redeem it soundly (its binding claims, judged by `token_defects`).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from conformance.adapters.orchestrator import PROVIDER_NAME, OrchestratorContext
from conformance.checks import Skipped
from conformance.recorder import CliCall
from mocks.provider import ProviderMock
from mocks.provider import service as provider_service
from wire import jose

__all__ = [
    "Mint",
    "max_amount",
    "mint",
    "minted_token",
    "minted_tokens",
    "signer_of",
    "stated_price",
    "token_currency",
    "token_defects",
    "token_sent",
    "usable",
]


def token_defects(
    claims: dict[str, Any], audience: str, lifetime: int, *, price: int | None = None
) -> dict[str, str]:
    """What is wrong with a payment token's binding claims, by requirement ID.

    Shared by the payment-token check and by the redemption checks, which cannot judge the
    redemption endpoint with a token the orchestrator should never have minted. `price`: the
    amount the catalog states for the token's service (minor units), where it states one."""
    defects: dict[str, str] = {}
    if claims.get("aud") != audience:
        defects["ORC-PAY-003"] = f"aud {claims.get('aud')!r} is not {audience!r}"
    iat, exp = claims.get("iat"), claims.get("exp")
    if not (isinstance(iat, int) and isinstance(exp, int) and 0 < exp - iat <= lifetime):
        defects["ORC-PAY-004"] = f"lifetime {exp!r} - {iat!r} is not within {lifetime} s"
    amount, currency = claims.get("max_amount"), claims.get("currency")
    if not (
        isinstance(amount, int)
        and not isinstance(amount, bool)
        and amount > 0
        and isinstance(currency, str)
        and len(currency) == 3
        and currency.islower()
    ):
        defects["ORC-PAY-005"] = f"max_amount {amount!r} / currency {currency!r}"
    elif price is not None and amount < price:
        defects["ORC-PAY-015"] = f"max_amount {amount} is below the stated price {price}"
    return defects


def token_currency(token: str) -> str:
    """The currency a payment token names: what a provider redeems it in. An orchestrator may
    keep its caps in any currency, so the suite never assumes usd where the token says."""
    try:
        currency = jose.unverified_parts(token)[1].get("currency")
    except (jose.JOSEError, AttributeError):
        currency = None
    return currency if isinstance(currency, str) and currency else "usd"


def signer_of(ctx: OrchestratorContext, provider: str) -> ProviderMock:
    if provider == PROVIDER_NAME:
        return ctx.provider
    other = ctx.target.other_provider
    if other is None:
        raise Skipped("the run serves no second provider")
    return other


@dataclass
class Mint:
    """What one paid `add` gave: the payment token that reached the provider, if any."""

    token: str | None
    envelope: dict[str, Any]
    call: CliCall | None
    """The CLI call (None: minted by the embedded engine at a shifted time)."""

    @property
    def error_code(self) -> str:
        error = self.envelope.get("error")
        return str(error.get("code", "")) if isinstance(error, dict) else ""

    @property
    def cap_refused(self) -> bool:
        return self.error_code.upper() == "SPEND_CAP_EXCEEDED"


async def mint(
    ctx: OrchestratorContext, service: str = "gpu", provider: str = PROVIDER_NAME
) -> Mint:
    """A paid `add` at one of the suite's providers through the orchestrator's CLI, and the
    payment token the orchestrator sent with the resource creation."""
    mark = ctx.recorder.mark
    call, envelope = ctx.cli(
        "add",
        f"{provider}/{service}",
        "--name",
        f"{service.replace(':', '-')}-{secrets.token_hex(3)}",
        "--confirm-paid-service",
    )
    return Mint(token_sent(ctx, mark, provider), envelope, call)


def token_sent(ctx: OrchestratorContext, mark: int, provider: str) -> str | None:
    creates = [
        raw
        for raw in ctx.received(mark, "/provisioning/resources", provider=provider)
        if raw.method == "POST"
    ]
    body = ctx.body(creates[-1]) if creates else None
    credentials = body.get("payment_credentials") if isinstance(body, dict) else None
    token = credentials.get("app_payment_token") if isinstance(credentials, dict) else None
    return token if isinstance(token, str) else None


def stated_price(ctx: OrchestratorContext, service_id: Any) -> int | None:
    """The price the suite's providers state for `service_id` in integer minor units, or None.

    In app-next a fixed paid price carries `amount` and `currency` next to its text
    (service.schema.json); a price in text only (freeform), a component price and every 0.1d
    price state no amount, and then the orchestrator cannot know the price before the
    provider charges it (ORC-PAY-015, ORC-CAP-010)."""
    if ctx.family != "app-next" or not isinstance(service_id, str):
        return None
    entry = provider_service(service_id)
    if entry is None:
        return None
    currency = ctx.params.default_cap.currency  # the suite's providers price in the profile's
    pricing = entry.as_json(structured_price=True, currency=currency)["pricing"]
    paid = pricing.get("paid") if pricing.get("type") == "paid" else None
    amount = paid.get("amount") if isinstance(paid, dict) else None
    return amount if isinstance(amount, int) and amount > 0 else None


def usable(ctx: OrchestratorContext, token: str, provider: str) -> str:
    """`token` when the suite can redeem it soundly; Skipped naming the payment requirement
    it breaks otherwise (that requirement's check fails it; the others are blocked)."""
    try:
        claims = jose.unverified_parts(token)[1]
    except jose.JOSEError:
        raise Skipped("blocked by ORC-PAY-002: the minted payment token is not a JWS") from None
    defects = token_defects(
        claims,
        signer_of(ctx, provider).base_url,
        ctx.params.payment_token_lifetime,
        price=stated_price(ctx, claims.get("service_id")),
    )
    if defects:
        blocked = ", ".join(sorted(defects))
        raise Skipped(f"blocked by {blocked}: the minted payment token cannot be redeemed soundly")
    return token


async def minted_token(
    ctx: OrchestratorContext, service: str = "gpu", provider: str = PROVIDER_NAME
) -> str:
    """A sound payment token for `provider`, or Skipped saying what stopped it."""
    made = await mint(ctx, service, provider)
    if made.token is None:
        why = made.envelope.get("error") or "no resource creation reached the provider"
        raise Skipped(f"no payment token reached {provider} for a paid add ({why})")
    return usable(ctx, made.token, provider)


async def minted_tokens(
    ctx: OrchestratorContext, count: int, service: str = "gpu", provider: str = PROVIDER_NAME
) -> list[str]:
    """`count` sound payment tokens for `provider`, minted one after another.

    Call it while the month's cap is whole (right after `fresh_user`) for every token a check
    will spend: an orchestrator that follows ORC-CAP-010 mints nothing once what is left is
    below the price, and a minted, unredeemed token lowers no cap (ORC-CAP-011)."""
    return [await minted_token(ctx, service, provider) for _ in range(count)]


def max_amount(token: str) -> int | None:
    value = jose.unverified_parts(token)[1].get("max_amount")
    return value if isinstance(value, int) and not isinstance(value, bool) else None
