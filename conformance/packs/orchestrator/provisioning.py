"""Provisioning through the agent-facing CLI, judged from its envelopes and from what the
suite's provider receives: request bodies, the answers an agent gets (paid, terms, pending,
needs_information, errors), bad arguments, stdout discipline, removal."""

from __future__ import annotations

import asyncio
import json
import time

from conformance.adapters.orchestrator import (
    OTHER_PROVIDER_NAME,
    PROVIDER_NAME,
    OrchestratorContext,
)
from conformance.checks import Skipped, check
from conformance.packs.orchestrator._probes import (
    ADD_STATUSES,
    answer_of,
    creations,
    deep,
    error_code,
    marker,
    serve,
    status_of,
)
from conformance.packs.orchestrator._provisioning import (
    bearer_token,
    contract_status,
    issued_access_tokens,
    judge_failure,
    resource_names,
    strictjson_envelope,
)
from conformance.recorder import CliCall
from spec.schemas import default_store
from wire import strictjson

STATE_CHANGING = ("/provisioning/account_requests", "/provisioning/resources", "/oauth/token")


@check("ORC-PRO-001")
async def creation_bodies_are_valid_and_bearer_authorised(ctx: OrchestratorContext) -> None:
    ctx.sign_in()
    mark = ctx.recorder.mark
    await ctx.add("free")
    await ctx.add("kv", "--config", json.dumps({"name": "provspec-kv"}))
    sent = creations(ctx, mark)
    if not sent:
        ctx.require("ORC-PRO-001", False, "no resource creation reached the provider")
        return
    tokens = issued_access_tokens(ctx)
    for raw in sent:
        body = ctx.body(raw)
        problems = default_store().validate(ctx.profile, "resource_create_request", body)
        bearer = bearer_token(raw.headers.get("authorization", ""))
        ctx.require(
            "ORC-PRO-001",
            not problems and bearer in tokens,
            f"the creation body must be a valid resource_create_request "
            f"({'; '.join(map(str, problems[:3])) or 'valid'}) sent with the provider's access "
            f"token as Authorization: Bearer ({'present' if bearer in tokens else 'absent'})",
            ctx.exchange(raw),
        )


@check("ORC-PRO-002")
async def add_answers_one_of_the_documented_statuses(ctx: OrchestratorContext) -> None:
    ctx.sign_in()
    for service, extra in (
        ("free", ()),
        ("pro", ()),
        ("registrar:domain", ("--confirm-paid-service",)),
    ):
        mark = ctx.recorder.mark
        call, envelope = await ctx.add(service, *extra)
        problems = default_store().validate(ctx.profile, "cli_envelope", envelope)
        status, why = contract_status(envelope)
        # A provider's refusal is reported with the provider's code (ORC-ACC-007,
        # ORC-PRO-010), which the list of statuses does not cover.
        refused = envelope.get("ok") is False and any(
            (raw.status or 0) >= 400 for raw in ctx.received(mark, provider=None)
        )
        ctx.require(
            "ORC-PRO-002",
            not problems and (bool(status) or refused),
            f"add {service}: the envelope must be a valid CLI envelope "
            f"({'; '.join(map(str, problems[:2])) or 'valid'}) reporting one of "
            f"{sorted(ADD_STATUSES)} where the contract puts it ({why or status})",
            call,
        )


@check("ORC-PRO-003")
async def a_paid_service_waits_for_confirmation(ctx: OrchestratorContext) -> None:
    ctx.sign_in()
    await ctx.add("free")  # connected already, so only the confirmation can hold it back
    mark = ctx.recorder.mark
    call, envelope = await ctx.add("pro", "--yes", "--accept-tos")
    created = creations(ctx, mark)
    ctx.require(
        "ORC-PRO-003",
        status_of(envelope) == "confirmation_required" and not created,
        f"a paid service added without --confirm-paid-service (with --yes) must answer "
        f"confirmation_required and provision nothing: status {status_of(envelope)!r}, "
        f"{len(created)} creation requests",
        call,
        *(ctx.exchange(raw) for raw in created[:1]),
    )


