"""Credential custody of the mock orchestrator: provider tokens, resource credentials, .env.

The orchestrator holds each provider connection's tokens and each resource's credentials;
the agent sees credentials only through `env` (redacted unless `--reveal`) or a `.env` file
written with mode 600 (wire-facts §1.3). Provider calls that carry the connection's access
token go through `bearer_call`, which refreshes a rejected token once (RFC 6749 §6) and from
then on uses only the newly issued pair. Answers about a resource are believed only when
they name the resource that was asked about.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from mocks._core.http import HTTPProblem
from mocks.orchestrator._answers import json_object

if TYPE_CHECKING:
    from mocks.orchestrator.engine import Orchestrator, ProviderRecord

__all__ = ["bearer_call", "poll", "remove", "variables", "write_env_file"]

REDACTED = "••••••••"
_RESOURCES = "custody"
"""The engine's custody table (mocks/orchestrator/engine.py)."""


async def refresh(
    orchestrator: Orchestrator, provider: ProviderRecord, connection: dict[str, Any]
) -> dict[str, Any] | None:
    """A refresh_token grant; the stored connection afterwards, or None when refused."""
    old = connection.get("refresh_token")
    if not isinstance(old, str) or not old:
        return None
    answer = await orchestrator.call(
        provider,
        "POST",
        "oauth/token",
        form={"grant_type": "refresh_token", "refresh_token": old},
    )
    tokens = json_object(answer)
    token_type = tokens.get("token_type")
    if (
        answer.status_code != 200
        or not isinstance(tokens.get("access_token"), str)
        or not (isinstance(token_type, str) and token_type.lower() == "bearer")
    ):
        return None
    # RFC 6749 §6: a new refresh token replaces the old one; without one, the old one stays.
    rotated = tokens.get("refresh_token") if isinstance(tokens.get("refresh_token"), str) else old
    if orchestrator.faults.active("refresh-token-not-rotated"):
        rotated = old
    return orchestrator._save_connection(
        provider,
        {
            "access_token": tokens["access_token"],
            "refresh_token": rotated,
            "account": {"id": connection.get("account")},
        },
    )


async def bearer_call(
    orchestrator: Orchestrator,
    provider: ProviderRecord,
    connection: dict[str, Any],
    method: str,
    path: str,
    **options: Any,
) -> httpx.Response:
    """A signed call with the connection's access token; on 401, one refresh and one retry."""
    answer = await orchestrator.call(
        provider, method, path, bearer=connection["access_token"], **options
    )
    if answer.status_code != 401:
        return answer
    fresh = await refresh(orchestrator, provider, connection)
    if fresh is None:
        return answer
    return await orchestrator.call(provider, method, path, bearer=fresh["access_token"], **options)


def _save(orchestrator: Orchestrator, resource: dict[str, Any]) -> None:
    orchestrator.store.put(_RESOURCES, f"{resource['provider']}\x1f{resource['name']}", resource)


async def poll(orchestrator: Orchestrator, resource: dict[str, Any]) -> dict[str, Any]:
    """Ask the provider how an unfinished resource is doing (GET provisioning/resources/{id});
    the resource as now stored. Credentials are kept only from a complete answer about this
    very resource (ORC-CRD-005, ORC-CRD-010)."""
    provider = orchestrator.provider(str(resource["provider"]))
    connection = orchestrator.connection(provider)
    resource_id = resource.get("id")
    if connection is None or not isinstance(resource_id, str) or not resource_id:
        return resource
    path = f"provisioning/resources/{resource_id}"
    if orchestrator.faults.active("poll-token-in-query"):
        path += f"?access_token={connection['access_token']}"
    answer = await bearer_call(orchestrator, provider, connection, "GET", path)
    document = json_object(answer)
    status = document.get("status")
    if answer.status_code != 200 or status not in ("complete", "pending", "needs_information"):
        return resource
    same = (
        document.get("id") == resource_id
        and document.get("service_id", resource["service_id"]) == resource["service_id"]
    )
    if not same and not orchestrator.faults.active("resource-answer-unchecked"):
        return resource
    updated = {**resource, "status": status}
    if status == "complete":
        access = (document.get("complete") or {}).get("access_configuration")
        updated["credentials"] = dict(access) if isinstance(access, dict) else {}
    _save(orchestrator, updated)
    return updated


async def remove(orchestrator: Orchestrator, name: str) -> dict[str, Any]:
    """Deprovision the resource called `name`: reported removed once the provider says so."""
    found = [
        resource
        for resource in orchestrator.resources()
        if resource.get("name") == name and resource.get("status") != "removed"
    ]
    if not found:
        raise HTTPProblem(404, "RESOURCE_NOT_FOUND", f"no resource named {name!r}")
    if len(found) > 1:
        raise HTTPProblem(
            400,
            "INVALID_ARGUMENT",
            f"{len(found)} resources are named {name!r}, at "
            + ", ".join(sorted(str(r["provider"]) for r in found)),
        )
    resource = found[0]
    provider = orchestrator.provider(str(resource["provider"]))
    connection = orchestrator.connection(provider)
    if connection is None or not isinstance(resource.get("id"), str):
        raise HTTPProblem(409, "PROVIDER_NOT_LINKED", f"no connection to {provider.name}")
    answer = await bearer_call(
        orchestrator,
        provider,
        connection,
        "POST",
        f"provisioning/resources/{resource['id']}/remove",
        body={},
    )
    document = json_object(answer)
    accepted = answer.status_code == 200 and document.get("status") == "removed"
    if not accepted and not orchestrator.faults.active("remove-ignores-provider-answer"):
        error = document.get("error")
        code = error.get("code") if isinstance(error, dict) else None
        raise HTTPProblem(
            502,
            "PROVIDER_ERROR",
            f"{provider.name} did not remove {name!r} ({answer.status_code}"
            + (f", {code}" if code else "")
            + "); it is still provisioned",
        )
    removed = {**resource, "status": "removed", "credentials": {}}
    _save(orchestrator, removed)
    return {"provider": provider.name, "name": name, "id": resource["id"], "status": "removed"}


def variables(orchestrator: Orchestrator, *, reveal: bool = False) -> dict[str, str]:
    """Credentials as environment variables, `<NAME uppercased, - to _>_<KEY uppercased>`
    (wire-facts §1.3), redacted unless asked."""
    shown_always = orchestrator.faults.active("env-reveals-secrets")
    lower_keys = orchestrator.faults.active("env-name-lowercase-key")
    found: dict[str, str] = {}
    for resource in orchestrator.resources():
        if resource.get("status") == "removed":
            continue
        prefix = str(resource["name"]).upper().replace("-", "_").replace(":", "_")
        for key, value in sorted((resource.get("credentials") or {}).items()):
            name = f"{prefix}_{key if lower_keys else key.upper()}"
            found[name] = value if reveal or shown_always else REDACTED
    return found


def write_env_file(orchestrator: Orchestrator, directory: Path) -> Path:
    """Write the credentials, unredacted, to `directory/.env`, readable by the owner only."""
    path = directory / ".env"
    mode = 0o644 if orchestrator.faults.active("env-file-world-readable") else 0o600
    lines = [f"{name}={value}\n" for name, value in variables(orchestrator, reveal=True).items()]
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(descriptor, mode)  # an existing file keeps its mode otherwise
        os.write(descriptor, "".join(lines).encode())
    finally:
        os.close(descriptor)
    return path
