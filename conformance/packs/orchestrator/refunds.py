"""The orchestrator's refund endpoint, probed as the provider that redeemed: a refund never
exceeds what remains of its redemption, and only that provider can give money back."""

from __future__ import annotations

from conformance.adapters.orchestrator import OTHER_PROVIDER_NAME, OrchestratorContext
from conformance.checks import NotApplicable, Skipped, check
from conformance.packs.orchestrator._helpers import fresh_user
from conformance.packs.orchestrator._money import Answer, redeem, refund
from conformance.packs.orchestrator._tokens import minted_tokens, signer_of

CHARGE = 6000


async def _charged(ctx: OrchestratorContext, spares: int = 0) -> tuple[Answer, list[str]]:
    """A new user's first charge of CHARGE, and `spares` more tokens minted before it, while
    the whole cap was left (an orchestrator mints none once less than the price is left)."""
    fresh_user(ctx)
    tokens = await minted_tokens(ctx, 1 + spares)
    done = await redeem(ctx, tokens[0], CHARGE)
    if done.status != 201 or not done.document.get("id"):
        raise Skipped(f"could not redeem a first charge ({done.shown()}; see ORC-RED-011)")
    return done, tokens[1:]


@check("ORC-RED-014")
async def refunds_never_exceed_what_remains(ctx: OrchestratorContext) -> None:
    done, _ = await _charged(ctx)
    redemption = done.document["id"]
    steps = [
        (CHARGE + 1, False, f"a refund of {CHARGE + 1} on a redemption of {CHARGE}"),
        (2000, True, f"a refund of 2000 on a redemption of {CHARGE}"),
        (CHARGE - 2000 + 1, False, f"a refund of {CHARGE - 2000 + 1} when {CHARGE - 2000} remain"),
        (CHARGE - 2000, True, f"a refund of the {CHARGE - 2000} that remain"),
    ]
    for amount, allowed, what in steps:
        answer = await refund(ctx, redemption, amount)
        if answer is None:
            raise NotApplicable("the orchestrator offers no refunds (no refund_endpoint)")
        if allowed:
            if answer.status != 201:
                raise Skipped(f"{what} was not accepted ({answer.shown()})")
            continue
        ctx.require(
            "ORC-RED-014",
            answer.status == 400 and answer.code == "refund_exceeds_redemption",
            f"{what} must get 400 refund_exceeds_redemption, got {answer.shown()}",
            answer.exchange,
        )


@check("ORC-RED-023")
async def only_the_redeeming_provider_can_refund(ctx: OrchestratorContext) -> None:
    other = signer_of(ctx, OTHER_PROVIDER_NAME)
    done, (spare,) = await _charged(ctx, spares=1)
    foreign = await refund(ctx, done.document["id"], CHARGE, signer=other)
    if foreign is None:
        raise NotApplicable("the orchestrator offers no refunds (no refund_endpoint)")
    ctx.require(
        "ORC-RED-023",
        foreign.status == 404 and foreign.code == "redemption_not_found",
        f"another provider refunding this provider's redemption must get 404 "
        f"redemption_not_found, got {foreign.shown()}",
        done.exchange,
        foreign.exchange,
    )
    # Nothing came back to the cap: exactly what the first charge left still fits, and no more.
    limit = done.cap.get("limit")
    if not isinstance(limit, int):
        ctx.cannot_judge("ORC-RED-023", "the redemption carries no cap figures (ORC-RED-011)")
        return
    rest = limit - CHARGE - 1
    after = await redeem(ctx, spare, rest)
    ctx.require(
        "ORC-RED-023",
        after.status == 201 and after.spent == CHARGE + rest,
        f"after the refused refund, a charge of {rest} got {after.shown()} with the month's "
        f"spend at {after.spent}, not {CHARGE + rest}: the refused refund changed the cap",
        foreign.exchange,
        after.exchange,
    )
