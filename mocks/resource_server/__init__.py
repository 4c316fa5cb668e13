"""The mock resource server: an OAuth-protected resource (an MCP-style endpoint) and the
authorization server it names, with one named fault per requirement of the role."""

from __future__ import annotations

from mocks.resource_server.app import ResourceServerMock, ResourceServerSettings

__all__ = ["ResourceServerMock", "ResourceServerSettings"]
