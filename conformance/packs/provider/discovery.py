"""Discovery: health, the provider catalog, RFC 9728 Protected Resource Metadata."""

from __future__ import annotations

import json

from conformance.adapters.provider import ProviderContext
from conformance.checks import check
from conformance.packs.provider._helpers import issues
from wire import jose, strictjson
from wire.urls import prm_url

PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "k")


@check("PRV-DSC-001")
async def health_lists_the_profile_version(ctx: ProviderContext) -> None:
    """GET provisioning/health answers 200 with the profile's version and status ok."""
    response, exchange = await ctx.call("GET", "provisioning/health")
    document = ctx.json(response)
    version = ctx.params.api_version
    ok = (
        response.status_code == 200
        and isinstance(document, dict)
        and isinstance(document.get("supported_versions"), list)
        and version in document["supported_versions"]
        and document.get("status") == "ok"
    )
    ctx.require(
        "PRV-DSC-001",
        ok,
        f"health must answer 200 with {version!r} in supported_versions and status ok",
        exchange,
    )


@check("PRV-DSC-002", "PRV-DSC-003", "PRV-DSC-004", "PRV-DSC-006", "PRV-DSC-007")
async def catalog_shape(ctx: ProviderContext) -> None:
    """GET provisioning/services answers a valid catalog with known pricing types and unique ids."""
    response, exchange = await ctx.call("GET", "provisioning/services")
    document = ctx.json(response)
    if document is not None:
        ctx.judged("PRV-DSC-007")  # strict JSON: one reading for every parser
    if document is None and response.status_code == 200:
        # Not strict JSON. If a lenient parser reads it, the defect is exactly DSC-007 (two
        # parsers may read different values); the shape checks below judge what it says.
        try:
            document = json.loads(response.content)
        except ValueError:
            document = None
        else:
            try:
                strictjson.loads(response.content)
            except strictjson.StrictJSONError as error:
                ctx.require(
                    "PRV-DSC-007",
                    False,
                    f"the catalog is not strict JSON: {error}",
                    exchange,
                )
    if document is None:
        # Nothing any parser reads: DSC-002 fails it; DSC-007 has no members to judge.
        ctx.cannot_judge("PRV-DSC-007", "the catalog is not JSON at all")
    problems = (
        issues(ctx, "services_response", document) if response.status_code == 200 else "not 200"
    )
    ctx.require(
        "PRV-DSC-002",
        response.status_code == 200 and not problems,
        f"the catalog must be 200 and valid against services_response: {problems}",
        exchange,
    )
    entries = document.get("data") if isinstance(document, dict) else None
    entries = (
        [entry for entry in entries if isinstance(entry, dict)] if isinstance(entries, list) else []
    )
    bad_pricing = []
    for entry in entries:
        pricing = entry.get("pricing") if isinstance(entry.get("pricing"), dict) else {}
        kind = pricing.get("type")
        if kind not in ("free", "paid", "component"):
            bad_pricing.append(f"{entry.get('id')}: pricing.type {kind!r}")
        elif kind == "component":
            options = (
                (pricing.get("component") or {}).get("options")
                if isinstance(pricing.get("component"), dict)
                else None
            )
            if not options or any(
                not (option.get("parent_service_ids") if isinstance(option, dict) else None)
                for option in options
            ):
                bad_pricing.append(
                    f"{entry.get('id')}: component option without parent_service_ids"
                )
    ctx.require(
        "PRV-DSC-003",
        bool(entries) and not bad_pricing,
        f"every service needs a free, paid or component price: {bad_pricing or 'no services'}",
        exchange,
    )
    content_type = response.headers.get("content-type", "")
    ctx.require(
        "PRV-DSC-006",
        content_type.split(";")[0].strip() == "application/json",
        f"Content-Type is {content_type!r}, not application/json",
        exchange,
    )
    if not entries:
        ctx.cannot_judge("PRV-DSC-004", "the catalog listed no services to compare")
        return
    ids = [entry.get("id") for entry in entries]
    duplicates = sorted({str(value) for value in ids if ids.count(value) > 1})
    ctx.require("PRV-DSC-004", not duplicates, f"duplicate service ids: {duplicates}", exchange)


