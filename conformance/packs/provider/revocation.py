"""Revocation (RFC 7009) and refresh-token rotation."""

from __future__ import annotations

from conformance.adapters.provider import ProviderContext
from conformance.checks import Skipped, check
from conformance.packs.provider._helpers import error_code, free_resource
from conformance.packs.provider.capabilities import feature_missing, require_offered
from conformance.recorder import Exchange


async def resource_status(
    ctx: ProviderContext, resource_id: str, bearer: str
) -> tuple[int, Exchange]:
    response, exchange = await ctx.call(
        "GET", f"provisioning/resources/{resource_id}", bearer=bearer
    )
    return response.status_code, exchange


@check("PRV-REV-001", "PRV-REV-002", "PRV-REV-006")
async def revoked_tokens_stop_working_at_once(ctx: ProviderContext) -> None:
    await require_offered(ctx, "revocation")
    connection, resource = await free_resource(ctx)
    access = connection.access_token
    response, exchange = await ctx.call(
        "POST",
        "oauth/revoke",
        form={"token": "pma_provspec_unknown", "token_type_hint": "access_token"},
    )
    ctx.require(
        "PRV-REV-001",
        response.status_code == 200,
        "revoking an unknown token must answer 200 (RFC 7009 §2.2)",
        exchange,
    )
    response, exchange = await ctx.call(
        "POST",
        "oauth/revoke",
        form={"token": access, "token_type_hint": "access_token"},
        headers_override={ctx.params.attestation_header: ""},
    )
    status, probe = await resource_status(ctx, resource["id"], access)
    ctx.require(
        "PRV-REV-006",
        response.status_code == 401 and status == 200,
        "an unsigned revocation must be refused and leave the token working",
        exchange,
    )
    response, exchange = await ctx.call(
        "POST", "oauth/revoke", form={"token": access, "token_type_hint": "access_token"}
    )
    ctx.require("PRV-REV-001", response.status_code == 200, "revocation must answer 200", exchange)
    status, probe = await resource_status(ctx, resource["id"], access)
    ctx.require(
        "PRV-REV-002", status == 401, f"a revoked token must get 401 at once, got {status}", probe
    )


@check("PRV-REV-004", "PRV-REV-005")
async def refresh_rotates_both_tokens(ctx: ProviderContext) -> None:
    await require_offered(ctx, "refresh_tokens")
    connection, resource = await free_resource(ctx)
    refresh = connection.refresh_token
    if not refresh:
        await feature_missing(ctx, "refresh_tokens", "no refresh token was issued")
    response, exchange = await ctx.call(
        "POST", "oauth/token", form={"grant_type": "refresh_token", "refresh_token": refresh}
    )
    if response.status_code != 200:
        ctx.require("PRV-REV-004", False, "the refresh_token grant failed", exchange)
        return
    status, probe = await resource_status(ctx, resource["id"], connection.access_token)
    ctx.require(
        "PRV-REV-004",
        status == 401,
        f"the replaced access token must stop working, got {status}",
        probe,
    )
    again, exchange = await ctx.call(
        "POST", "oauth/token", form={"grant_type": "refresh_token", "refresh_token": refresh}
    )
    ctx.require(
        "PRV-REV-005",
        again.status_code == 400 and error_code(ctx.json(again)) == "invalid_grant",
        "a rotated-away refresh token must get invalid_grant",
        exchange,
    )


@check("PRV-REV-003")
async def revoking_the_refresh_token_ends_its_access_token(ctx: ProviderContext) -> None:
    await require_offered(ctx, "revocation")
    await require_offered(ctx, "refresh_tokens")
    connection, resource = await free_resource(ctx)
    refresh = connection.refresh_token
    if not refresh:
        await feature_missing(ctx, "refresh_tokens", "no refresh token was issued")
    response, exchange = await ctx.call(
        "POST", "oauth/revoke", form={"token": refresh, "token_type_hint": "refresh_token"}
    )
    if response.status_code != 200:
        raise Skipped("the refresh token could not be revoked (see PRV-REV-001)")
    status, probe = await resource_status(ctx, resource["id"], connection.access_token)
    ctx.require(
        "PRV-REV-003",
        status == 401,
        f"the access token issued with a revoked refresh token still works ({status}); "
        "RFC 7009 §2.1",
        exchange,
        probe,
    )
