"""Revocation (RFC 7009) as the suite's providers see it (ORC-REV-*).

Each check connects a fresh user to the suite's provider(s) with a free add, reads the
access token the orchestrator then presents, and looks its refresh token up in the suite's
own provider. After the orchestrator's revoke command the provider's state says which of
those tokens were really revoked, and the requests that follow say whether the orchestrator
still uses them.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

from conformance.adapters.orchestrator import (
    OTHER_PROVIDER_NAME,
    PROVIDER_NAME,
    OrchestratorContext,
    RawRequest,
)
from conformance.checks import Skipped, check
from conformance.packs.orchestrator._consent import rewrite_json
from conformance.packs.orchestrator._helpers import keys, metadata
from conformance.packs.orchestrator.payment import add_at, as_a_new_user
from mocks.provider import ProviderMock
from wire import jose, stripe_signature


def provider_mock(ctx: OrchestratorContext, name: str) -> ProviderMock:
    other = ctx.target.other_provider
    if name == OTHER_PROVIDER_NAME:
        if other is None:
            raise Skipped("the run serves no second provider")
        return other
    return ctx.provider


async def connect(
    ctx: OrchestratorContext, provider: str = PROVIDER_NAME
) -> tuple[str, str, RawRequest]:
    """A free add at `provider`: the access token the orchestrator presented with it, the
    refresh token the provider issued alongside, and the resource creation itself."""
    _, _, creations = await add_at(ctx, provider, "free")
    scheme, _, token = (
        creations[-1].headers.get("authorization", "") if creations else ""
    ).partition(" ")
    record = provider_mock(ctx, provider).state.access_token(token.strip())
    if scheme.lower() != "bearer" or record is None:
        raise Skipped(f"the free add at {provider} presented no access token the provider issued")
    return token.strip(), str(record["refresh"]), creations[-1]


def revocations(
    ctx: OrchestratorContext, since: int, provider: str = PROVIDER_NAME
) -> list[RawRequest]:
    return [
        r for r in ctx.received(since, "/oauth/revoke", provider=provider) if r.method == "POST"
    ]


def attestation_defect(
    ctx: OrchestratorContext, raw: RawRequest, trusted: dict[str, jose.PublicKey], issuer: str
) -> str:
    """What is wrong with a request's APP-Attestation, or "" when it holds."""
    token = raw.headers.get(ctx.params.attestation_header.lower())
    if not token:
        return f"no {ctx.params.attestation_header} header"
    try:
        _, claims = jose.verify_signature(
            token, keys=trusted, algorithms=ctx.params.algorithms, typ="app-attestation+jwt"
        )
    except jose.JOSEError as error:
        return str(error)
    if claims.get("aud") != ctx.provider.base_url or claims.get("iss") != issuer:
        return f"aud {claims.get('aud')!r}, iss {claims.get('iss')!r}"
    if claims.get("body_sha256") != jose.sha256_b64url(raw.body):
        return "body_sha256 does not match the body"
    return ""


def hmac_defect(ctx: OrchestratorContext, raw: RawRequest) -> str:
    """What is wrong with a 0.1d request's Stripe-Signature, or "" when it holds."""
    try:
        stripe_signature.verify(
            raw.headers.get(ctx.params.signature_header.lower()),
            raw.body,
            ctx.target.config.hmac_secret,
            now=int(time.time()),
            tolerance=ctx.params.hmac_tolerance,
        )
    except stripe_signature.SignatureError as error:
        return str(error)
    return ""


def says_revoked(value: Any) -> bool:
    """Whether an envelope's data reports anything as revoked."""
    if isinstance(value, dict):
        return value.get("revoked") is True or any(says_revoked(v) for v in value.values())
    if isinstance(value, list):
        return any(says_revoked(v) for v in value)
    return False


@check("ORC-REV-001")
async def revoking_everything_revokes_at_every_provider(ctx: OrchestratorContext) -> None:
    """`revoke --all` after connecting at both providers: each provider gets RFC 7009
    requests, and the access token the orchestrator used there stops working."""
    with as_a_new_user(ctx):
        held = {name: await connect(ctx, name) for name in (PROVIDER_NAME, OTHER_PROVIDER_NAME)}
        mark = ctx.recorder.mark
        call, envelope = ctx.cli("revoke", "--all")
    if envelope.get("ok") is not True:
        # A revocation answer misread as a failure stops the fan-out; that is ORC-REV-007's
        # or ORC-REV-008's finding, and leaves nothing to judge here.
        raise Skipped("the revoke command reported a failure (see ORC-REV-007, -008)")
    for name, (access, _, _) in held.items():
        alive = provider_mock(ctx, name).state.access_token(access) is not None
        ctx.require(
            "ORC-REV-001",
            bool(revocations(ctx, mark, name)) and not alive,
            f"after revoke --all, {name} got {len(revocations(ctx, mark, name))} revocation "
            f"request(s) and the access token used there {'still works' if alive else 'is dead'}",
            call,
        )


