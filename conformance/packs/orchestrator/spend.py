"""The spend cap as the agent and the human see it through the orchestrator's CLI
(ORC-CAP-007, -008, -010, -014): the add command's answer when the cap refuses, that only
the human moves the limit, and the billing command's figures.

The limit is set the way the human would, with `billing --provider P --limit N` (wire-facts
§1.1: `billing update --limit N --provider P`); an orchestrator whose CLI cannot set it
gives these checks nothing to work with, and they skip. Catalog prices are freeform text
(wire-facts §1.2), so an orchestrator cannot know a price is above what is left until the
provider says so; only a cap with nothing left is certain to cover no paid service, and
that is where ORC-CAP-010's "no resource creation" is judged.
"""

from __future__ import annotations

from typing import Any

from conformance import jose
from conformance.adapters.orchestrator import (
    OTHER_PROVIDER_NAME,
    PROVIDER_NAME,
    OrchestratorContext,
)
from conformance.checks import Skipped, check
from conformance.packs.orchestrator.payment import (
    add_at,
    as_a_new_user,
    credentials_of,
    outcome_of,
    paid_add,
    token_of,
)
from conformance.recorder import CliCall
from mocks.provider.catalog import service

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


def blocked_by(token: str, audience: str, lifetime: int) -> None:
    """Skip, naming the requirement, when a minted token cannot be redeemed soundly: its
    defect is the payment checks' finding (the redemption checks skip the same way)."""
    from conformance.packs.orchestrator.calls import token_defects

    try:
        claims = jose.unverified_parts(token)[1]
    except jose.JOSEError:
        raise Skipped("blocked by ORC-PAY-002: the minted payment token is not a JWS") from None
    defects = token_defects(claims, audience, lifetime)
    if defects:
        blocked = ", ".join(sorted(defects))
        raise Skipped(f"blocked by {blocked}: the minted payment token cannot be redeemed soundly")


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
async def no_creation_when_nothing_is_left(ctx: OrchestratorContext) -> None:
    """The human sets the limit to the price of a service, the provider redeems the whole of
    it: a paid add must now be refused before any resource creation goes out."""
    from conformance.packs.orchestrator.redemption import redeem

    price = service("pro")
    assert price is not None
    with as_a_new_user(ctx):
        # Spend the whole cap, as the provider does when it redeems: nothing is left.
        set_limit(ctx, price.price)
        _, _, creations = await paid_add(ctx)
        token = token_of(credentials_of(ctx, creations[-1])) if creations else None
        if token is None:
            raise Skipped("the paid add carried no payment token to spend the cap with")
        blocked_by(token, ctx.provider.base_url, ctx.params.payment_token_lifetime)
        status, _, _ = await redeem(ctx, token, price.price)
        if status != 201:
            raise Skipped(f"could not spend the cap: redemption answered {status}")
        call, envelope, creations = await paid_add(ctx)
    minted = [
        token for raw in creations if (token := token_of(credentials_of(ctx, raw))) is not None
    ]
    if minted:
        # A token minted with nothing left is ORC-PAY-001's finding; the creation it rode
        # on follows from it.
        raise Skipped("blocked by ORC-PAY-001: with nothing left a payment token was minted")
    ctx.require(
        "ORC-CAP-010",
        outcome_of(envelope) == "spend_cap_exceeded" and not creations,
        f"with nothing left under the cap the add answered {outcome_of(envelope) or 'ok'!r} "
        f"and sent {len(creations)} resource creation(s) (must be spend_cap_exceeded and none)",
        call,
        *(ctx.exchange(raw) for raw in creations[:1]),
    )


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
