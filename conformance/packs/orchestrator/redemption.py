"""The orchestrator's redemption endpoint and spend cap, probed by the suite acting as the
provider that received the payment tokens (it signs with that provider's published key)."""

from __future__ import annotations

import secrets
from typing import Any

from conformance.adapters.orchestrator import OrchestratorContext
from conformance.checks import Skipped, check
from conformance.packs.orchestrator import _money, _tokens
from conformance.packs.orchestrator._helpers import PROBE_LIMIT, fresh_user
from conformance.recorder import Exchange
from mocks.provider import ProviderMock
from spec.schemas import default_store
from wire import jose


async def redeem(
    ctx: OrchestratorContext,
    token: str,
    amount: int,
    *,
    currency: str | None = None,
    key: str | None = "",
    signed: bool = True,
    body: bytes | None = None,
    signer: ProviderMock | None = None,
) -> tuple[int, dict[str, Any], Exchange]:
    """One redemption as (status, document, exchange); `_money.redeem` gives the full answer."""
    answer = await _money.redeem(
        ctx, token, amount, currency=currency, key=key, signed=signed, raw=body, signer=signer
    )
    exchange = answer.exchange or ctx.recorder.exchanges[-1]
    return answer.status, answer.document, exchange


async def token(ctx: OrchestratorContext, service: str = "pro") -> str:
    """A sound payment token for the suite's first provider (Skipped, naming the blocking
    requirement, when the orchestrator minted none or an unsound one)."""
    return await _tokens.minted_token(ctx, service)


@check("ORC-RED-001", "ORC-RED-005", "ORC-RED-011", "ORC-RED-012")
async def redemption_needs_a_key_and_a_signature(ctx: OrchestratorContext) -> None:
    fresh_user(ctx)
    # A separate token for the keyless probe: an orchestrator that wrongly accepts it must not
    # spend the token the valid redemption below needs.
    payment = await token(ctx)
    keyless = await _money.redeem(ctx, await token(ctx), 100, key=None)
    ctx.require(
        "ORC-RED-001",
        keyless.status == 400 and keyless.code == "idempotency_key_required",
        "a redemption without Idempotency-Key must get 400 idempotency_key_required",
        keyless.exchange,
    )
    unsigned = await _money.redeem(ctx, payment, 100, signed=False)
    ctx.require(
        "ORC-RED-005",
        unsigned.status == 401,
        f"an unsigned redemption must get 401, got {unsigned.status}",
        unsigned.exchange,
    )
    ctx.require(
        "ORC-RED-012",
        unsigned.headers.get("content-type", "").startswith("application/problem+json")
        and unsigned.document.get("status") == unsigned.status,
        "errors must be application/problem+json with status equal to the HTTP status",
        unsigned.exchange,
    )
    valid = await _money.redeem(ctx, payment, 100)
    problems = default_store().validate("app-next", "redemption_response", valid.document)
    ctx.require(
        "ORC-RED-011",
        valid.status == 201 and not problems,
        f"a valid redemption must get 201 redemption_response: {problems[:2]}",
        valid.exchange,
    )
    await _money.nothing_charged(ctx, ["ORC-RED-001", "ORC-RED-005"], 0, [keyless, unsigned, valid])


@check("ORC-RED-002", "ORC-RED-003", "ORC-RED-006")
async def idempotency_and_single_use(ctx: OrchestratorContext) -> None:
    """A redemption, its replay, the key with another body, the token again with a new key.
    What each one charged is measured right after it (`_money.nothing_charged`), so a charge
    is blamed on the request that made it: a replay that charges again breaks ORC-RED-002,
    not the conflict or single-use rules probed after it."""
    fresh_user(ctx)
    payment = await token(ctx)
    key = secrets.token_hex(8)
    first = await _money.redeem(ctx, payment, 100, key=key)
    again = await _money.redeem(ctx, payment, 100, key=key)
    ctx.require(
        "ORC-RED-002",
        first.status == 201
        and again.status == first.status
        and again.document.get("id") == first.document.get("id")
        and again.replayed,
        "a replay must return the original answer with Idempotent-Replayed: true",
        again.exchange,
    )
    ctx.require(
        "ORC-RED-002", again.spent == first.spent, "the replay charged again", again.exchange
    )
    if first.status != 201 or not isinstance(first.spent, int):
        return
    # A replay answered as such must have charged nothing; one that was not is counted as the
    # charge it claims to be (the require above has failed it already).
    followed = await _money.nothing_charged(
        ctx,
        ["ORC-RED-002"],
        first.spent,
        [] if again.replayed else [again],
        what="the replay answered with Idempotent-Replayed: true",
    )
    conflict = await _money.redeem(ctx, payment, 101, key=key)
    ctx.require(
        "ORC-RED-003",
        conflict.status == 422 and conflict.code == "idempotency_conflict",
        "the same key with another body must get 422 idempotency_conflict",
        conflict.exchange,
    )
    used = await _money.redeem(ctx, payment, 100)
    ctx.require(
        "ORC-RED-006",
        used.status == 402 and used.code == "payment_token_used",
        "a second redemption of one token must get 402 payment_token_used",
        used.exchange,
    )
    if followed is not None and isinstance(followed.spent, int):
        await _money.nothing_charged(
            ctx, ["ORC-RED-003", "ORC-RED-006"], followed.spent, [conflict, used]
        )