@check("ORC-PRO-004")
async def failures_are_envelopes_without_tracebacks(ctx: OrchestratorContext) -> None:
    ctx.sign_in()
    call, _ = ctx.cli("add", "provspec-no-such-provider/free")
    judge_failure(ctx, "ORC-PRO-004", call, "an unknown provider")
    call, _ = await ctx.add("provspec-no-such-service")
    judge_failure(ctx, "ORC-PRO-004", call, "an unknown service")
    call, _ = ctx.cli("remove", marker("no-such-resource"), "--yes")
    judge_failure(ctx, "ORC-PRO-004", call, "removing an unknown resource")
    page = "<html><body><h1>502 Bad Gateway</h1></body></html>"
    for path in ("/provisioning/account_requests", "/provisioning/resources"):
        ctx.sign_in()
        with ctx.tampered(path, serve(502, page, **{"content-type": "text/html"})):
            call, _ = await ctx.add("free")
        judge_failure(ctx, "ORC-PRO-004", call, f"a provider answering HTML 502 to {path}")


@check("ORC-PRO-005")
async def bad_arguments_change_nothing(ctx: OrchestratorContext) -> None:
    ctx.sign_in()
    await ctx.add("free")
    _, before = ctx.cli("status")
    mark = ctx.recorder.mark
    probes: list[tuple[str, CliCall]] = [
        ("an unknown provider", ctx.cli("add", "provspec-no-such-provider/free")[0])
    ]
    for config in ('{"name": "unterminated', "[1, 2]", '"a string"', '{"size": NaN}'):
        call, _ = await ctx.add("kv", "--config", config)
        probes.append((f"--config {config}", call))
    for what, call in probes:
        stdout, _ = ctx.output(call)
        envelope = strictjson_envelope(stdout)
        error = envelope.get("error") if isinstance(envelope, dict) else None
        ctx.require(
            "ORC-PRO-005",
            isinstance(envelope, dict)
            and envelope.get("ok") is False
            and isinstance(error, dict)
            and bool(error.get("code"))
            and bool(error.get("message")),
            f"{what}: the add must answer ok false with an error code and message",
            call,
        )
    changed = [
        raw
        for raw in ctx.received(mark, provider=None)
        if raw.method == "POST" and raw.path.endswith(STATE_CHANGING)
    ]
    status, after = ctx.cli("status")
    kept, now = resource_names(before), resource_names(after)
    ctx.require(
        "ORC-PRO-005",
        not changed and kept == now,
        f"bad arguments changed state: {[f'{r.method} {r.path}' for r in changed[:3]]} sent, "
        f"resources added {sorted(now - kept)}",
        status,
        *(ctx.exchange(raw) for raw in changed[:1]),
    )


@check("ORC-PRO-006")
async def each_resource_gets_a_fresh_project_id(ctx: OrchestratorContext) -> None:
    ctx.sign_in()
    project_ids: list[set[str]] = []
    for service in ("free", "kv", "free"):
        mark = ctx.recorder.mark
        await ctx.add(service)
        ids = {
            str(body.get("project_id"))
            for raw in creations(ctx, mark)
            for body in [ctx.body(raw)]
            if isinstance(body, dict)
        }
        ctx.require(
            "ORC-PRO-006",
            len(ids) <= 1,
            f"one add sent several project_ids {sorted(ids)} (a retry reuses its project_id)",
        )
        project_ids.append(ids)
    seen = [pid for ids in project_ids for pid in ids]
    ctx.require(
        "ORC-PRO-006",
        len(seen) == len(set(seen)),
        f"new resources shared a project_id: {seen}",
    )


PROVISIONING_NAMES = ("health", "services", "account_requests", "resources", "deep_links")


@check("ORC-PRO-007")
async def urls_are_built_from_the_base_url(ctx: OrchestratorContext) -> None:
    ctx.sign_in()
    ctx.cli("catalog")
    await ctx.add("free")
    await ctx.add_at(OTHER_PROVIDER_NAME, "free")
    base = ctx.provider.base_path
    wrong = []
    for raw in ctx.target.raw:
        path = raw.path
        if "provisioning/" in path:
            rest = path[len(base) :] if path.startswith(base + "provisioning/") else ""
            name = rest.split("/")[1] if rest.count("/") >= 1 else ""
            if name not in PROVISIONING_NAMES:
                wrong.append(raw)
        grant = (
            raw.headers.get("content-type", "").startswith("application/x-www-form-urlencoded")
            and b"grant_type=" in raw.body
        )
        if grant and path != base + "oauth/token":
            wrong.append(raw)
    ctx.require(
        "ORC-PRO-007",
        not wrong,
        f"provisioning URLs must be {base}provisioning/<name> and token requests go to "
        f"{base}oauth/token: {[f'{r.provider} {r.method} {r.path}' for r in wrong[:4]]}",
        *(ctx.exchange(raw) for raw in wrong[:1]),
    )


