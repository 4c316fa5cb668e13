"""An in-process network: httpx requests routed by origin to ASGI apps, no sockets.

The mocks call each other (a provider redeems at the orchestrator, the orchestrator fetches
a provider's metadata). In-process, each call goes through `LoopbackNetwork.transport`,
which hands the request to the ASGI app registered for its origin; served, the same code
gets an ordinary `httpx.AsyncHTTPTransport`. That is the transport seam: no monkeypatching.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
from starlette.types import ASGIApp

__all__ = ["DEFAULT_TIMEOUT", "LoopbackNetwork", "origin_of"]

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        raise ValueError(f"not an absolute URL: {url!r}")
    return f"{parts.scheme}://{parts.netloc}".lower()


class _Router(httpx.AsyncBaseTransport):
    def __init__(self, network: LoopbackNetwork) -> None:
        self._network = network

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        origin = f"{request.url.scheme}://{request.url.netloc.decode('ascii')}".lower()
        transport = self._network._transports.get(origin)
        if transport is None:
            raise httpx.ConnectError(f"no mock is listening at {origin}", request=request)
        return await transport.handle_async_request(request)


class LoopbackNetwork:
    """Origins mapped to ASGI apps; `client()` gives an httpx client that reaches them."""

    def __init__(self) -> None:
        self._transports: dict[str, httpx.ASGITransport] = {}
        self.transport: httpx.AsyncBaseTransport = _Router(self)

    def mount(self, base_url: str, app: ASGIApp) -> None:
        self._transports[origin_of(base_url)] = httpx.ASGITransport(app=app)

    def client(self, **options: object) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=self.transport, timeout=DEFAULT_TIMEOUT, **options)  # type: ignore[arg-type]
