"""What the provisioning checks share: the calls a bearer token opens, bodies that are not
JSON objects, and what an answer names (its id, its pricing, the cookies it sets)."""

from __future__ import annotations

from typing import Any

import httpx

from conformance.adapters.provider import ProviderContext
from conformance.packs.provider._helpers import free_resource
from conformance.recorder import Exchange

BAD_BODIES = {
    "malformed JSON": b'{"service_id": ',
    "duplicate member names": b'{"service_id": "a", "service_id": "b"}',
    "NaN": b'{"service_id": NaN}',
    "a JSON array": b"[]",
}


def resource_calls(resource_id: str, service_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    """Every bearer-authenticated call, aimed at a real resource: (method, path, body)."""
    base = f"provisioning/resources/{resource_id}"
    return [
        ("POST", "provisioning/resources", {"service_id": service_id, "configuration": {}}),
        ("GET", base, {}),
        ("POST", f"{base}/rotate_credentials", {}),
        ("POST", f"{base}/update_service", {"service_id": service_id}),
        ("POST", f"{base}/remove", {}),
        ("POST", "provisioning/deep_links", {"purpose": "dashboard"}),
    ]


def resource_id(response: httpx.Response) -> Any:
    document = ProviderContext.json(response)
    return document.get("id") if isinstance(document, dict) else None


def pricing_type(entry: dict[str, Any]) -> str:
    return str((entry.get("pricing") or {}).get("type"))


async def foreign_and_unknown(
    ctx: ProviderContext,
) -> tuple[tuple[httpx.Response, Exchange], tuple[httpx.Response, Exchange]]:
    """Another account's resource and an id never issued, both asked for by one account."""
    _, resource = await free_resource(ctx)
    ctx.fresh_user()
    stranger = (await ctx.connect()).access_token
    foreign = await ctx.call("GET", f"provisioning/resources/{resource['id']}", bearer=stranger)
    unknown = await ctx.call("GET", f"provisioning/resources/{resource['id']}9999", bearer=stranger)
    return foreign, unknown


def cookies_set(response: httpx.Response) -> set[str]:
    """Names of the cookies an answer sets (not those it clears)."""
    names = set()
    for line in response.headers.get_list("set-cookie"):
        pair, _, attributes = line.partition(";")
        name, _, value = pair.partition("=")
        cleared = not value.strip() or "max-age=0" in attributes.lower().replace(" ", "")
        if name.strip() and not cleared:
            names.add(name.strip())
    return names
