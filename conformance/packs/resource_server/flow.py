"""The authorization code flow against the resource's authorization server, and what the
resource then does with the tokens (RFC 6749, RFC 7591, RFC 7636, RFC 8707, RFC 9207,
RFC 9700, OAuth 2.1, MCP).

Every check here needs a client and a consent that works (`_oauth.py`); where the target
offers neither, each ends skipped with the reason. Probes that expect a refusal first prove
that the same means succeed for a correct request, so a server that refuses everything, or a
consent that needs a human, is never read as a pass.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from conformance.adapters.resource_server import ResourceServerContext
from conformance.checks import NotApplicable, Skipped, check
from conformance.packs.resource_server._oauth import (
    Authority,
    Client,
    accepted_tokens,
    authority,
    authorize,
    bearer_challenge,
    call_resource,
    client,
    exchange_code,
    limited_scope,
    obtain,
    other_resource,
    presumed_scopes,
    refresh,
    refused,
    registration,
    scopes_of,
    working_authorization,
)
from conformance.recorder import Exchange


async def _ready(ctx: ResourceServerContext) -> tuple[Authority, Client]:
    auth = await authority(ctx)
    return auth, await client(ctx)


@check("RSV-CNS-005")
async def dynamic_registration(ctx: ResourceServerContext) -> None:
    done = await registration(ctx)
    document = done.document
    status = done.response.status_code
    if status in (401, 403) and done.response.headers.get("www-authenticate"):
        return  # RFC 7591 §3: registration may require an initial access token (RFC 6750)
    if status == 400 and isinstance(document, dict):
        ctx.require(
            "RSV-CNS-005",
            isinstance(document.get("error"), str),
            f"a refused registration must carry an RFC 7591 error code: got {document!r:.200}",
            done.exchange,
        )
        return
    client_id = document.get("client_id") if isinstance(document, dict) else None
    method = document.get("token_endpoint_auth_method") if isinstance(document, dict) else None
    needs_secret = isinstance(method, str) and method.startswith("client_secret")
    secret = document.get("client_secret") if isinstance(document, dict) else None
    ctx.require(
        "RSV-CNS-005",
        status == 201
        and isinstance(client_id, str)
        and bool(client_id)
        and (not needs_secret or (isinstance(secret, str) and bool(secret))),
        f"a registration must be answered 201 with a client_id (and a client_secret for "
        f"{method!r}), or 400 with an error: got {status}, client_id {client_id!r}",
        done.exchange,
    )


@check("RSV-CNS-006", "RSV-CNS-007", "RSV-CNS-008")
async def authorization_code_flow(ctx: ResourceServerContext) -> None:
    auth, who = await _ready(ctx)
    done = await authorize(ctx, auth, who)
    if done.redirect is None:
        raise Skipped(f"no authorization response: {done.detail}")
    if "error" in done.params:
        raise Skipped(
            f"the authorization server refused a correct request: error={done.params['error']!r}"
        )
    last = done.evidence[-1] if done.evidence else None
    state_ok = ctx.require(
        "RSV-CNS-006",
        bool(done.code) and done.params.get("state") == done.state,
        "the authorization response must carry a code and the request's state: got code "
        f"{'present' if done.code else 'absent'}, state {done.params.get('state')!r} for "
        f"{done.state!r}",
        last,
    )
    if not state_ok:
        for requirement in ("RSV-CNS-007", "RSV-CNS-008"):
            ctx.cannot_judge(requirement, "a client discards that authorization response")
        return
    answer = await exchange_code(ctx, auth, who, done)
    document = answer.document if isinstance(answer.document, dict) else {}
    token_type = document.get("token_type")
    cache = {
        part.strip().lower() for part in answer.response.headers.get("cache-control", "").split(",")
    }
    problems = [
        problem
        for problem, broken in (
            (f"status {answer.response.status_code}", answer.response.status_code != 200),
            ("no access_token", answer.access_token is None),
            (
                f"token_type {token_type!r}",
                not (isinstance(token_type, str) and token_type.lower() == "bearer"),
            ),
            ("no Cache-Control: no-store", "no-store" not in cache),
        )
        if broken
    ]
    ctx.require(
        "RSV-CNS-007",
        not problems,
        f"the code exchange must answer 200 JSON with access_token, token_type Bearer and "
        f"Cache-Control no-store: {', '.join(problems)}",
        answer.exchange,
    )
    if answer.access_token is None:
        ctx.cannot_judge("RSV-CNS-008", "no access token was issued")
        return
    response, exchange = await call_resource(ctx, answer.access_token)
    ctx.require(
        "RSV-CNS-008",
        not refused(response),
        f"the resource refused a token just issued for it: {response.status_code}",
        exchange,
    )


@check("RSV-CNS-009")
async def a_token_for_another_resource_is_refused(ctx: ResourceServerContext) -> None:
    auth, who = await _ready(ctx)
    await accepted_tokens(ctx, auth, who)
    elsewhere = other_resource(ctx)
    try:
        tokens = await obtain(ctx, auth, who, resource=elsewhere)
    except Skipped as reason:
        raise Skipped(
            f"no token for another resource ({elsewhere}) could be obtained, which RFC 8707 "
            f"§2 allows ({reason}); set [resource_server] other_resource to another resource "
            "of the same authorization server"
        ) from None
    response, exchange = await call_resource(ctx, tokens.access_token)
    ctx.require(
        "RSV-CNS-009",
        response.status_code == 401,
        f"a token issued for {elsewhere} must be refused with 401 (audience, RFC 8707): got "
        f"{response.status_code}",
        tokens.answer.exchange,
        exchange,
    )


async def _no_code_or_token(
    ctx: ResourceServerContext, requirement: str, *, pkce: str | None, what: str
) -> None:
    """An authorization request that must get nowhere: no code, or at least no token."""
    auth, who = await _ready(ctx)
    await working_authorization(ctx, auth, who)
    done = await authorize(ctx, auth, who, pkce=pkce)
    last = done.evidence[-1] if done.evidence else None
    if not done.code:
        ctx.judged(requirement)  # refused at the authorization endpoint, as it should be
        return
    # A code may still come to nothing at the token endpoint (one that reads every challenge
    # as S256, say); what must never happen is a token.
    answer = await exchange_code(ctx, auth, who, done)
    ctx.require(
        requirement,
        answer.access_token is None,
        f"{what} got a code and then an access token",
        last,
        answer.exchange,
    )


@check("RSV-CNS-010")
async def pkce_plain_is_refused(ctx: ResourceServerContext) -> None:
    auth = await authority(ctx)
    methods = auth.metadata.get("code_challenge_methods_supported")
    if isinstance(methods, list) and "plain" in methods:
        raise NotApplicable(
            "the authorization server lists plain in code_challenge_methods_supported"
        )
    await _no_code_or_token(
        ctx, "RSV-CNS-010", pkce="plain", what="an authorization request with method plain"
    )


@check("RSV-CNS-011")
async def pkce_is_required(ctx: ResourceServerContext) -> None:
    _, who = await _ready(ctx)
    if not who.public:
        raise NotApplicable(
            "the suite's client is confidential; OAuth 2.1 lets a confidential client's PKCE be waived"
        )
    await _no_code_or_token(
        ctx, "RSV-CNS-011", pkce=None, what="an authorization request without code_challenge"
    )


@check("RSV-CNS-012")
async def the_redirect_uri_is_matched_exactly(ctx: ResourceServerContext) -> None:
    auth, who = await _ready(ctx)
    await working_authorization(ctx, auth, who)
    wrong = who.redirect_uri.rstrip("/") + "/provspec-unregistered"
    done = await authorize(ctx, auth, who, redirect_uri=wrong)
    last = done.evidence[-1] if done.evidence else None
    sent_there = done.landed_at == wrong
    ctx.require(
        "RSV-CNS-012",
        not sent_there and not done.code,
        f"an authorization request for the unregistered redirect_uri {wrong!r} "
        + ("was sent there" if sent_there else "got a code"),
        last,
    )


@check("RSV-CNS-013")
async def a_code_is_used_once(ctx: ResourceServerContext) -> None:
    auth, who = await _ready(ctx)
    await working_authorization(ctx, auth, who)
    done = await authorize(ctx, auth, who)
    if not done.code:
        raise Skipped("the authorization response holds no code (see RSV-CNS-006)")
    first = await exchange_code(ctx, auth, who, done)
    if first.access_token is None:
        raise Skipped("the first exchange of the code issued no token (see RSV-CNS-007)")
    second = await exchange_code(ctx, auth, who, done)
    ctx.require(
        "RSV-CNS-013",
        second.access_token is None,
        f"a code exchanged a second time issued another access token ({second.response.status_code})",
        first.exchange,
        second.exchange,
    )


@check("RSV-CNS-021")
async def a_wrong_code_verifier_is_refused(ctx: ResourceServerContext) -> None:
    auth, who = await _ready(ctx)
    await working_authorization(ctx, auth, who)
    done = await authorize(ctx, auth, who)
    if not done.code:
        raise Skipped("the authorization response holds no code (see RSV-CNS-006)")
    answer = await exchange_code(ctx, auth, who, done, verifier=secrets.token_urlsafe(48))
    ctx.require(
        "RSV-CNS-021",
        answer.access_token is None,
        f"a code exchanged with another code_verifier issued an access token "
        f"({answer.response.status_code})",
        answer.exchange,
    )


@check("RSV-CNS-014")
async def refresh_tokens_rotate(ctx: ResourceServerContext) -> None:
    auth, who = await _ready(ctx)
    if not who.public:
        raise NotApplicable(
            "the suite's client is confidential; rotation is required of public clients"
        )
    tokens = await obtain(ctx, auth, who)
    if tokens.refresh_token is None:
        raise NotApplicable("the authorization server issued no refresh token")
    first = await refresh(ctx, auth, who, tokens.refresh_token, auth.resource)
    if first.access_token is None:
        raise Skipped(
            f"the refresh grant failed ({first.response.status_code}); rotation cannot be judged"
        )
    rotated = first.refresh_token is not None and first.refresh_token != tokens.refresh_token
    again = await refresh(ctx, auth, who, tokens.refresh_token, auth.resource)
    ctx.require(
        "RSV-CNS-014",
        rotated and again.access_token is None,
        "a public client's refresh must return a new refresh token and retire the old one: "
        + ("no new refresh token" if not rotated else "")
        + ("; " if not rotated and again.access_token else "")
        + ("the old one still works" if again.access_token else ""),
        first.exchange,
        again.exchange,
    )


@check("RSV-CNS-015")
async def the_authorization_response_names_the_issuer(ctx: ResourceServerContext) -> None:
    auth, who = await _ready(ctx)
    if auth.metadata.get("authorization_response_iss_parameter_supported") is not True:
        raise NotApplicable(
            "the authorization server does not set authorization_response_iss_parameter_supported"
        )
    done = await working_authorization(ctx, auth, who)
    iss = done.params.get("iss")
    ctx.require(
        "RSV-CNS-015",
        iss == auth.issuer,
        f"the authorization response's iss is {iss!r}, not the issuer {auth.issuer!r} (RFC 9207 §2)",
        done.evidence[-1] if done.evidence else None,
    )


# --- insufficient scope ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Probe:
    status: int
    params: dict[str, str] | None
    """The Bearer challenge's parameters (None: no Bearer challenge)."""
    exchange: Exchange
    needed: tuple[str, ...]
    known: bool
    """The resource said (or the config says) it needs `needed`; else only presumed."""


