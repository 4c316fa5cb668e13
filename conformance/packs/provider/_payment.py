"""What the payment checks share: a paid service to buy, the redemptions the provider sent
the suite's orchestrator side, and what a redemption or a provisioning answer says."""

from __future__ import annotations

import json
from typing import Any

import httpx

from conformance.adapters.provider import ProviderContext
from conformance.checks import Skipped
from conformance.packs.provider._helpers import Price, paid_provision, services
from conformance.recorder import Exchange


async def paid_entry(ctx: ProviderContext) -> dict[str, Any]:
    """A paid service of the catalog, one whose price states its amount where there is one
    (only then can the amount redeemed be compared with the price)."""
    paid = [e for e in await services(ctx) if (e.get("pricing") or {}).get("type") == "paid"]
    if not paid:
        raise Skipped("the catalog offers no paid service")
    return next((e for e in paid if Price.of(e).amount is not None), paid[0])


async def paid_setup(ctx: ProviderContext) -> tuple[str, dict[str, Any]]:
    """A fresh, connected user and a paid catalog entry: (bearer, entry)."""
    ctx.fresh_user()
    connection = await ctx.connect()
    return connection.access_token, await paid_entry(ctx)


def redemptions(ctx: ProviderContext, since: int) -> list[Exchange]:
    return [
        e
        for e in ctx.received(since)
        if e.method == "POST" and e.url == ctx.core.redemption_endpoint
    ]


def sent_amount(call: Exchange) -> tuple[Any, Any, Any]:
    """(amount, currency, payment_token) of a redemption request's body."""
    try:
        body = json.loads(call.request_body)
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    return body.get("amount"), body.get("currency"), body.get("payment_token")


async def refused_without_redeeming(
    ctx: ProviderContext,
    requirement: str,
    why: str,
    bearer: str,
    entry: dict[str, Any],
    *,
    credentials: dict[str, Any] | None = None,
    **claims: Any,
) -> None:
    """ "The provider rejects" a token: it refuses it itself and never forwards it for
    redemption, which would lean on the orchestrator to catch what it let through."""
    mark = ctx.recorder.mark
    response, exchange, _ = await paid_provision(
        ctx, entry, bearer=bearer, credentials=credentials, **claims
    )
    refused_itself(ctx, requirement, why, mark, response, exchange)


def refused_itself(
    ctx: ProviderContext,
    requirement: str,
    why: str,
    mark: int,
    response: httpx.Response,
    exchange: Exchange | None,
) -> None:
    """`requirement` holds when the answer to the paid call made after `mark` refused it with
    a 4xx and no redemption was sent for it."""
    forwarded = redemptions(ctx, mark)
    ctx.require(
        requirement,
        400 <= response.status_code < 500 and not forwarded,
        f"a payment token {why} was not refused by the provider itself: "
        f"{response.status_code}, {len(forwarded)} redemption(s) sent",
        exchange,
        *forwarded[:1],
    )


def provisioned(ctx: ProviderContext, response: httpx.Response) -> bool:
    document = ctx.json(response)
    return (
        response.status_code == 200
        and isinstance(document, dict)
        and document.get("status") in ("complete", "pending", "needs_information")
    )
