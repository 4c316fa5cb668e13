"""Money moves of the orchestrator checks: the suite, as one of its two providers, redeems and
refunds at the orchestrator (signing with that provider's published key), and reads the cap
figures the orchestrator reports. Payment tokens are minted in `_tokens`.

Every call answers an `Answer` that carries its own recorded exchange, found by its request's
Idempotency-Key and attestation, so evidence stays right when many calls run at once.
"""

from __future__ import annotations

import json
import secrets
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from conformance.adapters.orchestrator import OrchestratorContext
from conformance.checks import Skipped
from conformance.packs.orchestrator._helpers import metadata
from conformance.packs.orchestrator._tokens import minted_token, token_currency
from conformance.recorder import Exchange, exchange_of
from mocks.provider import ProviderMock
from spec.schemas import default_store
from wire.attestation import mint_attestation

__all__ = [
    "FOLLOW_UP",
    "Answer",
    "cap_figures",
    "endpoint_missing",
    "endpoints",
    "nothing_charged",
    "other_currency",
    "redeem",
    "redemption_body",
    "refund",
]

_ENDPOINTS: weakref.WeakKeyDictionary[OrchestratorContext, tuple[str, str | None]] = (
    weakref.WeakKeyDictionary()
)


@dataclass
class Answer:
    """One answer of the orchestrator's redemption or refund endpoint."""

    status: int
    document: dict[str, Any]
    headers: httpx.Headers
    exchange: Exchange | None

    @property
    def code(self) -> Any:
        return self.document.get("code")

    @property
    def cap(self) -> dict[str, Any]:
        cap = self.document.get("cap")
        return cap if isinstance(cap, dict) else {}

    @property
    def spent(self) -> Any:
        return self.cap.get("spent")

    @property
    def replayed(self) -> bool:
        return str(self.headers.get("idempotent-replayed", "")).strip().lower() == "true"

    def shown(self) -> str:
        return f"{self.status} {self.code!r}" if self.code else str(self.status)


async def endpoints(ctx: OrchestratorContext) -> tuple[str, str | None]:
    """The redemption endpoint and the refund endpoint (None: not published), from metadata."""
    known = _ENDPOINTS.get(ctx)
    if known is None:
        document = await metadata(ctx)
        redemption, refunds = document.get("redemption_endpoint"), document.get("refund_endpoint")
        if not isinstance(redemption, str):
            raise Skipped("the orchestrator's metadata names no redemption_endpoint")
        known = (redemption, refunds if isinstance(refunds, str) else None)
        _ENDPOINTS[ctx] = known
    return known


def other_currency(currency: str) -> str:
    """A well-formed currency that is not `currency`."""
    return "eur" if currency != "eur" else "usd"


def redemption_body(
    token: str, amount: Any, currency: Any = None, *, resource_id: str = "res_provspec"
) -> bytes:
    """A sound redemption body; the currency is the token's unless one is given."""
    if currency is None:
        currency = token_currency(token)
    return json.dumps(
        {
            "payment_token": token,
            "amount": amount,
            "currency": currency,
            "description": "provspec",
            "resource_id": resource_id,
        }
    ).encode()


async def _post(
    ctx: OrchestratorContext,
    url: str,
    raw: bytes,
    *,
    key: str | None,
    signed: bool,
    signer: ProviderMock | None,
    audience: str | None,
    content_type: str | None,
) -> Answer:
    headers: dict[str, str] = {}
    if content_type is not None:
        headers["Content-Type"] = content_type
    if key is not None:
        headers["Idempotency-Key"] = key
    if signed:
        provider = signer or ctx.provider
        headers[ctx.params.attestation_header] = mint_attestation(
            provider.signing_key,
            issuer=provider.base_url,
            audience=audience if audience is not None else ctx.issuer,
            subject="provspec",
            body=raw,
            now=ctx.now(),
            lifetime=ctx.params.attestation_lifetime,
        )
    response = await ctx.http.post(url, content=raw, headers=headers)
    try:
        document = response.json()
    except ValueError:
        document = {}
    return Answer(
        response.status_code,
        document if isinstance(document, dict) else {},
        response.headers,
        # the exchange travels on the response: redemptions sent at once are never mixed up
        exchange_of(response),
    )


async def redeem(
    ctx: OrchestratorContext,
    token: str,
    amount: Any,
    *,
    currency: Any = None,
    key: str | None = "",
    signed: bool = True,
    raw: bytes | None = None,
    signer: ProviderMock | None = None,
    audience: str | None = None,
    content_type: str | None = "application/json",
) -> Answer:
    """Redeem `token` for `amount`; `key` "" is a fresh Idempotency-Key, None sends none."""
    url = (await endpoints(ctx))[0]
    return await _post(
        ctx,
        url,
        raw if raw is not None else redemption_body(token, amount, currency),
        key=secrets.token_hex(12) if key == "" else key,
        signed=signed,
        signer=signer,
        audience=audience,
        content_type=content_type,
    )


