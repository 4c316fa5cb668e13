"""Provisioning: resources, idempotent creation, bad input, deep links, removal."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from conformance.adapters.provider import ProviderContext
from conformance.checks import Skipped, check
from conformance.packs.provider._helpers import (
    error_code,
    free_resource,
    issues,
    no_traceback,
    payment_credentials,
    provision,
    service_of,
    services,
)
from conformance.packs.provider.capabilities import require_offered

BAD_BODIES = {
    "malformed JSON": b'{"service_id": ',
    "duplicate member names": b'{"service_id": "a", "service_id": "b"}',
    "NaN": b'{"service_id": NaN}',
    "a JSON array": b"[]",
}


@check("PRV-PRO-001")
async def resources_need_a_bearer_token(ctx: ProviderContext) -> None:
    ctx.fresh_user()
    response, exchange = await ctx.call(
        "POST", "provisioning/resources", body={"service_id": "free", "project_id": "p"}
    )
    ctx.require(
        "PRV-PRO-001",
        response.status_code == 401,
        f"no bearer token must get 401, got {response.status_code}",
        exchange,
    )


@check("PRV-PRO-002")
async def a_bearer_token_alone_is_not_enough(ctx: ProviderContext) -> None:
    ctx.fresh_user()
    connection = await ctx.connect()
    response, exchange = await ctx.call(
        "GET",
        "provisioning/resources/res_provspec",
        bearer=connection["access_token"],
        headers_override={ctx.params.signature_header: ""},
    )
    ctx.require(
        "PRV-PRO-002",
        response.status_code == 401,
        "a bearer token without Stripe-Signature must get 401",
        exchange,
    )


@check("PRV-PRO-003", "PRV-PRO-008")
async def a_free_service_is_provisioned(ctx: ProviderContext) -> None:
    ctx.fresh_user()
    connection = await ctx.connect()
    entry = await service_of(ctx, "free")
    response, exchange = await provision(ctx, str(entry["id"]), bearer=connection["access_token"])
    document = ctx.json(response)
    ok = (
        response.status_code == 200
        and isinstance(document, dict)
        and document.get("status") == "complete"
        and bool(document.get("id"))
    )
    ctx.require(
        "PRV-PRO-003",
        ok,
        "a free service must be provisioned: 200, status complete, an id",
        exchange,
    )
    problems = issues(ctx, "resource_response", document)
    ctx.require(
        "PRV-PRO-008", not problems, f"the resource answer is not valid: {problems}", exchange
    )


@check("PRV-PRO-004")
async def unknown_service_is_refused(ctx: ProviderContext) -> None:
    ctx.fresh_user()
    connection = await ctx.connect()
    response, exchange = await provision(
        ctx, "provspec-no-such-service", bearer=connection["access_token"]
    )
    ok = response.status_code == 400 and error_code(ctx.json(response)) == "unknown_service"
    ctx.require("PRV-PRO-004", ok, "an unknown service_id must get 400 unknown_service", exchange)


@check("PRV-PRO-005", "PRV-PRO-006")
async def project_id_makes_creation_idempotent(ctx: ProviderContext) -> None:
    ctx.fresh_user()
    connection = await ctx.connect()
    catalog_free = await service_of(ctx, "free")
    body = {
        "service_id": str(catalog_free["id"]),
        "project_id": "proj_" + secrets.token_hex(6),
        "configuration": {},
    }
    first, _ = await ctx.call(
        "POST", "provisioning/resources", body=body, bearer=connection["access_token"]
    )
    second, exchange = await ctx.call(
        "POST", "provisioning/resources", body=body, bearer=connection["access_token"]
    )
    first_id, second_id = (ctx.json(first) or {}).get("id"), (ctx.json(second) or {}).get("id")
    ctx.require(
        "PRV-PRO-005",
        second.status_code == 200 and first_id == second_id,
        f"the same project_id and service_id must return the same resource ({first_id} vs {second_id})",
        exchange,
    )
    others = [entry for entry in await _all(ctx) if entry.get("id") != body["service_id"]]
    if others:
        other = {**body, "service_id": str(others[0]["id"])}
        conflict, exchange = await ctx.call(
            "POST", "provisioning/resources", body=other, bearer=connection["access_token"]
        )
        ctx.require(
            "PRV-PRO-006",
            conflict.status_code == 409 and error_code(ctx.json(conflict)) == "project_id_conflict",
            "a project_id reused for another service must get 409 project_id_conflict",
            exchange,
        )


async def _all(ctx: ProviderContext) -> list[dict[str, object]]:
    from conformance.packs.provider._helpers import services

    return await services(ctx)


@check("PRV-PRO-007", "PRV-CRD-005")
async def resources_are_private_to_their_account(ctx: ProviderContext) -> None:
    _, resource = await free_resource(ctx)
    ctx.fresh_user()
    stranger = await ctx.connect()
    response, exchange = await ctx.call(
        "GET", f"provisioning/resources/{resource['id']}", bearer=stranger["access_token"]
    )
    ctx.require(
        "PRV-PRO-007",
        response.status_code == 404,
        "another account's resource must get 404",
        exchange,
    )
    ctx.require(
        "PRV-CRD-005",
        "access_configuration" not in response.text,
        "another account's token was shown the resource's credentials",
        exchange,
    )


@check("PRV-PRO-011", "PRV-PRO-013")
async def bad_bodies_get_400_without_a_traceback(ctx: ProviderContext) -> None:
    ctx.fresh_user()
    connection = await ctx.connect()
    for why, raw in BAD_BODIES.items():
        response, exchange = await ctx.call(
            "POST", "provisioning/resources", content=raw, bearer=connection["access_token"]
        )
        ctx.require(
            "PRV-PRO-011",
            response.status_code == 400,
            f"{why} must get 400, got {response.status_code}",
            exchange,
        )
        ctx.require(
            "PRV-PRO-013",
            no_traceback(response),
            f"the answer to {why} shows a stack trace",
            exchange,
        )


@check("PRV-PRO-012")
async def oversized_bodies_are_refused(ctx: ProviderContext) -> None:
    ctx.fresh_user()
    connection = await ctx.connect()
    raw = b'{"service_id": "free", "pad": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    response, exchange = await ctx.call(
        "POST", "provisioning/resources", content=raw, bearer=connection["access_token"]
    )
    ctx.require(
        "PRV-PRO-012",
        response.status_code in (400, 413),
        f"a 2 MiB body must get 413 or 400, got {response.status_code}",
        exchange,
    )


@check("PRV-PRO-014")
async def deep_links_expire_within_ten_minutes(ctx: ProviderContext) -> None:
    await require_offered(ctx, "deep_links")
    connection, _ = await free_resource(ctx)
    response, exchange = await ctx.call(
        "POST",
        "provisioning/deep_links",
        body={"purpose": "dashboard"},
        bearer=connection["access_token"],
    )
    document = ctx.json(response)
    expires = document.get("expires_at") if isinstance(document, dict) else None
    try:
        left = (
            datetime.fromisoformat(str(expires).replace("Z", "+00:00")) - datetime.now(UTC)
        ).total_seconds()
    except ValueError:
        left = float("inf")
    ok = (
        response.status_code == 200
        and isinstance(document.get("url"), str)
        and 0 < left <= 600 + 30
    )
    ctx.require(
        "PRV-PRO-014",
        ok,
        f"a dashboard link must come with expires_at at most 600 s ahead ({expires!r})",
        exchange,
    )


@check("PRV-PRO-010")
async def update_service_outside_allowed_updates_is_refused(ctx: ProviderContext) -> None:
    await require_offered(ctx, "update_service")
    connection, resource = await free_resource(ctx)
    entries = {str(e.get("id")): e for e in await services(ctx)}
    current = entries.get(str(resource.get("service_id")))
    if current is None:
        raise Skipped("the provisioned resource names no service of the catalog")
    allowed = set(current.get("allowed_updates") or [])
    outside = [sid for sid in entries if sid != current["id"] and sid not in allowed]
    if not outside:
        raise Skipped(f"{current['id']} may change to every other service")

    # A target that costs nothing first, so a refusal cannot be for want of payment; a paid
    # one comes with valid payment credentials for the same reason.
    def pricing(sid: str) -> str:
        return str((entries[sid].get("pricing") or {}).get("type"))

    outside.sort(key=lambda sid: {"free": 0, "component": 1}.get(pricing(sid), 2))
    target = outside[0]
    body: dict[str, Any] = {"service_id": target}
    if pricing(target) == "paid":
        body["payment_credentials"] = payment_credentials(ctx, target)
    bearer = connection["access_token"]
    response, exchange = await ctx.call(
        "POST",
        f"provisioning/resources/{resource['id']}/update_service",
        body=body,
        bearer=bearer,
    )
    after, _ = await ctx.call("GET", f"provisioning/resources/{resource['id']}", bearer=bearer)
    unchanged = (ctx.json(after) or {}).get("service_id") == current["id"]
    ctx.require(
        "PRV-PRO-010",
        response.status_code == 400 and unchanged,
        f"update_service from {current['id']} to {target} (not in allowed_updates) must "
        f"get 400 and change nothing (got {response.status_code}, "
        f"service now {(ctx.json(after) or {}).get('service_id')!r})",
        exchange,
    )


PENDING_WAIT_S = 10.0
"""How long a pending resource gets to settle before PRV-PRO-009 calls it stuck."""


@check("PRV-PRO-009")
async def a_pending_resource_settles(ctx: ProviderContext) -> None:
    import asyncio
    import time

    await require_offered(ctx, "pending")
    ctx.fresh_user()
    bearer = str((await ctx.connect())["access_token"])
    free = [
        entry for entry in await services(ctx) if (entry.get("pricing") or {}).get("type") == "free"
    ][:4]
    pending: list[str] = []
    for entry in free:
        response, _ = await provision(ctx, str(entry["id"]), bearer=bearer)
        document = ctx.json(response)
        if isinstance(document, dict) and document.get("status") == "pending":
            pending.append(str(document.get("id")))
    if not pending:
        raise Skipped(
            f"none of the {len(free)} free services answered pending, so there is no "
            "lifecycle to follow"
        )
    deadline, delay = time.monotonic() + PENDING_WAIT_S, 0.25
    seen: dict[str, list[str]] = {resource: [] for resource in pending}
    last = {}
    while pending and time.monotonic() < deadline:
        await asyncio.sleep(delay)
        delay = min(delay * 2, 2.0)
        for resource in list(pending):
            response, exchange = await ctx.call(
                "GET", f"provisioning/resources/{resource}", bearer=bearer
            )
            document = ctx.json(response)
            status = document.get("status") if isinstance(document, dict) else None
            seen[resource].append(str(status))
            last[resource] = exchange
            if status in ("complete", "error", "errored"):
                pending.remove(resource)
    for resource, statuses in seen.items():
        settled = [s for s in statuses if s != "pending"]
        backwards = "complete" in statuses and statuses[statuses.index("complete") :].count(
            "pending"
        )
        ctx.require(
            "PRV-PRO-009",
            bool(settled) and not backwards and resource not in pending,
            f"resource {resource} went {' -> '.join(['pending', *statuses])} within "
            f"{PENDING_WAIT_S:g} s (it must settle on complete or error and stay there)",
            *([last[resource]] if resource in last else []),
        )
