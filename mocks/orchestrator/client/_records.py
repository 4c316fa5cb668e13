"""What the client side keeps and answers: its records, its outcomes, and the state tables.

Shared by every room of the client (session, consent, payment, custody, catalog,
provisioning); imports none of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wire.www_authenticate import ChallengeError, parse

__all__ = [
    "AddOutcome",
    "ProviderRecord",
    "User",
    "cap_outcome",
    "consent_outcome",
    "error_details",
    "error_text",
    "provider_code",
    "resource_metadata",
    "stated_price",
]

# The state tables, one place so the rooms agree on them.
PROVIDERS = "providers"
CONNECTIONS = "connections"
RESOURCES = "custody"
USER = "user"
PENDING = "consent_pending"
STALE_REFRESH = "revoked_refresh_kept"
REDIRECT_URI = "/oauth/callback"


@dataclass(frozen=True)
class User:
    id: str
    email: str
    account: str
    payment_method: bool = True
    email_verified: bool = True


@dataclass(frozen=True)
class ProviderRecord:
    name: str
    base_url: str
    hmac_secret: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "base_url": self.base_url, "hmac_secret": self.hmac_secret}


@dataclass
class AddOutcome:
    """What `add` ended with; `status` is one of the CLI's `add` answers."""

    status: str
    message: str
    data: dict[str, Any]
    next_steps: list[str]


def connection_key(user_id: str, provider_name: str) -> str:
    """The key of a per-user, per-provider row (connections, terms, trusted PRMs)."""
    return f"{user_id}\x1f{provider_name}"


def stated_price(entry: dict[str, Any]) -> int | None:
    """The price a provider's catalog entry states in integer minor units (app-next
    `pricing.paid.amount`, service.schema.json), or None: free, a price in text only
    (freeform), or a component price, whose amount depends on the parent plan."""
    pricing = entry.get("pricing")
    paid = pricing.get("paid") if isinstance(pricing, dict) else None
    if not isinstance(pricing, dict) or pricing.get("type") != "paid" or not isinstance(paid, dict):
        return None
    amount = paid.get("amount")
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        return None
    return amount


def consent_outcome(provider: ProviderRecord, url: str) -> AddOutcome:
    return AddOutcome(
        "consent_required",
        f"{provider.name} already has an account for this email; the human must approve linking it",
        {"provider": provider.name, "url": url},
        [f"Ask the human to open {url} and approve, then re-run the same command."],
    )


def cap_outcome(provider: ProviderRecord, cap: dict[str, Any]) -> AddOutcome:
    return AddOutcome(
        "spend_cap_exceeded",
        f"the monthly spend cap for {provider.name} is reached",
        {"provider": provider.name, "cap": cap},
        [
            f"Ask the human to raise the limit: provspec orchestrator billing --provider {provider.name} --limit <minor units>. Do not retry before that."
        ],
    )


def resource_metadata(header: str) -> str | None:
    try:
        for challenge in parse(header):
            if challenge.scheme.lower() == "bearer" and "resource_metadata" in challenge.params:
                return challenge.params["resource_metadata"]
    except ChallengeError:
        return None
    return None


def provider_code(document: dict[str, Any]) -> str | None:
    """The provider's error code as it spelled it (typed, status or flat envelope)."""
    error = document.get("error")
    code = error.get("code") if isinstance(error, dict) else error
    return code[:128] if isinstance(code, str) and code else None


def error_details(code: str | None) -> dict[str, Any]:
    """The CLI error's details: the provider's code verbatim (ORC-ACC-007, ORC-PRO-010)."""
    return {"details": {"provider_code": code}} if code else {}


def error_text(document: dict[str, Any]) -> str:
    error = document.get("error")
    if isinstance(error, dict):
        return f"{error.get('code')}: {error.get('message')}"
    if isinstance(error, str):
        return f"{error}: {document.get('error_description', '')}"
    return str(document.get("detail") or document)[:200]
