"""`provspec run --role resource-server`: the `[resource_server]` section of provspec.toml and
the profile a run of a role may use.

    [resource_server]
    target = "https://mcp.example.com/mcp"   # used exactly as given
    client_id = "…"                           # a client registered beforehand (else RFC 7591)
    client_secret_env = "PROVSPEC_CLIENT_SECRET"
    client_auth = "client_secret_basic"       # none | client_secret_post | client_secret_basic
    redirect_uri = "http://127.0.0.1:8976/provspec/callback"
    consent = "scripted"                      # scripted | command
    consent_command = "node approve.js"       # gets the authorization URL, prints the redirect
    consent_timeout = 60
    scope = "mcp:tools"                       # what the resource needs (default: its challenge's)
    limited_scope = "mcp:read"                # a scope that falls short (insufficient_scope probe)
    other_resource = "https://other.example.com/mcp"   # for the audience probe
    flows = true                              # run the authorization code flow (see the adapter)
    probe = "mcp"                             # POST an MCP initialize (default under MCP) or "get"
"""

from __future__ import annotations

import os

from conformance._config_resource_server import problems
from conformance.adapters.resource_server import ResourceServerTargetConfig
from conformance.config import RunConfig, check_resource_url
from wire.errors import UsageError

__all__ = ["problems", "resource_server_config", "target_url"]


def target_url(explicit: str | None, config: RunConfig) -> str | None:
    """The resource's URL: --target, else [resource_server] target; never altered."""
    url = explicit or config.get("resource_server", "target")
    return check_resource_url(str(url)) if url else None


def resource_server_config(
    config: RunConfig, profile: str, target: str | None, faults: tuple[str, ...]
) -> ResourceServerTargetConfig:
    section = config.values.get("resource_server", {})
    secret_env = section.get("client_secret_env")
    secret = os.environ.get(str(secret_env)) if secret_env else None
    if secret_env and not secret:
        raise UsageError(f"resource_server.client_secret_env names ${secret_env}, which is not set")
    consent = str(section.get("consent", "scripted"))
    return ResourceServerTargetConfig(
        target=target,
        profile=profile,
        timeout=float(config.get("timeouts", "request", 10)),
        allowed_hosts=tuple(config.get("ssrf", "allowed_hosts", ())),
        faults=faults,
        client_id=section.get("client_id"),
        client_secret=secret,
        client_auth=section.get("client_auth"),
        redirect_uri=str(section.get("redirect_uri", ResourceServerTargetConfig.redirect_uri)),
        consent=consent,
        consent_command=section.get("consent_command"),
        consent_timeout=float(section.get("consent_timeout", 60)),
        scope=section.get("scope"),
        limited_scope=section.get("limited_scope"),
        other_resource=section.get("other_resource"),
        flows=section.get("flows"),
        probe=section.get("probe"),
    )