@check("ORC-REV-002", "ORC-REV-005", "ORC-REV-006")
async def revocation_is_an_attested_rfc7009_request_for_both_tokens(
    ctx: OrchestratorContext,
) -> None:
    with as_a_new_user(ctx):
        _, refresh, creation = await connect(ctx)
        mark = ctx.recorder.mark
        call, envelope = ctx.cli("revoke", PROVIDER_NAME)
    sent = revocations(ctx, mark)
    if not sent:
        raise Skipped("the revoke command sent no revocation request (see ORC-REV-001)")
    trusted = await keys(ctx)
    issuer = str((await metadata(ctx)).get("issuer"))
    # Signed "like every other call": a defect the creation's attestation shares is the
    # attestation checks' finding (ORC-ATT-004 … -011), not a revocation one.
    baseline = attestation_defect(ctx, creation, trusted, issuer)
    for raw in sent:
        evidence = ctx.exchange(raw)
        problem = attestation_defect(ctx, raw, trusted, issuer)
        if problem and baseline and raw.headers.get(ctx.params.attestation_header.lower()):
            ctx.cannot_judge(
                "ORC-REV-002",
                f"blocked by the attestation checks: every call's attestation fails ({baseline})",
            )
            continue
        ctx.require(
            "ORC-REV-002",
            not problem,
            f"the revocation request's APP-Attestation does not hold: {problem}",
            evidence,
        )
        form = {k: v[0] for k, v in parse_qs(raw.body.decode("latin-1")).items()}
        ctx.require(
            "ORC-REV-005",
            raw.headers.get("content-type", "").startswith("application/x-www-form-urlencoded")
            and bool(form.get("token"))
            and form.get("token_type_hint") in ("access_token", "refresh_token"),
            f"a revocation must be a form-encoded POST with token and a token_type_hint of "
            f"access_token or refresh_token: content-type {raw.headers.get('content-type')!r}, "
            f"members {sorted(form)}, token_type_hint {form.get('token_type_hint')!r}",
            evidence,
        )
    if envelope.get("ok") is not True:
        ctx.cannot_judge("ORC-REV-006", "the revoke command failed (see ORC-REV-007, -008)")
        return
    ctx.require(
        "ORC-REV-006",
        ctx.provider.state.refresh_token(refresh) is None,
        "after revoke the refresh token of the connection still works at the provider",
        call,
        *(ctx.exchange(raw) for raw in sent),
    )


@check("ORC-REV-003")
async def revoked_tokens_are_never_used_again(ctx: OrchestratorContext) -> None:
    """Connected at both providers, `revoke --all`, then add again at both and ask for the
    status: no request carries a revoked token, no answer shows one."""
    with as_a_new_user(ctx):
        held = [await connect(ctx, name) for name in (PROVIDER_NAME, OTHER_PROVIDER_NAME)]
        _, envelope = ctx.cli("revoke", "--all")
        if envelope.get("ok") is not True:
            raise Skipped("the revoke command failed (see ORC-REV-007, -008)")
        mark = ctx.recorder.mark
        calls = [
            (await add_at(ctx, name, "free"))[:2] for name in (PROVIDER_NAME, OTHER_PROVIDER_NAME)
        ]
        calls.append(ctx.cli("status"))
    revoked = {token for access, refresh, _ in held for token in (access, refresh)}
    used = [
        raw
        for raw in ctx.received(mark, provider=None)
        if any(
            token in raw.body.decode("latin-1")
            or token in raw.path
            or any(token in value for value in raw.headers.values())
            for token in revoked
        )
    ]
    shown = [call for call, document in calls if any(t in json.dumps(document) for t in revoked)]
    ctx.require(
        "ORC-REV-003",
        not used and not shown,
        f"after revoke, {len(used)} request(s) carried a revoked token "
        f"({', '.join(f'{r.method} {r.path}' for r in used[:3])}) and {len(shown)} answer(s) "
        "showed one",
        *(ctx.exchange(raw) for raw in used[:2]),
        *shown[:1],
    )


