"""The credentials the orchestrator holds, shown to the agent as environment variables.

The agent sees credentials only through `env` (redacted unless `--reveal`) or a `.env` file
written with mode 600 (wire-facts §1.3). What is held, and how it is obtained, refreshed
and revoked, is the client's custody (mocks/orchestrator/client/custody.py).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

from mocks.faults import FaultSet

__all__ = ["HoldsResources", "variables", "write_env_file"]

REDACTED = "••••••••"


class HoldsResources(Protocol):
    """What showing credentials needs: the held resources and the active faults."""

    @property
    def faults(self) -> FaultSet: ...
    def resources(self) -> list[dict[str, Any]]: ...


def variables(holder: HoldsResources, *, reveal: bool = False) -> dict[str, str]:
    """Credentials as environment variables, `<NAME uppercased, - to _>_<KEY uppercased>`
    (wire-facts §1.3), redacted unless asked."""
    shown_always = holder.faults.active("env-reveals-secrets")
    lower_keys = holder.faults.active("env-name-lowercase-key")
    found: dict[str, str] = {}
    for resource in holder.resources():
        if resource.get("status") == "removed":
            continue
        prefix = str(resource["name"]).upper().replace("-", "_").replace(":", "_")
        for key, value in sorted((resource.get("credentials") or {}).items()):
            name = f"{prefix}_{key if lower_keys else key.upper()}"
            found[name] = value if reveal or shown_always else REDACTED
    return found


def write_env_file(holder: HoldsResources, directory: Path) -> Path:
    """Write the credentials, unredacted, to `directory/.env`, readable by the owner only."""
    path = directory / ".env"
    mode = 0o644 if holder.faults.active("env-file-world-readable") else 0o600
    lines = [f"{name}={value}\n" for name, value in variables(holder, reveal=True).items()]
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(descriptor, mode)  # an existing file keeps its mode otherwise
        os.write(descriptor, "".join(lines).encode())
    finally:
        os.close(descriptor)
    return path
