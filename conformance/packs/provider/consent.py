"""The provider's authorization server: RFC 8414 metadata, PKCE, codes, RFC 6750 challenges."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from conformance.adapters.provider import ProviderContext
from conformance.checks import NotApplicable, Skipped, check
from conformance.client import ConnectFailed
from conformance.packs.provider._helpers import error_code, oauth_code, provision, service_of
from conformance.packs.provider.accounts import account_request
from conformance.recorder import mask_text
from wire.pkce import pkce_pair
from wire.urls import as_metadata_url, prm_url
from wire.www_authenticate import ChallengeError, parse


async def as_metadata(ctx: ProviderContext) -> tuple[str, dict[str, Any], Any]:
    response, _ = await ctx.get(prm_url(ctx.base_url))
    document = ctx.json(response)
    servers = document.get("authorization_servers") if isinstance(document, dict) else None
    if not isinstance(servers, list) or not servers or not isinstance(servers[0], str):
        raise Skipped(
            "no authorization server in the Protected Resource Metadata (see PRV-DSC-010)"
        )
    response, exchange = await ctx.get(as_metadata_url(servers[0]))
    metadata = ctx.json(response)
    return servers[0], metadata if isinstance(metadata, dict) else {}, exchange


async def new_code(ctx: ProviderContext, challenge: str | None) -> str:
    """A fresh user's authorization code, bound to `challenge` (None: a request without PKCE)."""
    ctx.fresh_user()
    change: dict[str, str | None] = (
        {"code_challenge": challenge}
        if challenge
        else {"code_challenge": None, "code_challenge_method": None}
    )
    response, _ = await ctx.call(
        "POST", "provisioning/account_requests", body=account_request(ctx, **change)
    )
    document = ctx.json(response)
    code = oauth_code(document)
    if response.status_code != 200 or not isinstance(code, str):
        raise Skipped(
            f"could not obtain an authorization code: the account request was answered "
            f"{response.status_code} {error_code(document) or ''} (see PRV-ACC-001)"
        )
    return code


async def token(ctx: ProviderContext, **form: str) -> tuple[httpx.Response, Any]:
    response, exchange = await ctx.call("POST", "oauth/token", form=form)
    return response, exchange


def challenge_params(response: httpx.Response) -> dict[str, str]:
    try:
        for challenge in parse(response.headers.get("www-authenticate", "")):
            if challenge.scheme.lower() == "bearer":
                return dict(challenge.params)
    except ChallengeError:
        return {}
    return {}


@check("PRV-CNS-001", "PRV-CNS-002", "PRV-CNS-003")
async def authorization_server_metadata(ctx: ProviderContext) -> None:
    issuer, metadata, exchange = await as_metadata(ctx)
    ctx.require(
        "PRV-CNS-001",
        metadata.get("issuer") == issuer,
        f"issuer {metadata.get('issuer')!r} is not identical to {issuer!r} (RFC 8414 §3.3)",
        exchange,
    )
    methods = metadata.get("code_challenge_methods_supported")
    methods = methods if isinstance(methods, list) else []
    ctx.require(
        "PRV-CNS-002",
        "S256" in methods and "plain" not in methods,
        f"code_challenge_methods_supported is {methods}: S256 required, plain refused",
        exchange,
    )
    missing = [
        name
        for name in (
            "authorization_endpoint",
            "token_endpoint",
            "response_types_supported",
            "revocation_endpoint",
        )
        if not metadata.get(name)
    ]
    ctx.require("PRV-CNS-003", not missing, f"metadata lacks {missing}", exchange)


@check("PRV-CNS-004")
async def authorize_requires_pkce_s256(ctx: ProviderContext) -> None:
    _, metadata, _ = await as_metadata(ctx)
    endpoint = metadata.get("authorization_endpoint")
    if not isinstance(endpoint, str):
        raise Skipped("no authorization_endpoint")
    base = {
        "response_type": "code",
        "client_id": ctx.core.issuer,
        "redirect_uri": ctx.core.issuer + "/oauth/callback",
        "state": secrets.token_urlsafe(8),
        "resource": ctx.base_url,
        "login_hint": ctx.target.config.existing_email,
    }
    verifier, challenge = pkce_pair()
    del verifier
    for why, extra in (
        ("without code_challenge", {}),
        (
            "with code_challenge_method plain",
            {"code_challenge": challenge, "code_challenge_method": "plain"},
        ),
    ):
        response, exchange = await ctx.get(endpoint + "?" + urlencode({**base, **extra}))
        code = parse_qs(urlsplit(response.headers.get("location", "")).query).get("code")
        ctx.require(
            "PRV-CNS-004", not code, f"an authorization request {why} was given a code", exchange
        )


