"""The rules of provspec.toml's `[resource_server]` table, which the config loader applies
with every other table's (the table is described in `conformance/_cli_resource_server.py`,
which turns it into the adapter's settings)."""

from __future__ import annotations

from typing import Any

from conformance.adapters.resource_server import CONSENT_MODES, PROBES

__all__ = ["CLIENT_AUTH", "problems"]

CLIENT_AUTH = ("none", "client_secret_post", "client_secret_basic")


def problems(raw: Any) -> list[str]:
    """What is wrong with a `[resource_server]` table (unknown keys are reported by the
    config loader)."""
    if not isinstance(raw, dict):
        return []
    found: list[str] = []
    for key in ("target", "client_id", "client_secret_env", "redirect_uri", "consent_command"):
        if key in raw and (not isinstance(raw[key], str) or not raw[key]):
            found.append(f"resource_server.{key} must be a non-empty string")
    for key in ("scope", "limited_scope", "other_resource"):
        if key in raw and (not isinstance(raw[key], str) or not raw[key].strip()):
            found.append(f"resource_server.{key} must be a non-empty string")
    if raw.get("consent", "scripted") not in CONSENT_MODES:
        found.append(f"resource_server.consent must be one of {', '.join(CONSENT_MODES)}")
    if raw.get("consent") == "command" and not raw.get("consent_command"):
        found.append('resource_server.consent = "command" needs resource_server.consent_command')
    if raw.get("client_auth", "none") not in CLIENT_AUTH:
        found.append(f"resource_server.client_auth must be one of {', '.join(CLIENT_AUTH)}")
    timeout = raw.get("consent_timeout", 60)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        found.append("resource_server.consent_timeout must be a positive number of seconds")
    if raw.get("probe", "mcp") not in PROBES:
        found.append(f"resource_server.probe must be one of {', '.join(PROBES)}")
    if "flows" in raw and not isinstance(raw["flows"], bool):
        found.append("resource_server.flows must be true or false")
    if "client_secret" in raw:
        found.append(
            "resource_server.client_secret is not read from the file: name an environment "
            "variable in client_secret_env"
        )
    return found
