"""Provisioning: resources, idempotent creation, bad input, deep links, removal."""

from __future__ import annotations

import asyncio
import secrets
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from conformance.adapters.provider import ProviderContext
from conformance.checks import Skipped, check
from conformance.packs.provider._helpers import (
    Price,
    error_code,
    free_resource,
    issues,
    no_traceback,
    payment_credentials,
    provision,
    service_of,
    services,
)
from conformance.packs.provider._provisioning import (
    BAD_BODIES,
    cookies_set,
    foreign_and_unknown,
    pricing_type,
    resource_calls,
    resource_id,
)
from conformance.packs.provider.capabilities import require_offered
from wire.ssrf import SSRFError


@check("PRV-PRO-001")
async def resources_need_a_bearer_token(ctx: ProviderContext) -> None:
    """Signed calls, each about a real resource of the caller, with no Authorization."""
    _, resource = await free_resource(ctx)
    for method, path, body in resource_calls(str(resource["id"]), str(resource["service_id"])):
        response, exchange = await ctx.call(method, path, body=None if method == "GET" else body)
        ctx.require(
            "PRV-PRO-001",
            response.status_code == 401,
            f"{method} {path} without a bearer token must get 401, got {response.status_code}",
            exchange,
        )


@check("PRV-PRO-002")
async def a_bearer_token_alone_is_not_enough(ctx: ProviderContext) -> None:
    """A valid bearer token, no Stripe-Signature: a stolen token must not be enough."""
    connection, resource = await free_resource(ctx)
    calls = resource_calls(str(resource["id"]), str(resource["service_id"]))
    for method, path, body in [calls[0], calls[1], calls[2], calls[5]]:
        response, exchange = await ctx.call(
            method,
            path,
            body=None if method == "GET" else body,
            bearer=connection.access_token,
            headers_override={ctx.params.signature_header: ""},
        )
        ctx.require(
            "PRV-PRO-002",
            response.status_code == 401,
            f"{method} {path} with a bearer token and no Stripe-Signature must get 401, got "
            f"{response.status_code}",
            exchange,
        )


@check("PRV-PRO-003", "PRV-PRO-008")
async def a_free_service_is_provisioned(ctx: ProviderContext) -> None:
    ctx.fresh_user()
    connection = await ctx.connect()
    entry = await service_of(ctx, "free")
    response, exchange = await provision(ctx, str(entry["id"]), bearer=connection.access_token)
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
        ctx, "provspec-no-such-service", bearer=connection.access_token
    )
    ok = response.status_code == 400 and error_code(ctx.json(response)) == "unknown_service"
    ctx.require("PRV-PRO-004", ok, "an unknown service_id must get 400 unknown_service", exchange)


@check("PRV-PRO-005")
async def project_id_makes_creation_idempotent(ctx: ProviderContext) -> None:
    ctx.fresh_user()
    connection = await ctx.connect()
    bearer = connection.access_token
    free = await service_of(ctx, "free")
    body = {"service_id": str(free["id"]), "project_id": "proj_" + secrets.token_hex(6)}
    first, _ = await ctx.call("POST", "provisioning/resources", body=body, bearer=bearer)
    second, exchange = await ctx.call("POST", "provisioning/resources", body=body, bearer=bearer)
    first_id, second_id = resource_id(first), resource_id(second)
    if first.status_code != 200 or not first_id:
        raise Skipped(f"the first creation was answered {first.status_code} (see PRV-PRO-003)")
    ctx.require(
        "PRV-PRO-005",
        second.status_code == 200 and first_id == second_id,
        f"the same project_id and service_id must return the same resource ({first_id!r} "
        f"then {second_id!r}, {second.status_code})",
        exchange,
    )
    # Another service under the same project_id: the same resource, or a conflict; never a
    # second resource. One that costs nothing, so no payment can be what decides.
    others = [
        e for e in await services(ctx) if e.get("id") != free["id"] and pricing_type(e) != "paid"
    ]
    if not others:
        return
    other = {**body, "service_id": str(others[0]["id"])}
    answer, exchange = await ctx.call("POST", "provisioning/resources", body=other, bearer=bearer)
    conflict = answer.status_code == 409 and error_code(ctx.json(answer)) == "project_id_conflict"
    ctx.require(
        "PRV-PRO-005",
        conflict or (answer.status_code == 200 and resource_id(answer) == first_id),
        f"the project_id of resource {first_id!r} with service {other['service_id']!r} must "
        f"answer that resource or 409 project_id_conflict, got {answer.status_code} for "
        f"{resource_id(answer)!r}",
        exchange,
    )