async def _insufficient(ctx: ResourceServerContext) -> _Probe:
    """The answer to a valid token that lacks a needed scope (once per run)."""
    auth, who = await _ready(ctx)

    async def probe() -> _Probe:
        needed, known = presumed_scopes(ctx, auth)
        if not needed:
            raise Skipped(
                "which scope the resource needs is unknown: neither its 401 challenge nor its "
                "metadata names one; set [resource_server] scope (and limited_scope)"
            )
        limited = limited_scope(ctx, auth)
        if not limited:
            raise Skipped(
                "no scope is known that falls short of what the resource needs; set "
                "[resource_server] limited_scope"
            )
        await accepted_tokens(ctx, auth, who)
        tokens = await obtain(ctx, auth, who, scope=limited)
        granted = scopes_of(tokens.answer.document.get("scope"))
        if set(needed) & set(granted):
            raise Skipped(f"the authorization server granted {' '.join(granted)} for {limited!r}")
        response, exchange = await call_resource(ctx, tokens.access_token)
        challenge, _ = bearer_challenge(response)
        params = challenge.params if challenge else None
        probe = _Probe(response.status_code, params, exchange, needed, known)
        if not probe.known and probe.status not in (401, 403):
            raise Skipped(
                f"the resource served a token without {' '.join(needed)} "
                f"({probe.status}); it names no scope it needs, so it may need none of them "
                "(set [resource_server] scope to say which)"
            )
        return probe

    return await ctx.target.memo("insufficient", probe)


