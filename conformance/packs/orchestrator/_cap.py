"""Moves of the cap checks (cap.py): the probes' cap and charge, charges and tokens that fit
it, the moments of the month boundaries, and the figures an answer reports judged.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from conformance.adapters.orchestrator import (
    PROVIDER_NAME,
    OrchestratorContext,
)
from conformance.checks import Skipped
from conformance.packs.orchestrator._clock import next_month
from conformance.packs.orchestrator._helpers import PROBE_LIMIT
from conformance.packs.orchestrator._money import Answer, redeem
from conformance.packs.orchestrator._tokens import (
    mint,
    minted_token,
    signer_of,
    usable,
)
from conformance.recorder import CliCall, Exchange

__all__ = [
    "boundaries",
    "cap_code",
    "cap_refused",
    "spend_at",
    "charge_of",
    "default_limit",
    "judge_figures",
    "limit_of",
    "mint_while_it_fits",
    "orchestrator_now",
    "stamp",
]


def default_limit(ctx: OrchestratorContext) -> int:
    """The cap a new user of the money probes has (`fresh_user`: PROBE_LIMIT)."""
    return PROBE_LIMIT


def charge_of(ctx: OrchestratorContext) -> int:
    """Three fifths of the probes' cap: two such charges never fit in one month."""
    return default_limit(ctx) * 3 // 5


def cap_code(ctx: OrchestratorContext) -> str:
    return ctx.params.error("spend_cap_exceeded").code


def cap_refused(ctx: OrchestratorContext, answer: Answer) -> bool:
    """Refused by the cap, whatever the status (ORC-CAP-001 judges the status)."""
    return answer.status >= 400 and answer.code == cap_code(ctx)


def limit_of(ctx: OrchestratorContext, answer: Answer) -> int:
    limit = answer.cap.get("limit")
    return limit if isinstance(limit, int) and not isinstance(limit, bool) else default_limit(ctx)


def orchestrator_now(ctx: OrchestratorContext) -> datetime:
    return datetime.fromtimestamp(ctx.now(), UTC)


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


async def mint_while_it_fits(ctx: OrchestratorContext, count: int) -> list[str]:
    """Up to `count` more tokens: fewer once the orchestrator refuses to mint because what is
    left of the cap is below the price (as ORC-CAP-010 requires)."""
    tokens: list[str] = []
    for _ in range(count):
        made = await mint(ctx)
        if made.cap_refused:
            break
        if made.token is None:
            raise Skipped(f"no payment token reached {PROVIDER_NAME} ({made.error_code})")
        tokens.append(usable(ctx, made.token, PROVIDER_NAME))
    return tokens


async def spend_at(ctx: OrchestratorContext, amount: int, provider: str = PROVIDER_NAME) -> Answer:
    answer = await redeem(
        ctx, await minted_token(ctx, provider=provider), amount, signer=signer_of(ctx, provider)
    )
    if answer.status != 201:
        raise Skipped(f"could not redeem {amount} at {provider} ({answer.shown()})")
    return answer


def boundaries(now: datetime) -> list[datetime]:
    """The next month boundary, a new year, and the end of a leap February."""
    first = next_month(now)
    new_year = datetime(now.year + 1, 1, 1, tzinfo=UTC)
    if new_year == first:
        new_year = datetime(now.year + 2, 1, 1, tzinfo=UTC)
    year = now.year
    while (
        not (year % 4 == 0 and (year % 100 != 0 or year % 400 == 0))
        or datetime(year, 3, 1, tzinfo=UTC) <= now
    ):
        year += 1
    return [first, new_year, datetime(year, 3, 1, tzinfo=UTC)]


def judge_figures(
    ctx: OrchestratorContext,
    label: str,
    cap: dict[str, Any],
    moments: tuple[int, int],
    evidence: Exchange | CliCall | None,
) -> None:
    limit, spent, remaining = cap.get("limit"), cap.get("spent"), cap.get("remaining")
    if all(isinstance(v, int) and not isinstance(v, bool) for v in (limit, spent, remaining)):
        ctx.require(
            "ORC-CAP-013",
            remaining == max(limit - spent, 0),  # type: ignore[operator]
            f"{label}: remaining {remaining} is not limit {limit} minus spent {spent}",
            evidence,
        )
    resets = cap.get("resets_at")
    if resets is None:
        return
    expected = {next_month(datetime.fromtimestamp(m, UTC)) for m in moments}
    try:
        instant = datetime.fromisoformat(str(resets).replace("Z", "+00:00"))
        ok = instant.tzinfo is not None and instant.astimezone(UTC) in expected
    except ValueError:
        ok = False
    ctx.require(
        "ORC-CAP-013",
        ok,
        f"{label}: resets_at {resets!r} is not {' or '.join(stamp(e) for e in sorted(expected))}",
        evidence,
    )
