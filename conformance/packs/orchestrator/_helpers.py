"""Shared moves of the orchestrator checks."""

from __future__ import annotations

from typing import Any

from conformance.adapters.orchestrator import (
    OTHER_PROVIDER_NAME,
    PROVIDER_NAME,
    OrchestratorContext,
)
from conformance.checks import Skipped
from wire import jose
from wire.urls import orchestrator_metadata_url

PROBE_LIMIT = 10000
"""The monthly limit the money probes are laid out for: a charge of 6000 (gpu's price, the
most one token of the suite's providers allows where the price is stated) fits once and not
twice. Under a profile whose default cap differs, each new user gets this limit the way the
human sets one (`billing --provider P --limit N`), so the probes fit the draft's cap too."""


def fresh_user(
    ctx: OrchestratorContext, *, probe_limit: bool = True, payment_method: bool = True
) -> None:
    """A new signed-in user with terms accepted and a payment method (unless told): a whole
    spend cap at every provider, and no connection, limit or spending left over from another
    check. `probe_limit`: a cap of PROBE_LIMIT at both providers (else the profile's)."""
    arguments = ["init", "--new-user", "--email", ctx.new_email()]
    arguments.append("--accept-tos")
    if not payment_method:
        arguments.append("--no-payment-method")
    ctx.cli(*arguments)
    if not probe_limit or ctx.params.default_cap.limit == PROBE_LIMIT:
        return
    for provider in (PROVIDER_NAME, OTHER_PROVIDER_NAME):
        call, envelope = ctx.cli("billing", "--provider", provider, "--limit", str(PROBE_LIMIT))
        if envelope.get("ok") is not True:
            raise Skipped(
                f"the profile's default cap is {ctx.params.default_cap.limit} and the "
                f"orchestrator's CLI would not set the probes' limit of {PROBE_LIMIT} at "
                f"{provider} (billing --provider P --limit N; CLI call {call.id})"
            )


async def metadata(ctx: OrchestratorContext) -> dict[str, Any]:
    issuer = ctx.need_issuer()
    response, _ = await ctx.get(orchestrator_metadata_url(issuer))
    document = response.json() if response.status_code == 200 else None
    if not isinstance(document, dict):
        raise Skipped("the orchestrator serves no metadata (see ORC-DSC-001)")
    return document


async def keys(ctx: OrchestratorContext) -> dict[str, jose.PublicKey]:
    document = await metadata(ctx)
    jwks_uri = document.get("jwks_uri")
    if not isinstance(jwks_uri, str):
        raise Skipped("the orchestrator's metadata has no jwks_uri")
    response, _ = await ctx.get(jwks_uri)
    try:
        return jose.parse_jwks(_public_members(response.json()))
    except (ValueError, jose.JOSEError):
        raise Skipped("the orchestrator's JWKS is unusable (see ORC-DSC-004)") from None


_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


def _public_members(document: Any) -> Any:
    """The JWKS with private members dropped: a leaked private key is ORC-DSC-004's finding,
    and verifying signatures with the public half is still sound, so other checks go on."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        return document
    return {
        **document,
        "keys": [
            {k: v for k, v in key.items() if k not in _PRIVATE_MEMBERS}
            if isinstance(key, dict)
            else key
            for key in document["keys"]
        ],
    }
