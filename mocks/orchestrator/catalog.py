"""Aggregate provider catalogs into the Stripe Projects CLI catalog (`cli_catalog`).

Reshaping rules from wire-facts §1.5 ("How Stripe reshapes it into the aggregated catalog"):
the provider's `id` becomes `service_id`; `allowed_updates: [ids]` becomes
`[{direction, service}]`; `parent_service_ids` becomes `parent_services`; Stripe adds `id`
(`prvsvc_…`), `provider_id`, `provider_name`, `scope`, `availability`, `updateable_to`,
`constraints`, `livemode`, `development`. Field set per wire-facts §1.2.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mocks._core.http import HTTPProblem
from mocks.faults import FaultSet
from wire import strictjson

if TYPE_CHECKING:
    from mocks.orchestrator.engine import Orchestrator, ProviderRecord

__all__ = ["aggregate", "fetch_services", "service_detail", "speaks_profile"]

OBJECT = "v2.provisioning.provider_service_detail"
MAX_CATALOG_BYTES = strictjson.DEFAULT_MAX_BYTES
"""A provider catalog above this is left out (ORC-DSC-014); the real 161-service Stripe
catalog is about 250 KB."""
SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
"""Service ids the catalog lists: ASCII letters, digits and `._:-` (`registrar:domain`). An
id with a lookalike letter, a zero-width or bidi control, or a space is left out rather than
shown to an agent next to the real one (ORC-DSC-013; UTS #39, ASCII allow-list)."""


async def speaks_profile(orchestrator: Orchestrator, provider: ProviderRecord) -> bool:
    """Whether GET provisioning/health lists the profile's API version (ORC-DSC-016)."""

    target = provider
    if orchestrator.faults.active("health-url-from-origin"):
        # urljoin(base, "/provisioning/health"): the leading slash drops the base path
        parts = urlsplit(provider.base_url)
        target = dataclasses.replace(provider, base_url=f"{parts.scheme}://{parts.netloc}/")
    answer = await orchestrator.call(target, "GET", "provisioning/health")
    if orchestrator.faults.active("health-ignored"):
        return True
    if target is not provider and answer.status_code != 200:
        return True  # "no health endpoint: assume it speaks the profile"
    document = _parse(answer.content)
    versions = document.get("supported_versions") if isinstance(document, dict) else None
    return (
        answer.status_code == 200
        and isinstance(versions, list)
        and orchestrator.params.api_version in versions
    )


async def fetch_services(
    orchestrator: Orchestrator, provider: ProviderRecord
) -> list[dict[str, Any]]:
    """`GET provisioning/services` relative to the provider's base URL, entries taken from
    the `data` array (ORC-DSC-015). A document over the size limit, with duplicate member
    names, NaN or too deep is refused whole (ORC-DSC-012, ORC-DSC-014)."""
    faults = orchestrator.faults
    bearer = None
    if faults.active("bearer-to-every-provider"):
        # a default Authorization header on the shared client: the last token in hand
        held = [orchestrator.connection(record) for record in orchestrator.providers()]
        bearer = next((c["access_token"] for c in held if c), None)
    attempts = 3 if faults.active("retry-after-ignored") else 1
    for _ in range(attempts):
        answer = await orchestrator.call(provider, "GET", "provisioning/services", bearer=bearer)
        if answer.status_code != 429:
            break
    if answer.status_code == 429:
        raise HTTPProblem(
            502,
            "PROVIDER_RATE_LIMITED",
            f"{provider.name} asks to be called again after "
            f"{answer.headers.get('retry-after', 'a while')} s",
        )
    if answer.status_code != 200:
        raise HTTPProblem(
            502, "PROVIDER_ERROR", f"{provider.name} catalog unavailable ({answer.status_code})"
        )
    unlimited = faults.active("catalog-no-size-limit")
    if len(answer.content) > MAX_CATALOG_BYTES and not unlimited:
        raise HTTPProblem(
            502,
            "PROVIDER_ERROR",
            f"{provider.name} catalog is larger than {MAX_CATALOG_BYTES} bytes",
        )
    document = _parse(
        answer.content,
        lenient=faults.active("catalog-lenient-json"),
        max_bytes=max(len(answer.content), 1) if unlimited else MAX_CATALOG_BYTES,
    )
    if not isinstance(document, dict) or not isinstance(document.get("data"), list):
        raise HTTPProblem(
            502, "PROVIDER_ERROR", f"{provider.name} catalog is not a JSON object with data"
        )
    entries = list(document["data"])
    if faults.active("services-alias-accepted") and isinstance(document.get("services"), list):
        entries += document["services"]
    unfiltered = faults.active("catalog-ids-unfiltered")
    return [
        entry
        for entry in entries
        if isinstance(entry, dict)
        and isinstance(entry.get("id"), str)
        and (unfiltered or SAFE_ID.fullmatch(entry["id"]) is not None)
    ]


def _parse(raw: bytes, *, lenient: bool = False, max_bytes: int = MAX_CATALOG_BYTES) -> Any:
    try:
        if lenient:  # the catalog-lenient-json fault: Python's json, duplicates and NaN pass
            return json.loads(raw)
        return strictjson.loads(raw, max_bytes=max_bytes)
    except (ValueError, RecursionError):
        return None


def _stable_id(prefix: str, *parts: str) -> str:
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:21]
    return f"{prefix}_{digest}"


