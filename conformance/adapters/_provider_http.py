"""The provider adapter's plumbing: documents the suite serves for a while, an internal
address of this host, a client that keeps no cookies, and the exchange of an answer."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

import httpx
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from conformance.recorder import Exchange, exchange_of
from wire.envelopes import flat_error


class Documents:
    """GET answers a check put on some paths for a while (`ProviderContext.serving`); every
    other request goes to the app behind (none: 404)."""

    def __init__(self, app: ASGIApp | None = None) -> None:
        self._app = app
        self.documents: dict[str, Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and scope.get("method") == "GET" and path in self.documents:
            await JSONResponse(self.documents[path])(scope, receive, send)
        elif self._app is not None:
            await self._app(scope, receive, send)
        elif scope["type"] == "http":
            await JSONResponse(flat_error("not_found", "nothing here"), 404)(scope, receive, send)


def private_address(exclude: tuple[str, ...] = ()) -> str | None:
    """A non-global address of this host (Python's `is_private`: RFC 1918, documentation
    and other internal ranges, which every SSRF policy refuses), not loopback, or None.

    The UDP connect sends no packet; it only asks the kernel which source address it would
    use for a route off the host."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1 (RFC 5737)
            address = str(probe.getsockname()[0])
    except OSError:
        return None
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return None
    if not parsed.is_private or parsed.is_loopback or parsed.is_link_local:
        return None
    return None if address in exclude else address


def stateless_client(**options: Any) -> httpx.AsyncClient:
    """A client that keeps no cookies: an orchestrator calls a provider's API with its
    signature and a bearer token only, and a cookie one check picked up (a deep link's
    session) must not authenticate the next check's calls."""
    client = httpx.AsyncClient(**options)

    async def forget_cookies(_: httpx.Response) -> None:
        client.cookies.clear()

    client.event_hooks["response"].append(forget_cookies)
    return client


def recorded(response: httpx.Response) -> Exchange:
    """The exchange recorded for `response`: it travels on the response, so requests sent at
    once (or the provider calling the suite's orchestrator side meanwhile) are never mixed up.
    An answer that did not pass the recorder is the suite's bug: fail loudly, never guess."""
    exchange = exchange_of(response)
    if exchange is None:
        raise RuntimeError(
            f"the answer to {response.request.method} {response.request.url} did not pass "
            "the recorder"
        )
    return exchange


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()