@check("PRV-DSC-008", "PRV-DSC-009", "PRV-DSC-010", "PRV-DSC-011", "PRV-DSC-012")
async def protected_resource_metadata(ctx: ProviderContext) -> None:
    """The RFC 9728 metadata is at the §3.1 path, names this resource exactly, an AS and a JWKS."""
    response, exchange = await ctx.get(prm_url(ctx.base_url))
    document = ctx.json(response)
    found = response.status_code == 200 and isinstance(document, dict)
    content_type = response.headers.get("content-type", "").split(";")[0].strip()
    ctx.require(
        "PRV-DSC-008",
        found and content_type == "application/json",
        f"GET {prm_url(ctx.base_url)} must answer 200 application/json (RFC 9728 §3.1, §3.2)",
        exchange,
    )
    if not found:
        return
    resource = document.get("resource")
    ctx.require(
        "PRV-DSC-009",
        resource == ctx.base_url,
        f"resource {resource!r} is not identical to the base URL {ctx.base_url!r} (RFC 9728 §3.3)",
        exchange,
    )
    empty = sorted(
        name for name, value in document.items() if value is None or value in ([], {}, "")
    )
    ctx.require(
        "PRV-DSC-012",
        not empty,
        f"members sent empty or null instead of omitted (RFC 9728 §2): {empty}",
        exchange,
    )
    servers = document.get("authorization_servers")
    ctx.require(
        "PRV-DSC-010",
        isinstance(servers, list) and bool(servers) and all(isinstance(s, str) for s in servers),
        "authorization_servers must list at least one issuer",
        exchange,
    )
    jwks_uri = document.get("jwks_uri")
    if not isinstance(jwks_uri, str):
        ctx.require(
            "PRV-DSC-011",
            False,
            "the metadata names no jwks_uri for redemption signing keys",
            exchange,
        )
        return
    keys_response, keys_exchange = await ctx.get(jwks_uri)
    keys = ctx.json(keys_response)
    private = (
        [
            key.get("kid")
            for key in (keys.get("keys") or [])
            if isinstance(key, dict) and any(member in key for member in PRIVATE_MEMBERS)
        ]
        if isinstance(keys, dict)
        else []
    )
    usable = bool(jose.parse_jwks(keys)) if isinstance(keys, dict) and not private else False
    ctx.require(
        "PRV-DSC-011",
        keys_response.status_code == 200 and usable and not private,
        f"the JWKS must hold usable public keys only (private members in {private})",
        keys_exchange,
    )


SERVICE_REF = "service_ref"
"""Not a service id: PostHog's deployable lists it in allowed_updates because Stripe's CLI
checks plan changes against allowed_updates before calling (services_catalog.py), and
Stripe's own catalog carries it through unchanged."""


@check("PRV-DSC-005")
async def catalog_references_stay_inside_the_catalog(ctx: ProviderContext) -> None:
    response, exchange = await ctx.call("GET", "provisioning/services")
    document = ctx.json(response)
    entries = document.get("data") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not entries:
        ctx.cannot_judge("PRV-DSC-005", "no catalog entries to follow (see PRV-DSC-002)")
        return
    known = {entry.get("id") for entry in entries if isinstance(entry, dict)}
    dangling: list[str] = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        named = [
            ref
            for ref in entry.get("allowed_updates") or []
            if not (ref == SERVICE_REF and entry.get("kind") == "deployable")
        ]
        pricing = entry.get("pricing")
        component = pricing.get("component") if isinstance(pricing, dict) else None
        options = component.get("options") if isinstance(component, dict) else None
        for option in options if isinstance(options, list) else []:
            if isinstance(option, dict):
                named += list(option.get("parent_service_ids") or [])
        dangling += [f"{entry.get('id')} -> {ref}" for ref in named if ref not in known]
    ctx.require(
        "PRV-DSC-005",
        not dangling,
        f"ids named in allowed_updates or parent_service_ids that the catalog lacks: {dangling}",
        exchange,
    )