@check("ORC-PRO-008")
async def a_pending_resource_is_polled_not_recreated(ctx: OrchestratorContext) -> None:
    ctx.sign_in()
    mark = ctx.recorder.mark
    call, envelope = await ctx.add(
        "registrar:domain",
        "--confirm-paid-service",
        "--config",
        json.dumps({"domain_query": "provspec-example"}),
    )
    created = creations(ctx, mark)
    answer = answer_of(created[-1]) if created else None
    if not (isinstance(answer, dict) and answer.get("status") == "pending"):
        raise Skipped(
            f"the provider did not answer pending ({envelope.get('error') or 'no create'})"
        )
    ctx.require(
        "ORC-PRO-008",
        status_of(envelope) == "pending",
        f"the provider answered pending; the add reported {status_of(envelope)!r}",
        call,
    )
    status, _ = ctx.cli("status")
    resource = f"/provisioning/resources/{answer.get('id')}"
    polled = [raw for raw in ctx.received(mark, resource) if raw.method == "GET"]
    again = creations(ctx, mark)
    ctx.require(
        "ORC-PRO-008",
        bool(polled) and len(again) == 1,
        f"a pending resource must be checked with GET provisioning/resources/{{id}} and never "
        f"created again: {len(polled)} GETs of {resource}, {len(again)} creation requests",
        status,
        *(ctx.exchange(raw) for raw in again[1:2]),
    )


@check("ORC-PRO-009")
async def needs_information_carries_the_providers_schema(ctx: OrchestratorContext) -> None:
    ctx.sign_in()
    mark = ctx.recorder.mark
    call, envelope = await ctx.add("registrar:domain", "--confirm-paid-service")
    created = creations(ctx, mark)
    answer = answer_of(created[-1]) if created else None
    needs = answer.get("needs_information") if isinstance(answer, dict) else None
    schema = needs.get("schema") if isinstance(needs, dict) else None
    if not isinstance(schema, dict):
        raise Skipped("the provider did not answer needs_information with a schema")
    ctx.require(
        "ORC-PRO-009",
        status_of(envelope) == "needs_information" and deep(envelope.get("data"), schema),
        f"the add must report needs_information with the provider's schema: status "
        f"{status_of(envelope)!r}, schema {'present' if deep(envelope, schema) else 'absent'}",
        call,
    )


@check("ORC-PRO-010")
async def a_creation_error_is_reported_and_nothing_kept(ctx: OrchestratorContext) -> None:
    ctx.sign_in()
    code = marker("failure").replace("-", "_")
    planted = marker("credential")
    refusal = {
        "status": "error",
        "id": "",
        "error": {"code": code, "message": "the suite's provider could not create it"},
        "complete": {"access_configuration": {"api_key": planted}},
    }
    with ctx.tampered("/provisioning/resources", serve(400, refusal)):
        call, envelope = await ctx.add("free")
    env, revealed = ctx.cli("env", "--reveal")
    ctx.require(
        "ORC-PRO-010",
        envelope.get("ok") is False
        and code in json.dumps(envelope.get("error"))
        and planted not in json.dumps(revealed),
        f"a status error {code} must give ok false carrying the code (error "
        f"{json.dumps(envelope.get('error'))[:160]}) and keep no credentials "
        f"({'kept' if planted in json.dumps(revealed) else 'none kept'})",
        call,
        env,
    )


RETRY_AFTER = 1
"""Seconds the rate-limited provider asks for in ORC-PRO-011's probe."""


@check("ORC-PRO-011")
async def retry_after_is_honoured(ctx: OrchestratorContext) -> None:
    """The provider answers the catalog 429 with Retry-After: 1. A request repeated within
    the command must come at least that long after the refused one. The check then waits
    out what is left of the delay: RFC 9110 §10.2.3 does not say whose requests the delay
    binds, so an orchestrator may hold back every request to that provider, for every user,
    until it has passed, and no later check runs inside it."""
    refusal = {"error": {"code": "rate_limited", "message": "slow down"}}
    mark = ctx.recorder.mark
    limited = serve(429, refusal, **{"Retry-After": str(RETRY_AFTER)})
    with ctx.tampered("/provisioning/services", limited):
        call, _ = ctx.cli("catalog")
    asked = [raw for raw in ctx.received(mark, "/provisioning/services") if raw.method == "GET"]
    early = [raw for raw in asked[1:] if raw.at - asked[0].at < RETRY_AFTER]
    ctx.require(
        "ORC-PRO-011",
        not early,
        f"the provider answered 429 with Retry-After: {RETRY_AFTER}, and was asked again "
        f"{len(early)} time(s) within {RETRY_AFTER} s, the first after "
        f"{(early[0].at - asked[0].at if early else 0.0):.3f} s",
        call,
        *(ctx.exchange(raw) for raw in [*asked[:1], *early[:1]]),
    )
    if asked:  # a wait the protocol asks for, not a synchronisation
        await asyncio.sleep(max(0.0, asked[-1].at + RETRY_AFTER - time.monotonic()))


