"""Schema-driven fuzzing: requests generated from the profile's provider OpenAPI document,
signed like every other call, sent with a valid access token so they reach the handlers.
Off unless the run asks for it (`--fuzz-examples N`)."""

from __future__ import annotations

import json

from conformance.adapters.provider import ProviderContext
from conformance.checks import check
from conformance.fuzz import generate_cases
from conformance.packs.provider._helpers import error_code, free_resource


@check("PRV-PRO-016", "PRV-CRD-004")
async def generated_requests_never_break_the_provider(ctx: ProviderContext) -> None:
    examples = ctx.target.config.fuzz_examples
    if examples <= 0:
        for requirement in ("PRV-PRO-016", "PRV-CRD-004"):
            ctx.cannot_judge(requirement, "fuzzing is off; run with --fuzz-examples N (e.g. 25)")
        return
    connection, resource = await free_resource(ctx)
    bearer = str(connection.access_token)
    cases = generate_cases(ctx.profile, examples, seed=ctx.target.config.fuzz_seed)
    for index, case in enumerate(cases):
        path = case.path
        if "{id}" in case.template and index % 2 == 0:
            # Every other case aims at a real resource of the caller, to get past the lookup.
            path = case.template.replace("{id}", str(resource["id"]))
        if case.media_type == "application/x-www-form-urlencoded":
            response, exchange = await ctx.call(case.method, path, form=case.form())
        elif isinstance(case.body, dict):
            response, exchange = await ctx.call(case.method, path, body=case.body, bearer=bearer)
        elif case.body is not None:
            raw = json.dumps(case.body).encode()
            response, exchange = await ctx.call(case.method, path, content=raw, bearer=bearer)
        else:
            response, exchange = await ctx.call(case.method, path, bearer=bearer)
        ok = response.status_code < 500 and (
            response.status_code < 400 or error_code(ctx.json(response)) is not None
        )
        ctx.require(
            "PRV-PRO-016",
            ok,
            f"{case.operation}: a schema-generated request got {response.status_code} "
            + ("(a server error)" if response.status_code >= 500 else "outside the error envelope"),
            exchange,
        )
        ctx.require(
            "PRV-CRD-004",
            response.status_code < 400 or bearer not in response.text,
            f"{case.operation}: the caller's access token came back in an error answer",
            exchange,
        )