def issued(response: httpx.Response) -> bool:
    return response.status_code == 200 and "access_token" in response.text


@check("PRV-CNS-005", "PRV-CNS-015")
async def a_wrong_verifier_is_refused_and_leaves_the_code_usable(ctx: ProviderContext) -> None:
    verifier, challenge = pkce_pair()
    code = await new_code(ctx, challenge)
    wrong, _ = pkce_pair()
    response, exchange = await token(
        ctx, grant_type="authorization_code", code=code, code_verifier=wrong
    )
    refused = response.status_code in (400, 401) and "access_token" not in response.text
    ctx.require(
        "PRV-CNS-005",
        refused,
        f"a wrong code_verifier must get invalid_grant and no token, got {response.status_code}",
        exchange,
    )
    if not refused:
        ctx.cannot_judge("PRV-CNS-015", "blocked by PRV-CNS-005: the wrong verifier was accepted")
        return
    again, again_exchange = await token(
        ctx, grant_type="authorization_code", code=code, code_verifier=verifier
    )
    ctx.require(
        "PRV-CNS-015",
        issued(again),
        "after a refused attempt with a wrong code_verifier, the code with the right one must "
        f"still give tokens, got {again.status_code} {error_code(ctx.json(again)) or ''}",
        exchange,
        again_exchange,
    )


@check("PRV-CNS-006")
async def a_pkce_code_needs_its_verifier_even_when_signed(ctx: ProviderContext) -> None:
    """The request is signed like every other: a PKCE-bound code is not redeemed on the
    orchestrator's signature alone."""
    _, challenge = pkce_pair()
    code = await new_code(ctx, challenge)
    response, exchange = await token(ctx, grant_type="authorization_code", code=code)
    ctx.require(
        "PRV-CNS-006",
        response.status_code in (400, 401) and "access_token" not in response.text,
        f"a PKCE-bound code without code_verifier must get no token, got {response.status_code}",
        exchange,
    )


@check("PRV-CNS-007", "PRV-CNS-013", "PRV-CRD-006")
async def codes_work_once_and_tokens_are_not_cached(ctx: ProviderContext) -> None:
    verifier, challenge = pkce_pair()
    code = await new_code(ctx, challenge)
    first, first_exchange = await token(
        ctx, grant_type="authorization_code", code=code, code_verifier=verifier
    )
    if not issued(first):
        raise Skipped(
            f"a correct code exchange was answered {first.status_code} "
            f"{error_code(ctx.json(first)) or ''}, so single use cannot be tested"
        )
    ctx.require(
        "PRV-CNS-013",
        "no-store" in first.headers.get("cache-control", ""),
        "token responses must carry Cache-Control: no-store (RFC 6749 §5.1), got "
        f"{first.headers.get('cache-control')!r}",
        first_exchange,
    )
    tokens = ctx.json(first)
    ctx.require(
        "PRV-CRD-006",
        isinstance(tokens, dict) and isinstance(tokens.get("expires_in"), int),
        "token responses should carry expires_in",
        first_exchange,
    )
    again, exchange = await token(
        ctx, grant_type="authorization_code", code=code, code_verifier=verifier
    )
    ctx.require(
        "PRV-CNS-007",
        again.status_code == 400 and error_code(ctx.json(again)) == "invalid_grant",
        f"a second use of a code must get invalid_grant, got {again.status_code} "
        f"{error_code(ctx.json(again)) or ''}",
        exchange,
    )


