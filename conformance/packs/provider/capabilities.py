"""Optional features: judged only where the provider offers them, and then they must work.

A provider need not offer refresh tokens, RFC 7009 revocation, plan changes, dashboard deep
links or asynchronous provisioning. Their checks run only when the provider advertises the
feature, and otherwise end `not_applicable`, saying where the suite looked:

| feature | advertised by |
|---|---|
| `refresh_tokens` | app-next: `refresh_token` in the AS metadata's `grant_types_supported` |
| `revocation` | app-next: a `revocation_endpoint` in the AS metadata |
| `update_service` | a catalog entry with a non-empty `allowed_updates` |
| `deep_links` | part of the app-0.1d endpoint family: offered unless the config says not |
| `pending` | behaviour: a resource answered `pending` (the config can rule it out) |

`[capabilities]` in provspec.toml overrides what the target shows (`deep_links = false`:
"we offer none"; `refresh_tokens = true`: "we do, judge it"). A feature advertised and then
absent is false advertising, PRV-DSC-013, a MUST: a client that believes the advertisement
builds on something that is not there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NoReturn

from conformance.adapters.provider import ProviderContext, recorded
from conformance.checks import NotApplicable, Skipped, check
from conformance.packs.provider._helpers import (
    Price,
    error_code,
    free_resource,
    payment_credentials,
    services,
)
from conformance.packs.provider.consent import as_metadata
from conformance.recorder import Exchange

__all__ = ["FEATURES", "Advertised", "advertised", "feature_missing", "require_offered"]

PAYMENT_WORDS = ("payment", "billing", "spend_cap", "redemption", "redeem")
"""An error code with one of these refuses a change for its payment, not as disallowed."""

FEATURES = {
    "refresh_tokens": "refresh tokens",
    "revocation": "RFC 7009 token revocation",
    "update_service": "plan changes (update_service)",
    "deep_links": "dashboard deep links",
    "pending": "asynchronous (pending) provisioning",
}


@dataclass(frozen=True)
class Advertised:
    feature: str
    offered: bool | None
    """True: advertised; False: advertised as absent or not advertised; None: the target
    says nothing either way (judged by behaviour)."""
    source: str


def _configured(ctx: ProviderContext, feature: str) -> Advertised | None:
    value = ctx.target.config.capabilities.get(feature)
    if value is None:
        return None
    return Advertised(feature, bool(value), f"provspec.toml [capabilities] {feature} = {value}")


async def _as_metadata(ctx: ProviderContext) -> dict[str, Any] | None:
    try:
        _, metadata, _ = await as_metadata(ctx)
    except Skipped:
        return None
    return metadata or None


async def advertised(ctx: ProviderContext, feature: str) -> Advertised:
    """What the target (or the config) says about `feature`. Asked by every check that needs
    it, never cached: each check's exchanges stay its own, so it replays alone."""
    return _configured(ctx, feature) or await _discover(ctx, feature)


async def _discover(ctx: ProviderContext, feature: str) -> Advertised:
    if feature in ("refresh_tokens", "revocation"):
        if not ctx.next:
            return Advertised(feature, None, "app-0.1d publishes no authorization server metadata")
        metadata = await _as_metadata(ctx)
        if metadata is None:
            return Advertised(feature, None, "no authorization server metadata to read")
        if feature == "refresh_tokens":
            grants = metadata.get("grant_types_supported")
            offered = isinstance(grants, list) and "refresh_token" in grants
            return Advertised(
                feature,
                offered,
                f"grant_types_supported {'lists' if offered else 'lacks'} refresh_token",
            )
        endpoint = metadata.get("revocation_endpoint")
        offered = isinstance(endpoint, str) and bool(endpoint)
        return Advertised(
            feature,
            offered,
            f"the AS metadata {'names' if offered else 'names no'} revocation_endpoint",
        )
    if feature == "update_service":
        entries = await services(ctx)
        allowing = [e for e in entries if e.get("allowed_updates")]
        if allowing:
            first = allowing[0]
            return Advertised(
                feature, True, f"the catalog's {first.get('id')} lists allowed_updates"
            )
        return Advertised(feature, False, "no catalog entry lists allowed_updates")
    if feature == "deep_links":
        return Advertised(
            feature, True, "part of the provisioning endpoint family (no config says otherwise)"
        )
    return Advertised(feature, None, "the provider advertises nothing about it")


