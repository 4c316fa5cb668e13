"""What the redemption endpoint must refuse, and refuse without charging: malformed or
hostile bodies, forged payment tokens, wrong headers, attestations for another audience.

Each check starts a new user, probes the endpoint with one sound payment token (so an
orchestrator that wrongly accepts a probe would charge it), then shows that the refused
probes charged nothing (`_money.nothing_charged`: a follow-up redemption must leave the
month's spend at what the accepted probes charged plus the follow-up).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from conformance.adapters.orchestrator import OrchestratorContext
from conformance.checks import check
from conformance.packs.orchestrator._helpers import fresh_user, metadata
from conformance.packs.orchestrator._money import FOLLOW_UP, Answer, nothing_charged, redeem
from conformance.packs.orchestrator._tokens import minted_token, token_currency
from wire import jose

Probe = tuple[str, Callable[[str], Awaitable[Answer]]]
"""A label and a request sent with the sound token."""


def _raw(token: str, amount: str = "100", currency: str | None = None, extra: str = "") -> bytes:
    """A redemption body written by hand, so that it can be what no serializer writes."""
    if currency is None:
        currency = json.dumps(token_currency(token))
    return (
        f'{{"payment_token": {json.dumps(token)}, "amount": {amount}, "currency": {currency}, '
        f'"description": "provspec", "resource_id": "res_provspec"{extra}}}'
    ).encode()


async def _refused_and_free(
    ctx: OrchestratorContext,
    requirement: str,
    probes: Sequence[Probe],
    accepted: Callable[[Answer], bool],
    expectation: str,
) -> None:
    fresh_user(ctx)
    payment = await minted_token(ctx)
    answers: list[Answer] = []
    for label, send in probes:
        answer = await send(payment)
        answers.append(answer)
        ctx.require(
            requirement,
            accepted(answer),
            f"{label}: {expectation}, got {answer.shown()}",
            answer.exchange,
        )
    await nothing_charged(ctx, [requirement], 0, answers, payment)


def _redeeming(
    ctx: OrchestratorContext, amount: int = FOLLOW_UP, **options: Any
) -> Callable[[str], Awaitable[Answer]]:
    """A probe: the sound token redeemed for `amount` with one thing changed (`options`)."""

    def send(token: str) -> Awaitable[Answer]:
        return redeem(ctx, token, amount, **options)

    return send


def _status(*wanted: int) -> Callable[[Answer], bool]:
    return lambda answer: answer.status in wanted


def _refusal(*wanted: tuple[int, str]) -> Callable[[Answer], bool]:
    """One of the (status, code) pairs redemption_error pairs up."""
    return lambda answer: (answer.status, answer.code) in wanted


@check("ORC-RED-013")
async def malformed_redemption_bodies_are_refused(ctx: OrchestratorContext) -> None:
    def body(amount: str, extra: str = "") -> Callable[[str], Awaitable[Answer]]:
        return lambda token: redeem(ctx, token, None, raw=_raw(token, amount, extra=extra))

    probes: list[Probe] = [
        ("an unknown member tip", body("100", ', "tip": 5')),
        ('amount "100" (a string)', body('"100"')),
        ("amount 1.5", body("1.5")),
        ("amount true", body("true")),
        ("amount null", body("null")),
        ("amount NaN", body("NaN")),
        ("amount given twice (1, then 100)", body("1", ', "amount": 100')),
    ]
    await _refused_and_free(ctx, "ORC-RED-013", probes, _status(400), "must be refused with 400")


@check("ORC-RED-024")
async def redemption_bodies_missing_a_member_are_refused(ctx: OrchestratorContext) -> None:
    def without(member: str) -> Callable[[str], Awaitable[Answer]]:
        def send(token: str) -> Awaitable[Answer]:
            document = json.loads(_raw(token))
            del document[member]
            return redeem(ctx, token, None, raw=json.dumps(document).encode())

        return send

    # Not resource_id: the schema leaves it optional (a provider may redeem first).
    probes: list[Probe] = [
        (f"a body without {member}", without(member))
        for member in ("payment_token", "amount", "currency")
    ]
    await _refused_and_free(ctx, "ORC-RED-024", probes, _status(400), "must be refused with 400")


@check("ORC-RED-020")
async def zero_and_negative_amounts_are_refused(ctx: OrchestratorContext) -> None:
    probes = [(f"amount {amount}", _redeeming(ctx, amount=amount)) for amount in (0, -1, -100)]
    await _refused_and_free(ctx, "ORC-RED-020", probes, _status(400), "must be refused with 400")


@check("ORC-RED-021")
async def currencies_that_are_not_three_lowercase_letters_are_refused(
    ctx: OrchestratorContext,
) -> None:
    def malformed(variant: Callable[[str], str]) -> Callable[[str], Awaitable[Answer]]:
        def send(token: str) -> Awaitable[Answer]:
            return redeem(ctx, token, FOLLOW_UP, currency=variant(token_currency(token)))

        return send

    probes: list[Probe] = [
        ("the token's currency in upper case", malformed(str.upper)),
        ("the token's currency capitalised", malformed(str.capitalize)),
        ("the token's currency with a trailing space", malformed(lambda c: c + " ")),
        ("an empty currency", malformed(lambda c: "")),
    ]
    await _refused_and_free(ctx, "ORC-RED-021", probes, _status(400), "must be refused with 400")


@check("ORC-RED-019")
async def oversized_and_deeply_nested_bodies_are_refused(ctx: OrchestratorContext) -> None:
    big = '"' + "x" * (256 * 1024) + '"'
    deep = "[" * 10_000 + "]" * 10_000
    probes: list[Probe] = [
        (
            "a 256 KiB body",
            lambda token: redeem(ctx, token, None, raw=_raw(token, extra=f', "memo": {big}')),
        ),
        (
            "a body nested 10000 levels deep",
            lambda token: redeem(ctx, token, None, raw=_raw(token, extra=f', "memo": {deep}')),
        ),
    ]
    await _refused_and_free(
        ctx,
        "ORC-RED-019",
        probes,
        _refusal((413, "body_too_large"), (400, "body_not_decodable"), (400, "invalid_request")),
        "must be refused with 413 body_too_large or 400 body_not_decodable or invalid_request, "
        "never a 5xx",
    )


@check("ORC-RED-016")
async def idempotency_keys_over_255_characters_are_refused(ctx: OrchestratorContext) -> None:
    probes = [
        (f"an Idempotency-Key of {size} characters", _redeeming(ctx, key="k" * size))
        for size in (256, 4096)
    ]
    await _refused_and_free(ctx, "ORC-RED-016", probes, _status(400), "must be refused with 400")


@check("ORC-RED-018")
async def redemptions_that_are_not_json_are_refused_with_415(ctx: OrchestratorContext) -> None:
    probes = [
        (f"Content-Type {media}", _redeeming(ctx, content_type=media))
        for media in ("text/plain", "application/x-www-form-urlencoded")
    ]
    await _refused_and_free(
        ctx,
        "ORC-RED-018",
        probes,
        _refusal((415, "unsupported_media_type")),
        "must be refused with 415 unsupported_media_type",
    )


@check("ORC-RED-022")
async def attestations_for_another_audience_are_refused(ctx: OrchestratorContext) -> None:
    issuer = ctx.need_issuer()
    probes = [
        (f"an attestation with aud {audience!r}", _redeeming(ctx, audience=audience))
        for audience in (issuer + "/", "https://orchestrator.example", ctx.provider.base_url)
    ]
    await _refused_and_free(ctx, "ORC-RED-022", probes, _status(401), "must be refused with 401")


@check("ORC-RED-015")
async def payment_tokens_that_do_not_verify_are_refused(ctx: OrchestratorContext) -> None:
    public = await _public_key_bytes(ctx)

    def variant(label: str, make: Callable[[str], str]) -> Probe:
        return label, lambda token: redeem(ctx, make(token), FOLLOW_UP)

    probes = [
        variant("a token signed by another key under the orchestrator's kid", _forged),
        variant("a token whose claims were altered after signing", _altered),
        variant("a token with alg none and no signature", _unsigned),
        variant(
            "a token signed HS256 with the orchestrator's public key as the secret",
            lambda token: _hs256(token, public),
        ),
    ]
    await _refused_and_free(ctx, "ORC-RED-015", probes, _status(402), "must be refused with 402")


# --- hostile payment tokens, built by hand from a genuine one ---------------------------------


def _parts(token: str, label: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The genuine token's header and claims, with a jti of its own, so that each hostile
    token is a new token to the orchestrator (single use cannot be what refuses it)."""
    header, claims, _ = jose.unverified_parts(token)
    return header, {**claims, "jti": f"{claims.get('jti', 'pt')}-{label}"}


