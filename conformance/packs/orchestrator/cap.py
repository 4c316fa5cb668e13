"""The spend cap as the provider meets it at the redemption endpoint, and as the orchestrator
reports it: DESIGN.md §2 app-next item 5 (10000 minor units USD per user and provider per
calendar month UTC, succeeded redemptions minus refunds, refused atomically).

Checks that need another month move the orchestrator's clock through its test control
(`set_clock`: the embedded mock's, or what `[orchestrator] control` or `clock_command` drives)
and get their payment tokens minted at that time (`_clock.shifted_mint`); against an
orchestrator that offers no such control they are not judged, saying so.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from conformance.adapters.orchestrator import (
    OTHER_PROVIDER_NAME,
    PROVIDER_NAME,
    OrchestratorContext,
)
from conformance.checks import Skipped, check
from conformance.packs.orchestrator._cap import (
    boundaries,
    cap_code,
    cap_refused,
    charge_of,
    default_limit,
    judge_figures,
    limit_of,
    mint_while_it_fits,
    orchestrator_now,
    spend_at,
    stamp,
)
from conformance.packs.orchestrator._clock import living_at, next_month, shifted_mint, shifted_token
from conformance.packs.orchestrator._helpers import fresh_user
from conformance.packs.orchestrator._money import Answer, cap_figures, redeem, refund
from conformance.packs.orchestrator._tokens import (
    max_amount,
    mint,
    minted_token,
    minted_tokens,
    signer_of,
    usable,
)
from conformance.recorder import CliCall, Exchange

# --- ORC-CAP-002: concurrency ------------------------------------------------------------------


@check("ORC-CAP-002")
async def concurrent_redemptions_never_cross_the_cap(ctx: OrchestratorContext) -> None:
    """Rounds of N concurrent redemptions, each bigger than half of what is left: exactly one
    may succeed, and the refused ones charge nothing. Between rounds the winner is refunded,
    so every round starts from the whole cap; an orchestrator whose refunds do not restore it
    gets smaller amounts, then a new user. Tokens the cap refused serve the next round; once
    what is left is below the price no new token is minted (ORC-CAP-010), and the round runs
    with the tokens at hand, or as a new user when fewer than two are left."""
    charge = charge_of(ctx)
    limit0 = default_limit(ctx)
    width = max(2, ctx.target.config.concurrent_redemptions)
    rounds = max(1, ctx.target.config.concurrency_rounds)
    fresh_user(ctx)
    pool: list[str] = []
    limit, spent = limit0, 0  # the month's spend before the round
    for number in range(1, rounds + 1):
        if limit - spent < 1:
            fresh_user(ctx)
            pool, limit, spent = [], limit0, 0
        left = limit - spent
        amount = charge if left == limit0 else left // 2 + 1
        tokens = [t for t in pool if (max_amount(t) or 0) >= amount][:width]
        tokens += await mint_while_it_fits(ctx, width - len(tokens))
        if len(tokens) < 2:  # no race left to run with what is left under the cap
            fresh_user(ctx)
            pool, limit, spent = [], limit0, 0
            left, amount = limit0, charge
            tokens = await minted_tokens(ctx, width)
        answers = await asyncio.gather(*(redeem(ctx, t, amount) for t in tokens))
        won = [a for a in answers if a.status == 201]
        if not ctx.require(
            "ORC-CAP-002",
            len(won) == 1,
            f"round {number}: {len(won)} of {len(tokens)} concurrent redemptions of {amount} with "
            f"{left} left under the cap succeeded; exactly one may",
            *(a.exchange for a in (won or answers)[:3]),
        ):
            return
        winner = won[0]
        if isinstance(winner.spent, int) and isinstance(winner.cap.get("limit"), int):
            limit = winner.cap["limit"]
            ctx.require(
                "ORC-CAP-002",
                winner.spent == spent + amount and winner.spent <= limit,
                f"round {number}: after one charge of {amount} on {spent}, the month's spend is "
                f"{winner.spent} (cap {limit}): refused redemptions were charged",
                winner.exchange,
            )
        spent += amount
        pool = [t for t, a in zip(tokens, answers, strict=True) if a.code == cap_code(ctx)]
        back = await refund(ctx, winner.document.get("id"), amount)
        if back is not None and back.status == 201 and isinstance(back.spent, int):
            # Refunded (spent - amount), or kept by an orchestrator whose refunds do not
            # restore the cap (ORC-CAP-005's matter): anything else was charged by a refusal.
            ctx.require(
                "ORC-CAP-002",
                back.spent in (spent - amount, spent),
                f"round {number}: after refunding the one charge of {amount}, the month's "
                f"spend is {back.spent}, not {spent - amount}: refused redemptions were charged",
                winner.exchange,
                back.exchange,
            )
            spent = back.spent


# --- ORC-CAP-003, -004, -015: whose cap, how big ---------------------------------------------


@check("ORC-CAP-003")
async def the_default_cap_is_the_profiles_per_user(ctx: OrchestratorContext) -> None:
    limit0 = ctx.params.default_cap.limit
    fresh_user(ctx, probe_limit=False)
    first = await spend_at(ctx, 100)
    cap = first.cap
    ctx.require(
        "ORC-CAP-003",
        (cap.get("limit"), cap.get("currency"), cap.get("interval"))
        == (limit0, ctx.params.default_cap.currency, ctx.params.default_cap.interval),
        f"a new user's cap is {cap.get('limit')!r} {cap.get('currency')!r} per "
        f"{cap.get('interval')!r}, not {ctx.params.default_cap}",
        first.exchange,
    )
    fresh_user(ctx, probe_limit=False)
    second = await spend_at(ctx, 200)
    ctx.require(
        "ORC-CAP-003",
        second.spent == 200 and second.cap.get("limit") == limit0,
        f"another new user's first charge of 200 left the month's spend at {second.spent} "
        f"of {second.cap.get('limit')}: the cap is not per user",
        first.exchange,
        second.exchange,
    )


@check("ORC-CAP-004")
async def spending_the_cap_at_one_provider_leaves_another_untouched(
    ctx: OrchestratorContext,
) -> None:
    charge = charge_of(ctx)
    fresh_user(ctx)
    spare = (await minted_tokens(ctx, 1))[0]  # while the whole cap is left (ORC-CAP-010)
    first = await spend_at(ctx, charge)
    rest = first.cap.get("remaining")
    if isinstance(rest, int) and rest > 0:  # the rest of the cap too, where it can be had
        await redeem(ctx, spare, min(rest, max_amount(spare) or rest))
    made = await mint(ctx, "gpu", OTHER_PROVIDER_NAME)
    if made.cap_refused:
        ctx.require(
            "ORC-CAP-004",
            False,
            f"with the cap spent at {PROVIDER_NAME}, the orchestrator refused to pay at "
            f"{OTHER_PROVIDER_NAME}: {made.error_code}",
            first.exchange,
            made.call,
        )
        return
    if made.token is None:
        raise Skipped(f"no payment token reached {OTHER_PROVIDER_NAME} ({made.error_code})")
    other = signer_of(ctx, OTHER_PROVIDER_NAME)
    there = await redeem(ctx, usable(ctx, made.token, OTHER_PROVIDER_NAME), charge, signer=other)
    ctx.require(
        "ORC-CAP-004",
        there.status == 201 and there.spent == charge,
        f"with the cap spent at {PROVIDER_NAME}, a charge of {charge} at {OTHER_PROVIDER_NAME} "
        f"got {there.shown()} and a month's spend of {there.spent}, not {charge}",
        first.exchange,
        there.exchange,
    )


@check("ORC-CAP-015", profiles=["app-next"])
async def spending_at_one_provider_leaves_anothers_figures(ctx: OrchestratorContext) -> None:
    charge = charge_of(ctx)
    fresh_user(ctx)
    before_call, before = ctx.cli("billing")
    theirs_before = cap_figures(before, OTHER_PROVIDER_NAME)
    mine_before = cap_figures(before, PROVIDER_NAME)
    if theirs_before is None or mine_before is None:
        raise Skipped("the billing command reports no cap figures per provider (ORC-CAP-014)")
    charged = await spend_at(ctx, charge)
    after_call, after = ctx.cli("billing")
    theirs_after = cap_figures(after, OTHER_PROVIDER_NAME) or {}
    if cap_figures(after, PROVIDER_NAME) == mine_before:
        raise Skipped(f"billing shows no change at {PROVIDER_NAME} after a charge (ORC-CAP-014)")
    changed = {
        name: (theirs_before.get(name), theirs_after.get(name))
        for name in ("limit", "spent", "remaining")
        if theirs_before.get(name) != theirs_after.get(name)
    }
    ctx.require(
        "ORC-CAP-015",
        not changed,
        f"after a charge of {charge} at {PROVIDER_NAME}, billing changed {OTHER_PROVIDER_NAME}'s "
        f"figures (before, after): {changed}",
        before_call,
        charged.exchange,
        after_call,
    )


# --- ORC-CAP-009: exactly at the cap -----------------------------------------------------------


@check("ORC-CAP-009")
async def the_cap_can_be_spent_exactly_and_not_by_one_unit_more(
    ctx: OrchestratorContext,
) -> None:
    charge = charge_of(ctx)
    fresh_user(ctx)
    # Every token minted while the whole cap is left: an orchestrator mints nothing once
    # what is left is below the price (ORC-CAP-010). Two spares for the end, the rest to
    # spend toward the cap.
    spares = await minted_tokens(ctx, 2)
    spending = await minted_tokens(ctx, 3)
    answer = await spend_at(ctx, charge)
    for payment in spending:
        limit, left = answer.cap.get("limit"), answer.cap.get("remaining")
        if not isinstance(limit, int) or not isinstance(left, int):
            raise Skipped("the redemption answer carries no cap figures (see ORC-RED-011)")
        if left == 0:
            break
        amount = min(max_amount(payment) or left, left)
        answer = await redeem(ctx, payment, amount)
        if amount == left:
            if not ctx.require(
                "ORC-CAP-009",
                answer.status == 201 and answer.spent == limit,
                f"a redemption of {amount} that brings the month's spend to exactly the cap of "
                f"{limit} must succeed, got {answer.shown()} (spent {answer.spent})",
                answer.exchange,
            ):
                return
        elif answer.status != 201:
            raise Skipped(f"could not spend toward the cap ({answer.shown()})")
    if answer.cap.get("remaining") != 0:
        raise Skipped(f"could not spend the cap in {len(spending) + 1} redemptions")
    limit = answer.cap["limit"]
    over = await redeem(ctx, spares[0], 1)
    ctx.require(
        "ORC-CAP-009",
        over.status == ctx.params.error("spend_cap_exceeded").status and over.code == cap_code(ctx),
        f"1 minor unit more than the cap must get the profile's spend_cap_exceeded refusal, got {over.shown()}",
        over.exchange,
    )
    # The refusal charged nothing: asked again, the orchestrator still counts exactly the cap.
    again = await redeem(ctx, spares[1], 1)
    if isinstance(again.spent, int):
        ctx.require(
            "ORC-CAP-009",
            again.status != 201 and again.spent == limit,
            f"after a refused redemption of 1 at the cap, another got {again.shown()} with the "
            f"month's spend at {again.spent}, not {limit}",
            over.exchange,
            again.exchange,
        )


# --- ORC-CAP-011: minted is not spent ----------------------------------------------------------


@check("ORC-CAP-011")
async def unredeemed_and_expired_tokens_do_not_lower_the_cap(ctx: OrchestratorContext) -> None:
    charge = charge_of(ctx)
    fresh_user(ctx)
    first = await minted_token(ctx)
    idle = await mint(ctx)  # minted, never redeemed
    if idle.cap_refused:
        ctx.require(
            "ORC-CAP-011",
            False,
            "a second payment token was refused at mint: the first, not redeemed, lowered the cap",
            idle.call,
        )
        return
    last = await minted_token(ctx)
    charged = await redeem(ctx, first, charge)
    if charged.status != 201 or not isinstance(charged.cap.get("limit"), int):
        raise Skipped(f"could not redeem a first charge with figures ({charged.shown()})")
    rest = charged.cap["limit"] - charge - 1
    more = await redeem(ctx, last, rest)
    ctx.require(
        "ORC-CAP-011",
        charged.spent == charge and more.status == 201 and more.spent == charge + rest,
        f"with two more payment tokens minted and not redeemed, a charge of {charge} left the "
        f"spend at {charged.spent}, and {rest} more got {more.shown()} (spent {more.spent})",
        charged.exchange,
        more.exchange,
    )
    # Expired: a token minted mid-month that runs out unredeemed, then a charge after it.
    moment = next_month(orchestrator_now(ctx)) + timedelta(days=9, hours=12)
    fresh_user(ctx)
    with living_at(ctx, moment):
        lapsed = await shifted_token(ctx)
    with living_at(ctx, moment + timedelta(minutes=30)):
        later = await shifted_mint(ctx)
        if later.cap_refused:
            ctx.require(
                "ORC-CAP-011",
                False,
                f"at {stamp(moment + timedelta(minutes=30))}, after a token of "
                f"{max_amount(lapsed)} expired unredeemed, the orchestrator refused to mint "
                f"another: {later.error_code}",
            )
            return
        if later.token is None:
            raise Skipped(f"no payment token at the shifted time ({later.error_code})")
        after = await redeem(ctx, usable(ctx, later.token, PROVIDER_NAME), charge)
    ctx.require(
        "ORC-CAP-011",
        after.status == 201 and after.spent == charge,
        f"after a token of {max_amount(lapsed)} expired unredeemed, a charge of {charge} got "
        f"{after.shown()} and a month's spend of {after.spent}, not {charge}",
        after.exchange,
    )


# --- ORC-CAP-006: the calendar month -----------------------------------------------------------


@check("ORC-CAP-006")
async def the_spend_resets_at_midnight_utc_on_the_first(ctx: OrchestratorContext) -> None:
    for boundary in boundaries(orchestrator_now(ctx)):
        if not await _resets_at(ctx, boundary):
            return


async def _resets_at(ctx: OrchestratorContext, boundary: datetime) -> bool:
    charge = charge_of(ctx)
    fresh_user(ctx)
    with living_at(ctx, boundary - timedelta(minutes=2)):
        tokens = [await shifted_token(ctx) for _ in range(3)]
        first = await redeem(ctx, tokens[0], charge)
        if first.status != 201:
            raise Skipped(f"could not charge at {stamp(boundary - timedelta(minutes=2))}")
    with living_at(ctx, boundary - timedelta(seconds=2)):
        before = await redeem(ctx, tokens[1], charge)
    # What is left of the month's cap, but one unit (the exact cap is ORC-CAP-009's matter).
    left = limit_of(ctx, first) - charge - 1
    with living_at(ctx, boundary - timedelta(seconds=1)):
        rest = await redeem(ctx, tokens[2], left)
    with living_at(ctx, boundary):
        after = await redeem(ctx, tokens[1], charge)
        if after.code == "payment_token_used":
            after = await redeem(ctx, await shifted_token(ctx), charge)
    late = stamp(boundary - timedelta(seconds=2))
    ok = ctx.require(
        "ORC-CAP-006",
        cap_refused(ctx, before),
        f"at {late}, still in the month of a charge of {charge}, {charge} more must be refused "
        f"with spend_cap_exceeded, got {before.shown()}",
        first.exchange,
        before.exchange,
    )
    ok &= ctx.require(
        "ORC-CAP-006",
        rest.status == 201 and rest.spent == charge + left,
        f"the refusal at {late} was charged: {left} more in that month got {rest.shown()} "
        f"with the spend at {rest.spent}, not {charge + left}",
        before.exchange,
        rest.exchange,
    )
    ok &= ctx.require(
        "ORC-CAP-006",
        after.status == 201 and after.spent == charge,
        f"at {stamp(boundary)} the month's spend starts from 0: a charge of {charge} got "
        f"{after.shown()} with the spend at {after.spent}",
        rest.exchange,
        after.exchange,
    )
    return ok


# --- ORC-CAP-012 (and -005 across months): refunds of an earlier month -------------------------


@check("ORC-CAP-005", "ORC-CAP-012")
async def a_refund_goes_back_to_the_month_of_its_charge(ctx: OrchestratorContext) -> None:
    charge = charge_of(ctx)
    month = next_month(orchestrator_now(ctx)) + timedelta(days=9, hours=12)
    later = next_month(month) + timedelta(days=9, hours=12)
    fresh_user(ctx)
    with living_at(ctx, month):
        charged = await redeem(ctx, await shifted_token(ctx), charge)
        if charged.status != 201:
            raise Skipped(f"could not charge at {stamp(month)} ({charged.shown()})")
    with living_at(ctx, later):
        tokens = [await shifted_token(ctx) for _ in range(3)]
        spent = await redeem(ctx, tokens[0], charge)
        if spent.status != 201:
            raise Skipped(f"could not charge at {stamp(later)} ({spent.shown()})")
        back = await refund(ctx, charged.document.get("id"), charge)
        if back is None or back.status != 201:
            raise Skipped(
                "the orchestrator takes no refunds"
                if back is None
                else f"the refund was refused ({back.shown()})"
            )
        over = await redeem(ctx, tokens[1], charge)
        left = limit_of(ctx, spent) - charge - 1
        rest = await redeem(ctx, tokens[2], left)
    ctx.require(
        "ORC-CAP-012",
        cap_refused(ctx, over),
        f"at {stamp(later)}, after refunding a charge of {stamp(month)}, {charge} more on top "
        f"of {charge} charged this month must still be refused, got {over.shown()}",
        back.exchange,
        over.exchange,
    )
    if over.status != 201:
        ctx.require(
            "ORC-CAP-012",
            rest.status == 201 and rest.spent == charge + left,
            f"the month's headroom after the refund is not what this month's charges left: "
            f"{left} more got {rest.shown()} with the spend at {rest.spent}, not {charge + left}",
            over.exchange,
            rest.exchange,
        )
    # The refund went back to the month of the charge: that month has its whole cap again,
    # so a token for the charge is minted there (one that would not fit is not, ORC-CAP-010).
    with living_at(ctx, month + timedelta(days=1)):
        made = await shifted_mint(ctx)
        if made.cap_refused:
            ctx.require(
                "ORC-CAP-005",
                False,
                f"back in the month of the refunded charge ({stamp(month + timedelta(days=1))}) "
                f"the orchestrator refused to mint a token for {charge} "
                f"({made.error_code}): the refund did not go back to that month",
                back.exchange,
                made.call,
            )
            return
        if made.token is None:
            raise Skipped(f"no payment token at the shifted time ({made.error_code})")
        again = await redeem(ctx, usable(ctx, made.token, PROVIDER_NAME), charge)
    ctx.require(
        "ORC-CAP-005",
        again.status == 201 and again.spent == charge,
        f"back in the month of the refunded charge, a charge of {charge} got {again.shown()} "
        f"with the spend at {again.spent}, not {charge}: the refund did not go to that month",
        back.exchange,
        again.exchange,
    )


# --- ORC-CAP-013: the figures ------------------------------------------------------------------


@check("ORC-CAP-013")
async def cap_figures_add_up_and_reset_on_the_first(ctx: OrchestratorContext) -> None:
    charge = charge_of(ctx)
    fresh_user(ctx)
    tokens = [await minted_token(ctx) for _ in range(2)]
    states: list[tuple[str, dict[str, Any], tuple[int, int], Exchange | CliCall | None]] = []

    def seen(label: str, answer: Answer | None, since: int) -> None:
        """A reported cap state, and the orchestrator's time span it was reported in."""
        if answer is not None and answer.cap:
            states.append((label, answer.cap, (since, ctx.now()), answer.exchange))

    since = ctx.now()
    charged = await redeem(ctx, tokens[0], charge)
    seen("the redemption", charged, since)
    since = ctx.now()
    seen("the cap refusal", await redeem(ctx, tokens[1], charge), since)
    if charged.status == 201:
        since = ctx.now()
        seen("the refund", await refund(ctx, charged.document.get("id"), charge // 6), since)
    since = ctx.now()
    call, envelope = ctx.cli("billing")
    for provider in (PROVIDER_NAME, OTHER_PROVIDER_NAME):
        figures = cap_figures(envelope, provider)
        if figures is not None:
            states.append((f"billing for {provider}", figures, (since, ctx.now()), call))
    if ctx.target.clock_movable:  # the last seconds of a year, where resets_at rolls over
        moment = datetime(orchestrator_now(ctx).year, 12, 31, 23, 59, 30, tzinfo=UTC)
        fresh_user(ctx)
        with living_at(ctx, moment):
            payment = await shifted_token(ctx)
            since = ctx.now()
            seen(f"a redemption at {stamp(moment)}", await redeem(ctx, payment, 100), since)
    for label, cap, moments, evidence in states:
        judge_figures(ctx, label, cap, moments, evidence)
