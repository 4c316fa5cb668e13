"""The orchestrator's keys and what its attestations claim, beyond their signature.

Judged from the requests the suite's providers receive: the JWKS keeps every key a live
token was signed with; `email_verified` is asserted only for the signed-in user's verified
email; claims carry no secret; an add sends attested requests only to the provider it names;
a signed-out CLI signs nothing; ES256 signatures never reuse a nonce.
"""

from __future__ import annotations

import json
import time
from typing import Any

from conformance.adapters.orchestrator import (
    OTHER_PROVIDER_NAME,
    PROVIDER_NAME,
    OrchestratorContext,
    RawRequest,
)
from conformance.checks import NotApplicable, Skipped, check
from conformance.packs.orchestrator._helpers import metadata
from conformance.packs.orchestrator._probes import (
    attestations,
    card_numbers_in,
    contains,
    envelope_text,
    marker,
)
from wire import jose, strictjson

SECRET_CLAIMS = frozenset(
    {
        "access_token",
        "refresh_token",
        "api_key",
        "client_secret",
        "password",
        "secret",
        "payment_token",
        "app_payment_token",
        "stripe_payment_token",
        "payment_credentials",
        "card",
        "card_number",
        "number",
        "pan",
        "cvc",
        "cvv",
        "exp_month",
        "exp_year",
    }
)


def _signed_tokens(ctx: OrchestratorContext) -> list[tuple[RawRequest, str]]:
    """Every attestation and payment token the orchestrator sent the suite's providers."""
    found: list[tuple[RawRequest, str]] = []
    for raw in ctx.target.raw:
        if raw.headers.get(ctx.params.attestation_header.lower()):
            found.append((raw, raw.headers[ctx.params.attestation_header.lower()]))
        body = ctx.body(raw)
        credentials = body.get("payment_credentials") if isinstance(body, dict) else None
        token = credentials.get("app_payment_token") if isinstance(credentials, dict) else None
        if isinstance(token, str):
            found.append((raw, token))
    return found


async def _jwks(ctx: OrchestratorContext) -> tuple[Any, Any, Any]:
    """(the JWKS document or None, the HTTP answer, its exchange)."""
    uri = (await metadata(ctx)).get("jwks_uri")
    if not isinstance(uri, str):
        raise Skipped("the orchestrator's metadata names no jwks_uri (see ORC-DSC-001)")
    response, exchange = await ctx.get(uri)
    try:
        document = strictjson.loads(response.content) if response.status_code == 200 else None
    except strictjson.StrictJSONError:
        document = None
    return document, response, exchange


@check("ORC-DSC-010")
async def jwks_uri_serves_a_key_set(ctx: OrchestratorContext) -> None:
    document, response, exchange = await _jwks(ctx)
    keys = document.get("keys") if isinstance(document, dict) else None
    problems = []
    if response.status_code != 200:
        problems.append(f"status {response.status_code}")
    if not isinstance(document, dict):
        problems.append("not a JSON object")
    elif not isinstance(keys, list) or not keys:
        problems.append(f"keys is {type(keys).__name__ if keys is not None else 'absent'}")
    else:
        problems += [
            f"keys[{index}] is not a JWK"
            for index, key in enumerate(keys)
            if not (isinstance(key, dict) and isinstance(key.get("kty"), str))
        ]
    ctx.require(
        "ORC-DSC-010",
        not problems,
        f"the jwks_uri must answer 200 with a JSON object whose keys is a non-empty array of "
        f"JWKs: {problems}",
        exchange,
    )


@check("ORC-DSC-011")
async def every_live_token_verifies_against_the_published_keys(
    ctx: OrchestratorContext,
) -> None:
    ctx.sign_in()
    ctx.cli("catalog")
    await ctx.add("pro", "--confirm-paid-service")
    document, _, exchange = await _jwks(ctx)
    keys = document.get("keys") if isinstance(document, dict) else None
    published = {key.get("kid") for key in keys or [] if isinstance(key, dict)}
    now = int(time.time())
    unpublished: dict[str, RawRequest] = {}
    for raw, token in _signed_tokens(ctx):
        try:
            header, claims, _ = jose.unverified_parts(token)
        except jose.JOSEError:
            continue
        exp = claims.get("exp")
        live = isinstance(exp, int) and exp > now
        if live and header.get("kid") not in published:
            unpublished.setdefault(str(header.get("kid")), raw)
    ctx.require(
        "ORC-DSC-011",
        not unpublished,
        f"tokens that have not expired were signed with kids the JWKS no longer (or never) "
        f"lists: {sorted(unpublished)}",
        exchange,
        *(ctx.exchange(raw) for raw in list(unpublished.values())[:1]),
    )


