"""What any OAuth-protected resource owes a client that knows nothing but its URL: its
challenges (RFC 6750), its metadata (RFC 9728) and its authorization servers' (RFC 8414).

The discovery chain is walked once per check (each is independent and cheap): request the
target bare, read the Bearer challenge, fetch the metadata it names (or the well-known URL
built from the target), then each authorization server's metadata. A check judges the
requirements of one set of profiles; where a revision states a rule differently, it has a
check of its own.
"""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from conformance.adapters.resource_server import ResourceServerContext
from conformance.checks import Skipped, check
from conformance.packs.resource_server._oauth import (
    as_metadata,
    bare,
    bearer_challenge,
    find_metadata,
    issuers,
    metadata,
    scopes_of,
    secure_url,
    usable,
)
from conformance.recorder import Exchange
from wire.urls import resource_for_metadata_url

__all__ = ["bearer_challenge", "empty_members", "secure_url"]


def empty_members(document: dict[str, object]) -> list[str]:
    return sorted(k for k, v in document.items() if v is None or v in ([], {}, ""))


# --- challenges --------------------------------------------------------------------------


@check("RSV-CNS-001", "RSV-CNS-003")
async def a_bare_request_gets_a_bearer_challenge(ctx: ResourceServerContext) -> None:
    response, exchange = await bare(ctx)
    challenge, problem = bearer_challenge(response)
    ctx.require(
        "RSV-CNS-001",
        response.status_code == 401 and challenge is not None,
        f"a request without a token must get 401 with a Bearer challenge: got "
        f"{response.status_code}{', ' + problem if problem else ''}",
        exchange,
    )
    if challenge is None:
        ctx.cannot_judge("RSV-CNS-003", "there is no Bearer challenge to read")
        return
    ctx.require(
        "RSV-CNS-003",
        "error" not in challenge.params,
        f"a request with no credentials got error={challenge.params.get('error')!r} "
        "(RFC 6750 §3.1: SHOULD NOT)",
        exchange,
    )


async def _bare_challenge(ctx: ResourceServerContext) -> tuple[dict[str, str], Exchange]:
    response, exchange = await bare(ctx)
    challenge, problem = bearer_challenge(response)
    if response.status_code != 401 or challenge is None:
        raise Skipped(
            f"there is no Bearer challenge in a 401 to read ({problem or response.status_code}; see RSV-CNS-001)"
        )
    return challenge.params, exchange


@check("RSV-CNS-002")
async def the_challenge_names_the_metadata(ctx: ResourceServerContext) -> None:
    params, exchange = await _bare_challenge(ctx)
    ctx.require(
        "RSV-CNS-002",
        bool(params.get("resource_metadata")),
        "the Bearer challenge names no resource_metadata (RFC 9728 §5.1)",
        exchange,
    )


@check("RSV-CNS-020")
async def the_challenge_names_the_scope(ctx: ResourceServerContext) -> None:
    params, exchange = await _bare_challenge(ctx)
    ctx.require(
        "RSV-CNS-020",
        bool(scopes_of(params.get("scope"))),
        "the Bearer challenge names no scope (MCP 2025-11-25: servers SHOULD include it)",
        exchange,
    )


async def _unknown_token(ctx: ResourceServerContext) -> tuple[int, str | None, str, Exchange]:
    forged = "provspec-" + secrets.token_urlsafe(24)
    response, exchange = await ctx.request_resource(forged)
    challenge, problem = bearer_challenge(response)
    error = challenge.params.get("error") if challenge else None
    return response.status_code, error, problem, exchange


@check("RSV-CNS-004")
async def an_unknown_token_gets_invalid_token(ctx: ResourceServerContext) -> None:
    status, error, problem, exchange = await _unknown_token(ctx)
    ctx.require(
        "RSV-CNS-004",
        status == 401 and error == "invalid_token",
        f'an unknown token must get 401 with error="invalid_token": got {status}, '
        f"error {error!r}{', ' + problem if problem else ''}",
        exchange,
    )


@check("RSV-CNS-019")
async def an_unknown_token_gets_401(ctx: ResourceServerContext) -> None:
    status, _, _, exchange = await _unknown_token(ctx)
    ctx.require(
        "RSV-CNS-019",
        status == 401,
        f"a token the server cannot validate must get 401 (MCP, Token Handling): got {status}",
        exchange,
    )


