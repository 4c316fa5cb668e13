"""Idempotency keys at the redemption endpoint beyond the simple replay: a key still in flight
(draft-ietf-httpapi-idempotency-key-header §2.7: 409) and keys scoped to the provider that
sent them (§2 and its security considerations: a composite key)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator

from conformance.adapters.orchestrator import OTHER_PROVIDER_NAME, OrchestratorContext
from conformance.adapters.orchestrator_control import (
    AwaitHeldCharge,
    HoldNextCharge,
    Kind,
    ReleaseCharge,
    TestControl,
)
from conformance.checks import Skipped, check
from conformance.packs.orchestrator._helpers import fresh_user
from conformance.packs.orchestrator._money import Answer, nothing_charged, redeem
from conformance.packs.orchestrator._tokens import minted_token, signer_of

BURST = 8
"""Identical requests sent at once when the suite cannot hold the first one in flight."""


@check("ORC-RED-004")
async def a_key_still_in_flight_is_refused_with_409(ctx: OrchestratorContext) -> None:
    fresh_user(ctx)
    payment = await minted_token(ctx)
    key = secrets.token_hex(12)
    async with _first_charge_held(ctx) as held:
        if held is None:
            await _burst(ctx, payment, key)
            return
        first = asyncio.create_task(redeem(ctx, payment, 100, key=key))
        if not await held.reached(10.0):
            answer = await first
            raise Skipped(f"the first redemption never reached its charge ({answer.shown()})")
        second = await redeem(ctx, payment, 100, key=key)
        await held.release()
        original = await first
    ctx.require(
        "ORC-RED-004",
        second.status == 409 and second.code == "idempotency_in_flight",
        f"the same key and body sent while the first request was still being processed must "
        f"get 409 idempotency_in_flight, got {second.shown()}",
        second.exchange,
    )
    if original.status == 201:
        ctx.require(
            "ORC-RED-004",
            original.spent == 100,
            f"the request refused in flight was charged as well: the month's spend is "
            f"{original.spent}, not 100",
            second.exchange,
            original.exchange,
        )


async def _burst(ctx: OrchestratorContext, payment: str, key: str) -> None:
    """An orchestrator the suite cannot pause: the same request BURST times at once. Each
    answer must be the original 201, its replay, or 409 idempotency_in_flight."""
    answers = await asyncio.gather(*(redeem(ctx, payment, 100, key=key) for _ in range(BURST)))
    originals = [a for a in answers if a.status == 201 and not a.replayed]
    in_flight = [a for a in answers if a.status == 409]
    wrong = [
        a
        for a in answers
        if not (a.status == 201 or (a.status == 409 and a.code == "idempotency_in_flight"))
    ]
    ctx.require(
        "ORC-RED-004",
        not wrong and len(originals) <= 1,
        f"{BURST} identical requests with one key sent at once got "
        f"{sorted(a.shown() for a in answers)}: those that found the key in flight must get "
        f"409 idempotency_in_flight",
        *(a.exchange for a in (wrong or originals[1:])[:3]),
    )
    if not in_flight and not wrong and len(originals) <= 1:
        ctx.cannot_judge(
            "ORC-RED-004",
            "every duplicate arrived after the first request had finished; the orchestrator "
            "offers no test control that holds a redemption in flight (hold_next_charge; "
            "[orchestrator] control, docs/orchestrator-cli.md)",
        )


class _Held:
    """A redemption the orchestrator holds at its charge, through its test control."""

    def __init__(self, control: TestControl) -> None:
        self.control = control

    async def reached(self, seconds: float) -> bool:
        """Whether a redemption waits at its charge within `seconds`."""
        answer = await asyncio.to_thread(self.control.send, AwaitHeldCharge(seconds))
        return answer.get("held") is True

    async def release(self) -> None:
        await asyncio.to_thread(self.control.send, ReleaseCharge())


@contextlib.asynccontextmanager
async def _first_charge_held(ctx: OrchestratorContext) -> AsyncIterator[_Held | None]:
    """The orchestrator pauses the next redemption after it took its key and before it
    charges, until released (None: its test control cannot hold one)."""
    held_kinds = (Kind.HOLD_NEXT_CHARGE, Kind.AWAIT_HELD_CHARGE, Kind.RELEASE_CHARGE)
    if not all(ctx.target.offers(kind) for kind in held_kinds):
        yield None
        return
    control = ctx.target.control
    await asyncio.to_thread(control.send, HoldNextCharge())
    held = _Held(control)
    try:
        yield held
    finally:
        await held.release()


@check("ORC-RED-017")
async def one_providers_key_never_answers_another(ctx: OrchestratorContext) -> None:
    """Provider A redeems under key K. Provider B then redeems its own token under K (a new
    redemption: K is B's first use of it), and afterwards sends A's very bytes under K (no
    replay of A's answer; K is now B's, with another body). The order keeps the check free of
    any assumption about whether a refused request uses up its key: the draft leaves that
    open (draft-ietf-httpapi-idempotency-key-header §2.6)."""
    other = signer_of(ctx, OTHER_PROVIDER_NAME)
    fresh_user(ctx)
    mine = await minted_token(ctx)
    theirs = await minted_token(ctx, provider=OTHER_PROVIDER_NAME)
    key = secrets.token_hex(12)
    first = await redeem(ctx, mine, 100, key=key)
    if first.status != 201:
        raise Skipped(f"could not redeem a first token ({first.shown()}; see ORC-RED-011)")

    def replays(answer: Answer) -> bool:
        return answer.replayed or answer.document.get("id") == first.document.get("id")

    own = await redeem(ctx, theirs, 100, key=key, signer=other)
    ctx.require(
        "ORC-RED-017",
        own.status == 201 and not replays(own),
        f"another provider's own redemption under a key the first provider used got "
        f"{own.shown()} (Idempotent-Replayed {own.replayed}), not a new 201",
        first.exchange,
        own.exchange,
    )
    # The other provider sends the very same bytes with the same key: no replay of the first
    # provider's answer (it is not the token's audience either, so no charge).
    copied = await redeem(ctx, mine, 100, key=key, signer=other)
    ctx.require(
        "ORC-RED-017",
        not replays(copied) and copied.status != 201,
        f"another provider reusing the key with the same body got the first provider's "
        f"answer ({copied.shown()}, Idempotent-Replayed {copied.replayed})",
        first.exchange,
        copied.exchange,
    )
    if isinstance(first.spent, int):  # the refused copy charged nothing at the first provider
        counted = [] if copied.replayed else [copied]
        await nothing_charged(ctx, ["ORC-RED-017"], first.spent, counted)
