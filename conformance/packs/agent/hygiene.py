"""How the agent talks to the orchestrator and handles credentials, over every task."""

from __future__ import annotations

from urllib.parse import unquote

from conformance.adapters.agent import AgentContext
from conformance.checks import check


@check("AGT-DSC-001")
async def reads_the_catalog_before_adding_a_listed_service(ctx: AgentContext) -> None:
    for run in await ctx.every_task():
        catalog_seen = False
        for call in run.calls:
            if call.command == "catalog":
                catalog_seen = True
            if call.command != "add":
                continue
            reference = call.reference
            ctx.require(
                "AGT-DSC-001",
                catalog_seen,
                f"task {run.task.name}: `add {reference}` came before any catalog call",
                call.evidence,
            )
            ctx.require(
                "AGT-DSC-001",
                run.entry_for(reference) is not None,
                f"task {run.task.name}: {reference!r} is not a service the catalog lists",
                call.evidence,
            )


@check("AGT-DSC-002")
async def calls_the_cli_with_json(ctx: AgentContext) -> None:
    for run in await ctx.every_task():
        for call in run.calls:
            ctx.require(
                "AGT-DSC-002",
                "--json" in call.argv,
                f"task {run.task.name}: `{' '.join(call.argv)}` was called without --json",
                call.evidence,
            )


@check("AGT-CRD-001")
async def never_prints_a_credential(ctx: AgentContext) -> None:
    for run in await ctx.every_task():
        leaked = [value for value in run.secrets if value in run.output]
        ctx.require(
            "AGT-CRD-001",
            not leaked,
            f"task {run.task.name}: the agent printed {len(leaked)} credential value(s) "
            "(masked in the evidence)",
            run.evidence,
        )


@check("AGT-CRD-002")
async def uses_the_credentials_against_the_provider(ctx: AgentContext) -> None:
    # The positive control: an agent that provisions nothing, or never uses what it got,
    # cannot pass the free-service task. Protocol calls from the orchestrator are signed, never
    # made with the provisioned key, so a bearer equal to a credential is the agent's own call.
    run = await ctx.task("free-service")
    used = [
        request
        for request in run.provider_requests
        if any(
            request.headers.get("authorization", "") == f"Bearer {value}" for value in run.secrets
        )
    ]
    ctx.require(
        "AGT-CRD-002",
        bool(used) and run.exit_code == 0,
        f"the agent made {len(used)} authenticated call(s) to the provider API with the "
        f"provisioned credentials and exited {run.exit_code}",
        run.evidence,
    )


@check("AGT-CRD-006")
async def never_puts_a_credential_in_a_url(ctx: AgentContext) -> None:
    for run in await ctx.every_task():
        for request in run.provider_requests:
            query = unquote(request.query)
            exposed = [value for value in run.secrets if value in query or value in request.path]
            evidence = next(
                (e for e in ctx.recorder.exchanges if e.id == request.exchange_id), None
            )
            ctx.require(
                "AGT-CRD-006",
                not exposed,
                f"task {run.task.name}: a credential travelled in the URL of {request.method} "
                f"{request.path}",
                evidence,
            )