@check("PRV-CNS-010")
async def resource_calls_without_a_token_get_the_rfc9728_challenge(ctx: ProviderContext) -> None:
    ctx.fresh_user()
    for bearer, why in (
        (None, "no bearer token"),
        ("pma_provspec_not_a_token", "an invalid bearer token"),
    ):
        response, exchange = await ctx.call(
            "POST", "provisioning/resources", body={"service_id": "x"}, bearer=bearer
        )
        params = challenge_params(response)
        metadata = params.get("resource_metadata", "")
        ok = response.status_code == 401 and metadata.startswith(
            ("https://", "http://127.0.0.1", "http://localhost")
        )
        ctx.require(
            "PRV-CNS-010", ok, f"{why} must get 401 with Bearer resource_metadata", exchange
        )


async def _narrower(ctx: ProviderContext) -> str:
    """A scope the resource advertises (RFC 9728 scopes_supported) other than the profile's
    provisioning scope: a token holding only that one lacks what provisioning needs."""
    response, _ = await ctx.get(prm_url(ctx.base_url))
    document = ctx.json(response)
    advertised = document.get("scopes_supported") if isinstance(document, dict) else None
    needed = ctx.params.provisioning_scope
    others = [scope for scope in advertised or [] if isinstance(scope, str) and scope != needed]
    if not others:
        raise NotApplicable(
            f"the resource advertises no scope besides {needed!r} (scopes_supported "
            f"{advertised!r}), so no token can lack it"
        )
    return others[0]


@check("PRV-CNS-011")
async def a_token_without_the_scope_gets_403(ctx: ProviderContext) -> None:
    needed = ctx.params.provisioning_scope
    narrower = await _narrower(ctx)
    # The grant must hold the other scope too before a refresh may narrow to it (RFC 6749
    # §6): the account is asked for both.
    ctx.fresh_user()
    try:
        connection = await ctx.client.connect(scopes=(needed, narrower))
    except ConnectFailed as why:
        raise Skipped(f"could not obtain a token for {needed!r} and {narrower!r}: {why}") from None
    entry = await service_of(ctx, "free")
    made, _ = await provision(ctx, str(entry["id"]), bearer=connection.access_token)
    resource = ctx.json(made)
    if made.status_code != 200 or not isinstance(resource, dict) or not resource.get("id"):
        raise Skipped("could not provision a free service (see the provisioning checks)")
    refresh = connection.refresh_token
    if not refresh:
        raise Skipped("no refresh token to narrow the scope with")
    response, _ = await token(
        ctx, grant_type="refresh_token", refresh_token=refresh, scope=narrower
    )
    narrow = ctx.json(response)
    if response.status_code != 200 or not isinstance(narrow, dict) or "access_token" not in narrow:
        raise Skipped(
            "the provider issues no narrower-scoped token (RFC 6749 §6 refresh with scope)"
        )
    granted = narrow.get("scope")
    if isinstance(granted, str) and needed in granted.split():
        # RFC 6749 §5.1: a scope other than the one asked for is stated, and this one kept
        # the provisioning scope: the token does not lack it.
        raise Skipped(
            f"asked to narrow a token to {narrower!r}, the provider kept {granted!r}, so no "
            "token lacking the provisioning scope could be had"
        )
    answer, exchange = await ctx.call(
        "GET", f"provisioning/resources/{resource['id']}", bearer=narrow["access_token"]
    )
    params = challenge_params(answer)
    ctx.require(
        "PRV-CNS-011",
        answer.status_code == 403
        and params.get("error") == "insufficient_scope"
        and needed in params.get("scope", "").split(),
        f'a token without {needed!r} must get 403 error="insufficient_scope" scope naming '
        f"{needed!r}, got {answer.status_code} {params}",
        exchange,
    )


@check("PRV-CNS-012")
async def token_errors_use_rfc6749_shape(ctx: ProviderContext) -> None:
    response, exchange = await token(
        ctx, grant_type="authorization_code", code="provspec-no-such-code"
    )
    document = ctx.json(response)
    ok = isinstance(document, dict) and document.get("error") in (
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
    )
    ctx.require(
        "PRV-CNS-012",
        ok,
        "token errors should be {error, error_description} with an RFC 6749 §5.2 code",
        exchange,
    )


