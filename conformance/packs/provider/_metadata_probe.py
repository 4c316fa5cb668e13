"""PRV-RED-007's probes: the suite serves orchestrator metadata that must not be used (an
issuer one slash off, a jwks_uri at an internal address) and watches what the provider
fetches while it verifies an attestation signed with a key it has not seen."""

from __future__ import annotations

import json
import secrets

from conformance.adapters.provider import ProviderContext
from conformance.packs.provider._helpers import attestation, payment_credentials
from conformance.packs.provider._payment import paid_setup
from conformance.recorder import Exchange
from wire import jose


async def judge_metadata_fetches(ctx: ProviderContext) -> None:
    """PRV-RED-007, judged as `payment.orchestrator_metadata_is_fetched_safely_and_compared_exactly`
    describes."""
    bearer, entry = await paid_setup(ctx)
    service = str(entry["id"])
    metadata_url = ctx.core.metadata_url
    genuine, genuine_exchange = await ctx.get(metadata_url)
    document = ctx.json(genuine)
    if genuine.status_code != 200 or not isinstance(document, dict):
        ctx.require(
            "PRV-RED-007",
            False,
            "the suite's own orchestrator metadata is unavailable",
            genuine_exchange,
        )
        return
    issuer = ctx.core.issuer
    near_miss = issuer[:-1] if issuer.endswith("/") else issuer + "/"
    unjudged: list[str] = []
    unfetched = False

    # 1. The issuer differs by one trailing slash; the JWKS it names exists nowhere else.
    rotated = jose.generate_key("EdDSA")
    jwks_uri = f"{issuer.rstrip('/')}/provspec-rotated-{secrets.token_hex(6)}/jwks.json"
    tampered = {**document, "issuer": near_miss, "jwks_uri": jwks_uri}
    keys = jose.jwks([ctx.core.signing_key, rotated])
    with ctx.serving({metadata_url: tampered, jwks_uri: keys}):
        trail, answer = await paid_probe(ctx, bearer, service, rotated)
    fetched = [e for e in trail if e.method == "GET" and bare(e.url) == metadata_url]
    used = [e for e in trail if bare(e.url) == jwks_uri]
    if used:
        ctx.require(
            "PRV-RED-007",
            False,
            f"the orchestrator metadata said issuer {near_miss!r}, not the trusted "
            f"{issuer!r}, yet the provider fetched the jwks_uri it named (RFC 8414 §3.3: "
            "the metadata must not be used)",
            *fetched[:1],
            *used[:1],
            answer,
        )
    elif not fetched:
        unjudged.append("metadata whose issuer differs by a trailing slash")
        unfetched = True

    # 2. The exact issuer, with jwks_uri at an internal address.
    with ctx.target.at_internal_address() as internal:
        if internal is None:
            unjudged.append(
                "a jwks_uri at an internal address: this host has no private address to "
                "serve one at"
            )
        else:
            rotated = jose.generate_key("EdDSA")
            jwks_uri = f"{internal}/provspec-{secrets.token_hex(6)}/jwks.json"
            pointed = {**document, "jwks_uri": jwks_uri}
            keys = jose.jwks([ctx.core.signing_key, rotated])
            with ctx.serving({metadata_url: pointed, jwks_uri: keys}):
                trail, answer = await paid_probe(ctx, bearer, service, rotated)
            fetched = [e for e in trail if e.method == "GET" and bare(e.url) == metadata_url]
            reached = [e for e in trail if e.url.startswith(internal + "/")]
            if reached:
                ctx.require(
                    "PRV-RED-007",
                    False,
                    f"the provider fetched jwks_uri {jwks_uri}, an internal address its "
                    "SSRF policy must refuse (DESIGN.md §5, RFC 9728 §7.7)",
                    *fetched[:1],
                    *reached[:1],
                    answer,
                )
            elif not fetched:
                unjudged.append("metadata naming a jwks_uri at an internal address")
                unfetched = True
    if unjudged:
        why = "not observed: " + "; ".join(unjudged)
        if unfetched:
            why += (
                ". The provider did not fetch the orchestrator's metadata while the suite "
                "served it: it keeps what it fetched earlier in the run and did not refetch "
                "for an attestation signed with a key it had not seen (see PRV-ATT-026)"
            )
        ctx.cannot_judge("PRV-RED-007", why)
    else:
        ctx.judged("PRV-RED-007")  # both metadata were fetched, and neither was used


async def paid_probe(
    ctx: ProviderContext, bearer: str, service: str, key: jose.SigningKey
) -> tuple[list[Exchange], Exchange]:
    """A paid provisioning attested with `key`: what the provider fetched or sent to the
    suite meanwhile, and the provisioning call."""
    project = "proj_" + secrets.token_hex(6)
    body = {
        "service_id": service,
        "project_id": project,
        "configuration": {},
        "payment_credentials": payment_credentials(ctx, service, project),
    }
    raw = json.dumps(body, separators=(",", ":")).encode()
    mark = ctx.recorder.mark
    _, exchange = await ctx.call(
        "POST",
        "provisioning/resources",
        content=raw,
        bearer=bearer,
        headers_override={ctx.params.attestation_header: attestation(ctx, raw, key=key)},
    )
    return ctx.received(mark), exchange


def bare(url: str) -> str:
    """A URL without its query: a provider may add a cache-buster to what it fetches."""
    return url.split("?", 1)[0]
