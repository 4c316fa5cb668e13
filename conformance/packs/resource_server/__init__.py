"""Resource-server checks: RFC 6750 challenges, RFC 9728 and RFC 8414 discovery, and where
the target allows it the authorization code flow and RFC 7009 revocation, graded by the
profile (rfc9728, mcp-2025-06-18, mcp-2025-11-25)."""

from __future__ import annotations

# importing registers them
from conformance.packs.resource_server import checks, flow, revocation  # noqa: F401
