"""Accounts: create for a new identity, never link an existing account without consent."""

from __future__ import annotations

import secrets
from typing import Any

from conformance.adapters.provider import ProviderContext
from conformance.checks import check
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
        headers_override={"APP-Attestation": token},
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
