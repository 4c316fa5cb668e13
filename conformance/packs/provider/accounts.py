"""Accounts: create for a new identity, never link an existing account without consent."""

from __future__ import annotations

import secrets
from typing import Any

from conformance.adapters.provider import ProviderContext
from conformance.checks import Skipped, check
from conformance.packs.provider._helpers import attestation, error_code, issues
from conformance.www_authenticate import ChallengeError, parse


def account_request(ctx: ProviderContext, **overrides: Any) -> dict[str, Any]:
    user = ctx.orchestrator.user()
    body: dict[str, Any] = {
        "id": "acctreq_" + secrets.token_hex(6),
        "object": "account_request",
        "email": user.email,
        "scopes": ["provisioning"],
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGjSstw-cM",
        "code_challenge_method": "S256",
    }
    body.update(overrides)
    return {key: value for key, value in body.items() if value is not None}


@check("PRV-ACC-001", "PRV-ACC-010")
async def new_identity_gets_an_account_and_a_code(ctx: ProviderContext) -> None:
    ctx.fresh_user()
    body = account_request(ctx)
    response, exchange = await ctx.call("POST", "provisioning/account_requests", body=body)
    document = ctx.json(response)
    ok = (
        response.status_code == 200
        and isinstance(document, dict)
        and document.get("type") == "oauth"
    )
    ok = (
        ok
        and isinstance(document.get("oauth"), dict)
        and bool(document["oauth"].get("code"))
        and document.get("id") == body["id"]
    )
    ctx.require(
        "PRV-ACC-001",
        ok,
        "a new identity must get 200 type oauth with a code, echoing the request id",
        exchange,
    )
    if response.status_code == 200:
        problems = issues(ctx, "account_response_oauth", document)
        ctx.require(
            "PRV-ACC-010", not problems, f"the oauth answer is not valid: {problems}", exchange
        )


@check("PRV-ACC-002", "PRV-ACC-010")
async def existing_account_requires_auth(ctx: ProviderContext) -> None:
    ctx.existing_user()
    response, exchange = await ctx.call(
        "POST", "provisioning/account_requests", body=account_request(ctx)
    )
    document = ctx.json(response)
    answer = document.get("requires_auth") if isinstance(document, dict) else None
    url = answer.get("url") if isinstance(answer, dict) else None
    if isinstance(answer, dict) and url is None and isinstance(answer.get("redirect"), dict):
        url = answer["redirect"].get("url")
    ok = (
        response.status_code == 200
        and document.get("type") == "requires_auth"
        and isinstance(url, str)
    )
    ok = ok and str(url).startswith(("https://", "http://127.", "http://localhost"))
    ctx.require(
        "PRV-ACC-002",
        ok,
        "an existing account must get requires_auth with an absolute consent url",
        exchange,
    )
    problems = issues(ctx, "account_response_requires_auth", document)
    ctx.require(
        "PRV-ACC-010",
        response.status_code != 200 or not problems,
        f"requires_auth answer invalid: {problems}",
        exchange,
    )


@check("PRV-ACC-003", "PRV-ACC-004", "PRV-ACC-005")
async def invalid_account_requests_are_refused(ctx: ProviderContext) -> None:
    ctx.fresh_user()
    cases: list[tuple[str, dict[str, Any], str | None, str]] = [
        ("PRV-ACC-003", {"email": None}, None, "without email"),
        ("PRV-ACC-004", {"expires_at": "2020-01-01T00:00:00Z"}, "expired", "expired"),
        (
            "PRV-ACC-005",
            {"code_challenge_method": "plain"},
            None,
            "with code_challenge_method plain",
        ),
    ]
    for requirement, change, code, why in cases:
        response, exchange = await ctx.call(
            "POST", "provisioning/account_requests", body=account_request(ctx, **change)
        )
        document = ctx.json(response)
        ok = response.status_code == 400 and (code is None or error_code(document) == code)
        ctx.require(
            requirement,
            ok,
            f"an account request {why} must get 400{' ' + code if code else ''}, got {response.status_code}",
            exchange,
        )


