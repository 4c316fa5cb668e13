"""RFC 7009 revocation at the resource's authorization server, and the resource's view of a
revoked token. Judged only where the authorization server's metadata names a
revocation_endpoint (not applicable otherwise), with a client the endpoint admits: a
confidential one when its metadata offers revocation to no public client."""

from __future__ import annotations

import httpx

from conformance.adapters.resource_server import ResourceServerContext
from conformance.checks import NotApplicable, check
from conformance.packs.resource_server._oauth import (
    accepted_tokens,
    authority,
    call_resource,
    client,
    client_auth,
    obtain,
    refresh,
    revocation_client,
)


def _error(ctx: ResourceServerContext, answer: httpx.Response) -> str:
    document = ctx.json(answer)
    if not isinstance(document, dict) or not isinstance(document.get("error"), str):
        return ""
    description = document.get("error_description")
    detail = f": {description[:200]}" if isinstance(description, str) else ""
    return f" (error={document['error'][:60]!r}{detail})"


@check("RSV-REV-001", "RSV-REV-002", "RSV-REV-003")
async def revocation(ctx: ResourceServerContext) -> None:
    auth = await authority(ctx)
    endpoint = auth.endpoint("revocation_endpoint")
    if endpoint is None:
        raise NotApplicable("the authorization server's metadata names no revocation_endpoint")
    who = await revocation_client(ctx, auth, await client(ctx))
    await accepted_tokens(ctx, auth, who)  # the resource accepts this server's tokens at all
    tokens = await obtain(ctx, auth, who)
    form, headers = client_auth(
        who, {"token": tokens.access_token, "token_type_hint": "access_token"}
    )
    answer, exchange = await ctx.post(endpoint, data=form, headers=headers)
    revoked = ctx.require(
        "RSV-REV-001",
        answer.status_code == 200,
        f"revoking an access token the client holds ({who.auth_method}) must get 200: got "
        f"{answer.status_code}{_error(ctx, answer)}",
        exchange,
    )
    if not revoked:
        for requirement in ("RSV-REV-002", "RSV-REV-003"):
            ctx.cannot_judge(requirement, "the revocation was refused (see RSV-REV-001)")
        return
    response, used = await call_resource(ctx, tokens.access_token)
    ctx.require(
        "RSV-REV-002",
        response.status_code == 401,
        f"the resource answered a revoked access token {response.status_code}, not 401",
        exchange,
        used,
    )
    if tokens.refresh_token is None:
        ctx.cannot_judge("RSV-REV-003", "the authorization server issued no refresh token")
        return
    form, headers = client_auth(
        who, {"token": tokens.refresh_token, "token_type_hint": "refresh_token"}
    )
    answer, exchange = await ctx.post(endpoint, data=form, headers=headers)
    if not ctx.require(
        "RSV-REV-001",
        answer.status_code == 200,
        f"revoking a refresh token the client holds ({who.auth_method}) must get 200: got "
        f"{answer.status_code}{_error(ctx, answer)}",
        exchange,
    ):
        ctx.cannot_judge("RSV-REV-003", "the revocation was refused (see RSV-REV-001)")
        return
    again = await refresh(ctx, auth, who, tokens.refresh_token, auth.resource)
    ctx.require(
        "RSV-REV-003",
        again.access_token is None,
        "a refresh with a revoked refresh token issued an access token",
        exchange,
        again.exchange,
    )