@check("PRV-PRO-006")
async def a_project_id_of_another_account_conflicts(ctx: ProviderContext) -> None:
    """Two accounts, one project_id: the second is refused and the first keeps its resource."""
    ctx.fresh_user()
    owner = (await ctx.connect()).access_token
    free = await service_of(ctx, "free")
    body = {"service_id": str(free["id"]), "project_id": "proj_" + secrets.token_hex(6)}
    made, _ = await ctx.call("POST", "provisioning/resources", body=body, bearer=owner)
    owned = resource_id(made)
    if made.status_code != 200 or not owned:
        raise Skipped(f"the owner's creation was answered {made.status_code} (see PRV-PRO-003)")
    ctx.fresh_user()
    stranger = (await ctx.connect()).access_token
    answer, exchange = await ctx.call("POST", "provisioning/resources", body=body, bearer=stranger)
    document = ctx.json(answer)
    ctx.require(
        "PRV-PRO-006",
        answer.status_code == 409
        and error_code(document) == "project_id_conflict"
        and "access_configuration" not in answer.text,
        f"another account's project_id must get 409 project_id_conflict, got "
        f"{answer.status_code} {error_code(document) or ''}"
        + (" with the owner's resource" if resource_id(answer) == owned else ""),
        exchange,
    )
    seen, seen_exchange = await ctx.call("GET", f"provisioning/resources/{owned}", bearer=owner)
    ctx.require(
        "PRV-PRO-006",
        seen.status_code == 200 and (ctx.json(seen) or {}).get("service_id") == free["id"],
        f"after another account used its project_id, the owner's resource {owned!r} must be "
        f"unchanged, got {seen.status_code}",
        exchange,
        seen_exchange,
    )


@check("PRV-PRO-007", "PRV-CRD-005")
async def resources_are_private_to_their_account(ctx: ProviderContext) -> None:
    (foreign, exchange), (unknown, unknown_exchange) = await foreign_and_unknown(ctx)
    ctx.require(
        "PRV-PRO-007",
        foreign.status_code in (403, 404),
        f"another account's resource must get 403 or 404, got {foreign.status_code}",
        exchange,
    )
    ctx.require(
        "PRV-CRD-005",
        "access_configuration" not in foreign.text,
        "another account's token was shown the resource's credentials",
        exchange,
    )
    ctx.require(
        "PRV-PRO-007",
        unknown.status_code in (400, 403, 404) and "access_configuration" not in unknown.text,
        f"an id the caller holds no resource under must get 400, 403 or 404, got "
        f"{unknown.status_code}",
        unknown_exchange,
    )


@check("PRV-PRO-018")
async def foreign_resources_look_like_unknown_ones(ctx: ProviderContext) -> None:
    (foreign, exchange), (unknown, unknown_exchange) = await foreign_and_unknown(ctx)
    same = (foreign.status_code, error_code(ctx.json(foreign))) == (
        unknown.status_code,
        error_code(ctx.json(unknown)),
    )
    ctx.require(
        "PRV-PRO-018",
        foreign.status_code == 404 and same,
        f"another account's resource must be answered as an unknown id (404): got "
        f"{foreign.status_code} {error_code(ctx.json(foreign)) or ''} for it and "
        f"{unknown.status_code} {error_code(ctx.json(unknown)) or ''} for an unknown id",
        exchange,
        unknown_exchange,
    )


