"""Credentials: string maps that work at the provider's API, rotate cleanly, never leak.

Whether a credential works is asked of the provider's own API through the credential probes
of the run (`[[provider.credential_probe]]`, see `conformance.credentials`); a probe whose
answer says neither "works" nor "refused" leaves the requirement unjudged, saying why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from conformance.adapters.provider import ProviderContext
from conformance.checks import Skipped, check
from conformance.credentials import BUILT_IN_PROBES, CredentialProbe
from conformance.packs.provider._helpers import free_resource, free_resource_exchange
from conformance.recorder import Exchange
from wire.ssrf import SSRFError


@dataclass(frozen=True)
class Probed:
    probe: CredentialProbe
    works: bool | None
    """True: the credential works; False: refused; None: the answer says neither."""
    why: str
    exchange: Exchange | None


def probes_for(
    ctx: ProviderContext, credentials: dict[str, Any], use: str
) -> list[CredentialProbe]:
    """The run's probes for `use` that fit `credentials`; Skipped (saying how to add one) if
    none does."""
    configured = ctx.target.config.credential_probes
    found = [
        probe
        for probe in configured or BUILT_IN_PROBES
        if use in probe.judge and probe.applies_to(credentials)
    ]
    if not found:
        names = ", ".join(sorted(credentials)) or "none"
        raise Skipped(
            f"no credential probe fits the issued credentials (members: {names}); describe how "
            "they are used at your API with [[provider.credential_probe]] in provspec.toml "
            "(README: Credential probes)"
            + ("" if configured else "; the built-in probe knows provspec's mock provider only")
        )
    return found


async def run_probe(
    ctx: ProviderContext, probe: CredentialProbe, credentials: dict[str, Any]
) -> Probed:
    request = probe.render(credentials, {"provider_base_url": ctx.base_url})
    try:
        ctx.target.guard.check_url(request.url)
    except SSRFError as refused:
        return Probed(
            probe, None, f"{probe.describe()}: the suite may not fetch it ({refused})", None
        )
    try:
        response, exchange = await ctx.fetch(
            request.method, request.url, headers=request.headers, content=request.body
        )
    except httpx.TransportError as error:
        return Probed(probe, None, f"{probe.describe()} failed: {type(error).__name__}", None)
    verdict = probe.verdict(response.status_code)
    return Probed(probe, verdict, f"{probe.describe()} answered {response.status_code}", exchange)


async def probe_all(ctx: ProviderContext, credentials: dict[str, Any], use: str) -> list[Probed]:
    return [await run_probe(ctx, probe, credentials) for probe in probes_for(ctx, credentials, use)]


def _credentials(answer: Any) -> dict[str, Any]:
    if not isinstance(answer, dict):
        return {}
    found = (answer.get("complete") or {}).get("access_configuration")
    return found if isinstance(found, dict) else {}


@check("PRV-CRD-001", "PRV-CRD-002")
async def credentials_are_strings_and_work(ctx: ProviderContext) -> None:
    _, resource, provisioned = await free_resource_exchange(ctx)
    credentials = (resource.get("complete") or {}).get("access_configuration")
    ok = (
        isinstance(credentials, dict)
        and bool(credentials)
        and all(isinstance(v, str) for v in credentials.values())
    )
    ctx.require(
        "PRV-CRD-001",
        ok,
        "access_configuration must map names to string values",
        provisioned,
    )
    if not ok or not isinstance(credentials, dict):
        ctx.cannot_judge("PRV-CRD-002", "blocked by PRV-CRD-001")
        return
    for probed in await probe_all(ctx, credentials, "works"):
        if probed.works is None:
            ctx.cannot_judge("PRV-CRD-002", f"{probed.why}, which says neither works nor refused")
            continue
        ctx.require(
            "PRV-CRD-002",
            probed.works,
            f"the issued {probed.probe.credential} does not authenticate at the provider's "
            f"API: {probed.why}",
            probed.exchange,
        )


@check("PRV-CRD-003")
async def rotation_replaces_the_credentials(ctx: ProviderContext) -> None:
    connection, resource = await free_resource(ctx)
    old = _credentials(resource)
    response, exchange = await ctx.call(
        "POST",
        f"provisioning/resources/{resource['id']}/rotate_credentials",
        body={},
        bearer=connection.access_token,
    )
    new = _credentials(ctx.json(response))
    if response.status_code != 200 or not new:
        ctx.require(
            "PRV-CRD-003",
            False,
            f"rotate_credentials returned no new credentials ({response.status_code})",
            exchange,
        )
        return
    for probe in probes_for(ctx, new, "rotation"):
        if not probe.applies_to(old):
            continue
        if old[probe.credential] == new[probe.credential]:
            ctx.require(
                "PRV-CRD-003",
                False,
                f"rotate_credentials answered the same {probe.credential} as before",
                exchange,
            )
            continue
        fresh, stale = await run_probe(ctx, probe, new), await run_probe(ctx, probe, old)
        for probed, expected, what in ((fresh, True, "new"), (stale, False, "previous")):
            if probed.works is None:
                ctx.cannot_judge("PRV-CRD-003", f"{probed.why}, which says neither way")
                continue
            ctx.require(
                "PRV-CRD-003",
                probed.works is expected,
                f"after rotation the {what} {probe.credential} "
                + ("does not work" if expected else "still works")
                + f": {probed.why}",
                exchange,
                probed.exchange,
            )


@check("PRV-CRD-004")
async def errors_never_echo_a_token(ctx: ProviderContext) -> None:
    ctx.fresh_user()
    presented = "pma_provspec_canary_7f3e9c1d2b"
    response, exchange = await ctx.call(
        "GET", "provisioning/resources/res_provspec", bearer=presented
    )
    ctx.require(
        "PRV-CRD-004",
        presented not in response.text,
        "the error answer echoes the presented token",
        exchange,
    )


async def _removed(ctx: ProviderContext) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """A free resource removed: (bearer, the resource answer, its credentials)."""
    connection, resource = await free_resource(ctx)
    response, exchange = await ctx.call(
        "POST",
        f"provisioning/resources/{resource['id']}/remove",
        body={},
        bearer=connection.access_token,
    )
    document = ctx.json(response)
    status = document.get("status") if isinstance(document, dict) else None
    if response.status_code != 200 or status != "removed":
        raise Skipped(
            f"blocked by PRV-PRO-015: remove was answered {response.status_code} "
            f"(status {status!r}, exchange {exchange.id})"
        )
    return connection.access_token, resource, _credentials(resource)


@check("PRV-PRO-015")
async def removal_detaches_the_resource(ctx: ProviderContext) -> None:
    connection, resource = await free_resource(ctx)
    path = f"provisioning/resources/{resource['id']}"
    bearer = connection.access_token
    response, exchange = await ctx.call("POST", f"{path}/remove", body={}, bearer=bearer)
    document = ctx.json(response)
    ctx.require(
        "PRV-PRO-015",
        response.status_code == 200
        and isinstance(document, dict)
        and document.get("status") == "removed",
        f"remove must answer 200 with status removed, got {response.status_code}",
        exchange,
    )
    after, after_exchange = await ctx.call("GET", path, bearer=bearer)
    ctx.require(
        "PRV-PRO-015",
        not (after.status_code == 200 and "access_configuration" in after.text),
        "after remove, the orchestrator's token still gets the resource with its credentials",
        exchange,
        after_exchange,
    )


@check("PRV-PRO-019")
async def removal_ends_the_credentials(ctx: ProviderContext) -> None:
    _, _, credentials = await _removed(ctx)
    for probed in await probe_all(ctx, credentials, "removal"):
        if probed.works is None:
            ctx.cannot_judge("PRV-PRO-019", f"{probed.why}, which says neither way")
            continue
        ctx.require(
            "PRV-PRO-019",
            not probed.works,
            f"the {probed.probe.credential} of a removed resource still works: {probed.why}",
            probed.exchange,
        )