@check("ORC-REV-004")
async def revocation_carries_the_stripe_signature(ctx: OrchestratorContext) -> None:
    with as_a_new_user(ctx):
        _, _, creation = await connect(ctx)
        mark = ctx.recorder.mark
        ctx.cli("revoke", PROVIDER_NAME)
    sent = revocations(ctx, mark)
    if not sent:
        raise Skipped("the revoke command sent no revocation request (see ORC-REV-001)")
    baseline = hmac_defect(ctx, creation)
    for raw in sent:
        problem = hmac_defect(ctx, raw)
        if problem and baseline and raw.headers.get(ctx.params.signature_header.lower()):
            # Signed "like every other call": the creation's signature fails too.
            ctx.cannot_judge("ORC-REV-004", f"blocked by ORC-ATT-001/-002 ({baseline})")
            continue
        ctx.require(
            "ORC-REV-004",
            not problem,
            f"the revocation request's Stripe-Signature does not hold: {problem}",
            ctx.exchange(raw),
        )


def unavailable(
    status: int, headers: dict[str, str], body: bytes
) -> tuple[int, dict[str, str], bytes]:
    """RFC 7009 §2.2.1: 503, the token was not revoked."""
    answer = {"error": "temporarily_unavailable", "error_description": "try again later"}
    return 503, {"content-type": "application/json"}, json.dumps(answer).encode()


@check("ORC-REV-007")
async def a_failed_revocation_is_reported_as_failed(ctx: OrchestratorContext) -> None:
    with as_a_new_user(ctx):
        await connect(ctx)
        mark = ctx.recorder.mark
        with ctx.tampered("/oauth/revoke", unavailable):
            call, envelope = ctx.cli("revoke", PROVIDER_NAME)
    if not revocations(ctx, mark):
        raise Skipped("the revoke command sent no revocation request (see ORC-REV-001)")
    ctx.require(
        "ORC-REV-007",
        envelope.get("ok") is False and not says_revoked(envelope.get("data")),
        f"the revocation endpoint answered 503, yet revoke answered ok {envelope.get('ok')!r}"
        f"{' and reported the tokens revoked' if says_revoked(envelope.get('data')) else ''}",
        call,
    )


@check("ORC-REV-008")
async def a_200_is_success_even_for_a_forgotten_token(ctx: OrchestratorContext) -> None:
    """Once with tokens the provider knows, once with tokens it has already dropped (the
    user revoked them at the provider): both answer 200, both are a success."""
    for forgotten in (False, True):
        with as_a_new_user(ctx):
            _, refresh, _ = await connect(ctx)
            if forgotten:
                ctx.provider.state.revoke_refresh(refresh)  # drops its access token too
            mark = ctx.recorder.mark
            call, envelope = ctx.cli("revoke", PROVIDER_NAME)
        if not revocations(ctx, mark):
            raise Skipped("the revoke command sent no revocation request (see ORC-REV-001)")
        ctx.require(
            "ORC-REV-008",
            envelope.get("ok") is True,
            f"the provider answered 200 to every revocation of "
            f"{'tokens it no longer knew' if forgotten else 'its tokens'}, yet revoke answered "
            f"ok {envelope.get('ok')!r}",
            call,
        )


@check("ORC-REV-009")
async def revocation_goes_only_to_a_checked_endpoint(ctx: OrchestratorContext) -> None:
    """The authorization server metadata names a revocation_endpoint the orchestrator must
    not use: once with an issuer that fails the exact match, once with a URL (userinfo) the
    SSRF policy refuses. Both point back at the suite, so a request there shows."""
    provider = ctx.provider
    parts = urlsplit(provider.base_url)
    as_path = urlsplit(provider.as_metadata_url).path
    for change, why in (
        (
            {
                "issuer": provider.issuer + "/",
                "revocation_endpoint": f"{provider.base_url}oauth/revoke-unchecked",
            },
            "an issuer that differs by a trailing slash",
        ),
        (
            {
                "revocation_endpoint": f"{parts.scheme}://provspec@{parts.netloc}{parts.path}oauth/revoke-ssrf"
            },
            "a revocation_endpoint with userinfo",
        ),
    ):
        path = urlsplit(str(change["revocation_endpoint"])).path
        with as_a_new_user(ctx):
            await connect(ctx)
            mark = ctx.recorder.mark
            with ctx.tampered(as_path, rewrite_json(change)):
                call, _ = ctx.cli("revoke", PROVIDER_NAME)
        misdirected = [r for r in ctx.received(mark, path) if r.method == "POST"]
        ctx.require(
            "ORC-REV-009",
            not misdirected,
            f"with {why} in the authorization server metadata the orchestrator revoked at {path}",
            call,
            *(ctx.exchange(r) for r in misdirected[:1]),
        )