@check("PRV-ACC-007", "PRV-ACC-009")
async def existing_email_goes_to_the_consent_path(ctx: ProviderContext) -> None:
    ctx.existing_user()
    response, exchange = await ctx.call(
        "POST", "provisioning/account_requests", body=account_request(ctx)
    )
    document = ctx.json(response)
    linked = (
        response.status_code == 200
        and isinstance(document, dict)
        and document.get("type") == "oauth"
    )
    ctx.require(
        "PRV-ACC-007",
        not linked,
        "an existing account was linked by email alone, without consent",
        exchange,
    )
    if linked:
        return
    metadata = None
    try:
        for challenge in parse(response.headers.get("www-authenticate", "")):
            if challenge.scheme.lower() == "bearer":
                metadata = challenge.params.get("resource_metadata")
    except ChallengeError:
        metadata = None
    ok = (
        response.status_code == 401
        and error_code(document) == "consent_required"
        and isinstance(metadata, str)
        and metadata.startswith(("https://", "http://127.0.0.1", "http://localhost"))
    )
    ctx.require(
        "PRV-ACC-009",
        ok,
        "expected 401 consent_required with WWW-Authenticate Bearer resource_metadata=<absolute URL>",
        exchange,
    )


@check("PRV-ACC-008")
async def unverified_email_creates_no_account(ctx: ProviderContext) -> None:
    ctx.fresh_user()
    body = account_request(ctx)
    raw = __import__("json").dumps(body).encode()
    token = attestation(ctx, raw, email_verified=False)
    response, exchange = await ctx.call(
        "POST",
        "provisioning/account_requests",
        content=raw,
        headers_override={ctx.params.attestation_header: token},
    )
    document = ctx.json(response)
    created = (
        response.status_code == 200
        and isinstance(document, dict)
        and document.get("type") == "oauth"
    )
    ctx.require(
        "PRV-ACC-008", not created, "an account was created for an unverified email", exchange
    )


@check("PRV-ACC-013")
async def body_email_must_match_the_attested_email(ctx: ProviderContext) -> None:
    ctx.fresh_user()
    response, exchange = await ctx.call(
        "POST",
        "provisioning/account_requests",
        body=account_request(ctx, email="someone-else@example.com"),
    )
    ctx.require(
        "PRV-ACC-013",
        response.status_code == 400,
        f"an email differing from the attested one must get 400, got {response.status_code}",
        exchange,
    )


@check("PRV-ACC-006")
async def the_same_identity_reaches_the_same_account(ctx: ProviderContext) -> None:
    """Later account requests for the same (iss, sub) land in the account the first one
    created, also after the user's email changed at the orchestrator (OIDC Core §5.7: sub is
    the stable identifier, email is not): a token from each sees the first token's resource."""
    from conformance.packs.provider._helpers import free_resource

    _, resource = await free_resource(ctx)
    user = ctx.orchestrator.user()
    renamed = f"provspec+renamed-{secrets.token_hex(4)}@example.com"
    for why, email in (("again", user.email), (f"with its email changed to {renamed}", renamed)):
        await _reaches_resource(ctx, resource, why, email)


