"""The spend cap as the agent and the human see it through the orchestrator's CLI
(ORC-CAP-007, -008, -010, -014): the add command's answer when the cap refuses, that only
the human moves the limit, and the billing command's figures.

The limit is set the way the human would, with `billing --provider P --limit N` (wire-facts
§1.1: `billing update --limit N --provider P`); an orchestrator whose CLI cannot set it
gives these checks nothing to work with, and they skip. A 0.1d catalog price is text
(wire-facts §1.2); an app-next catalog may state a fixed price in minor units
(service.schema.json). Only a stated price lets an orchestrator know before provisioning
that what is left does not cover it, so ORC-CAP-010 is judged with a remainder below the
price only there, and with nothing left everywhere.
"""

from __future__ import annotations

from typing import Any

from conformance.adapters.orchestrator import (
    OTHER_PROVIDER_NAME,
    PROVIDER_NAME,
    OrchestratorContext,
    RawRequest,
)
from conformance.checks import Skipped, check
from conformance.packs.orchestrator._money import redeem
from conformance.packs.orchestrator._tokens import max_amount as max_amount_of
from conformance.packs.orchestrator._tokens import stated_price, usable
from conformance.packs.orchestrator.payment import (
    add_at,
    as_a_new_user,
    credentials_of,
    outcome_of,
    paid_add,
    token_of,
)
from conformance.recorder import CliCall
from mocks.provider import service

CAP_FIGURES = ("limit", "spent", "remaining", "currency", "interval", "resets_at")
"""The cap figures, as ORC-CAP-001 names them."""


def set_limit(ctx: OrchestratorContext, limit: int, provider: str = PROVIDER_NAME) -> CliCall:
    call, envelope = ctx.cli("billing", "--provider", provider, "--limit", str(limit))
    if envelope.get("ok") is not True:
        raise Skipped(f"the orchestrator's CLI would not set a spend limit of {limit} ({call})")
    return call


LIMIT_MEMBERS = ("limit", "max_amount")
SPENT_MEMBERS = ("spent", "amount_spent", "spend")
"""How a billing answer may name the limit and the month's spend: ours, and Stripe's
PaymentProfile usage_limits (wire-facts §1.4: {currency, max_amount, recurring_interval})."""


def member(found: dict[str, Any], names: tuple[str, ...]) -> Any:
    return next((found[name] for name in names if name in found), None)


def figures(value: Any) -> list[dict[str, Any]]:
    """Every object in `value` (nested) that carries a limit and what was spent."""
    found: list[dict[str, Any]] = []
    if isinstance(value, dict):
        if any(k in value for k in LIMIT_MEMBERS) and any(k in value for k in SPENT_MEMBERS):
            found.append(value)
        for item in value.values():
            found += figures(item)
    elif isinstance(value, list):
        for item in value:
            found += figures(item)
    return found


def cap_for(envelope: dict[str, Any], provider: str) -> dict[str, Any] | None:
    """The cap figures of one provider in a billing answer: under a member named after the
    provider, or inside an object that names it."""
    keyed: list[dict[str, Any]] = []
    named: list[dict[str, Any]] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if provider in (value.get("provider"), value.get("provider_name"), value.get("name")):
                named.extend(figures(value))
            for key, item in value.items():
                if key == provider:
                    keyed.extend(figures(item))
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(envelope.get("data"))
    found = keyed or named
    return found[0] if found else None