@check("ORC-ATT-012")
async def email_verified_only_for_the_verified_user(ctx: OrchestratorContext) -> None:
    email = ctx.sign_in()
    mark = ctx.recorder.mark
    ctx.cli("catalog")
    other = f"{marker('someone-else')}@example.org"
    await ctx.add("free", "--config", json.dumps({"email": other, "email_verified": True}))
    for raw, _, claims in attestations(ctx, ctx.received(mark, provider=None)):
        ctx.require(
            "ORC-ATT-012",
            claims.get("email_verified") is not True or claims.get("email") == email,
            f"{raw.path}: email_verified true for {claims.get('email')!r}, while the signed-in "
            f"user is {email!r}",
            ctx.exchange(raw),
        )
    unverified = f"{marker('unverified')}@example.com"
    call, answer = ctx.cli(
        "init", "--new-user", "--email", unverified, "--email-unverified", "--accept-tos"
    )
    try:
        if answer.get("ok") is not True:
            ctx.cannot_judge(
                "ORC-ATT-012",
                "the orchestrator CLI cannot sign in a user whose email is not verified "
                "(init --email-unverified)",
            )
            return
        mark = ctx.recorder.mark
        ctx.cli("catalog")
        for raw, _, claims in attestations(ctx, ctx.received(mark, provider=None)):
            ctx.require(
                "ORC-ATT-012",
                claims.get("email_verified") is not True,
                f"{raw.path}: email_verified true for {claims.get('email')!r}, an email the "
                "orchestrator has not verified",
                call,
                ctx.exchange(raw),
            )
    finally:
        ctx.sign_in()


@check("ORC-ATT-013")
async def attestations_carry_no_secret(ctx: OrchestratorContext) -> None:
    ctx.sign_in()
    mark = ctx.recorder.mark
    await ctx.add("free")
    await ctx.add("pro", "--confirm-paid-service")
    secrets_known = ctx.handed_out()
    secrets_known |= {
        value: kind
        for value, kind in ctx.sent_secrets().items()
        if kind.startswith(("payment", "authorization"))
    }
    seen = 0
    for raw, _, claims in attestations(ctx, ctx.received(mark, provider=None)):
        seen += 1
        text = json.dumps(claims)
        found = contains(text, secrets_known)
        named = sorted(SECRET_CLAIMS & set(claims))
        cards = card_numbers_in(text)
        ctx.require(
            "ORC-ATT-013",
            not found and not named and not cards,
            f"{raw.path}: the attestation carries {found + named + ['a card number'] * bool(cards)}",
            ctx.exchange(raw),
        )
    if not seen:
        ctx.cannot_judge("ORC-ATT-013", "no attested request reached the suite's providers")


@check("ORC-ATT-014")
async def attested_requests_go_only_to_the_named_provider(ctx: OrchestratorContext) -> None:
    ctx.sign_in()
    other = ctx.target.other_provider
    if other is None:
        raise Skipped("the run serves no second provider")
    hostile = {
        "provider": OTHER_PROVIDER_NAME,
        "aud": other.base_url,
        "audience": other.base_url,
        "base_url": other.base_url,
    }
    mark = ctx.recorder.mark
    call, _ = await ctx.add("free", "--config", json.dumps(hostile))
    strays = [
        raw
        for raw in ctx.received(mark, provider=OTHER_PROVIDER_NAME)
        if raw.headers.get(ctx.params.attestation_header.lower())
        or raw.headers.get(ctx.params.signature_header.lower())
    ]
    ctx.require(
        "ORC-ATT-014",
        not strays,
        f"add {PROVIDER_NAME}/free, with --config naming {OTHER_PROVIDER_NAME}, sent attested "
        f"requests to {OTHER_PROVIDER_NAME}: {[f'{r.method} {r.path}' for r in strays[:3]]}",
        call,
        *(ctx.exchange(raw) for raw in strays[:1]),
    )


