"""Optional orchestrator endpoints: judged where the metadata advertises them, and then they
must be there. An orchestrator need not offer refunds; one whose metadata names a
refund_endpoint that answers 404, 405 or 501 advertises falsely (ORC-DSC-018), and the
refund checks are blocked by that, not failed one by one."""

from __future__ import annotations

import json
import secrets

from conformance.adapters.orchestrator import OrchestratorContext
from conformance.checks import NotApplicable, Skipped, check
from conformance.packs.orchestrator._helpers import fresh_user
from conformance.packs.orchestrator._money import _post, endpoint_missing, endpoints, redeem
from conformance.packs.orchestrator._tokens import minted_token

PROBE_CHARGE = 500


@check("ORC-DSC-018")
async def advertised_endpoints_exist(ctx: OrchestratorContext) -> None:
    """Every optional endpoint the orchestrator's metadata advertises is there."""
    _, refunds = await endpoints(ctx)
    if refunds is None:
        raise NotApplicable(
            "the orchestrator's metadata advertises no optional endpoint (no refund_endpoint)"
        )
    fresh_user(ctx)
    done = await redeem(ctx, await minted_token(ctx), PROBE_CHARGE)
    if done.status != 201 or not done.document.get("id"):
        raise Skipped(f"could not redeem a charge to refund ({done.shown()}; see ORC-RED-011)")
    raw = json.dumps({"redemption_id": done.document["id"], "amount": PROBE_CHARGE}).encode()
    answer = await _post(
        ctx,
        refunds,
        raw,
        key=secrets.token_hex(12),
        signed=True,
        signer=None,
        audience=None,
        content_type="application/json",
    )
    ctx.require(
        "ORC-DSC-018",
        not endpoint_missing(answer),
        f"false advertising: the metadata names refund_endpoint {refunds}, but a refund of a "
        f"{PROBE_CHARGE} redemption there got {answer.shown()}",
        answer.exchange,
    )
