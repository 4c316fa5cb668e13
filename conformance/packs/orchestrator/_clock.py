"""The orchestrator's clock, moved for the probes that need another month or an expired
token: the suite's providers live at the same moment, and payment tokens are minted at it.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx

from conformance.adapters.orchestrator import PROVIDER_NAME, OrchestratorContext
from conformance.checks import Skipped
from conformance.packs.orchestrator._tokens import Mint, mint, token_sent, usable
from mocks.orchestrator import HTTPProblem, Orchestrator
from wire.tls import tls_context

__all__ = ["living_at", "next_month", "shifted_mint", "shifted_token"]


@contextlib.contextmanager
def living_at(ctx: OrchestratorContext, moment: datetime) -> Iterator[None]:
    """The orchestrator lives at `moment` (UTC) for the block, and so do the suite's own
    providers, which check the tokens it sends them against their clocks; an orchestrator
    whose clock the suite cannot move is not judged (Skipped, saying so)."""
    with ctx.shifted_clock(moment.timestamp() - time.time()):
        clock = ctx.target.clock
        providers = [p for p in (ctx.provider, ctx.target.other_provider) if p is not None]
        kept = [provider.clock for provider in providers]
        try:
            for provider in providers:
                provider.clock = clock  # type: ignore[assignment]
            yield
        finally:
            for provider, own in zip(providers, kept, strict=True):
                provider.clock = own


async def shifted_mint(ctx: OrchestratorContext, service: str = "gpu") -> Mint:
    """A paid `add` at the orchestrator's shifted time, and the payment token it sent.

    The embedded orchestrator's CLI keeps wall time, so a token it mints is not valid a month
    later; its engine, on the shifted clock, runs the same paid `add` (catalog, account,
    resource creation with the payment token) that the CLI would have run then. Another
    orchestrator whose test clock the suite moved (`clock_command`) mints through its CLI."""
    core = ctx.target.core
    if core is None:
        if not ctx.target.clock_movable:
            raise Skipped(
                "not judged: the suite cannot move this orchestrator's clock; set "
                "[orchestrator] clock_command to the command that moves its test clock"
            )
        return await mint(ctx, service)
    mark = ctx.recorder.mark
    envelope: dict[str, Any]
    try:
        async with httpx.AsyncClient(
            timeout=ctx.target.config.timeout, verify=tls_context()
        ) as http:
            engine = Orchestrator(core, http, auto_consent=False)
            engine.strict_answers = True
            outcome = await engine.add(
                PROVIDER_NAME,
                service,
                name=f"{service}-{secrets.token_hex(3)}",
                confirm_paid=True,
                accept_tos=True,
            )
    except HTTPProblem as problem:  # what the CLI would answer as ok false
        envelope = {"ok": False, "error": {"code": problem.code, "message": problem.message}}
    except httpx.HTTPError as error:
        envelope = {"ok": False, "error": {"code": "NETWORK_ERROR", "message": str(error)}}
    else:
        ok = outcome.status in ("provisioned", "pending", "needs_information")
        envelope = {"ok": ok, "data": outcome.data}
        if not ok:
            envelope["error"] = {"code": outcome.status.upper(), "message": outcome.message}
    return Mint(token_sent(ctx, mark, PROVIDER_NAME), envelope, None)


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
