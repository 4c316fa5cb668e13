"""Money moves of the orchestrator checks: the suite, as one of its two providers, redeems and
refunds at the orchestrator (signing with that provider's published key), gets payment tokens
minted through the orchestrator's CLI, and reads the cap figures the orchestrator reports.

Every call answers an `Answer` that carries its own recorded exchange, found by its request's
Idempotency-Key and attestation, so evidence stays right when many calls run at once.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from conformance.adapters.orchestrator import PROVIDER_NAME, OrchestratorContext
from conformance.checks import Skipped
from conformance.packs.orchestrator._helpers import metadata
from conformance.recorder import CliCall, Exchange
from mocks.orchestrator import HTTPProblem, Orchestrator
from mocks.provider import ProviderMock
from mocks.provider import service as provider_service
from spec.schemas import default_store
from wire import jose
from wire.attestation import mint_attestation
from wire.tls import tls_context

__all__ = [
    "Answer",
    "Mint",
    "cap_figures",
    "endpoints",
    "living_at",
    "max_amount",
    "mint",
    "minted_token",
    "minted_tokens",
    "next_month",
    "nothing_charged",
    "redeem",
    "redemption_body",
    "refund",
    "shifted_mint",
    "shifted_token",
    "signer_of",
    "stated_price",
    "usable",
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


def token_currency(token: str) -> str:
    """The currency a payment token names: what a provider redeems it in. An orchestrator may
    keep its caps in any currency, so the suite never assumes usd where the token says."""
    try:
        currency = jose.unverified_parts(token)[1].get("currency")
    except (jose.JOSEError, AttributeError):
        currency = None
    return currency if isinstance(currency, str) and currency else "usd"


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


def signer_of(ctx: OrchestratorContext, provider: str) -> ProviderMock:
    if provider == PROVIDER_NAME:
        return ctx.provider
    other = ctx.target.other_provider
    if other is None:
        raise Skipped("the run serves no second provider")
    return other


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
        _exchange_of(ctx, url, headers),
    )


def _exchange_of(ctx: OrchestratorContext, url: str, headers: dict[str, str]) -> Exchange | None:
    """The recorded exchange of the request sent with `headers` (its key and attestation)."""
    shown = ctx.recorder.mask_headers(httpx.Headers(headers))
    name = ctx.params.attestation_header.lower()
    key, attestation = shown.get("idempotency-key"), shown.get(name)
    for exchange in reversed(ctx.recorder.exchanges):
        if (
            exchange.url == url
            and exchange.request_headers.get("idempotency-key") == key
            and exchange.request_headers.get(name) == attestation
        ):
            return exchange
    return None


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


# --- payment tokens ----------------------------------------------------------------------------


@dataclass
class Mint:
    """What one paid `add` gave: the payment token that reached the provider, if any."""

    token: str | None
    envelope: dict[str, Any]
    call: CliCall | None
    """The CLI call (None: minted by the embedded engine at a shifted time)."""

    @property
    def error_code(self) -> str:
        error = self.envelope.get("error")
        return str(error.get("code", "")) if isinstance(error, dict) else ""

    @property
    def cap_refused(self) -> bool:
        return self.error_code.upper() == "SPEND_CAP_EXCEEDED"


async def mint(
    ctx: OrchestratorContext, service: str = "gpu", provider: str = PROVIDER_NAME
) -> Mint:
    """A paid `add` at one of the suite's providers through the orchestrator's CLI, and the
    payment token the orchestrator sent with the resource creation."""
    mark = ctx.recorder.mark
    call, envelope = ctx.cli(
        "add",
        f"{provider}/{service}",
        "--name",
        f"{service.replace(':', '-')}-{secrets.token_hex(3)}",
        "--confirm-paid-service",
    )
    return Mint(_token_sent(ctx, mark, provider), envelope, call)


def _token_sent(ctx: OrchestratorContext, mark: int, provider: str) -> str | None:
    creates = [
        raw
        for raw in ctx.received(mark, "/provisioning/resources", provider=provider)
        if raw.method == "POST"
    ]
    body = ctx.body(creates[-1]) if creates else None
    credentials = body.get("payment_credentials") if isinstance(body, dict) else None
    token = credentials.get("app_payment_token") if isinstance(credentials, dict) else None
    return token if isinstance(token, str) else None


def stated_price(ctx: OrchestratorContext, service_id: Any) -> int | None:
    """The price the suite's providers state for `service_id` in integer minor units, or None.

    In app-next a fixed paid price carries `amount` and `currency` next to its text
    (service.schema.json); a price in text only (freeform), a component price and every 0.1d
    price state no amount, and then the orchestrator cannot know the price before the
    provider charges it (ORC-PAY-015, ORC-CAP-010)."""
    if ctx.family != "app-next" or not isinstance(service_id, str):
        return None
    entry = provider_service(service_id)
    if entry is None:
        return None
    pricing = entry.as_json(structured_price=True)["pricing"]
    paid = pricing.get("paid") if pricing.get("type") == "paid" else None
    amount = paid.get("amount") if isinstance(paid, dict) else None
    return amount if isinstance(amount, int) and amount > 0 else None


def usable(ctx: OrchestratorContext, token: str, provider: str) -> str:
    """`token` when the suite can redeem it soundly; Skipped naming the payment requirement
    it breaks otherwise (that requirement's check fails it; the others are blocked)."""
    from conformance.packs.orchestrator.calls import token_defects

    try:
        claims = jose.unverified_parts(token)[1]
    except jose.JOSEError:
        raise Skipped("blocked by ORC-PAY-002: the minted payment token is not a JWS") from None
    defects = token_defects(
        claims,
        signer_of(ctx, provider).base_url,
        ctx.params.payment_token_lifetime,
        price=stated_price(ctx, claims.get("service_id")),
    )
    if defects:
        blocked = ", ".join(sorted(defects))
        raise Skipped(f"blocked by {blocked}: the minted payment token cannot be redeemed soundly")
    return token


async def minted_token(
    ctx: OrchestratorContext, service: str = "gpu", provider: str = PROVIDER_NAME
) -> str:
    """A sound payment token for `provider`, or Skipped saying what stopped it."""
    made = await mint(ctx, service, provider)
    if made.token is None:
        why = made.envelope.get("error") or "no resource creation reached the provider"
        raise Skipped(f"no payment token reached {provider} for a paid add ({why})")
    return usable(ctx, made.token, provider)


async def minted_tokens(
    ctx: OrchestratorContext, count: int, service: str = "gpu", provider: str = PROVIDER_NAME
) -> list[str]:
    """`count` sound payment tokens for `provider`, minted one after another.

    Call it while the month's cap is whole (right after `fresh_user`) for every token a check
    will spend: an orchestrator that follows ORC-CAP-010 mints nothing once what is left is
    below the price, and a minted, unredeemed token lowers no cap (ORC-CAP-011)."""
    return [await minted_token(ctx, service, provider) for _ in range(count)]


def max_amount(token: str) -> int | None:
    value = jose.unverified_parts(token)[1].get("max_amount")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# --- the orchestrator's clock ------------------------------------------------------------------


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
    return Mint(_token_sent(ctx, mark, PROVIDER_NAME), envelope, None)


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