async def refund(
    ctx: OrchestratorContext,
    redemption_id: Any,
    amount: int,
    *,
    signer: ProviderMock | None = None,
) -> Answer | None:
    """Refund part of a redemption; None when the orchestrator publishes no refund_endpoint.
    A published refund_endpoint that is not there blocks the check (ORC-DSC-018 fails it)."""
    url = (await endpoints(ctx))[1]
    if url is None:
        return None
    raw = json.dumps({"redemption_id": redemption_id, "amount": amount}).encode()
    answer = await _post(
        ctx,
        url,
        raw,
        key=secrets.token_hex(12),
        signed=True,
        signer=signer,
        audience=None,
        content_type="application/json",
    )
    if endpoint_missing(answer):
        raise Skipped(
            f"blocked by ORC-DSC-018: the refund_endpoint the metadata names answers "
            f"{answer.status}"
        )
    return answer


ABSENT = (404, 405, 501)
"""Statuses that say an advertised endpoint is not there."""


_CODES = frozenset(
    default_store().schema("app-next", "redemption_error")["properties"]["code"]["enum"]
)
"""The redemption and refund endpoints' documented error codes (the schema is the source)."""


def endpoint_missing(answer: Answer) -> bool:
    """Whether `answer` says the endpoint is not there. A 404 that is the endpoint's own
    documented refusal (a problem document naming a redemption error code, such as
    redemption_not_found) shows the endpoint is there and judged the request."""
    if answer.status not in ABSENT:
        return False
    return not (answer.status == 404 and isinstance(answer.code, str) and answer.code in _CODES)


FOLLOW_UP = 100
"""The follow-up redemption that shows refused requests charged nothing."""


async def nothing_charged(
    ctx: OrchestratorContext,
    requirements: Sequence[str],
    before: int,
    answers: Sequence[Answer],
    payment: str | None = None,
    *,
    what: str = "a refused request",
) -> Answer | None:
    """Show that the refused ones among `answers` charged nothing; the follow-up redemption
    (None when it could not be made with cap figures).

    `before` is the month's spend before those requests. A follow-up redemption of
    FOLLOW_UP (with `payment`, or a new token once that one is used up) must leave the spend
    at `before`, plus what the accepted answers say they charged, plus FOLLOW_UP. Anything
    more was charged by a refusal, which fails `requirements`."""
    follow_up = None
    if payment is not None:
        follow_up = await redeem(ctx, payment, FOLLOW_UP)
    if follow_up is None or follow_up.code == "payment_token_used":
        follow_up = await redeem(ctx, await minted_token(ctx), FOLLOW_UP)
    if follow_up.status != 201 or not isinstance(follow_up.spent, int):
        for requirement in requirements:
            ctx.cannot_judge(
                requirement,
                f"the follow-up redemption that would show the refused requests charged "
                f"nothing got {follow_up.shown()} without cap figures (see ORC-RED-011)",
            )
        return None
    accepted = sum(
        a.document["amount"]
        for a in answers
        if a.status == 201 and isinstance(a.document.get("amount"), int)
    )
    expected = before + accepted + FOLLOW_UP
    for requirement in requirements:
        ctx.require(
            requirement,
            follow_up.spent == expected,
            f"{what} was charged: after it and a follow-up of {FOLLOW_UP}, the "
            f"month's spend is {follow_up.spent}, not {expected}",
            *(a.exchange for a in answers if a.status != 201),
            follow_up.exchange,
        )
    return follow_up


# --- the figures the CLI reports ---------------------------------------------------------------


def cap_figures(envelope: dict[str, Any], provider: str) -> dict[str, Any] | None:
    """One provider's cap figures in a `billing` envelope: `data.caps.<provider>` or an entry
    of a `data.providers` / `data.caps` list naming it. None when the envelope has none."""
    data = envelope.get("data")
    if not isinstance(data, dict):
        return None
    for member in ("caps", "providers", "limits"):
        found = data.get(member)
        if isinstance(found, dict) and isinstance(found.get(provider), dict):
            figures: dict[str, Any] = found[provider]
            return figures
        if isinstance(found, list):
            for entry in found:
                if isinstance(entry, dict) and provider in (
                    entry.get("provider"),
                    entry.get("name"),
                ):
                    return entry
    return None
