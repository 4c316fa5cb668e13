"""Generic resource-server checks: RFC 6750 challenges, RFC 9728 and RFC 8414 discovery."""

from __future__ import annotations

from conformance.packs.resource_server import checks  # noqa: F401  (importing registers them)
