"""What the orchestrator sends a provider: signatures, API-Version, account requests and
payment tokens, judged from the raw requests the suite's mock provider received."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs

from conformance.adapters.orchestrator import OrchestratorContext, RawRequest
from conformance.checks import Skipped, check
from conformance.packs.orchestrator._helpers import PROBE_LIMIT, fresh_user, keys, metadata
from conformance.packs.orchestrator._money import redeem
from conformance.packs.orchestrator._tokens import max_amount, minted_tokens, token_defects
from spec.schemas import default_store
from wire import jose, stripe_signature
from wire.pkce import s256


def calls_of(ctx: OrchestratorContext, since: int) -> list[RawRequest]:
    return [
        raw
        for raw in ctx.received(since)
        if "/provisioning/" in raw.path or raw.path.endswith("/oauth/token")
    ]


async def catalog_calls(ctx: OrchestratorContext) -> list[RawRequest]:
    mark = ctx.recorder.mark
    ctx.cli("catalog")
    received = calls_of(ctx, mark)
    if not received:
        raise Skipped("the orchestrator made no call to the suite's provider during catalog")
    return received


@check("ORC-ATT-003")
async def every_call_carries_the_api_version(ctx: OrchestratorContext) -> None:
    """Provisioning calls only: the OAuth endpoints may go without the header
    (docs/decisions/app-next-provider.md#api-version)."""
    for raw in await catalog_calls(ctx):
        if "/provisioning/" not in raw.path:
            continue
        version = raw.headers.get(ctx.params.version_header.lower())
        ctx.require(
            "ORC-ATT-003",
            version == ctx.params.api_version,
            f"{raw.method} {raw.path} carries API-Version {version!r}",
            ctx.exchange(raw),
        )


@check("ORC-ATT-001", "ORC-ATT-002")
async def every_call_is_hmac_signed_and_fresh(ctx: OrchestratorContext) -> None:
    secret = ctx.target.config.hmac_secret
    for raw in await catalog_calls(ctx):
        header = raw.headers.get(ctx.params.signature_header.lower())
        try:
            stripe_signature.verify(header, raw.body, secret, now=int(time.time()), tolerance=10**9)
            valid = True
        except stripe_signature.SignatureError:
            valid = False
        ctx.require(
            "ORC-ATT-001",
            valid,
            f"{raw.path}: {ctx.params.signature_header} does not verify under the shared secret",
            ctx.exchange(raw),
        )
        stamp = next((part[2:] for part in (header or "").split(",") if part.startswith("t=")), "")
        tolerance = ctx.params.hmac_tolerance
        fresh = stamp.isdigit() and abs(int(time.time()) - int(stamp)) <= tolerance
        ctx.require(
            "ORC-ATT-002",
            fresh,
            f"{raw.path}: the signature timestamp is not within {tolerance} s",
            ctx.exchange(raw),
        )


@check(
    "ORC-ATT-004",
    "ORC-ATT-005",
    "ORC-ATT-006",
    "ORC-ATT-007",
    "ORC-ATT-008",
    "ORC-ATT-009",
    "ORC-ATT-010",
    "ORC-ATT-011",
)
async def every_call_carries_a_sound_attestation(ctx: OrchestratorContext) -> None:
    trusted = await keys(ctx)
    issuer = (await metadata(ctx)).get("issuer")
    jtis: list[str] = []
    judged_signature = False
    for raw in await catalog_calls(ctx):
        token = raw.headers.get(ctx.params.attestation_header.lower(), "")
        evidence = ctx.exchange(raw)
        try:
            header, claims, _ = jose.unverified_parts(token)
        except jose.JOSEError as error:
            ctx.require(
                "ORC-ATT-004",
                False,
                f"{raw.path}: no parsable {ctx.params.attestation_header} ({error})",
                evidence,
            )
            continue
        alg_ok = header.get("alg") in ctx.params.algorithms
        ctx.require("ORC-ATT-004", alg_ok, f"{raw.path}: alg {header.get('alg')!r}", evidence)
        ctx.require(
            "ORC-ATT-005",
            header.get("typ") == "app-attestation+jwt" and header.get("kid") in trusted,
            f"{raw.path}: typ {header.get('typ')!r}, kid {header.get('kid')!r}",
            evidence,
        )
        if alg_ok and header.get("kid") in trusted:
            judged_signature = True
            try:
                # The signature alone: a wrong typ is ORC-ATT-005's finding, not this one's.
                jose.verify_signature(
                    token,
                    keys=trusted,
                    algorithms=ctx.params.algorithms,
                    typ=str(header.get("typ") or "app-attestation+jwt"),
                )
                verified = True
            except jose.JOSEError:
                verified = False
            ctx.require(
                "ORC-ATT-006",
                verified,
                f"{raw.path}: the attestation does not verify against the JWKS",
                evidence,
            )
        base = ctx.provider.base_url
        ctx.require(
            "ORC-ATT-007",
            claims.get("aud") in (base, [base]),
            f"{raw.path}: aud {claims.get('aud')!r} is not {base!r}",
            evidence,
        )
        ctx.require(
            "ORC-ATT-008",
            claims.get("iss") == issuer,
            f"{raw.path}: iss {claims.get('iss')!r} is not {issuer!r}",
            evidence,
        )
        iat, exp, jti = claims.get("iat"), claims.get("exp"), claims.get("jti")
        longest = ctx.params.attestation_lifetime
        lifetime_ok = isinstance(iat, int) and isinstance(exp, int) and 0 < exp - iat <= longest
        ctx.require(
            "ORC-ATT-009",
            lifetime_ok and isinstance(jti, str) and jti not in jtis,
            f"{raw.path}: iat {iat}, exp {exp}, jti {jti!r} (lifetime at most {longest} s, "
            "jti never repeated)",
            evidence,
        )
        jtis.append(str(jti))
        ctx.require(
            "ORC-ATT-010",
            "@" not in str(claims.get("sub", "@")),
            f"{raw.path}: sub {claims.get('sub')!r} looks like an email address",
            evidence,
        )
        digest = jose.sha256_b64url(raw.body)
        ctx.require(
            "ORC-ATT-011",
            claims.get("body_sha256") == digest,
            f"{raw.path}: body_sha256 does not match the body",
            evidence,
        )
    if not judged_signature:
        ctx.cannot_judge("ORC-ATT-006", "no attestation used an allowed alg and a published kid")


@check("ORC-ACC-001", "ORC-ACC-002")
async def account_requests_are_valid_and_use_pkce(ctx: OrchestratorContext) -> None:
    ctx.cli(
        "init",
        "--new-user",
        "--email",
        ctx.new_email(),
        "--accept-tos",
    )
    mark = ctx.recorder.mark
    ctx.cli("add", "provspecmock/free", "--name", "pkce-probe")
    requests = ctx.received(mark, "/provisioning/account_requests")
    tokens = ctx.received(mark, "/oauth/token")
    if not requests:
        raise Skipped("the orchestrator sent no account request (it already had an account)")
    body: Any = ctx.body(requests[0])
    # PKCE's members are ORC-ACC-002's rule (app-next's schema requires them too).
    problems = [
        problem
        for problem in default_store().validate(ctx.profile, "account_request", body)
        if "code_challenge" not in f"{problem.path} {problem.message}"
    ]
    ctx.require(
        "ORC-ACC-001",
        not problems and isinstance(body, dict) and "@" in str(body.get("email")),
        f"the account request is not valid: {'; '.join(map(str, problems[:3]))}",
        ctx.exchange(requests[0]),
    )
    challenge = body.get("code_challenge") if isinstance(body, dict) else None
    method = body.get("code_challenge_method") if isinstance(body, dict) else None
    ok = isinstance(challenge, str) and method == "S256"
    if ok and tokens:
        verifier = parse_qs(tokens[0].body.decode()).get("code_verifier", [""])[0]
        ok = s256(verifier) == challenge
    ctx.require(
        "ORC-ACC-002",
        ok,
        "the account request must carry an S256 code_challenge matched by the code_verifier",
        ctx.exchange(requests[0]),
    )


async def paid_token(ctx: OrchestratorContext, service: str = "pro") -> tuple[str, RawRequest]:
    mark = ctx.recorder.mark
    _call, document = await ctx.add(service, "--confirm-paid-service")
    creates = [raw for raw in ctx.received(mark, "/provisioning/resources") if raw.method == "POST"]
    body = ctx.body(creates[-1]) if creates else None
    credentials = body.get("payment_credentials") if isinstance(body, dict) else None
    token = credentials.get("app_payment_token") if isinstance(credentials, dict) else None
    if not isinstance(token, str):
        raise Skipped(
            f"no payment token reached the provider for a paid add ({document.get('error') or 'no create'})"
        )
    return token, creates[-1]


@check("ORC-PAY-002", "ORC-PAY-003", "ORC-PAY-004", "ORC-PAY-005", "ORC-PAY-006")
async def payment_tokens_are_sound(ctx: OrchestratorContext) -> None:
    """A paid add by a new user, whose whole cap covers the price."""
    trusted = await keys(ctx)
    fresh_user(ctx)
    token, raw = await paid_token(ctx)
    evidence = ctx.exchange(raw)
    try:
        _, claims = jose.verify_signature(
            token, keys=trusted, algorithms=ctx.params.algorithms, typ="app-payment+jwt"
        )
        verified = True
    except jose.JOSEError:
        claims, verified = jose.unverified_parts(token)[1], False
    ctx.require(
        "ORC-PAY-002",
        verified,
        "the payment token does not verify as app-payment+jwt against the JWKS",
        evidence,
    )
    defects = token_defects(claims, ctx.provider.base_url, ctx.params.payment_token_lifetime)
    for requirement in ("ORC-PAY-003", "ORC-PAY-004", "ORC-PAY-005"):
        ctx.require(requirement, requirement not in defects, defects.get(requirement, ""), evidence)
    body = ctx.body(raw) or {}
    ctx.require(
        "ORC-PAY-006",
        claims.get("service_id") == body.get("service_id")
        and claims.get("project_id") == body.get("project_id"),
        "the token's service_id/project_id differ from the provisioning call",
        evidence,
    )


@check("ORC-PAY-001")
async def no_token_above_the_remaining_cap(ctx: OrchestratorContext) -> None:
    """A new user spends part of the cap, leaving more than the price of the service but less
    than the whole cap; the next token must allow no more than what is left. (Left below the
    price, an orchestrator mints nothing: ORC-CAP-010's matter.)"""
    fresh_user(ctx)
    first = (await minted_tokens(ctx, 1))[0]
    spend = PROBE_LIMIT * 3 // 10  # 3000 of 10000: 7000 left, gpu is 6000
    spent = await redeem(ctx, first, spend)
    left = spent.cap.get("remaining")
    if spent.status != 201 or not isinstance(left, int):
        raise Skipped(f"could not spend part of the cap ({spent.shown()}; see ORC-RED-011)")
    second, raw = await paid_token(ctx, "gpu")
    amount = max_amount(second)
    ctx.require(
        "ORC-PAY-001",
        isinstance(amount, int) and amount <= left,
        f"with {left} of {spent.cap.get('limit')} left this month, a token allows {amount}",
        spent.exchange,
        ctx.exchange(raw),
    )