# --- Protected Resource Metadata ---------------------------------------------------------

_METADATA = ("RSV-DSC-002", "RSV-DSC-003", "RSV-DSC-004", "RSV-DSC-005", "RSV-DSC-006")


@check("RSV-DSC-001", *_METADATA)
async def protected_resource_metadata(ctx: ResourceServerContext) -> None:
    found = await find_metadata(ctx)
    answer, exchange, document = found.response, found.exchange, found.document
    content_type = answer.headers.get("content-type", "").split(";")[0].strip().lower()
    ctx.require(
        "RSV-DSC-001",
        usable(answer, document) and content_type == "application/json",
        f"GET {found.url} must answer 200 application/json with a JSON object: got "
        f"{answer.status_code} {content_type!r}",
        exchange,
    )
    if not isinstance(document, dict):
        for requirement in _METADATA:
            ctx.cannot_judge(requirement, "there is no metadata document to judge")
        return
    resource = document.get("resource")
    present = ctx.require(
        "RSV-DSC-002",
        isinstance(resource, str) and bool(resource),
        f"resource is REQUIRED (RFC 9728 §2): got {resource!r}",
        exchange,
    )
    built_from = resource_for_metadata_url(found.url)
    if not present:
        for requirement in ("RSV-DSC-003", "RSV-DSC-004"):
            ctx.cannot_judge(requirement, "the metadata carries no resource to compare")
    elif built_from is None:
        ctx.cannot_judge(
            "RSV-DSC-003", f"{found.url} is not a well-known URL built from a resource identifier"
        )
    else:
        candidates = {built_from}
        if urlsplit(built_from).path == "":
            candidates.add(built_from + "/")  # §3.1 drops a lone "/" after the host
        if found.root_fallback:
            candidates.add(ctx.url)  # MCP 2025-11-25 serves a path resource's metadata at the root
        ctx.require(
            "RSV-DSC-003",
            resource in candidates,
            f"resource {resource!r} is not identical to {built_from!r}, the identifier the "
            "metadata URL was built from (RFC 9728 §3.3)",
            exchange,
        )
    if present and found.named:
        ctx.require(
            "RSV-DSC-004",
            resource == ctx.url,
            f"resource {resource!r} is not identical to the requested URL {ctx.url!r}; a client "
            "MUST NOT use this metadata (RFC 9728 §3.3)",
            exchange,
        )
    elif present:
        ctx.cannot_judge("RSV-DSC-004", "the challenge named no resource_metadata URL")
    ctx.require(
        "RSV-DSC-005",
        not empty_members(document),
        f"zero-valued parameters must be omitted (RFC 9728 §3.2): {empty_members(document)}",
        exchange,
    )
    urls = {"resource": resource} if present else {}
    if "jwks_uri" in document:
        urls["jwks_uri"] = document["jwks_uri"]
    servers = document.get("authorization_servers")
    for index, issuer in enumerate(servers if isinstance(servers, list) else []):
        urls[f"authorization_servers[{index}]"] = issuer
    insecure = [f"{name}: {value!r}" for name, value in urls.items() if not secure_url(value)]
    ctx.require(
        "RSV-DSC-006",
        not insecure,
        f"these must be https URLs without a fragment: {insecure}",
        exchange,
    )


@check("RSV-DSC-011")
async def an_mcp_server_names_an_authorization_server(ctx: ResourceServerContext) -> None:
    found = await metadata(ctx)
    ctx.require(
        "RSV-DSC-011",
        bool(issuers(found.document)),
        "an MCP server's metadata must list at least one authorization server in "
        f"authorization_servers: got {found.document.get('authorization_servers')!r}",
        found.exchange,
    )


# --- the authorization servers' metadata -------------------------------------------------

_ENDPOINTS = (
    "authorization_endpoint",
    "token_endpoint",
    "registration_endpoint",
    "revocation_endpoint",
    "introspection_endpoint",
    "userinfo_endpoint",
    "jwks_uri",
)


async def _listed(ctx: ResourceServerContext) -> list[str]:
    found = await metadata(ctx)
    servers = issuers(found.document)
    if not servers:
        raise Skipped("the metadata lists no authorization server issuer to follow")
    return servers