@check("ORC-ATT-015")
async def a_signed_out_cli_signs_nothing(ctx: OrchestratorContext) -> None:
    logout, answer = ctx.cli("logout")
    if answer.get("ok") is not True:
        raise Skipped("the orchestrator CLI has no logout command to sign the user out with")
    try:
        mark = ctx.recorder.mark
        answers = [ctx.cli("catalog"), await ctx.add("free")]
        signed = [
            raw
            for raw in ctx.received(mark, provider=None)
            if raw.headers.get(ctx.params.attestation_header.lower())
            or raw.headers.get(ctx.params.signature_header.lower())
        ]
        ctx.require(
            "ORC-ATT-015",
            not signed,
            f"with no signed-in user the orchestrator sent signed requests: "
            f"{[f'{r.provider} {r.method} {r.path}' for r in signed[:3]]}",
            logout,
            *(ctx.exchange(raw) for raw in signed[:1]),
        )
        for call, envelope in answers:
            error = envelope.get("error")
            code = str(error.get("code", "")) if isinstance(error, dict) else ""
            ctx.require(
                "ORC-ATT-015",
                envelope.get("ok") is False and "AUTH" in code.upper(),
                f"a signed-out {' '.join(call.argv[2:4])} must answer ok false with an "
                f"authentication error such as JSON_REQUIRES_AUTH: {envelope_text(envelope)[:200]}",
                call,
            )
    finally:
        ctx.sign_in()


@check("ORC-ATT-016")
async def es256_signatures_never_share_a_nonce(ctx: OrchestratorContext) -> None:
    ctx.cli("catalog")
    seen: dict[bytes, RawRequest] = {}
    repeated: list[RawRequest] = []
    es256 = 0
    for raw, token in _signed_tokens(ctx):
        try:
            header, _, signature = jose.unverified_parts(token)
        except jose.JOSEError:
            continue
        if header.get("alg") != "ES256" or len(signature) != 64:
            continue
        es256 += 1
        r = signature[:32]
        if r in seen:
            repeated.append(raw)
        seen.setdefault(r, raw)
    if not es256:
        # A second signing algorithm is optional: judged only when it is used.
        try:
            advertised = (await metadata(ctx)).get("attestation_signing_alg_values_supported")
        except Skipped:
            advertised = None
        raise NotApplicable(
            "the orchestrator signs nothing with ES256 (EdDSA has no nonce); its metadata's "
            f"attestation_signing_alg_values_supported is {advertised!r}"
        )
    ctx.require(
        "ORC-ATT-016",
        not repeated,
        f"{len(repeated)} ES256 signatures reuse the r value of an earlier one (a repeated nonce "
        "gives the private key away)",
        *(ctx.exchange(raw) for raw in repeated[:2]),
    )


@check("ORC-ATT-017")
async def attestations_name_the_orchestrator_account(ctx: OrchestratorContext) -> None:
    ctx.sign_in()
    mark = ctx.recorder.mark
    ctx.cli("catalog")
    await ctx.add("free")
    received = ctx.received(mark, provider=None)
    named = set()
    for raw in received:
        body = ctx.body(raw)
        block = body.get("orchestrator") if isinstance(body, dict) else None
        if isinstance(block, dict):
            inner = block.get(str(block.get("type")))
            for holder in (block, inner if isinstance(inner, dict) else {}):
                if isinstance(holder.get("account"), str):
                    named.add(holder["account"])
    accounts = set()
    for raw, _, claims in attestations(ctx, received):
        account = claims.get("orchestrator_account")
        accounts.add(str(account))
        ctx.require(
            "ORC-ATT-017",
            isinstance(account, str) and bool(account) and (not named or account in named),
            f"{raw.path}: orchestrator_account {account!r}"
            + (f"; the account request names {sorted(named)}" if named else ""),
            ctx.exchange(raw),
        )
    ctx.require(
        "ORC-ATT-017",
        len(accounts) <= 1,
        f"one user's attestations name several orchestrator accounts: {sorted(accounts)}",
    )


@check("ORC-ATT-018")
async def attestations_have_one_audience(ctx: OrchestratorContext) -> None:
    ctx.cli("catalog")
    for raw, _, claims in attestations(ctx, ctx.target.raw):
        aud = claims.get("aud")
        single = isinstance(aud, str) or (
            isinstance(aud, list) and len(aud) == 1 and isinstance(aud[0], str)
        )
        ctx.require(
            "ORC-ATT-018",
            single,
            f"{raw.provider} {raw.path}: aud {aud!r} is not a single audience",
            ctx.exchange(raw),
        )
