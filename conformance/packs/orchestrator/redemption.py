"""The orchestrator's redemption endpoint and spend cap, probed by the suite acting as the
provider that received the payment tokens (it signs with that provider's published key)."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from typing import Any

from conformance import jose
from conformance.adapters.orchestrator import OrchestratorContext
from conformance.checks import Skipped, check
from conformance.packs.orchestrator._helpers import metadata
from conformance.recorder import Exchange
from conformance.schemas import default_store
from mocks._core.attestation import mint_attestation
from mocks.provider.app import ProviderMock


def fresh_user(ctx: OrchestratorContext) -> None:
    ctx.cli(
        "init",
        "--new-user",
        "--email",
        f"provspec+{secrets.token_hex(4)}@example.com",
        "--accept-tos",
    )


async def redeem(
    ctx: OrchestratorContext,
    token: str,
    amount: int,
    *,
    currency: str = "usd",
    key: str | None = "",
    signed: bool = True,
    body: bytes | None = None,
    signer: ProviderMock | None = None,
) -> tuple[int, dict[str, Any], Exchange]:
    endpoint = (await metadata(ctx)).get("redemption_endpoint")
    if not isinstance(endpoint, str):
        raise Skipped("the orchestrator's metadata names no redemption_endpoint")
    raw = (
        body
        if body is not None
        else json.dumps(
            {
                "payment_token": token,
                "amount": amount,
                "currency": currency,
                "description": "provspec",
                "resource_id": "res_provspec",
            }
        ).encode()
    )
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Idempotency-Key"] = key or secrets.token_hex(8)
    if signed:
        provider = signer or ctx.provider
        headers["APP-Attestation"] = mint_attestation(
            provider.signing_key,
            issuer=provider.base_url,
            audience=ctx.issuer,
            subject="provspec",
            body=raw,
            now=ctx.now(),
        )
    response = await ctx.http.post(endpoint, content=raw, headers=headers)
    try:
        document = response.json()
    except ValueError:
        document = {}
    return (
        response.status_code,
        document if isinstance(document, dict) else {},
        ctx.recorder.exchanges[-1],
    )


async def token(ctx: OrchestratorContext, service: str = "pro") -> str:
    from conformance.packs.orchestrator.calls import paid_token, token_defects

    payment = (await paid_token(ctx, service))[0]
    try:
        claims = jose.unverified_parts(payment)[1]
    except jose.JOSEError:
        raise Skipped("blocked by ORC-PAY-002: the minted payment token is not a JWS") from None
    defects = token_defects(claims, ctx.provider.base_url)
    if defects:
        blocked = ", ".join(sorted(defects))
        raise Skipped(f"blocked by {blocked}: the minted payment token cannot be redeemed soundly")
    return payment


@check("ORC-RED-001", "ORC-RED-005", "ORC-RED-011", "ORC-RED-012")
async def redemption_needs_a_key_and_a_signature(ctx: OrchestratorContext) -> None:
    fresh_user(ctx)
    # A separate token for the keyless probe: an orchestrator that wrongly accepts it must not
    # spend the token the valid redemption below needs.
    payment = await token(ctx)
    status, document, exchange = await redeem(ctx, await token(ctx), 100, key=None)
    ctx.require(
        "ORC-RED-001",
        status == 400 and document.get("code") == "idempotency_key_required",
        "a redemption without Idempotency-Key must get 400 idempotency_key_required",
        exchange,
    )
    status, document, exchange = await redeem(ctx, payment, 100, signed=False)
    ctx.require(
        "ORC-RED-005", status == 401, f"an unsigned redemption must get 401, got {status}", exchange
    )
    for answer in (exchange,):
        ok = (
            answer.response_headers.get("content-type", "").startswith("application/problem+json")
            and document.get("status") == status
        )
        ctx.require(
            "ORC-RED-012",
            ok,
            "errors must be application/problem+json with status equal to the HTTP status",
            answer,
        )
    status, document, exchange = await redeem(ctx, payment, 100)
    problems = default_store().validate("app-next", "redemption_response", document)
    ctx.require(
        "ORC-RED-011",
        status == 201 and not problems,
        f"a valid redemption must get 201 redemption_response: {problems[:2]}",
        exchange,
    )


@check("ORC-RED-002", "ORC-RED-003", "ORC-RED-006")
async def idempotency_and_single_use(ctx: OrchestratorContext) -> None:
    fresh_user(ctx)
    payment = await token(ctx)
    key = secrets.token_hex(8)
    first = await redeem(ctx, payment, 100, key=key)
    again = await redeem(ctx, payment, 100, key=key)
    replayed = again[2].response_headers.get("idempotent-replayed") == "true"
    ctx.require(
        "ORC-RED-002",
        first[0] == 201
        and again[0] == first[0]
        and again[1].get("id") == first[1].get("id")
        and replayed,
        "a replay must return the original answer with Idempotent-Replayed: true",
        again[2],
    )
    spent = (again[1].get("cap") or {}).get("spent")
    ctx.require(
        "ORC-RED-002",
        spent == (first[1].get("cap") or {}).get("spent"),
        "the replay charged again",
        again[2],
    )
    status, document, exchange = await redeem(ctx, payment, 101, key=key)
    ctx.require(
        "ORC-RED-003",
        status == 422 and document.get("code") == "idempotency_conflict",
        "the same key with another body must get 422 idempotency_conflict",
        exchange,
    )
    status, document, exchange = await redeem(ctx, payment, 100)
    ctx.require(
        "ORC-RED-006",
        status == 402 and document.get("code") == "payment_token_used",
        "a second redemption of one token must get 402 payment_token_used",
        exchange,
    )


@check("ORC-RED-009", "ORC-RED-010")
async def amount_and_currency_are_bound_to_the_token(ctx: OrchestratorContext) -> None:
    fresh_user(ctx)
    payment = await token(ctx)
    allowed = jose.unverified_parts(payment)[1].get("max_amount")
    if not isinstance(allowed, int):
        raise Skipped("the token carries no integer max_amount (see ORC-PAY-005)")
    status, document, exchange = await redeem(ctx, payment, allowed + 1)
    ctx.require(
        "ORC-RED-009",
        status == 402 and document.get("code") == "amount_exceeds_token",
        f"{allowed + 1} against max_amount {allowed} must get 402 amount_exceeds_token",
        exchange,
    )
    status, document, exchange = await redeem(ctx, payment, 100, currency="eur")
    ctx.require(
        "ORC-RED-010",
        status == 402 and document.get("code") == "currency_mismatch",
        "another currency must get 402 currency_mismatch",
        exchange,
    )


@check("ORC-CAP-001", "ORC-CAP-005")
async def the_cap_refuses_with_figures_and_refunds_restore_it(ctx: OrchestratorContext) -> None:
    fresh_user(ctx)
    first, second = await token(ctx, "gpu"), await token(ctx, "gpu")
    status, done, exchange = await redeem(ctx, first, 6000)
    if status != 201:
        raise Skipped("could not redeem a first charge (see ORC-RED-011)")
    status, document, exchange = await redeem(ctx, second, 6000)
    cap = document.get("cap")
    figures = isinstance(cap, dict) and all(
        k in cap for k in ("limit", "spent", "remaining", "currency", "interval", "resets_at")
    )
    ctx.require(
        "ORC-CAP-001",
        status == 402 and document.get("code") == "spend_cap_exceeded" and figures,
        "crossing the cap must get 402 spend_cap_exceeded with limit, spent, remaining, currency, interval, resets_at",
        exchange,
    )
    refund_endpoint = (await metadata(ctx)).get("refund_endpoint")
    if not isinstance(refund_endpoint, str):
        ctx.cannot_judge("ORC-CAP-005", "the orchestrator publishes no refund_endpoint")
        return
    raw = json.dumps({"redemption_id": done.get("id"), "amount": 2500}).encode()
    provider = ctx.provider
    headers = {
        "Content-Type": "application/json",
        "Idempotency-Key": secrets.token_hex(8),
        "APP-Attestation": mint_attestation(
            provider.signing_key,
            issuer=provider.base_url,
            audience=ctx.issuer,
            subject="provspec",
            body=raw,
            now=int(time.time()),
        ),
    }
    response = await ctx.http.post(refund_endpoint, content=raw, headers=headers)
    spent = ((response.json() if response.status_code == 201 else {}).get("cap") or {}).get("spent")
    ctx.require(
        "ORC-CAP-005",
        spent == 3500,
        f"after refunding 2500 of 6000 the month's spend is {spent}, not 3500",
        ctx.recorder.exchanges[-1],
    )


@check("ORC-CAP-002")
async def concurrent_redemptions_never_cross_the_cap(ctx: OrchestratorContext) -> None:
    fresh_user(ctx)
    tokens = [await token(ctx, "gpu") for _ in range(12)]
    results = await asyncio.gather(*(redeem(ctx, payment, 6000) for payment in tokens))
    successes = [result for result in results if result[0] == 201]
    ctx.require(
        "ORC-CAP-002",
        len(successes) == 1,
        f"{len(successes)} of 12 concurrent redemptions of 6000 against a 10000 cap succeeded",
        *(r[2] for r in successes[:3]),
    )


@check("ORC-RED-007")
async def only_the_tokens_audience_can_redeem_it(ctx: OrchestratorContext) -> None:
    other = ctx.target.other_provider
    if other is None:
        raise Skipped("the run serves no second provider")
    fresh_user(ctx)
    payment = await token(ctx)
    status, _, foreign = await redeem(ctx, payment, 100, signer=other)
    ctx.require(
        "ORC-RED-007",
        status == 402,
        f"a provider that is not the token's aud redeemed it ({status}, not 402)",
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
        status, document, exchange = await redeem(ctx, payment, 100)
    ctx.require(
        "ORC-RED-008",
        status == 402 and document.get("code") == "payment_token_expired",
        f"an expired payment token must get 402 payment_token_expired, got {status} "
        f"{document.get('code')!r}",
        exchange,
    )