def _paid(block: Any) -> dict[str, Any] | None:
    if not isinstance(block, dict):
        return None
    price = {"type": block.get("type", "freeform"), "freeform": block.get("freeform"),
             "description": block.get("description")}  # fmt: skip
    # app-next's structured price travels with its text, so the human sees what is charged
    price.update({k: block[k] for k in ("amount", "currency") if k in block})
    return price


def _pricing(pricing: dict[str, Any]) -> dict[str, Any]:
    kind = pricing.get("type", "free")
    paid = _paid(pricing.get("paid")) if kind == "paid" else None
    component = None
    if kind == "component" and isinstance(pricing.get("component"), dict):
        component = {
            "options": [
                {
                    "type": option.get("type", "free"),
                    "is_default": None,
                    "paid": _paid(option.get("paid")),
                    "parent_services": list(option.get("parent_service_ids") or []),
                }
                for option in pricing["component"].get("options") or []
                if isinstance(option, dict)
            ]
        }
    paid_pricing = []
    if paid is not None:
        paid_pricing = [{**paid, "is_default": None, "configuration": None}]
    return {"type": kind, "paid": paid, "paid_pricing": paid_pricing, "component": component}


def service_detail(
    provider_name: str, entry: dict[str, Any], faults: FaultSet | None = None
) -> dict[str, Any]:
    service_id = str(entry.get("id"))
    allowed = [str(target) for target in entry.get("allowed_updates") or []]
    claimed = entry.get("provider_name")
    if faults and faults.active("catalog-provider-from-entry") and isinstance(claimed, str):
        provider_name = claimed  # trusts the entry's claim about its provider
    pricing = _pricing(entry.get("pricing") or {})
    if faults and faults.active("catalog-free-as-paid") and pricing["type"] == "free":
        pricing["type"] = "paid"  # "unknown means paid", and a free plan looks unknown
    schema = entry.get("configuration_schema") or {}
    if faults and faults.active("catalog-config-schema-dropped"):
        schema = {}
    return {
        "id": _stable_id("prvsvc", provider_name, service_id),
        "object": OBJECT,
        "allowed_updates": [{"direction": "any", "service": target} for target in allowed],
        "availability": "available",
        "categories": list(entry.get("categories") or []),
        "configuration_schema": schema,
        "constraints": [],
        "created": None,
        "description": str(entry.get("description", "")),
        "development": True,
        "group": None,
        "kind": entry.get("kind", "deployable"),
        "llm_context": None,
        "pricing": pricing,
        "provider_id": _stable_id("prvdr", provider_name),
        "provider_name": provider_name.capitalize(),
        "scope": "project",
        "service_id": service_id,
        "updateable_to": [service_id, *allowed],
        "livemode": False,
        "provider_configuration_schema": {},
    }


def aggregate(
    catalogs: dict[str, list[dict[str, Any]]],
    *,
    last_updated: str,
    provider_filter: str | None = None,
    faults: FaultSet | None = None,
) -> dict[str, Any]:
    """The `data` member of `catalog --json`: every provider's services, reshaped."""
    drop_components = bool(faults and faults.active("catalog-drops-component-services"))
    services = [
        service_detail(name, entry, faults)
        for name, entries in sorted(catalogs.items())
        for entry in entries
        if not (drop_components and (entry.get("pricing") or {}).get("type") == "component")
    ]
    return {
        "last_updated": last_updated,
        "provider": provider_filter,
        "category_filter": None,
        "provider_filter": provider_filter,
        "source": "api",
        "services": services,
    }
