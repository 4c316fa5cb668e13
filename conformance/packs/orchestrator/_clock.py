"""The orchestrator's clock, moved for the probes that need another month or an expired
token: the suite's providers live at the same moment, and payment tokens are minted at it.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime

from conformance.adapters.orchestrator import PROVIDER_NAME, OrchestratorContext
from conformance.adapters.orchestrator_control import Kind
from conformance.checks import Skipped
from conformance.packs.orchestrator._tokens import Mint, token_sent, usable

__all__ = ["living_at", "next_month", "shifted_mint", "shifted_token"]


@contextlib.contextmanager
def living_at(ctx: OrchestratorContext, moment: datetime) -> Iterator[None]:
    """The orchestrator lives at `moment` (UTC) for the block, and so do the suite's own
    providers, which check the tokens it sends them against their clocks; an orchestrator
    whose clock the suite cannot move is not judged (Skipped, saying so)."""
    with ctx.shifted_clock(moment.timestamp() - time.time()), ctx.target.providers_on_its_clock():
        yield


async def shifted_mint(ctx: OrchestratorContext, service: str = "gpu") -> Mint:
    """A paid `add` at the orchestrator's shifted time, and the payment token it sent (not
    judged where the orchestrator's test control cannot move its clock)."""
    if not ctx.target.clock_movable:
        raise ctx.target.unoffered(Kind.SET_CLOCK, ", the probe needs another month")
    mark = ctx.recorder.mark
    name = f"{service.replace(':', '-')}-{secrets.token_hex(3)}"
    call, envelope = await ctx.target.paid_add_on_moved_clock(PROVIDER_NAME, service, name)
    return Mint(token_sent(ctx, mark, PROVIDER_NAME), envelope, call)


async def shifted_token(ctx: OrchestratorContext, service: str = "gpu") -> str:
    """A sound payment token minted at the orchestrator's shifted time, or Skipped."""
    made = await shifted_mint(ctx, service)
    if made.token is None:
        raise Skipped(
            f"no payment token reached the provider at the shifted time ({made.error_code})"
        )
    return usable(ctx, made.token, PROVIDER_NAME)


def next_month(moment: datetime) -> datetime:
    """00:00:00 UTC on the first day of the month after `moment`."""
    moment = moment.astimezone(UTC)
    return datetime(moment.year + moment.month // 12, moment.month % 12 + 1, 1, tzinfo=UTC)
