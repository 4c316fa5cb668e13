"""The orchestrator's discovery surface and its agent-facing CLI: metadata, JWKS, catalog,
provisioning outcomes, credential redaction, revocation."""

from __future__ import annotations

from conformance.adapters.orchestrator import PROVIDER_NAME, OrchestratorContext
from conformance.checks import check
from conformance.packs.orchestrator._helpers import metadata
from conformance.schemas import default_store
from mocks.provider.catalog import SERVICES

PRIVATE = ("d", "p", "q", "dp", "dq", "qi", "k")


@check("ORC-DSC-001", "ORC-DSC-002", "ORC-DSC-003")
async def issuer_metadata(ctx: OrchestratorContext) -> None:
    issuer = ctx.need_issuer()
    response, exchange = await ctx.get(f"{issuer}/.well-known/app-orchestrator")
    document = response.json() if response.status_code == 200 else None
    ok = isinstance(document, dict) and all(
        isinstance(document.get(k), str) for k in ("issuer", "jwks_uri", "redemption_endpoint")
    )
    ctx.require(
        "ORC-DSC-001",
        ok,
        "the metadata must be 200 JSON naming issuer, jwks_uri and redemption_endpoint",
        exchange,
    )
    if not isinstance(document, dict):
        return
    ctx.require(
        "ORC-DSC-002",
        document.get("issuer") == issuer,
        f"issuer {document.get('issuer')!r} is not identical to {issuer!r}",
        exchange,
    )
    ctx.require(
        "ORC-DSC-003",
        "?" not in issuer and "#" not in issuer and issuer.startswith(("https://", "http://")),
        "the issuer must be an http(s) URL without query or fragment",
        exchange,
    )


@check("ORC-DSC-004", "ORC-DSC-005")
async def jwks_holds_public_keys_only(ctx: OrchestratorContext) -> None:
    document = await metadata(ctx)
    response, exchange = await ctx.get(str(document.get("jwks_uri")))
    keys = response.json().get("keys") if response.status_code == 200 else None
    keys = [key for key in keys if isinstance(key, dict)] if isinstance(keys, list) else []
    leaked = [key.get("kid") for key in keys if any(member in key for member in PRIVATE)]
    ctx.require(
        "ORC-DSC-004",
        bool(keys) and not leaked,
        f"private key members published for {leaked}",
        exchange,
    )
    kids = [key.get("kid") for key in keys]
    kinds = all(
        (key.get("kty"), key.get("crv")) in (("OKP", "Ed25519"), ("EC", "P-256")) for key in keys
    )
    ctx.require(
        "ORC-DSC-005",
        len(set(kids)) == len(kids) and kinds,
        "kids must be unique and keys Ed25519 or P-256",
        exchange,
    )


@check("ORC-DSC-006", "ORC-DSC-007", "ORC-DSC-008")
async def catalog_aggregates_the_provider(ctx: OrchestratorContext) -> None:
    call, document = ctx.cli("catalog")
    problems = default_store().validate("app-0.1d", "cli_catalog", document)
    ctx.require(
        "ORC-DSC-006",
        document.get("ok") is True and not problems,
        f"catalog --json must print a valid cli_catalog envelope: {'; '.join(map(str, problems[:3]))}",
        call,
    )
    listed = {
        entry.get("service_id"): entry
        for entry in (document.get("data") or {}).get("services") or []
        if isinstance(entry, dict) and str(entry.get("provider_name", "")).lower() == PROVIDER_NAME
    }
    offered = {service.id: service for service in SERVICES}
    missing = sorted(set(offered) - set(listed))
    ctx.require(
        "ORC-DSC-007", not missing, f"the catalog lacks the provider's services {missing}", call
    )
    changed = sorted(
        str(sid)
        for sid, entry in listed.items()
        if sid in offered
        and (entry.get("pricing") or {}).get("type") != offered[sid].pricing["type"]
    )
    ctx.require("ORC-DSC-008", not changed, f"pricing types changed for {changed}", call)


@check("ORC-CRD-001", "ORC-CRD-002")
async def env_redacts_secrets(ctx: OrchestratorContext) -> None:
    add, added = await ctx.add("free")
    if not added.get("ok"):
        ctx.require(
            "ORC-CRD-001", False, "could not provision a free service to read credentials from", add
        )
        return
    call, env = ctx.cli("env")
    values = (env.get("data") or {}).get("variables") or {}
    secrets_shown = [
        name
        for name, value in values.items()
        if isinstance(value, str) and value.startswith("pmk_")
    ]
    ctx.require(
        "ORC-CRD-001",
        bool(values) and not secrets_shown,
        f"env shows secret values for {secrets_shown}",
        call,
    )
    status, _ = ctx.cli("status")
    ctx.require(
        "ORC-CRD-002",
        "pmk_" not in status.stdout and "pma_" not in status.stdout and "pma_" not in add.stdout,
        "a credential or token value appears in CLI output",
        status,
    )


@check("ORC-REV-001")
async def revoke_calls_the_provider(ctx: OrchestratorContext) -> None:
    mark = ctx.recorder.mark
    add, added = await ctx.add("free")
    if not added.get("ok"):
        ctx.require("ORC-REV-001", False, "could not provision a free service to revoke", add)
        return
    mark = ctx.recorder.mark
    call, _document = ctx.cli("revoke", PROVIDER_NAME)
    revocations = ctx.received(mark, "/oauth/revoke")
    ctx.require(
        "ORC-REV-001",
        bool(revocations),
        "revoke did not call the provider's revocation endpoint",
        call,
    )
