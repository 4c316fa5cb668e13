"""Accounts: create for a new identity, never link an existing account without consent."""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any

from conformance.adapters.provider import ProviderContext, recorded
from conformance.checks import Skipped, check
from conformance.packs.provider._helpers import (
    attestation,
    error_code,
    free_resource,
    issues,
    oauth_code,
    service_of,
)
from wire.pkce import pkce_pair
from wire.www_authenticate import ChallengeError, parse


def account_request(ctx: ProviderContext, **changes: Any) -> dict[str, Any]:
    """The complete account request a real orchestrator sends for the current user (with a
    fresh PKCE challenge); `changes` replace members, None leaves one out."""
    _, challenge = pkce_pair()
    return ctx.client.account_request(challenge=challenge, **changes)


def absolute_url(url: object) -> bool:
    """An absolute https URL, or http on loopback (a test provider)."""
    return isinstance(url, str) and url.startswith(
        ("https://", "http://127.", "http://localhost", "http://[::1]")
    )


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
async def existing_account_is_linked_or_sent_to_consent(ctx: ProviderContext) -> None:
    """The deployed provider links an existing email under the orchestrator's signature
    (type oauth); a provider may ask for consent instead (requires_auth with a url)."""
    ctx.existing_user()
    answer = await ctx.client.request_account()
    exchange = recorded(answer.response)
    kind = answer.kind
    if kind == "requires_auth":
        ok, shape = absolute_url(answer.consent_url), "account_response_requires_auth"
        why = f"requires_auth must carry an absolute https (or loopback) url, not {answer.consent_url!r}"
    else:
        ok, shape = kind == "oauth" and answer.code is not None, "account_response_oauth"
        why = (
            f"an account request for the existing {ctx.user.email} must get 200 with type oauth "
            f"and a code, or type requires_auth and a url; got {answer.describe()}"
        )
    ctx.require("PRV-ACC-002", ok, why, exchange)
    if answer.response.status_code == 200:
        problems = issues(ctx, shape, answer.document)
        ctx.require(
            "PRV-ACC-010", not problems, f"the {kind} answer is not valid: {problems}", exchange
        )


@check("PRV-ACC-014")
async def body_errors_come_before_the_missing_signature(ctx: ProviderContext) -> None:
    """The deployed order (PostHog): API-Version, body validation, then the signature."""
    ctx.fresh_user()
    response, exchange = await ctx.call(
        "POST",
        "provisioning/account_requests",
        body=account_request(ctx, email=None),
        headers_override={ctx.params.signature_header: ""},
    )
    document = ctx.json(response)
    ctx.require(
        "PRV-ACC-014",
        response.status_code == 400
        and isinstance(document, dict)
        and document.get("type") == "error"
        and error_code(document) == "invalid_request",
        "an unsigned account request without email should get the body's error first (400 "
        f"invalid_request, typed envelope), got {response.status_code} {error_code(document) or ''}",
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
    raw = json.dumps(body).encode()
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


@check("PRV-ACC-015")
async def an_unverified_email_never_reaches_an_existing_account(ctx: ProviderContext) -> None:
    ctx.existing_user(email_verified=False)
    response, exchange = await ctx.call(
        "POST", "provisioning/account_requests", body=account_request(ctx)
    )
    document = ctx.json(response)
    reached = (
        response.status_code == 200
        and isinstance(document, dict)
        and document.get("type") == "oauth"
    )
    ctx.require(
        "PRV-ACC-015",
        not reached and response.status_code in (400, 401),
        f"an attestation with email_verified false for the existing {ctx.user.email} must get "
        f"401 consent_required or 400, got {response.status_code}"
        + (" and a code for the existing account" if reached else ""),
        exchange,
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
    ctx.fresh_user()
    body = account_request(ctx)
    raw = json.dumps(body).encode()
    response, exchange = await ctx.call(
        "POST",
        "provisioning/account_requests",
        content=raw,
        headers_override={ctx.params.attestation_header: attestation(ctx, raw, drop=("email",))},
    )
    ctx.require(
        "PRV-ACC-013",
        response.status_code == 400,
        f"an account request whose attestation carries no email must get 400, got "
        f"{response.status_code}",
        exchange,
    )


@check("PRV-ACC-006")
async def the_same_identity_reaches_the_same_account(ctx: ProviderContext) -> None:
    """Later account requests for the same (iss, sub) land in the account the first one
    created, also after the user's email changed at the orchestrator (OIDC Core §5.7: sub is
    the stable identifier, email is not): a token from each sees the first token's resource."""
    _, resource = await free_resource(ctx)
    user = ctx.user
    renamed = f"provspec+renamed-{secrets.token_hex(4)}@example.com"
    for why, email in (("again", user.email), (f"with its email changed to {renamed}", renamed)):
        await _reaches_resource(ctx, resource, why, email)


async def _reaches_resource(
    ctx: ProviderContext, resource: dict[str, Any], why: str, email: str
) -> None:
    verifier, challenge = pkce_pair()
    raw = json.dumps(account_request(ctx, email=email, code_challenge=challenge)).encode()
    response, exchange = await ctx.call(
        "POST",
        "provisioning/account_requests",
        content=raw,
        headers_override={ctx.params.attestation_header: attestation(ctx, raw, email=email)},
    )
    document = ctx.json(response)
    code = oauth_code(document)
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
    ctx.existing_user(variant)
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
    """Four account requests at once for one new identity, each exchanged for a token. Which
    tokens share an account is asked with the project_id rules every provider keeps: the
    first token creates a resource under a project_id; the same project_id from a token of
    the same account answers that resource (PRV-PRO-005), from another account a conflict
    (PRV-PRO-006)."""
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
        code = oauth_code(document)
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
    entry = await service_of(ctx, "free")
    body = {"service_id": str(entry["id"]), "project_id": "proj_" + secrets.token_hex(6)}
    made, _ = await ctx.call("POST", "provisioning/resources", body=body, bearer=bearers[0])
    resource_id = (ctx.json(made) or {}).get("id")
    if made.status_code != 200 or not resource_id:
        raise Skipped("could not provision with the first token (see PRV-PRO-003)")
    same, _ = await ctx.call("POST", "provisioning/resources", body=body, bearer=bearers[0])
    if (ctx.json(same) or {}).get("id") != resource_id:
        raise Skipped(
            "blocked by PRV-PRO-005: the same project_id from the same token did not lead back "
            "to its resource, so it cannot tell accounts apart"
        )
    apart = []
    for bearer in bearers[1:]:
        again, exchange = await ctx.call("POST", "provisioning/resources", body=body, bearer=bearer)
        if (ctx.json(again) or {}).get("id") != resource_id:
            apart.append(exchange)
    ctx.require(
        "PRV-ACC-012",
        not apart,
        f"{len(bearers)} concurrent first requests for one identity made more than one "
        f"account: the project_id of resource {resource_id!r} did not lead another of their "
        "tokens to it",
        *apart[:2],
    )