@check("ORC-RED-009", "ORC-RED-010")
async def amount_and_currency_are_bound_to_the_token(ctx: OrchestratorContext) -> None:
    fresh_user(ctx)
    payment = await token(ctx)
    allowed = jose.unverified_parts(payment)[1].get("max_amount")
    if not isinstance(allowed, int):
        raise Skipped("the token carries no integer max_amount (see ORC-PAY-005)")
    over = await _money.redeem(ctx, payment, allowed + 1)
    ctx.require(
        "ORC-RED-009",
        over.status == 402 and over.code == "amount_exceeds_token",
        f"{allowed + 1} against max_amount {allowed} must get 402 amount_exceeds_token",
        over.exchange,
    )
    foreign = await _money.redeem(
        ctx, payment, 100, currency=_money.other_currency(_tokens.token_currency(payment))
    )
    ctx.require(
        "ORC-RED-010",
        foreign.status == 402 and foreign.code == "currency_mismatch",
        "another currency must get 402 currency_mismatch",
        foreign.exchange,
    )
    await _money.nothing_charged(ctx, ["ORC-RED-009", "ORC-RED-010"], 0, [over, foreign], payment)


@check("ORC-CAP-001", "ORC-CAP-005")
async def the_cap_refuses_with_figures_and_refunds_restore_it(ctx: OrchestratorContext) -> None:
    charge, part = PROBE_LIMIT * 3 // 5, PROBE_LIMIT // 4  # 6000 and 2500 of 10000
    refusal = ctx.params.error("spend_cap_exceeded")
    fresh_user(ctx)
    first, second = await token(ctx, "gpu"), await token(ctx, "gpu")
    status, done, exchange = await redeem(ctx, first, charge)
    if status != 201:
        raise Skipped("could not redeem a first charge (see ORC-RED-011)")
    status, document, exchange = await redeem(ctx, second, charge)
    cap = document.get("cap")
    figures = isinstance(cap, dict) and all(
        k in cap for k in ("limit", "spent", "remaining", "currency", "interval", "resets_at")
    )
    ctx.require(
        "ORC-CAP-001",
        status == refusal.status and document.get("code") == refusal.code and figures,
        f"crossing the cap must get {refusal.status} {refusal.code} with limit, spent, "
        "remaining, currency, interval, resets_at",
        exchange,
    )
    back = await _money.refund(ctx, done.get("id"), part)
    if back is None:
        ctx.cannot_judge("ORC-CAP-005", "the orchestrator publishes no refund_endpoint")
        return
    ctx.require(
        "ORC-CAP-005",
        back.status == 201 and back.spent == charge - part,
        f"after refunding {part} of {charge} the refund got {back.shown()} and the month's "
        f"spend is {back.spent}, not {charge - part}",
        back.exchange,
    )
    # The headroom is there to use: the charge the cap refused fits now.
    again = await _money.redeem(ctx, second, charge)
    if again.code == "payment_token_used":
        again = await _money.redeem(ctx, await token(ctx, "gpu"), charge)
    ctx.require(
        "ORC-CAP-005",
        again.status == 201 and again.spent == 2 * charge - part,
        f"after the refund, the {charge} the cap refused before got {again.shown()} with the "
        f"month's spend at {again.spent}, not {2 * charge - part}",
        back.exchange,
        again.exchange,
    )


@check("ORC-RED-007")
async def only_the_tokens_audience_can_redeem_it(ctx: OrchestratorContext) -> None:
    other = ctx.target.other_provider
    if other is None:
        raise Skipped("the run serves no second provider")
    fresh_user(ctx)
    payment = await token(ctx)
    status, refused, foreign = await redeem(ctx, payment, 100, signer=other)
    ctx.require(
        "ORC-RED-007",
        status == 402 and refused.get("code") == "payment_token_invalid",
        f"a redemption by a provider that is not the token's aud must get 402 "
        f"payment_token_invalid, got {status} {refused.get('code')!r}",
        foreign,
    )
    status, document, exchange = await redeem(ctx, payment, 100)
    spent = (document.get("cap") or {}).get("spent")
    ctx.require(
        "ORC-RED-007",
        status != 201 or spent == 100,
        f"the refused foreign redemption was charged: the month's spend is {spent}, not 100",
        foreign,
        exchange,
    )


@check("ORC-RED-008")
async def an_expired_token_is_refused(ctx: OrchestratorContext) -> None:
    fresh_user(ctx)
    payment = await token(ctx)
    exp = jose.unverified_parts(payment)[1].get("exp")
    if not isinstance(exp, int):
        raise Skipped("blocked by ORC-PAY-004: the token has no integer exp")
    # Past exp by more than any reasonable leeway (RFC 7519 §4.1.4 allows "a few minutes").
    with ctx.shifted_clock(exp - ctx.now() + 600):
        expired = await _money.redeem(ctx, payment, 100)
    ctx.require(
        "ORC-RED-008",
        expired.status == 402 and expired.code == "payment_token_expired",
        f"an expired payment token must get 402 payment_token_expired, got {expired.shown()}",
        expired.exchange,
    )
    # Back at the orchestrator's own time the token is valid again: nothing was charged.
    await _money.nothing_charged(ctx, ["ORC-RED-008"], 0, [expired], payment)