async def require_offered(ctx: ProviderContext, feature: str) -> Advertised:
    """Go on only when the feature is advertised (or nothing is said); else not applicable."""
    answer = await advertised(ctx, feature)
    if answer.offered is False:
        raise NotApplicable(f"the provider does not offer {FEATURES[feature]} ({answer.source})")
    return answer


async def feature_missing(ctx: ProviderContext, feature: str, observed: str) -> NoReturn:
    """The feature a check needs is not there: not applicable when the provider does not
    advertise it, blocked by PRV-DSC-013 (which fails it) when it does."""
    answer = await advertised(ctx, feature)
    if answer.offered:
        raise Skipped(
            f"blocked by PRV-DSC-013: {FEATURES[feature]} advertised ({answer.source}), "
            f"but {observed}"
        )
    raise NotApplicable(
        f"the provider does not offer {FEATURES[feature]} ({answer.source}; {observed})"
    )


@check("PRV-DSC-013")
async def advertised_features_exist(ctx: ProviderContext) -> None:
    """Every optional feature the provider advertises is there."""
    judged: list[str] = []
    blocked: list[str] = []
    for feature in ("refresh_tokens", "revocation", "update_service", "deep_links"):
        answer = await advertised(ctx, feature)
        if answer.offered is not True:
            continue
        judged.append(feature)
        try:
            problem, evidence = await _probe(ctx, feature)
        except Skipped as why:
            blocked.append(f"{FEATURES[feature]}: {why}")
            continue
        ctx.require(
            "PRV-DSC-013",
            not problem,
            f"false advertising: {FEATURES[feature]} advertised ({answer.source}), but {problem}",
            evidence,
        )
    if not judged:
        raise NotApplicable("the provider advertises none of the optional features")
    if len(blocked) == len(judged):
        raise Skipped("; ".join(blocked))


async def _probe(ctx: ProviderContext, feature: str) -> tuple[str, Exchange | None]:
    """Why an advertised feature is not there ("" when it is), with the exchange that shows it."""
    if feature == "refresh_tokens":
        ctx.fresh_user()
        connection = await ctx.connect()
        if not connection.refresh_token:
            return "the token response carries no refresh_token", recorded(connection.response)
        return "", None
    if feature == "revocation":
        response, exchange = await ctx.call(
            "POST", "oauth/revoke", form={"token": "pma_provspec_unknown"}
        )
        if response.status_code in (404, 405, 501):
            return f"oauth/revoke answers {response.status_code}", exchange
        return "", None
    if feature == "deep_links":
        connection, _ = await free_resource(ctx)
        response, exchange = await ctx.call(
            "POST",
            "provisioning/deep_links",
            body={"purpose": "dashboard"},
            bearer=connection.access_token,
        )
        if response.status_code in (404, 405, 501):
            return f"provisioning/deep_links answers {response.status_code}", exchange
        return "", None
    return await _allowed_update(ctx)


async def _allowed_update(ctx: ProviderContext) -> tuple[str, Exchange | None]:
    """A change the catalog allows, from the free resource's service, must be made."""
    connection, resource = await free_resource(ctx)
    entries = {str(e.get("id")): e for e in await services(ctx)}
    current = entries.get(str(resource.get("service_id")))
    allowed = [sid for sid in (current or {}).get("allowed_updates") or [] if sid in entries]
    if not allowed:
        raise Skipped("the free service the suite provisions lists no allowed update to try")
    target = allowed[0]
    body: dict[str, Any] = {"service_id": target}
    if (entries[target].get("pricing") or {}).get("type") == "paid":
        body["payment_credentials"] = payment_credentials(
            ctx, target, price=Price.of(entries[target])
        )
    bearer = connection.access_token
    response, exchange = await ctx.call(
        "POST", f"provisioning/resources/{resource['id']}/update_service", body=body, bearer=bearer
    )
    code = str(error_code(ctx.json(response)) or "")
    if response.status_code == 402 or any(word in code for word in PAYMENT_WORDS):
        raise Skipped(
            f"the allowed update to {target} was refused for its payment ({response.status_code} "
            f"{code}); the payment checks judge that"
        )
    after, _ = await ctx.call("GET", f"provisioning/resources/{resource['id']}", bearer=bearer)
    now = (ctx.json(after) or {}).get("service_id")
    if response.status_code != 200 or now != target:
        return (
            f"update_service from {resource.get('service_id')} to {target}, which its "
            f"allowed_updates lists, got {response.status_code} and left the resource on {now!r}",
            exchange,
        )
    return "", None
