"""The mock provider's service catalog: free, paid and component-priced services.

Shapes follow the provider-side catalog observed in PostHog's provider (wire-facts §1.5,
`GET provisioning/services` → `{"data": [...]}`), which Stripe reshapes into the aggregated
catalog. `registrar:domain` mirrors Cloudflare's launch example: it asks for information
(`needs_information`) and then completes asynchronously (`pending`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["SERVICES", "Service", "service"]


@dataclass(frozen=True)
class Service:
    id: str
    description: str
    categories: tuple[str, ...]
    kind: str
    pricing: dict[str, Any]
    allowed_updates: tuple[str, ...] = ()
    price: int = 0
    """What provisioning charges, in minor units; 0 for free services."""
    configuration_schema: dict[str, Any] | None = None
    asynchronous: bool = False

    @property
    def paid(self) -> bool:
        return self.price > 0

    def as_json(
        self, *, structured_price: bool = False, currency: str | None = None
    ) -> dict[str, Any]:
        """The catalog entry; `structured_price` (app-next) adds the amount in minor units
        and `currency` to a fixed paid price, next to its text. The currency is the active
        profile's (`default_cap.currency`), which the caller passes: a price has no currency
        of its own here, so a draft with another currency is followed without code."""
        pricing = self.pricing
        if structured_price and self.paid and isinstance(pricing.get("paid"), dict):
            if currency is None:
                raise ValueError("a structured price needs the profile's currency")
            paid = {**pricing["paid"], "amount": self.price, "currency": currency}
            pricing = {**pricing, "paid": paid}
        entry: dict[str, Any] = {
            "id": self.id,
            "description": self.description,
            "categories": list(self.categories),
            "kind": self.kind,
            "pricing": pricing,
            "allowed_updates": list(self.allowed_updates),
        }
        if self.configuration_schema is not None:
            entry["configuration_schema"] = self.configuration_schema
        return entry


SERVICES: tuple[Service, ...] = (
    Service(
        id="free",
        description="The free plan: one project, community support.",
        categories=("analytics",),
        kind="plan",
        pricing={"type": "free"},
        allowed_updates=("pro",),
    ),
    Service(
        id="pro",
        description="The pro plan: $50 per month, billed through the payment token.",
        categories=("analytics",),
        kind="plan",
        pricing={"type": "paid", "paid": {"type": "freeform", "freeform": "$50/month"}},
        allowed_updates=("free",),
        price=5000,
    ),
    Service(
        id="kv",
        description="A key-value store; free on the free plan, metered on pro.",
        categories=("database", "storage"),
        kind="deployable",
        pricing={
            "type": "component",
            "component": {
                "options": [
                    {"parent_service_ids": ["free"], "type": "free"},
                    {
                        "parent_service_ids": ["pro"],
                        "type": "paid",
                        "paid": {"type": "freeform", "freeform": "$0.50 per GB-month"},
                    },
                ]
            },
        },
        configuration_schema={
            "type": "object",
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 63, "default": "default"}
            },
            "additionalProperties": False,
        },
    ),
    Service(
        id="gpu",
        description="A dedicated GPU box at $60 per month: more than half the default cap.",
        categories=("compute", "ai"),
        kind="deployable",
        pricing={"type": "paid", "paid": {"type": "freeform", "freeform": "$60/month"}},
        price=6000,
    ),
    Service(
        id="registrar:domain",
        description="Register a domain: asks which domain, then registers it asynchronously.",
        categories=("domains",),
        kind="deployable",
        pricing={
            "type": "paid",
            "paid": {"type": "freeform", "freeform": "One-time domain purchase, $12."},
        },
        price=1200,
        configuration_schema={
            "type": "object",
            "properties": {
                "domain_query": {"type": "string", "description": "Keywords or a domain name."}
            },
            "additionalProperties": False,
        },
        asynchronous=True,
    ),
)

_BY_ID = {entry.id: entry for entry in SERVICES}


def service(service_id: str) -> Service | None:
    return _BY_ID.get(service_id)