@check("RSV-CNS-016")
async def insufficient_scope_gets_403(ctx: ResourceServerContext) -> None:
    probe = await _insufficient(ctx)
    error = probe.params.get("error") if probe.params else None
    ctx.require(
        "RSV-CNS-016",
        probe.status == 403 and error == "insufficient_scope",
        f'a token lacking a needed scope must get 403 with error="insufficient_scope": got '
        f"{probe.status}, error {error!r}",
        probe.exchange,
    )


@check("RSV-CNS-017")
async def insufficient_scope_is_forbidden(ctx: ResourceServerContext) -> None:
    probe = await _insufficient(ctx)
    ctx.require(
        "RSV-CNS-017",
        probe.status == 403,
        f"a token lacking a needed scope must get 403 (MCP, Error Handling): got {probe.status}",
        probe.exchange,
    )


@check("RSV-CNS-018")
async def insufficient_scope_names_the_scope(ctx: ResourceServerContext) -> None:
    probe = await _insufficient(ctx)
    params = probe.params
    if probe.status != 403 or not params or params.get("error") != "insufficient_scope":
        raise Skipped("there is no insufficient_scope challenge to read (see RSV-CNS-016)")
    named = scopes_of(params.get("scope"))
    ctx.require(
        "RSV-CNS-018",
        bool(named) and (not probe.known or set(probe.needed) <= set(named)),
        f"the insufficient_scope challenge names scope {params.get('scope')!r}; the request "
        f"needs {' '.join(probe.needed)}",
        probe.exchange,
    )
