"""Shared moves of the provider checks: catalog lookups, provisioning, hostile tokens."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

import httpx

from conformance.adapters.provider import ProviderContext
from conformance.checks import Skipped, Unexpected
from conformance.client import ATTESTATION_TYP, Connection
from conformance.recorder import Exchange
from spec.schemas import default_store
from wire import jose

PAYMENT_TOKEN_TYP = "app-payment+jwt"

SCHEMAS = default_store()


def issues(ctx: ProviderContext, message: str, document: Any) -> str:
    """The schema problems of `document` as one line; empty when it is valid."""
    found = SCHEMAS.validate(ctx.profile, message, document)
    return "; ".join(str(issue) for issue in found[:3])


def oauth_code(document: Any) -> str | None:
    """The authorization code of an account answer (`oauth.code`), whatever shape it has."""
    oauth = document.get("oauth") if isinstance(document, dict) else None
    code = oauth.get("code") if isinstance(oauth, dict) else None
    return code if isinstance(code, str) else None


def error_code(document: Any) -> str | None:
    if not isinstance(document, dict):
        return None
    error = document.get("error")
    if isinstance(error, dict) and isinstance(error.get("code"), str):
        return str(error["code"])
    if isinstance(error, str):
        return error
    code = document.get("code")
    return code if isinstance(code, str) else None


async def services(ctx: ProviderContext) -> list[dict[str, Any]]:
    """The catalog's entries; a check that needs them is blocked by PRV-DSC-002 when the
    catalog is missing or its entries lack what every check reads (an id, a pricing object)."""
    response, exchange = await ctx.call("GET", "provisioning/services")
    document = ctx.json(response)
    if (
        response.status_code != 200
        or not isinstance(document, dict)
        or not isinstance(document.get("data"), list)
    ):
        raise Skipped("the provider's catalog is unavailable (see the discovery checks)")
    entries = [entry for entry in document["data"] if isinstance(entry, dict)]
    broken = [
        entry.get("id")
        for entry in entries
        if not isinstance(entry.get("id"), str) or not isinstance(entry.get("pricing"), dict)
    ]
    if broken:
        raise Unexpected(
            "PRV-DSC-002",
            f"catalog entries {broken[:3]} lack a string id or a pricing object",
            exchange,
            blocked=True,
        )
    return entries


async def service_of(ctx: ProviderContext, pricing: str) -> dict[str, Any]:
    for entry in await services(ctx):
        if (entry.get("pricing") or {}).get("type") == pricing:
            return entry
    raise Skipped(f"the catalog offers no {pricing} service")


async def provision(
    ctx: ProviderContext, service_id: str, *, bearer: str, **extra: Any
) -> tuple[httpx.Response, Exchange]:
    body = {
        "service_id": service_id,
        "project_id": "proj_" + secrets.token_hex(6),
        "configuration": {},
        **extra,
    }
    return await ctx.call("POST", "provisioning/resources", body=body, bearer=bearer)


async def free_resource(ctx: ProviderContext) -> tuple[Connection, dict[str, Any]]:
    """A fresh user, connected, with a complete free resource: (connection, resource answer)."""
    connection, document, _ = await free_resource_exchange(ctx)
    return connection, document


async def free_resource_exchange(
    ctx: ProviderContext,
) -> tuple[Connection, dict[str, Any], Exchange]:
    """`free_resource`, with the recorded exchange of the provisioning call."""
    ctx.fresh_user()
    connection = await ctx.connect()
    entry = await service_of(ctx, "free")
    response, exchange = await provision(ctx, str(entry["id"]), bearer=connection.access_token)
    document = ctx.json(response)
    if (
        response.status_code != 200
        or not isinstance(document, dict)
        or document.get("status") != "complete"
    ):
        raise Skipped("could not provision a free service (see the provisioning checks)")
    if not isinstance(document.get("id"), str) or not isinstance(document.get("service_id"), str):
        raise Unexpected(
            "PRV-PRO-003",
            "the complete resource names no id or service_id",
            exchange,
            blocked=True,
        )
    return connection, document, exchange


def attestation(
    ctx: ProviderContext,
    body: bytes = b"",
    *,
    header: dict[str, Any] | None = None,
    drop: tuple[str, ...] = (),
    key: jose.SigningKey | None = None,
    **claims: Any,
) -> str:
    """An attestation as the suite's orchestrator signs it, with overrides for attacks."""
    _, payload, _ = jose.unverified_parts(ctx.client.attest(body))
    payload.update(claims)
    for name in drop:
        payload.pop(name, None)
    signing_key = key or ctx.core.signing_key
    extra = dict(header or {})
    return jose.sign(payload, signing_key, typ=extra.pop("typ", ATTESTATION_TYP), **extra)


def unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    return jose.compact(header, claims, signature)


@dataclass(frozen=True)
class Price:
    """What a catalog entry says a service costs: an amount in minor units and a currency
    where the price is structured (app-next `pricing.paid.amount`), else neither."""

    amount: int | None
    currency: str | None

    @staticmethod
    def of(entry: dict[str, Any]) -> Price:
        pricing = entry.get("pricing")
        paid = (
            pricing.get("paid")
            if isinstance(pricing, dict) and pricing.get("type") == "paid"
            else None
        )
        amount = paid.get("amount") if isinstance(paid, dict) else None
        currency = paid.get("currency") if isinstance(paid, dict) else None
        return Price(
            amount if isinstance(amount, int) and not isinstance(amount, bool) else None,
            currency if isinstance(currency, str) else None,
        )


def payment_token(
    ctx: ProviderContext,
    service_id: str,
    project_id: str,
    /,
    *,
    price: Price | None = None,
    **overrides: Any,
) -> str:
    """A payment token bound to exactly the request it goes with: this provider, the
    request's service and project, the price's currency, and the price as max_amount (the
    default cap where the catalog states no amount). `overrides` change claims for attacks."""
    now = int(time.time())
    claims = {
        "iss": ctx.core.issuer,
        "aud": ctx.base_url,
        "sub": ctx.user.id,
        "jti": "pt_" + secrets.token_hex(8),
        "iat": now,
        "exp": now + 600,
        "max_amount": (price.amount if price and price.amount else None)
        or ctx.params.default_cap.limit,
        "currency": (price.currency if price else None) or ctx.params.default_cap.currency,
        "service_id": service_id,
        "project_id": project_id,
    }
    claims.update(overrides)
    return jose.sign(claims, ctx.core.signing_key, typ=PAYMENT_TOKEN_TYP)


def payment_credentials(
    ctx: ProviderContext,
    service_id: str,
    project_id: str | None = None,
    /,
    *,
    price: Price | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Payment credentials that pay: 0.1d, the shared payment token the target's test mode
    activates ([provider] test_payment_token; without one, the check cannot pay and is
    skipped); app-next, a payment token the suite mints for this service and project."""
    if ctx.family == "app-0.1d":
        token = ctx.target.test_payment_token
        if not token:
            raise Skipped(
                "a paid provisioning needs a shared payment token the provider's test mode "
                "activates: set [provider] test_payment_token in provspec.toml"
            )
        return {"type": "stripe_payment_token", "stripe_payment_token": token}
    project = project_id or "proj_" + secrets.token_hex(6)
    return {
        "type": "app_payment_token",
        "app_payment_token": payment_token(ctx, service_id, project, price=price, **overrides),
    }


async def paid_provision(
    ctx: ProviderContext,
    entry: dict[str, Any],
    *,
    bearer: str,
    credentials: dict[str, Any] | None = None,
    **token_claims: Any,
) -> tuple[httpx.Response, Exchange, dict[str, Any]]:
    """A paid provisioning as the orchestrator sends it: a fresh project_id and a payment
    token bound to this very request (`token_claims` change its claims for an attack;
    `credentials` replace it altogether). Returns the answer, its exchange and the body."""
    service_id = str(entry["id"])
    body: dict[str, Any] = {
        "service_id": service_id,
        "project_id": "proj_" + secrets.token_hex(6),
        "configuration": {},
    }
    body["payment_credentials"] = credentials or payment_credentials(
        ctx, service_id, body["project_id"], price=Price.of(entry), **token_claims
    )
    response, exchange = await ctx.call("POST", "provisioning/resources", body=body, bearer=bearer)
    return response, exchange, body


def failing_payment_credentials(ctx: ProviderContext) -> dict[str, Any]:
    """0.1d payment credentials of the right shape whose token cannot activate."""
    token = ctx.target.config.failing_payment_token
    return {"type": "stripe_payment_token", "stripe_payment_token": token}


def no_traceback(response: httpx.Response) -> bool:
    text = response.text
    return "Traceback (most recent call last)" not in text and 'File "/' not in text
