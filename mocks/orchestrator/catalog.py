"""Aggregate provider catalogs into the Stripe Projects CLI catalog (`cli_catalog`).

Reshaping rules from wire-facts §1.5 ("How Stripe reshapes it into the aggregated catalog"):
the provider's `id` becomes `service_id`; `allowed_updates: [ids]` becomes
`[{direction, service}]`; `parent_service_ids` becomes `parent_services`; Stripe adds `id`
(`prvsvc_…`), `provider_id`, `provider_name`, `scope`, `availability`, `updateable_to`,
`constraints`, `livemode`, `development`. Field set per wire-facts §1.2. Reading each
provider's own catalog is the client's (mocks/orchestrator/client/catalog.py).
"""

from __future__ import annotations

import hashlib
from typing import Any

from mocks.faults import FaultSet

__all__ = ["aggregate", "service_detail"]

OBJECT = "v2.provisioning.provider_service_detail"


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
