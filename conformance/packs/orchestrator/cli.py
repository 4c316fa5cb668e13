"""The orchestrator's discovery surface and its agent-facing CLI: metadata, JWKS, catalog,
provisioning outcomes, credential redaction, revocation."""

from __future__ import annotations

import json
import secrets
from typing import Any

from conformance.adapters.orchestrator import (
    CLI_DATA,
    CONTRACT_RULE,
    OTHER_PROVIDER_NAME,
    PROVIDER_NAME,
    OrchestratorContext,
)
from conformance.checks import Skipped, check
from conformance.packs.orchestrator._helpers import metadata
from conformance.packs.orchestrator._probes import contains, listed
from mocks.provider import SERVICES
from spec.schemas import default_store
from wire.urls import orchestrator_metadata_url

PRIVATE = ("d", "p", "q", "dp", "dq", "qi", "k")


@check("ORC-DSC-001", "ORC-DSC-002", "ORC-DSC-003")
async def issuer_metadata(ctx: OrchestratorContext) -> None:
    issuer = ctx.need_issuer()
    response, exchange = await ctx.get(orchestrator_metadata_url(issuer))
    document = response.json() if response.status_code == 200 else None
    media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    ok = isinstance(document, dict) and all(
        isinstance(document.get(k), str) for k in ("issuer", "jwks_uri", "redemption_endpoint")
    )
    ctx.require(
        "ORC-DSC-001",
        ok and media_type == "application/json",
        "the metadata must be 200 application/json naming issuer, jwks_uri and "
        f"redemption_endpoint (got {response.status_code} {media_type or 'no content type'})",
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
    announced = document.get("issuer")
    bad = [
        value
        for value in (issuer, announced)
        if not (
            isinstance(value, str)
            and value.startswith(("https://", "http://"))
            and "?" not in value
            and "#" not in value
        )
    ]
    ctx.require(
        "ORC-DSC-003",
        not bad,
        f"the issuer must be an http(s) URL without query or fragment: {bad}",
        exchange,
    )


@check("ORC-DSC-004", "ORC-DSC-005")
async def jwks_holds_public_keys_only(ctx: OrchestratorContext) -> None:
    document = await metadata(ctx)
    response, exchange = await ctx.get(str(document.get("jwks_uri")))
    try:
        jwks = response.json() if response.status_code == 200 else None
    except ValueError:
        jwks = None
    listed_keys = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(listed_keys, list):
        for requirement in ("ORC-DSC-004", "ORC-DSC-005"):
            ctx.cannot_judge(requirement, "the jwks_uri serves no key set (see ORC-DSC-010)")
        return
    keys = [key for key in listed_keys if isinstance(key, dict)]
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


def _paid(block: Any) -> tuple[Any, Any]:
    block = block if isinstance(block, dict) else {}
    return block.get("freeform"), block.get("description")


def _options(pricing: dict[str, Any], parents: str) -> list[str]:
    """A component's options as comparable strings (order does not matter)."""
    component = pricing.get("component")
    options = component.get("options") if isinstance(component, dict) else None
    return sorted(
        json.dumps(
            [
                option.get("type"),
                sorted(map(str, option.get(parents) or [])),
                _paid(option.get("paid")) if option.get("type") == "paid" else None,
            ]
        )
        for option in options or []
        if isinstance(option, dict)
    )


def price_and_schema_differences(served: dict[str, Any], entry: dict[str, Any]) -> list[str]:
    """How an aggregated entry misstates the provider's price text or configuration schema
    (ORC-DSC-017). The pricing type is ORC-DSC-008's; shape changes wire-facts §1.5 describes
    (parent_service_ids to parent_services) are not differences."""
    differences = []
    own: dict[str, Any] = served["pricing"] if isinstance(served.get("pricing"), dict) else {}
    shown: dict[str, Any] = entry["pricing"] if isinstance(entry.get("pricing"), dict) else {}
    if isinstance(own.get("paid"), dict) and _paid(own["paid"]) != _paid(shown.get("paid")):
        differences.append(f"paid {_paid(shown.get('paid'))} instead of {_paid(own['paid'])}")
    if isinstance(own.get("component"), dict) and _options(own, "parent_service_ids") != _options(
        shown, "parent_services"
    ):
        differences.append("component options")
    if (served.get("configuration_schema") or {}) != entry.get("configuration_schema"):
        differences.append("configuration_schema")
    return differences


@check("ORC-DSC-006", "ORC-DSC-007", "ORC-DSC-008", "ORC-DSC-017")
async def catalog_aggregates_the_providers(ctx: OrchestratorContext) -> None:
    call, document = ctx.cli("catalog")
    problems = default_store().validate("app-0.1d", "cli_catalog", document)
    ctx.require(
        "ORC-DSC-006",
        document.get("ok") is True and not problems,
        f"catalog --json must print a valid cli_catalog envelope: {'; '.join(map(str, problems[:3]))}",
        call,
    )
    offered = {service.id: service.as_json() for service in SERVICES}
    for provider in (PROVIDER_NAME, OTHER_PROVIDER_NAME):
        entries = listed(document, provider)
        by_id: dict[Any, list[dict[str, Any]]] = {}
        for entry in entries:
            by_id.setdefault(entry.get("service_id"), []).append(entry)
        missing = sorted(sid for sid in offered if sid not in by_id)
        doubled = sorted(str(sid) for sid, found in by_id.items() if len(found) > 1)
        ctx.require(
            "ORC-DSC-007",
            not missing and not doubled,
            f"the catalog must list each of {provider}'s services once as {provider}/<service_id>: "
            f"missing {missing}, listed more than once {doubled}",
            call,
        )
        changed = sorted(
            str(sid)
            for sid, found in by_id.items()
            if sid in offered
            and any(
                (entry.get("pricing") or {}).get("type") != offered[sid]["pricing"]["type"]
                for entry in found
            )
        )
        ctx.require(
            "ORC-DSC-008", not changed, f"{provider}: pricing types changed for {changed}", call
        )
        misstated = {
            f"{provider}/{sid}": differences
            for sid, found in by_id.items()
            if sid in offered
            for differences in [price_and_schema_differences(offered[sid], found[0])]
            if differences
        }
        ctx.require(
            "ORC-DSC-017",
            not misstated,
            f"the catalog misstates the provider's price or configuration schema: {misstated}",
            call,
        )


@check("ORC-CRD-001", "ORC-CRD-002")
async def env_redacts_secrets(ctx: OrchestratorContext) -> None:
    ctx.sign_in()
    add, added = await ctx.add("free")
    paid, _ = await ctx.add("pro", "--confirm-paid-service")
    if not added.get("ok"):
        ctx.require(
            "ORC-CRD-001", False, "could not provision a free service to read credentials from", add
        )
        return
    call, env = ctx.cli("env")
    handed = {
        value: kind for value, kind in ctx.handed_out().items() if "authorization code" not in kind
    }
    try:
        values = ctx.data_of(call, env).get("variables") or {}
    except Skipped as blocked:  # env's answer breaks the contract: ORC-PRO-015 fails it
        ctx.cannot_judge("ORC-CRD-001", str(blocked))
    else:
        secrets_shown = [
            name for name, value in values.items() if isinstance(value, str) and value in handed
        ]
        ctx.require(
            "ORC-CRD-001",
            bool(values) and not secrets_shown,
            f"env shows secret values for {secrets_shown}"
            if values
            else "env shows no variables after a free service was provisioned",
            call,
        )
    payment_tokens = {
        value: kind for value, kind in ctx.sent_secrets().items() if kind.startswith("payment")
    }
    status, _ = ctx.cli("status")
    catalog, _ = ctx.cli("catalog")
    billing, _ = ctx.cli("billing")
    # env without --reveal is ORC-CRD-001's own rule (judged above), not judged twice here.
    for shown in (add, paid, status, catalog, billing):
        stdout, stderr = ctx.output(shown)
        found = contains(stdout + stderr, handed | payment_tokens)
        ctx.require(
            "ORC-CRD-002",
            not found,
            f"`{' '.join(shown.argv[-3:])}` prints secret values: {found}",
            shown,
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


@check("ORC-PRO-015")
async def every_command_answers_its_contract(ctx: OrchestratorContext) -> None:
    """Every command of the CLI contract (docs/orchestrator-cli.md) but catalog and add, as a
    new user holding a free and a paid resource: each success's data must be valid against
    the command's schema (CLI_DATA). The catalog's shape is ORC-DSC-006's and add's answers
    are ORC-PRO-002's and its statuses' own requirements (CONTRACT_RULE)."""
    email = ctx.new_email()
    name = f"contract-{secrets.token_hex(3)}"
    steps: list[tuple[str, ...]] = [
        ("init", "--new-user", "--email", email, "--accept-tos"),
        ("catalog",),
        ("add", f"{PROVIDER_NAME}/free", "--name", name),
        ("add", f"{PROVIDER_NAME}/pro", "--name", f"{name}-paid", "--confirm-paid-service"),
        ("add", f"{PROVIDER_NAME}/pro", "--name", f"{name}-unconfirmed"),
        ("status",),
        ("env",),
        ("billing",),
        ("billing", "--provider", PROVIDER_NAME, "--limit", str(ctx.params.default_cap.limit)),
        ("remove", name, "--yes"),
        ("revoke", PROVIDER_NAME),
    ]
    judged = 0
    for step in steps:
        call, envelope = ctx.cli(*step)
        if not envelope or step[0] in CONTRACT_RULE:
            continue  # no envelope (ORC-PRO-004, -013), or a command with rules of its own
        judged += 1
        issues = ctx.target.contract.get(call.id) or []
        ctx.require(
            "ORC-PRO-015",
            not issues,
            f"`{' '.join(step[:2])}` answered outside the CLI contract ({CLI_DATA[step[0]]}): "
            f"{'; '.join(issues)}",
            call,
        )
    if not judged:
        raise Skipped("no command of the CLI contract answered with an envelope")