@check("PRV-PRO-011", "PRV-PRO-013")
async def bad_bodies_get_400_without_a_traceback(ctx: ProviderContext) -> None:
    ctx.fresh_user()
    connection = await ctx.connect()
    for why, raw in BAD_BODIES.items():
        response, exchange = await ctx.call(
            "POST", "provisioning/resources", content=raw, bearer=connection.access_token
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
    size = ctx.target.config.oversized_body_bytes
    ctx.fresh_user()
    connection = await ctx.connect()
    raw = b'{"service_id": "free", "pad": "' + b"x" * size + b'"}'
    mark = ctx.recorder.mark
    try:
        response, exchange = await ctx.call(
            "POST", "provisioning/resources", content=raw, bearer=connection.access_token
        )
    except httpx.WriteError:
        return  # the provider closed the connection while the body was still coming: refused
    except httpx.TransportError as error:
        sent = ctx.recorder.since(mark)
        ctx.cannot_judge(
            "PRV-PRO-012",
            f"sending {len(raw)} bytes ended in {type(error).__name__}"
            + (f" (exchange {sent[-1].id})" if sent else ""),
        )
        return
    if response.status_code < 300:
        ctx.cannot_judge(
            "PRV-PRO-012",
            f"the provider accepted a {len(raw)}-byte body, so its size limit (if any) is "
            "higher; set [provider] oversized_body_bytes above it to judge the refusal",
        )
        return
    ctx.require(
        "PRV-PRO-012",
        response.status_code in (400, 413),
        f"a {len(raw)}-byte body must get 413 or 400, got {response.status_code}",
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
        bearer=connection.access_token,
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


@check("PRV-PRO-017")
async def deep_links_work_once(ctx: ProviderContext) -> None:
    """The link is visited as a browser would, without following redirects. A second visit
    signs in again when it sets every cookie the first one set (a session), or, for a link
    that sets none and works by its redirect, when it is answered with the same status and
    Location as the first. A link that answers a page and sets nothing works inside the page,
    out of the suite's sight: not judged."""
    await require_offered(ctx, "deep_links")
    connection, _ = await free_resource(ctx)
    response, exchange = await ctx.call(
        "POST",
        "provisioning/deep_links",
        body={"purpose": "dashboard"},
        bearer=connection.access_token,
    )
    document = ctx.json(response)
    url = document.get("url") if isinstance(document, dict) else None
    if response.status_code != 200 or not isinstance(url, str) or not urlsplit(url).netloc:
        raise Skipped(f"blocked by PRV-PRO-014: no deep link url ({response.status_code})")
    try:
        ctx.target.guard.check_url(url)
    except SSRFError as refused:
        raise Skipped(f"the deep link is not a URL the suite may fetch: {refused}") from None
    first, first_exchange = await ctx.get(url, follow_redirects=False)
    if first.status_code >= 400:
        raise Skipped(
            f"the deep link's first visit was answered {first.status_code}, so there is no "
            "working visit to compare a second with"
        )
    set_first = cookies_set(first)
    if not set_first and not 300 <= first.status_code < 400:
        raise Skipped(
            f"the deep link's first visit was answered {first.status_code} with a page and set "
            "no cookie: what signs the browser in happens inside the page, which the suite "
            "does not run, so a second visit shows nothing either way"
        )
    second, second_exchange = await ctx.get(url, follow_redirects=False)
    set_second = cookies_set(second)
    if set_first:
        reused = set_first <= set_second
        how = f"set the session cookies {sorted(set_first)} again"
    else:
        reused = (second.status_code, second.headers.get("location")) == (
            first.status_code,
            first.headers.get("location"),
        )
        how = (
            f"was answered like the first ({second.status_code}, Location "
            f"{second.headers.get('location', '')[:80]!r})"
        )
    ctx.require(
        "PRV-PRO-017",
        not reused,
        f"a second visit of the same deep link {how}: the link works twice",
        exchange,
        first_exchange,
        second_exchange,
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
        body["payment_credentials"] = payment_credentials(
            ctx, target, price=Price.of(entries[target])
        )
    bearer = connection.access_token
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
    await require_offered(ctx, "pending")
    ctx.fresh_user()
    bearer = str((await ctx.connect()).access_token)
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
