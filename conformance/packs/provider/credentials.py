"""Credentials: string maps that work at the provider's API, rotate cleanly, never leak."""

from __future__ import annotations

from typing import Any

from conformance.adapters.provider import ProviderContext
from conformance.checks import Skipped, check
from conformance.packs.provider._helpers import free_resource

PROBE = "api/whoami"


async def works(ctx: ProviderContext, credentials: dict[str, Any]) -> tuple[bool, Any]:
    """Whether the credentials authenticate at the provider API probe (mock: GET api/whoami)."""
    key, base = credentials.get("api_key"), credentials.get("base_url")
    if not isinstance(key, str) or not isinstance(base, str):
        raise Skipped("the credentials name no api_key/base_url this suite knows how to probe")
    response, exchange = await ctx.get(
        base.rstrip("/") + "/whoami", headers={"Authorization": f"Bearer {key}"}
    )
    return response.status_code == 200, exchange


@check("PRV-CRD-001", "PRV-CRD-002")
async def credentials_are_strings_and_work(ctx: ProviderContext) -> None:
    _, resource = await free_resource(ctx)
    credentials = (resource.get("complete") or {}).get("access_configuration")
    ok = (
        isinstance(credentials, dict)
        and bool(credentials)
        and all(isinstance(v, str) for v in credentials.values())
    )
    ctx.require(
        "PRV-CRD-001",
        ok,
        "access_configuration must map names to string values",
        ctx.recorder.exchanges[-1],
    )
    if ok and isinstance(credentials, dict):
        good, exchange = await works(ctx, credentials)
        ctx.require(
            "PRV-CRD-002",
            good,
            "the returned credentials do not authenticate at the provider API",
            exchange,
        )


@check("PRV-CRD-003")
async def rotation_replaces_the_credentials(ctx: ProviderContext) -> None:
    connection, resource = await free_resource(ctx)
    old = (resource.get("complete") or {}).get("access_configuration") or {}
    response, exchange = await ctx.call(
        "POST",
        f"provisioning/resources/{resource['id']}/rotate_credentials",
        body={},
        bearer=connection["access_token"],
    )
    new = ((ctx.json(response) or {}).get("complete") or {}).get("access_configuration") or {}
    if response.status_code != 200 or not new:
        ctx.require(
            "PRV-CRD-003", False, "rotate_credentials returned no new credentials", exchange
        )
        return
    new_ok, new_exchange = await works(ctx, new)
    old_ok, old_exchange = await works(ctx, old)
    ctx.require("PRV-CRD-003", new_ok, "the rotated credentials do not work", new_exchange)
    ctx.require(
        "PRV-CRD-003",
        not old_ok,
        "the previous credentials still work after rotation",
        old_exchange,
    )


@check("PRV-CRD-004")
async def errors_never_echo_a_token(ctx: ProviderContext) -> None:
    ctx.fresh_user()
    presented = "pma_provspec_canary_7f3e9c1d2b"
    response, exchange = await ctx.call(
        "GET", "provisioning/resources/res_provspec", bearer=presented
    )
    ctx.require(
        "PRV-CRD-004",
        presented not in response.text,
        "the error answer echoes the presented token",
        exchange,
    )


@check("PRV-PRO-015")
async def removal_ends_the_credentials(ctx: ProviderContext) -> None:
    connection, resource = await free_resource(ctx)
    credentials = (resource.get("complete") or {}).get("access_configuration") or {}
    response, exchange = await ctx.call(
        "POST",
        f"provisioning/resources/{resource['id']}/remove",
        body={},
        bearer=connection["access_token"],
    )
    ctx.require(
        "PRV-PRO-015",
        response.status_code == 200,
        f"remove must succeed, got {response.status_code}",
        exchange,
    )
    still, probe = await works(ctx, credentials)
    ctx.require("PRV-PRO-015", not still, "the credentials of a removed resource still work", probe)