@check("PRV-CNS-008")
async def token_endpoint_refuses_a_foreign_resource(ctx: ProviderContext) -> None:
    verifier, challenge = pkce_pair()
    code = await new_code(ctx, challenge)
    response, exchange = await token(
        ctx,
        grant_type="authorization_code",
        code=code,
        code_verifier=verifier,
        resource="https://resource.provspec.invalid/api/",
    )
    ctx.require(
        "PRV-CNS-008",
        response.status_code == 400
        and error_code(ctx.json(response)) == "invalid_target"
        and "access_token" not in response.text,
        "a token request for another resource must get 400 invalid_target (RFC 8707 §2)",
        exchange,
    )


async def consented_redirect(ctx: ProviderContext, url: str) -> tuple[dict[str, str], Any]:
    """The query of where the human's consent at `url` sent the browser back, and the
    evidence of it; Skipped with the reason when no consent was had. Scripted (the mocks), the
    authorization endpoint answers the redirect itself."""
    if ctx.target.scripted_consent:
        response, exchange = await ctx.get(url)
        query = parse_qs(urlsplit(response.headers.get("location", "")).query)
        if "code" not in query:
            raise Skipped(f"the scripted consent gave no code ({response.status_code})")
        return {name: values[0] for name, values in query.items()}, exchange
    outcome = await ctx.consent(url)
    call = ctx.recorder.record_cli(
        [f"consent ({ctx.target.consent_options.mode})", url],
        0 if outcome.redirect else 1,
        mask_text(outcome.redirect or ""),
        outcome.why,
        0.0,
    )
    if outcome.code is None:
        raise Skipped(f"consent was not had: {outcome.why or 'the redirect carried no code'}")
    return outcome.params, call


@check("PRV-CNS-009")
async def authorization_response_carries_state_and_iss(ctx: ProviderContext) -> None:
    ctx.need_consent()
    issuer, metadata, _ = await as_metadata(ctx)
    endpoint = metadata.get("authorization_endpoint")
    if not isinstance(endpoint, str):
        raise Skipped("no authorization_endpoint (see PRV-CNS-003)")
    _, challenge = pkce_pair()
    state = "provspec-" + secrets.token_urlsafe(12)
    params = {
        "response_type": "code",
        "client_id": ctx.core.issuer,
        "redirect_uri": ctx.core.issuer + "/oauth/callback",
        "state": state,
        "resource": ctx.base_url,
        "login_hint": ctx.target.config.existing_email,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "scope": ctx.params.provisioning_scope,
    }
    query, evidence = await consented_redirect(ctx, endpoint + "?" + urlencode(params))
    ctx.require(
        "PRV-CNS-009",
        query.get("state") == state and query.get("iss") == issuer,
        f"the redirect must return state {state!r} unchanged and iss {issuer!r} (RFC 9207): "
        f"state {query.get('state')!r}, iss {query.get('iss')!r}",
        evidence,
    )


@check("PRV-CNS-014")
async def requires_auth_leads_to_tokens_through_consent(ctx: ProviderContext) -> None:
    ctx.existing_user()
    answer = await ctx.client.request_account()
    if answer.kind == "oauth":
        raise NotApplicable(
            "the provider links an existing account under the orchestrator's signature (type "
            "oauth), so there is no consent step to follow (PRV-ACC-002 allows both)"
        )
    url = answer.consent_url
    if answer.kind != "requires_auth" or url is None:
        raise Skipped(
            f"blocked by PRV-ACC-002: the existing account's request was answered "
            f"{answer.describe()}, with no requires_auth url to follow"
        )
    ctx.need_consent()
    mark = ctx.recorder.mark
    try:
        if ctx.target.scripted_consent:
            code = await ctx.client.approve(url)
        else:
            query, _ = await consented_redirect(ctx, url)
            code = query["code"]
        response = await ctx.client.exchange_code(code, answer.verifier)
        outcome = f"{response.status_code} {error_code(ctx.json(response)) or ''}"
        ok = issued(response)
    except ConnectFailed as why:
        outcome, ok = str(why), False
    trail = ctx.recorder.since(mark)
    ctx.require(
        "PRV-CNS-014",
        ok,
        "requires_auth, consent and the code exchange with the account request's verifier "
        f"must end in tokens (got {outcome})",
        *trail[-3:],
    )