@check("ORC-PRO-012")
async def terms_are_accepted_by_the_human_first(ctx: OrchestratorContext) -> None:
    ctx.sign_in(accept_tos=False)
    try:
        mark = ctx.recorder.mark
        call, envelope = await ctx.add("free")
        sent = [
            raw
            for raw in ctx.received(mark, provider=None)
            if raw.method == "POST" and raw.path.endswith(STATE_CHANGING)
        ]
    finally:
        ctx.sign_in()
    status = status_of(envelope)
    ctx.require(
        "ORC-PRO-012",
        status == "tos_acceptance_required" and not sent,
        f"with the terms not accepted, add must answer tos_acceptance_required and provision "
        f"nothing: status {status!r}, {len(sent)} account or resource requests sent",
        call,
    )


@check("ORC-PRO-013")
async def json_output_is_exactly_one_envelope(ctx: OrchestratorContext) -> None:
    ctx.sign_in()
    await ctx.add("free")
    await ctx.add("pro")
    ctx.cli("status")
    ctx.cli("env")
    ctx.cli("add", "provspec-no-such-provider/free")
    for call in ctx.recorder.cli_calls:
        if "--json" not in call.argv:
            continue
        stdout, _ = ctx.output(call)
        text = stdout.strip()
        try:
            document = strictjson.loads(
                text, max_bytes=max(len(text) * 4, strictjson.DEFAULT_MAX_BYTES)
            )
            one = isinstance(document, dict) and "ok" in document
        except strictjson.StrictJSONError:
            one = False
        ctx.require(
            "ORC-PRO-013",
            one,
            f"`{' '.join(call.argv[-4:])}` wrote something other than one JSON envelope on "
            f"stdout: {stdout[:120]!r}",
            call,
        )


@check("ORC-PRO-014")
async def remove_asks_the_provider_first(ctx: OrchestratorContext) -> None:
    ctx.sign_in()

    async def provisioned(name: str) -> str:
        mark = ctx.recorder.mark
        ctx.cli("add", f"{PROVIDER_NAME}/free", "--name", name)
        made = [answer_of(raw) for raw in creations(ctx, mark)]
        ids = [str(a.get("id")) for a in made if isinstance(a, dict) and a.get("id")]
        if not ids:
            raise Skipped("could not provision a free service to remove")
        return ids[-1]

    name = marker("remove")
    resource_id = await provisioned(name)
    mark = ctx.recorder.mark
    call, envelope = ctx.cli("remove", name, "--yes")
    if error_code(envelope) in ("UNKNOWN_COMMAND", "USAGE") or not envelope:
        raise Skipped("the orchestrator CLI has no remove command")
    removals = [
        raw
        for raw in ctx.received(mark, f"/provisioning/resources/{resource_id}/remove")
        if raw.method == "POST"
    ]
    ctx.require(
        "ORC-PRO-014",
        bool(removals) and envelope.get("ok") is True,
        f"remove must POST provisioning/resources/{resource_id}/remove and report the removal "
        f"({len(removals)} such requests, ok {envelope.get('ok')!r})",
        call,
    )
    name = marker("remove-refused")
    resource_id = await provisioned(name)
    refusal = {
        "status": "error",
        "id": resource_id,
        "error": {"code": "temporarily_unavailable", "message": "try again later"},
    }
    with ctx.tampered(f"/provisioning/resources/{resource_id}/remove", serve(503, refusal)):
        call, envelope = ctx.cli("remove", name, "--yes")
    _, status = ctx.cli("status")
    resources = (status.get("data") or {}).get("resources") or []
    shown = [r for r in resources if isinstance(r, dict) and r.get("name") == name]
    ctx.require(
        "ORC-PRO-014",
        envelope.get("ok") is not True
        and status_of(envelope) != "removed"
        and all(r.get("status") != "removed" for r in shown),
        f"the provider refused to remove {name} (503), yet the orchestrator reports it removed "
        f"(ok {envelope.get('ok')!r}, status {[r.get('status') for r in shown]})",
        call,
    )
