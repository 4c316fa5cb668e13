"""RFC 7009 revocation at the resource's authorization server, and the resource's view of a
revoked token. Judged only where the authorization server's metadata names a
revocation_endpoint (not applicable otherwise), with a client the endpoint admits: a
confidential one when its metadata offers revocation to no public client."""

from __future__ import annotations

import httpx

from conformance.adapters.resource_server import ResourceServerContext
from conformance.checks import NotApplicable, Skipped, check
from conformance.packs.resource_server._oauth import (
    Authority,
    Client,
    Tokens,
    accepted_tokens,
    authority,
    call_resource,
    client,
    client_auth,
    confidential_client,
    obtain,
    refresh,
    revocation_client,
)
from conformance.recorder import Exchange


def _error(ctx: ResourceServerContext, answer: httpx.Response) -> str:
    document = ctx.json(answer)
    if not isinstance(document, dict) or not isinstance(document.get("error"), str):
        return ""
    description = document.get("error_description")
    detail = f": {description[:200]}" if isinstance(description, str) else ""
    return f" (error={document['error'][:60]!r}{detail})"


def _refuses_client(ctx: ResourceServerContext, answer: httpx.Response) -> bool:
    document = ctx.json(answer)
    error = document.get("error") if isinstance(document, dict) else None
    return answer.status_code in (400, 401) and error in ("invalid_client", "unauthorized_client")


async def _revoke_access_token(
    ctx: ResourceServerContext, auth: Authority, who: Client, endpoint: str
) -> tuple[Tokens, httpx.Response, Exchange]:
    """A token set the resource accepts at all, and the revocation of its access token."""
    await accepted_tokens(ctx, auth, who)
    tokens = await obtain(ctx, auth, who)
    form, headers = client_auth(
        who, {"token": tokens.access_token, "token_type_hint": "access_token"}
    )
    answer, exchange = await ctx.post(endpoint, data=form, headers=headers)
    return tokens, answer, exchange


@check("RSV-REV-001", "RSV-REV-002", "RSV-REV-003")
async def revocation(ctx: ResourceServerContext) -> None:
    auth = await authority(ctx)
    endpoint = auth.endpoint("revocation_endpoint")
    if endpoint is None:
        raise NotApplicable("the authorization server's metadata names no revocation_endpoint")
    who = await revocation_client(ctx, auth, await client(ctx))
    tokens, answer, exchange = await _revoke_access_token(ctx, auth, who, endpoint)
    undeclared = "revocation_endpoint_auth_methods_supported" not in auth.metadata
    if undeclared and who.public and _refuses_client(ctx, answer):
        # RFC 8414 §2: without the member, client_secret_basic is the method; a server that
        # says nothing and turns a public client away gets a confidential one.
        try:
            who = await confidential_client(ctx, auth, ["client_secret_basic"])
        except (NotApplicable, Skipped):
            pass
        else:
            tokens, answer, exchange = await _revoke_access_token(ctx, auth, who, endpoint)
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