def is_money(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def limit_of(ctx: OrchestratorContext, provider: str = PROVIDER_NAME) -> tuple[Any, CliCall]:
    call, envelope = ctx.cli("billing", "--provider", provider)
    cap = cap_for(envelope, provider)
    return member(cap or {}, LIMIT_MEMBERS), call


@check("ORC-CAP-007")
async def a_cap_refusal_tells_the_human_what_to_do(ctx: OrchestratorContext) -> None:
    """The human has set the month's limit to 0; a paid add must come back refused, with the
    figures and a next step naming the limit."""
    with as_a_new_user(ctx):
        set_limit(ctx, 0)
        call, envelope, _ = await paid_add(ctx)
    data = envelope.get("data")
    found = [cap for cap in figures(data) if all(name in cap for name in CAP_FIGURES)]
    steps = envelope.get("next_steps")
    steps = [step for step in steps if isinstance(step, str)] if isinstance(steps, list) else []
    ctx.require(
        "ORC-CAP-007",
        envelope.get("ok") is False
        and outcome_of(envelope) == "spend_cap_exceeded"
        and bool(found)
        and any("limit" in step.lower() for step in steps),
        f"with the limit at 0 a paid add must answer ok false, SPEND_CAP_EXCEEDED, the cap "
        f"figures ({', '.join(CAP_FIGURES)}) and a next step for raising the limit; it answered "
        f"ok {envelope.get('ok')!r}, {outcome_of(envelope) or 'no code'!r}, "
        f"{'figures' if found else 'no complete figures'}, next steps {steps}",
        call,
    )


@check("ORC-CAP-008")
async def only_the_human_raises_the_cap(ctx: OrchestratorContext) -> None:
    """A limit below the price of a service (3000 against 5000), then no limit left at all
    (0): each time a paid add, and its retry with every confirmation flag, must leave the
    limit the human set where it was."""
    flags = ("--confirm-paid-service", "--yes", "--accept-tos")
    for limit in (3000, 0):
        with as_a_new_user(ctx):
            set_limit(ctx, limit)
            before, _ = limit_of(ctx)
            calls = [(await paid_add(ctx))[0], (await add_at(ctx, PROVIDER_NAME, "pro", *flags))[0]]
            after, shown = limit_of(ctx)
        if before != limit:
            raise Skipped(f"the billing command does not show the limit just set ({before})")
        ctx.require(
            "ORC-CAP-008",
            after == before,
            f"the limit the human set ({before}) is {after} after two adds over it",
            *calls,
            shown,
        )


@check("ORC-CAP-010")
async def no_creation_when_less_than_the_price_is_left(ctx: OrchestratorContext) -> None:
    """Two remainders, each as a new user. Less than the price the catalog states (the human
    sets the limit to 3000 against pro's 5000): judged where the catalog states the price in
    minor units (app-next); a price in text only cannot be known before the provider charges.
    Nothing left (the human sets the limit to the price and the provider redeems all of it):
    no paid service fits, whatever its price."""
    price = stated_price(ctx, "pro")
    if price is not None:
        with as_a_new_user(ctx):
            left = price * 3 // 5
            set_limit(ctx, left)
            call, envelope, creations = await paid_add(ctx)
        if not _blocked_by_pay_001(ctx, creations, left):
            ctx.require(
                "ORC-CAP-010",
                outcome_of(envelope) == "spend_cap_exceeded" and not creations,
                f"with {left} left under the cap and a stated price of {price}, the add "
                f"answered {outcome_of(envelope) or 'ok'!r} and sent {len(creations)} resource "
                "creation(s) (must be spend_cap_exceeded and none)",
                call,
                *(ctx.exchange(raw) for raw in creations[:1]),
            )
    pro = service("pro")
    assert pro is not None
    whole = price if price is not None else pro.price  # what the suite's provider charges
    with as_a_new_user(ctx):
        # Spend the whole cap, as the provider does when it redeems: nothing is left.
        set_limit(ctx, whole)
        _, _, creations = await paid_add(ctx)
        token = token_of(credentials_of(ctx, creations[-1])) if creations else None
        if token is None:
            raise Skipped("the paid add carried no payment token to spend the cap with")
        spent = await redeem(ctx, usable(ctx, token, PROVIDER_NAME), whole)
        if spent.status != 201:
            raise Skipped(f"could not spend the cap: the redemption got {spent.shown()}")
        call, envelope, creations = await paid_add(ctx)
    if _blocked_by_pay_001(ctx, creations, 0):
        return
    ctx.require(
        "ORC-CAP-010",
        outcome_of(envelope) == "spend_cap_exceeded" and not creations,
        f"with nothing left under the cap the add answered {outcome_of(envelope) or 'ok'!r} "
        f"and sent {len(creations)} resource creation(s) (must be spend_cap_exceeded and none)",
        call,
        *(ctx.exchange(raw) for raw in creations[:1]),
    )


def _blocked_by_pay_001(ctx: OrchestratorContext, creations: list[RawRequest], left: int) -> bool:
    """A token minted above what was left is ORC-PAY-001's finding; the creation it rode on
    follows from it, so ORC-CAP-010 is not judged on it. A token within what was left (but
    below the price) is ORC-CAP-010's own finding."""
    for raw in creations:
        token = token_of(credentials_of(ctx, raw))
        allowed = max_amount_of(token) if token is not None else None
        if allowed is not None and allowed > left:
            ctx.cannot_judge(
                "ORC-CAP-010",
                f"blocked by ORC-PAY-001: with {left} left a payment token allowing {allowed} "
                "was minted",
            )
            return True
    return False


@check("ORC-CAP-014")
async def billing_shows_every_providers_cap(ctx: OrchestratorContext) -> None:
    with as_a_new_user(ctx):
        call, envelope = ctx.cli("billing")
    for provider in (PROVIDER_NAME, OTHER_PROVIDER_NAME):
        cap = cap_for(envelope, provider) or {}
        shown = {
            "limit": member(cap, LIMIT_MEMBERS),
            "spent": member(cap, SPENT_MEMBERS),
            "currency": cap.get("currency"),
        }
        ctx.require(
            "ORC-CAP-014",
            is_money(shown["limit"])
            and is_money(shown["spent"])
            and isinstance(shown["currency"], str),
            f"billing must show {provider}'s limit, spent this month and currency; it shows "
            f"{shown if cap else 'nothing'}",
            call,
        )
