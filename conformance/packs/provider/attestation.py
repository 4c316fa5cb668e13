"""Request authentication: 0.1d Stripe-Signature HMAC and API-Version; app-next APP-Attestation.

Every hostile request goes to GET provisioning/health, which is signed like every other call
but changes nothing, so a refusal and an acceptance are both safe to provoke.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from typing import Any

from conformance.adapters.provider import ProviderContext
from conformance.checks import Unexpected, check
from conformance.client import ATTESTATION_TYP, stripe_signature, stripe_v1
from conformance.packs.provider._helpers import attestation, error_code, no_traceback, unsigned
from conformance.packs.provider.accounts import account_request
from wire import jose

HEALTH = "provisioning/health"


async def refused(
    ctx: ProviderContext, requirement: str, why: str, *, status: int = 401, **options: Any
) -> None:
    response, exchange = await ctx.call("GET", HEALTH, **options)
    ctx.require(
        requirement,
        response.status_code == status and no_traceback(response),
        f"{why}: expected {status}, got {response.status_code}",
        exchange,
    )


async def refused_attestation(ctx: ProviderContext, requirement: str, why: str, token: str) -> None:
    await refused(ctx, requirement, why, headers_override={ctx.params.attestation_header: token})


# --- app-0.1d -----------------------------------------------------------------------------------
@check("PRV-ATT-001")
async def unsigned_request_is_refused(ctx: ProviderContext) -> None:
    response, exchange = await ctx.call(
        "GET", HEALTH, headers_override={ctx.params.signature_header: ""}
    )
    ctx.require(
        "PRV-ATT-001",
        response.status_code == 401 and error_code(ctx.json(response)) == "invalid_signature",
        "a request without Stripe-Signature must get 401 invalid_signature",
        exchange,
    )


@check("PRV-ATT-002")
async def wrong_hmac_is_refused(ctx: ProviderContext) -> None:
    forged = stripe_signature("whsec_provspec_wrong_secret", b"", int(time.time()))
    await refused(
        ctx,
        "PRV-ATT-002",
        "a signature made with another secret",
        headers_override={ctx.params.signature_header: forged},
    )


@check("PRV-ATT-003")
async def stale_signature_is_refused(ctx: ProviderContext) -> None:
    stale = stripe_signature(ctx.client.hmac_secret, b"", int(time.time()) - 600)
    await refused(
        ctx,
        "PRV-ATT-003",
        "a signature 600 s old",
        headers_override={ctx.params.signature_header: stale},
    )


@check("PRV-ATT-004")
async def altered_body_is_refused(ctx: ProviderContext) -> None:
    """A complete, valid account request is signed, then changed: one byte of its id, or the
    whole body where the signature was made over an empty one (a verifier that leaves the
    body out accepts that). Each altered body is still a valid request, so only the
    signature can refuse it."""
    ctx.fresh_user()
    body = json.dumps(account_request(ctx), separators=(",", ":")).encode()
    now = int(time.time())
    altered = body.replace(b'"id":"acctreq_', b'"id":"acctreQ_', 1)
    assert altered != body
    for why, sent, signed_for in (
        ("one byte of the body changed after signing", altered, body),
        ("a signature made over an empty body", body, b""),
    ):
        response, exchange = await ctx.call(
            "POST",
            "provisioning/account_requests",
            content=sent,
            headers_override={
                ctx.params.signature_header: stripe_signature(
                    ctx.client.hmac_secret, signed_for, now
                )
            },
        )
        ctx.require(
            "PRV-ATT-004",
            response.status_code == 401,
            f"{why} must get 401, got {response.status_code}",
            exchange,
        )


@check("PRV-ATT-005")
async def api_version_is_enforced(ctx: ProviderContext) -> None:
    for value in ("", "1999-01-01"):
        response, exchange = await ctx.call(
            "GET", HEALTH, headers_override={ctx.params.version_header: value}
        )
        ok = response.status_code == 400 and error_code(ctx.json(response)) == "invalid_api_version"
        ctx.require(
            "PRV-ATT-005",
            ok,
            f"API-Version {value or '(missing)'!r} must get 400 invalid_api_version",
            exchange,
        )


@check("PRV-ATT-027")
async def any_of_several_v1_signatures_may_match(ctx: ProviderContext) -> None:
    """While its secret rotates, an orchestrator signs with the old secret and the new: the
    header carries two v1 values and either may be the one the provider knows."""
    now = int(time.time())
    stranger = stripe_v1("whsec_provspec_retired_secret", now, b"")
    genuine = stripe_v1(ctx.client.hmac_secret, now, b"")
    for order, values in (("second", (stranger, genuine)), ("first", (genuine, stranger))):
        header = f"t={now}," + ",".join(f"v1={value}" for value in values)
        response, exchange = await ctx.call(
            "GET", HEALTH, headers_override={ctx.params.signature_header: header}
        )
        if response.status_code == 200 and not isinstance(ctx.json(response), dict):
            # A 200 that is not health's JSON says nothing about the signature.
            raise Unexpected(
                "PRV-DSC-001", "health answered 200 with no JSON document", exchange, blocked=True
            )
        ctx.require(
            "PRV-ATT-027",
            response.status_code == 200,
            f"a Stripe-Signature whose {order} of two v1 values is valid must be accepted, "
            f"got {response.status_code} {error_code(ctx.json(response)) or ''}",
            exchange,
        )


@check("PRV-ATT-006")
async def malformed_signature_header_is_refused(ctx: ProviderContext) -> None:
    for value in ("v1=abc", "t=abc,v1=00", "t=1", "garbage"):
        await refused(
            ctx,
            "PRV-ATT-006",
            f"Stripe-Signature {value!r}",
            headers_override={ctx.params.signature_header: value},
        )


# --- app-next -----------------------------------------------------------------------------------
@check("PRV-ATT-007")
async def missing_attestation_is_refused(ctx: ProviderContext) -> None:
    await refused(
        ctx,
        "PRV-ATT-007",
        "no APP-Attestation",
        headers_override={ctx.params.attestation_header: ""},
    )


@check("PRV-ATT-008")
async def alg_none_is_refused(ctx: ProviderContext) -> None:
    header, claims, _ = jose.unverified_parts(attestation(ctx))
    for alg in ("none", "None", "NONE", "nOnE"):
        token = unsigned({**header, "alg": alg}, claims)
        await refused_attestation(ctx, "PRV-ATT-008", f"alg {alg!r}", token)


@check("PRV-ATT-009", "PRV-ATT-010")
async def missing_or_tampered_signature_is_refused(ctx: ProviderContext) -> None:
    token = attestation(ctx)
    head, body, signature = token.split(".")
    await refused_attestation(ctx, "PRV-ATT-009", "an empty signature segment", f"{head}.{body}.")
    await refused_attestation(ctx, "PRV-ATT-009", "two segments", f"{head}.{body}")
    flipped = jose.b64url_encode(
        bytes([jose.b64url_decode(signature)[0] ^ 1]) + jose.b64url_decode(signature)[1:]
    )
    await refused_attestation(
        ctx, "PRV-ATT-010", "a signature with one bit flipped", f"{head}.{body}.{flipped}"
    )
    other = attestation(ctx).split(".")[2]
    await refused_attestation(
        ctx, "PRV-ATT-010", "the signature of another token", f"{head}.{body}.{other}"
    )


@check("PRV-ATT-011", "PRV-ATT-012")
async def foreign_keys_and_hmac_are_refused(ctx: ProviderContext) -> None:
    header, claims, _ = jose.unverified_parts(attestation(ctx))
    public = str(ctx.core.signing_key.public_jwk()["x"]).encode()
    hs_header = {**header, "alg": "HS256"}
    signing_input = jose.compact(hs_header, claims, b"").rsplit(".", 1)[0].encode()
    mac = hmac.new(public, signing_input, hashlib.sha256).digest()
    await refused_attestation(
        ctx,
        "PRV-ATT-011",
        "HS256 keyed with the orchestrator's public key",
        jose.compact(hs_header, claims, mac),
    )
    stranger = jose.generate_key("EdDSA", kid=ctx.core.signing_key.kid)
    await refused_attestation(
        ctx,
        "PRV-ATT-012",
        "a key that is not in the orchestrator's JWKS",
        attestation(ctx, key=stranger),
    )


@check("PRV-ATT-013")
async def zero_ecdsa_signature_is_refused(ctx: ProviderContext) -> None:
    header, claims, _ = jose.unverified_parts(attestation(ctx))
    await refused_attestation(
        ctx,
        "PRV-ATT-013",
        "ES256 with an all-zero signature",
        unsigned({**header, "alg": "ES256"}, claims, bytes(64)),
    )


@check("PRV-ATT-014")
async def keys_in_the_header_are_ignored(ctx: ProviderContext) -> None:
    """Tokens signed by a key the orchestrator never published, which each token embeds
    (jwk) or names at a URL the suite itself serves (jku, x5u), so a provider that follows
    the header reaches the key: refused, and no such URL is ever fetched."""
    attacker = jose.generate_key("EdDSA", kid="provspec-attacker")
    base = f"{ctx.core.issuer}/provspec-{secrets.token_hex(6)}"
    jku, x5u = f"{base}/jwks.json", f"{base}/cert.pem"
    with ctx.serving({jku: jose.jwks([attacker]), x5u: {"not": "a certificate"}}):
        for why, header in (
            ("the key embedded in its jwk header", {"jwk": attacker.public_jwk()}),
            ("a key its jku header names", {"jku": jku}),
            ("a key its x5u header names", {"x5u": x5u}),
        ):
            mark = ctx.recorder.mark
            token = attestation(ctx, key=attacker, header=header)
            response, exchange = await ctx.call(
                "GET", HEALTH, headers_override={ctx.params.attestation_header: token}
            )
            fetched = [e for e in ctx.received(mark) if e.url.split("?")[0] in (jku, x5u)]
            ctx.require(
                "PRV-ATT-014",
                response.status_code == 401 and not fetched,
                f"a token signed by {why}: expected 401 and the URL never fetched, got "
                f"{response.status_code}" + (" and the provider fetched it" if fetched else ""),
                exchange,
                *fetched[:1],
            )


@check("PRV-ATT-015", "PRV-ATT-016", "PRV-ATT-017")
async def time_claims_are_enforced(ctx: ProviderContext) -> None:
    now = int(time.time())
    await refused_attestation(
        ctx, "PRV-ATT-015", "exp 100 s in the past", attestation(ctx, iat=now - 300, exp=now - 100)
    )
    for claim in ("exp", "iat", "jti"):
        await refused_attestation(
            ctx, "PRV-ATT-016", f"no {claim}", attestation(ctx, drop=(claim,))
        )
    await refused_attestation(
        ctx, "PRV-ATT-017", "exp one hour after iat", attestation(ctx, iat=now, exp=now + 3600)
    )


@check("PRV-ATT-018", "PRV-ATT-019")
async def issuer_and_audience_compare_exactly(ctx: ProviderContext) -> None:
    issuer = ctx.core.issuer
    for bad in (issuer + "/", issuer[:-1], issuer.upper()):
        await refused_attestation(ctx, "PRV-ATT-018", f"iss {bad!r}", attestation(ctx, iss=bad))
    for aud in (
        "https://another-provider.invalid/api/",
        [ctx.base_url, "https://other.invalid/"],
        ctx.base_url.rstrip("/"),
    ):
        await refused_attestation(ctx, "PRV-ATT-019", f"aud {aud!r}", attestation(ctx, aud=aud))


@check("PRV-ATT-020", "PRV-ATT-021")
async def typ_and_crit_are_enforced(ctx: ProviderContext) -> None:
    _, claims, _ = jose.unverified_parts(attestation(ctx))
    key = ctx.core.signing_key
    for typ in ("JWT", "app-payment+jwt"):
        await refused_attestation(
            ctx, "PRV-ATT-020", f"typ {typ!r}", jose.sign(claims, key, typ=typ)
        )
    await refused_attestation(
        ctx,
        "PRV-ATT-021",
        "crit naming an unknown extension",
        jose.sign(claims, key, typ=ATTESTATION_TYP, crit=["x-provspec"], **{"x-provspec": 1}),
    )


@check("PRV-ATT-028")
async def typ_compares_as_a_media_type(ctx: ProviderContext) -> None:
    """RFC 7515 §4.1.9: media types compare case-insensitively and "application/" is implied,
    so these name the same type as app-attestation+jwt."""
    for typ in ("APP-Attestation+JWT", "application/app-attestation+jwt"):
        token = attestation(ctx, header={"typ": typ})
        response, exchange = await ctx.call(
            "GET", HEALTH, headers_override={ctx.params.attestation_header: token}
        )
        ctx.require(
            "PRV-ATT-028",
            response.status_code == 200,
            f"an attestation typed {typ!r} should be accepted, got {response.status_code}",
            exchange,
        )


@check("PRV-ATT-029")
async def unavailable_orchestrator_keys_fail_closed(ctx: ProviderContext) -> None:
    """An attestation signed with a key the provider has not seen, so that only a fresh look
    at the orchestrator's keys could verify it, while the suite serves a metadata document
    that is not one, then a JWKS that is not one: the request is refused, 401 or 503."""
    genuine, _ = await ctx.get(ctx.core.metadata_url)
    document = ctx.json(genuine)
    broken_jwks = f"{ctx.core.issuer}/provspec-{secrets.token_hex(6)}/jwks.json"
    cases: list[tuple[str, dict[str, Any]]] = [
        ("metadata that is not an object", {ctx.core.metadata_url: ["not", "metadata"]}),
    ]
    if isinstance(document, dict):
        cases.append(
            (
                "a JWKS that is not one",
                {
                    ctx.core.metadata_url: {**document, "jwks_uri": broken_jwks},
                    broken_jwks: {"keys": "none here"},
                },
            )
        )
    for why, served in cases:
        rotated = jose.generate_key("EdDSA")
        with ctx.serving(served):
            response, exchange = await ctx.call(
                "GET",
                HEALTH,
                headers_override={ctx.params.attestation_header: attestation(ctx, key=rotated)},
            )
        ctx.require(
            "PRV-ATT-029",
            response.status_code in (401, 503),
            f"with {why} at the orchestrator, an attestation the provider cannot verify must "
            f"be refused with 401 or 503, got {response.status_code}",
            exchange,
        )


@check("PRV-ATT-022")
async def replayed_attestation_is_refused(ctx: ProviderContext) -> None:
    token = attestation(ctx)
    first, first_exchange = await ctx.call(
        "GET", HEALTH, headers_override={ctx.params.attestation_header: token}
    )
    if first.status_code != 200:
        ctx.require(
            "PRV-ATT-022",
            False,
            "a fresh valid attestation was not accepted; cannot test replay",
            first_exchange,
        )
        return
    await refused_attestation(
        ctx, "PRV-ATT-022", "the same attestation (same jti) a second time", token
    )


@check("PRV-ATT-023")
async def body_binding_is_enforced(ctx: ProviderContext) -> None:
    body = b'{"id":"acctreq_provspec","object":"account_request","email":"bind@example.com"}'
    token = attestation(ctx, body=b'{"id":"acctreq_other"}')
    response, exchange = await ctx.call(
        "POST",
        "provisioning/account_requests",
        content=body,
        headers_override={ctx.params.attestation_header: token},
    )
    ctx.require(
        "PRV-ATT-023",
        response.status_code == 401,
        f"body_sha256 of another body must get 401, got {response.status_code}",
        exchange,
    )


@check("PRV-ATT-025")
async def one_element_audience_array_is_accepted(ctx: ProviderContext) -> None:
    response, exchange = await ctx.call(
        "GET",
        HEALTH,
        headers_override={ctx.params.attestation_header: attestation(ctx, aud=[ctx.base_url])},
    )
    ctx.require(
        "PRV-ATT-025",
        response.status_code == 200,
        f"aud as a one-element array of the base URL should be accepted, got {response.status_code}",
        exchange,
    )


@check("PRV-ATT-024")
async def duplicated_members_are_refused(ctx: ProviderContext) -> None:
    """Correctly signed tokens whose JSON repeats a member: a parser that keeps either value
    disagrees with one that keeps the other, so the only safe answer is to refuse."""
    ctx.fresh_user()
    genuine = attestation(ctx)
    header, claims, _ = jose.unverified_parts(genuine)
    key = ctx.core.signing_key

    def signed(head: bytes, body: bytes) -> str:
        signing_input = f"{jose.b64url_encode(head)}.{jose.b64url_encode(body)}".encode()
        return jose.compact(head, body, key.raw_sign(signing_input))

    def dumped(document: dict[str, Any]) -> bytes:
        return json.dumps(document, separators=(",", ":")).encode()

    other_sub = dumped(claims)[:-1] + b',"sub":"provspec-other-subject"}'
    twice_typ = dumped(header)[:-1] + b',"typ":"JWT"}'
    for why, token in (
        ("a claim (sub) given twice", signed(dumped(header), other_sub)),
        ("a header parameter (typ) given twice", signed(twice_typ, dumped(claims))),
    ):
        await refused_attestation(ctx, "PRV-ATT-024", f"an attestation with {why}", token)


@check("PRV-ATT-026")
async def a_rotated_orchestrator_key_is_accepted(ctx: ProviderContext) -> None:
    """The suite's orchestrator rotates in a new signing key: its JWKS now holds the new key
    next to the old one, and an attestation signed with the new key should be accepted, the
    provider refetching the JWKS it cached for the unknown kid (OIDC Core §10.1.1)."""
    # First an attestation with the current key, so the provider has the JWKS cached.
    warm, warm_exchange = await ctx.call("GET", HEALTH)
    if warm.status_code != 200:
        ctx.require(
            "PRV-ATT-026",
            False,
            f"a valid attestation was not accepted ({warm.status_code}); cannot test rotation",
            warm_exchange,
        )
        return
    rotated = jose.generate_key("EdDSA")
    jwks_uri = ctx.core.jwks_url
    with ctx.serving({jwks_uri: jose.jwks([ctx.core.signing_key, rotated])}):
        mark = ctx.recorder.mark
        response, exchange = await ctx.call(
            "GET",
            HEALTH,
            headers_override={ctx.params.attestation_header: attestation(ctx, key=rotated)},
        )
        refetched = [e for e in ctx.received(mark) if e.method == "GET" and e.url == jwks_uri]
    ctx.require(
        "PRV-ATT-026",
        response.status_code == 200,
        f"an attestation signed with the orchestrator's new key {rotated.kid!r}, published in "
        f"its JWKS, should be accepted: got {response.status_code} after "
        f"{len(refetched)} JWKS fetch(es) for it",
        exchange,
        *refetched[:1],
    )
