"""Payment credentials as the orchestrator sends them with paid provisioning calls, judged
from the raw requests the suite's providers received (ORC-PAY-007 … -014).

Each check signs in as a fresh user (so earlier spending, limits or connections play no
part), adds a paid service with the human's confirmation, and reads the creation request.
A call that carries no payment credentials at all is ORC-PAY-014's finding; the checks of
what the credentials hold then have nothing to judge and skip, saying so.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

from conformance.adapters.orchestrator import (
    OTHER_PROVIDER_NAME,
    PROVIDER_NAME,
    OrchestratorContext,
    RawRequest,
)
from conformance.checks import Skipped, check
from conformance.packs.orchestrator._helpers import fresh_user
from conformance.packs.orchestrator._probes import card_numbers_in
from conformance.packs.orchestrator._tokens import max_amount, stated_price
from conformance.recorder import CliCall
from wire import jose

CARD_MEMBER = re.compile(
    r"stripe|card|(^|_)pan($|_)|cvc|cvv|exp_month|exp_year|expiry|expiration", re.IGNORECASE
)
"""Member names that betray card data or a Stripe token (the claims' own `exp` is fine).
Card numbers themselves are found by value, whatever their member is called."""


def sign_in(ctx: OrchestratorContext, *, payment_method: bool = True) -> None:
    fresh_user(ctx, payment_method=payment_method)


@contextlib.contextmanager
def as_a_new_user(ctx: OrchestratorContext, *, payment_method: bool = True) -> Iterator[None]:
    """A fresh signed-in user for the block, and another one after it, so that the limits,
    spending and connections a check leaves behind never reach the next check."""
    sign_in(ctx, payment_method=payment_method)
    try:
        yield
    finally:
        sign_in(ctx)


async def add_at(
    ctx: OrchestratorContext, provider: str, service: str, *extra: str
) -> tuple[CliCall, dict[str, Any], list[RawRequest]]:
    """`add PROVIDER/SERVICE`; the call, its envelope and the creations the provider got."""
    mark = ctx.recorder.mark
    call, envelope = ctx.cli(
        "add",
        f"{provider}/{service}",
        "--name",
        f"{service.replace(':', '-')}-{len(ctx.recorder.cli_calls)}",
        *extra,
    )
    creations = [
        raw
        for raw in ctx.received(mark, "/provisioning/resources", provider=provider)
        if raw.method == "POST"
    ]
    return call, envelope, creations


async def paid_add(
    ctx: OrchestratorContext, provider: str = PROVIDER_NAME, service: str = "pro"
) -> tuple[CliCall, dict[str, Any], list[RawRequest]]:
    return await add_at(ctx, provider, service, "--confirm-paid-service")


def credentials_of(ctx: OrchestratorContext, raw: RawRequest) -> dict[str, Any] | None:
    body = ctx.body(raw)
    found = body.get("payment_credentials") if isinstance(body, dict) else None
    return found if isinstance(found, dict) else None


def token_of(credentials: dict[str, Any] | None) -> str | None:
    if credentials is None:
        return None
    kind = credentials.get("type")
    value = credentials.get(kind) if isinstance(kind, str) else None
    return value if isinstance(value, str) else None


def project_of(ctx: OrchestratorContext, raw: RawRequest) -> Any:
    body = ctx.body(raw)
    return body.get("project_id") if isinstance(body, dict) else None


def outcome_of(envelope: dict[str, Any]) -> str:
    """The add command's answer, lowercased: error.code on failure, data.status otherwise."""
    error = envelope.get("error")
    if isinstance(error, dict) and isinstance(error.get("code"), str):
        return str(error["code"]).lower()
    data = envelope.get("data")
    status = data.get("status") if isinstance(data, dict) else None
    return status.lower() if isinstance(status, str) else ""


def luhn_card_numbers(value: Any) -> list[str]:
    """Every card number (`card_numbers_in`) in `value`'s strings and integers, nested."""
    found: list[str] = []
    if isinstance(value, dict):
        for item in value.values():
            found += luhn_card_numbers(item)
    elif isinstance(value, list):
        for item in value:
            found += luhn_card_numbers(item)
    elif isinstance(value, (str, int)) and not isinstance(value, bool):
        found += card_numbers_in(str(value))
    return found


def card_members(value: Any, path: str = "") -> list[str]:
    """Paths of members whose name says card data or a Stripe token."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{path}.{key}" if path else str(key)
            if CARD_MEMBER.search(str(key)):
                found.append(here)
            found += card_members(item, here)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += card_members(item, f"{path}[{index}]")
    return found


async def the_paid_creation(ctx: OrchestratorContext) -> tuple[RawRequest, dict[str, Any]]:
    """A paid add as a fresh user: its creation request and the credentials it carried."""
    with as_a_new_user(ctx):
        _, envelope, creations = await paid_add(ctx)
    if not creations:
        raise Skipped(f"the paid add sent no resource creation ({outcome_of(envelope) or 'ok'})")
    credentials = credentials_of(ctx, creations[-1])
    if credentials is None:
        raise Skipped("blocked by ORC-PAY-014: the paid creation carried no payment_credentials")
    return creations[-1], credentials


@check("ORC-PAY-014")
async def paid_creations_carry_payment_credentials(ctx: OrchestratorContext) -> None:
    """Both paid services, at both providers. (The harness drives no plan change, so the
    update_service half of the requirement is not exercised here.)"""
    with as_a_new_user(ctx):
        sent: list[RawRequest] = []
        for provider, service in (
            (PROVIDER_NAME, "pro"),
            (PROVIDER_NAME, "gpu"),
            (OTHER_PROVIDER_NAME, "pro"),
        ):
            sent += (await paid_add(ctx, provider, service))[2]
    if not sent:
        raise Skipped("no paid add reached a resource creation")
    for raw in sent:
        ctx.require(
            "ORC-PAY-014",
            credentials_of(ctx, raw) is not None,
            f"a creation of paid service {(ctx.body(raw) or {}).get('service_id')!r} at "
            f"{raw.provider} carried no payment_credentials",
            ctx.exchange(raw),
        )


@check("ORC-PAY-007")
async def shared_payment_tokens_are_spt(ctx: OrchestratorContext) -> None:
    raw, credentials = await the_paid_creation(ctx)
    token = credentials.get("stripe_payment_token")
    ctx.require(
        "ORC-PAY-007",
        credentials.get("type") == "stripe_payment_token"
        and isinstance(token, str)
        and token.startswith("spt_"),
        f"0.1d payment_credentials must be type stripe_payment_token with an spt_ token, got "
        f"type {credentials.get('type')!r} and a token starting "
        f"{str(token)[:4]!r}",
        ctx.exchange(raw),
    )


@check("ORC-PAY-009", "ORC-PAY-012", "ORC-PAY-013")
async def app_payment_credentials_hold_one_clean_token(ctx: OrchestratorContext) -> None:
    raw, credentials = await the_paid_creation(ctx)
    evidence = ctx.exchange(raw)
    token = credentials.get("app_payment_token")
    try:
        claims = jose.unverified_parts(token)[1] if isinstance(token, str) else None
    except jose.JOSEError:
        claims = None
    extra = [name for name in card_members(credentials) if name != "app_payment_token"]
    ctx.require(
        "ORC-PAY-009",
        credentials.get("type") == "app_payment_token"
        and claims is not None
        and not extra
        and not luhn_card_numbers(credentials),
        f"payment_credentials must be {{type: app_payment_token, app_payment_token: <JWS>}} "
        f"without card or Stripe token members: type {credentials.get('type')!r}, "
        f"{'a JWS' if claims is not None else 'no JWS'}, card/Stripe members {extra}",
        evidence,
    )
    if claims is None:
        ctx.cannot_judge("ORC-PAY-012", "the payment credentials hold no JWS to read claims from")
        ctx.cannot_judge("ORC-PAY-013", "the payment credentials hold no JWS to read claims from")
        return
    leaked = card_members(claims) + luhn_card_numbers(claims)
    ctx.require(
        "ORC-PAY-012",
        not leaked,
        f"the payment token's claims carry card data: {leaked}",
        evidence,
    )
    try:
        attested = jose.unverified_parts(
            raw.headers.get(ctx.params.attestation_header.lower(), "")
        )[1]
    except jose.JOSEError:
        ctx.cannot_judge("ORC-PAY-013", "the creation carried no readable APP-Attestation")
        return
    if "@" in str(attested.get("sub")):
        ctx.cannot_judge("ORC-PAY-013", "blocked by ORC-ATT-010: the attestation's sub is an email")
        return
    ctx.require(
        "ORC-PAY-013",
        "sub" in claims and claims.get("sub") == attested.get("sub"),
        f"the payment token's sub {claims.get('sub')!r} differs from the attestation's "
        f"{attested.get('sub')!r} on the same call",
        evidence,
    )


@check("ORC-PAY-010")
async def every_paid_call_gets_its_own_token(ctx: OrchestratorContext) -> None:
    """Two paid creations at one provider and one at the other: three distinct tokens."""
    with as_a_new_user(ctx):
        sent: list[RawRequest] = []
        for provider, service in (
            (PROVIDER_NAME, "pro"),
            (PROVIDER_NAME, "gpu"),
            (OTHER_PROVIDER_NAME, "pro"),
        ):
            sent += (await paid_add(ctx, provider, service))[2]
    seen: dict[str, RawRequest] = {}
    judged = 0
    for raw in sent:
        token = token_of(credentials_of(ctx, raw))
        if token is None:
            continue
        judged += 1
        first = seen.setdefault(token, raw)
        # A retry of one creation (same provider, same project_id) may carry its token again.
        retry = first.provider == raw.provider and project_of(ctx, first) == project_of(ctx, raw)
        ctx.require(
            "ORC-PAY-010",
            first is raw or retry,
            f"one payment token went to {first.provider} and again to {raw.provider} "
            f"({project_of(ctx, first)!r}, then {project_of(ctx, raw)!r})",
            ctx.exchange(first),
            ctx.exchange(raw),
        )
    if judged < 2:
        raise Skipped("fewer than two paid creations carried a payment token (see ORC-PAY-014)")


@check("ORC-PAY-008")
async def no_payment_method_means_no_payment_credentials(ctx: OrchestratorContext) -> None:
    with as_a_new_user(ctx, payment_method=False):
        mark = ctx.recorder.mark
        call, envelope, _ = await paid_add(ctx)
    paid = [raw for raw in ctx.received(mark, provider=None) if credentials_of(ctx, raw)]
    ctx.require(
        "ORC-PAY-008",
        not paid and outcome_of(envelope) == "payment_method_required",
        f"with no payment method on file the add answered {outcome_of(envelope) or 'ok'!r} "
        f"(must be payment_method_required) and sent payment credentials {len(paid)} time(s)",
        call,
        *(ctx.exchange(raw) for raw in paid[:1]),
    )


def _price_currencies(pricing: Any) -> set[str]:
    """Every `currency` member of a catalog price, wherever the profile puts it."""
    if isinstance(pricing, dict):
        found = {str(v) for k, v in pricing.items() if k == "currency" and isinstance(v, str)}
        for value in pricing.values():
            found |= _price_currencies(value)
        return found
    if isinstance(pricing, list):
        return set().union(*(_price_currencies(item) for item in pricing)) if pricing else set()
    return set()


@check("ORC-PAY-011")
async def payment_tokens_are_in_the_catalog_currency(ctx: OrchestratorContext) -> None:
    """Judged only where the provider's catalog states the price's currency: a freeform
    price ("$50/month") names none, and guessing from a symbol would judge the suite."""
    raw, credentials = await the_paid_creation(ctx)
    body = ctx.body(raw)
    service = body.get("service_id") if isinstance(body, dict) else None
    # The suite's own provider: its catalog is what the orchestrator was shown.
    response, _ = await ctx.get(ctx.provider.base_url + "provisioning/services")
    try:
        document = response.json()
    except ValueError:
        document = None
    entries = document.get("data") if isinstance(document, dict) else None
    entry = next((e for e in entries or [] if isinstance(e, dict) and e.get("id") == service), None)
    currencies = _price_currencies((entry or {}).get("pricing"))
    if len(currencies) != 1:
        raise Skipped(
            f"the catalog price of {service!r} states no single currency "
            f"({(entry or {}).get('pricing')!r}), so the token's currency has nothing to match"
        )
    token = credentials.get("app_payment_token")
    try:
        claims = jose.unverified_parts(token)[1] if isinstance(token, str) else {}
    except jose.JOSEError:
        claims = {}
    (expected,) = currencies
    ctx.require(
        "ORC-PAY-011",
        claims.get("currency") == expected.lower(),
        f"the payment token's currency {claims.get('currency')!r} is not the catalog's "
        f"{expected!r}",
        ctx.exchange(raw),
    )


@check("ORC-PAY-015")
async def payment_tokens_cover_the_stated_price(ctx: OrchestratorContext) -> None:
    """Each paid service whose catalog price states an amount, at both providers, as a new
    user whose whole cap covers every price: the token must let the provider charge it."""
    with as_a_new_user(ctx):
        sent: list[RawRequest] = []
        for provider, service in (
            (PROVIDER_NAME, "pro"),
            (PROVIDER_NAME, "gpu"),
            (OTHER_PROVIDER_NAME, "pro"),
        ):
            sent += (await paid_add(ctx, provider, service))[2]
    judged = 0
    for raw in sent:
        token = token_of(credentials_of(ctx, raw))
        service_id = (ctx.body(raw) or {}).get("service_id")
        price = stated_price(ctx, service_id)
        allowed = max_amount(token) if token is not None else None
        if price is None or allowed is None:
            continue  # no stated price, or no integer max_amount (ORC-PAY-005's finding)
        judged += 1
        ctx.require(
            "ORC-PAY-015",
            allowed >= price,
            f"the payment token for {service_id!r} at {raw.provider} allows {allowed}, below the "
            f"price of {price} the catalog states: the provider cannot charge it",
            ctx.exchange(raw),
        )
    if not judged:
        raise Skipped("no paid creation carried a payment token for a service with a stated price")