def _forged(token: str) -> str:
    header, claims = _parts(token, "forged")
    alg = header.get("alg") if header.get("alg") in ("EdDSA", "ES256") else "EdDSA"
    key = jose.generate_key(str(alg), kid=str(header.get("kid", "")))
    extra = {k: v for k, v in header.items() if k not in ("alg", "typ", "kid")}
    return jose.sign(claims, key, typ=str(header.get("typ", "app-payment+jwt")), **extra)


def _altered(token: str) -> str:
    head, _, signature = token.split(".")
    _, claims = _parts(token, "altered")
    claims["max_amount"] = 99_999_999
    body = jose.b64url_encode(json.dumps(claims, separators=(",", ":")).encode())
    return f"{head}.{body}.{signature}"


def _unsigned(token: str) -> str:
    header, claims = _parts(token, "none")
    return jose.compact({**header, "alg": "none"}, claims, b"")


def _hs256(token: str, secret: bytes) -> str:
    header, claims = _parts(token, "hs256")
    head = jose.b64url_encode(json.dumps({**header, "alg": "HS256"}).encode())
    body = jose.b64url_encode(json.dumps(claims).encode())
    mac = hmac.new(secret, f"{head}.{body}".encode("ascii"), hashlib.sha256).digest()
    return f"{head}.{body}.{jose.b64url_encode(mac)}"


async def _public_key_bytes(ctx: OrchestratorContext) -> bytes:
    """The orchestrator's published key as an HMAC secret would take it (the alg-confusion
    attack, RFC 8725 §2.1): the first JWK's x (or n), else the JWKS document itself."""
    jwks_uri = (await metadata(ctx)).get("jwks_uri")
    if not isinstance(jwks_uri, str):
        return b""
    response, _ = await ctx.get(jwks_uri)
    try:
        document = response.json()
        first = document["keys"][0]
        return jose.b64url_decode(str(first.get("x") or first["n"]))
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return response.content