async def _reaches_resource(
    ctx: ProviderContext, resource: dict[str, Any], why: str, email: str
) -> None:
    import json

    from mocks.orchestrator.engine import pkce_pair

    verifier, challenge = pkce_pair()
    raw = json.dumps(account_request(ctx, email=email, code_challenge=challenge)).encode()
    response, exchange = await ctx.call(
        "POST",
        "provisioning/account_requests",
        content=raw,
        headers_override={ctx.params.attestation_header: attestation(ctx, raw, email=email)},
    )
    document = ctx.json(response)
    code = (document.get("oauth") or {}).get("code") if isinstance(document, dict) else None
    if response.status_code != 200 or not isinstance(code, str):
        ctx.require(
            "PRV-ACC-006",
            False,
            f"an account request for a known (iss, sub) {why} must get a code for its account, "
            f"got {response.status_code} {error_code(document) or ''}".rstrip(),
            exchange,
        )
        return
    answer, _ = await ctx.call(
        "POST",
        "oauth/token",
        form={"grant_type": "authorization_code", "code": code, "code_verifier": verifier},
    )
    tokens = ctx.json(answer)
    bearer = tokens.get("access_token") if isinstance(tokens, dict) else None
    if not isinstance(bearer, str):
        ctx.cannot_judge("PRV-ACC-006", f"the code of the request {why} gave no token")
        return
    seen, seen_exchange = await ctx.call(
        "GET", f"provisioning/resources/{resource['id']}", bearer=bearer
    )
    ctx.require(
        "PRV-ACC-006",
        seen.status_code == 200 and (ctx.json(seen) or {}).get("id") == resource["id"],
        f"the same (iss, sub) {why} reached another account: its token cannot see the first "
        f"account's resource (got {seen.status_code})",
        exchange,
        seen_exchange,
    )


@check("PRV-ACC-011")
async def an_email_case_variant_goes_down_the_consent_path(ctx: ProviderContext) -> None:
    existing = ctx.target.config.existing_email
    local, _, domain = existing.partition("@")
    variant = f"{local.upper()}@{domain.upper()}"
    if variant == existing:
        raise Skipped(f"{existing!r} has no case variant")
    ctx.orchestrator.new_user(variant)
    ctx.orchestrator.accept_tos(ctx.provider)
    response, exchange = await ctx.call(
        "POST", "provisioning/account_requests", body=account_request(ctx, email=variant)
    )
    document = ctx.json(response)
    created = (
        response.status_code == 200
        and isinstance(document, dict)
        and document.get("type") == "oauth"
    )
    ctx.require(
        "PRV-ACC-011",
        not created,
        f"{variant!r} is {existing!r} in another case, yet it got a fresh account (type oauth) "
        "instead of the consent path",
        exchange,
    )


@check("PRV-ACC-012")
async def concurrent_first_requests_make_one_account(ctx: ProviderContext) -> None:
    import asyncio

    from mocks.orchestrator.engine import pkce_pair

    ctx.fresh_user()
    pairs = [pkce_pair() for _ in range(4)]
    answers = await asyncio.gather(
        *(
            ctx.call(
                "POST",
                "provisioning/account_requests",
                body=account_request(ctx, code_challenge=challenge),
            )
            for _, challenge in pairs
        )
    )
    bearers: list[str] = []
    for (verifier, _), (response, _) in zip(pairs, answers, strict=True):
        document = ctx.json(response)
        code = (document.get("oauth") or {}).get("code") if isinstance(document, dict) else None
        if response.status_code != 200 or not isinstance(code, str):
            continue
        tokens, _ = await ctx.call(
            "POST",
            "oauth/token",
            form={"grant_type": "authorization_code", "code": code, "code_verifier": verifier},
        )
        bearer = (ctx.json(tokens) or {}).get("access_token")
        if isinstance(bearer, str):
            bearers.append(bearer)
    if len(bearers) < 2:
        raise Skipped("fewer than two concurrent account requests gave tokens to compare")
    # Resources are private to their account: one made with the first token must be visible
    # to every other token if, and only if, they all reach the same account.
    from conformance.packs.provider._helpers import provision, service_of

    entry = await service_of(ctx, "free")
    made, _ = await provision(ctx, str(entry["id"]), bearer=bearers[0])
    resource_id = (ctx.json(made) or {}).get("id")
    if made.status_code != 200 or not resource_id:
        raise Skipped("could not provision with the first token (see PRV-PRO-003)")
    unseen = []
    for bearer in bearers[1:]:
        seen, exchange = await ctx.call(
            "GET", f"provisioning/resources/{resource_id}", bearer=bearer
        )
        if seen.status_code != 200:
            unseen.append(exchange)
    ctx.require(
        "PRV-ACC-012",
        not unseen,
        f"{len(bearers)} concurrent first requests for one identity made more than one account",
        *unseen[:2],
    )