@check("RSV-DSC-007", "RSV-DSC-009", "RSV-DSC-014")
async def authorization_servers(ctx: ResourceServerContext) -> None:
    found = await metadata(ctx)
    document = found.document
    if "authorization_servers" not in document:
        for requirement in ("RSV-DSC-007", "RSV-DSC-009", "RSV-DSC-014"):
            ctx.cannot_judge(requirement, "the metadata lists no authorization_servers")
        return
    servers = document["authorization_servers"]
    listed = (
        isinstance(servers, list) and bool(servers) and all(isinstance(s, str) for s in servers)
    )
    ctx.require(
        "RSV-DSC-007",
        listed,
        f"authorization_servers must be a non-empty array of issuer strings: {servers!r}",
        found.exchange,
    )
    if not listed:
        for requirement in ("RSV-DSC-009", "RSV-DSC-014"):
            ctx.cannot_judge(requirement, "no issuer to follow")
        return
    for issuer in servers:
        server = await as_metadata(ctx, issuer)
        if not server.ok:
            continue  # RSV-DSC-008 / RSV-DSC-012 say so
        as_document = server.document
        code_grant = "code" in scopes_of(as_document.get("response_types_supported"))
        wanted = ("response_types_supported",) + (
            ("authorization_endpoint", "token_endpoint") if code_grant else ()
        )
        missing = [name for name in wanted if not as_document.get(name)]
        ctx.require(
            "RSV-DSC-009",
            not missing,
            f"{issuer}: RFC 8414 §2 members missing: {missing}",
            server.exchange,
        )
        insecure = [
            f"{name}: {as_document[name]!r}"
            for name in _ENDPOINTS
            if name in as_document and not secure_url(as_document[name])
        ]
        ctx.require(
            "RSV-DSC-014",
            not insecure,
            f"{issuer}: these endpoints must be https URLs (TLS is a MUST): {insecure}",
            server.exchange,
        )


@check("RSV-DSC-008", "RSV-DSC-010")
async def rfc8414_metadata(ctx: ResourceServerContext) -> None:
    for issuer in await _listed(ctx):
        server = await as_metadata(ctx, issuer)
        issuer_found = server.document.get("issuer") if server.ok else None
        ctx.require(
            "RSV-DSC-008",
            server.identical,
            f"{server.url} must answer 200 JSON with issuer identical to {issuer!r} (RFC 8414 "
            f"§3.3): got {server.response.status_code}, issuer {issuer_found!r}",
            server.exchange,
        )
        if not server.ok:
            continue
        methods = server.document.get("code_challenge_methods_supported")
        ctx.require(
            "RSV-DSC-010",
            isinstance(methods, list) and "S256" in methods,
            f"{issuer}: code_challenge_methods_supported is {methods!r}, without S256",
            server.exchange,
        )


@check("RSV-DSC-012", "RSV-DSC-013")
async def mcp_authorization_server_metadata(ctx: ResourceServerContext) -> None:
    for issuer in await _listed(ctx):
        server = await as_metadata(ctx, issuer)
        issuer_found = server.document.get("issuer") if server.ok else None
        ctx.require(
            "RSV-DSC-012",
            server.identical,
            f"no RFC 8414 or OpenID Connect Discovery metadata with issuer identical to "
            f"{issuer!r} at the URLs an MCP client tries (last: {server.url}, "
            f"{server.response.status_code}, issuer {issuer_found!r})",
            server.exchange,
        )
        if not server.ok:
            continue
        methods = server.document.get("code_challenge_methods_supported")
        ctx.require(
            "RSV-DSC-013",
            isinstance(methods, list) and "S256" in methods,
            f"{issuer}: code_challenge_methods_supported is {methods!r}; an MCP client refuses "
            "to proceed without S256",
            server.exchange,
        )


@check("RSV-DSC-015")
async def dynamic_client_registration_is_offered(ctx: ResourceServerContext) -> None:
    for issuer in await _listed(ctx):
        server = await as_metadata(ctx, issuer)
        if not server.ok:
            ctx.cannot_judge("RSV-DSC-015", f"{issuer} publishes no usable metadata")
            continue
        endpoint = server.document.get("registration_endpoint")
        ctx.require(
            "RSV-DSC-015",
            isinstance(endpoint, str) and bool(endpoint),
            f"{issuer} names no registration_endpoint (MCP 2025-06-18: authorization servers "
            "SHOULD support dynamic client registration)",
            server.exchange,
        )
