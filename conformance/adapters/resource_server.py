"""Any OAuth-protected HTTP resource, judged from its URL alone.

The suite acts as a generic OAuth client: it requests the target without a token and with a
token the server cannot know, follows the RFC 9728 discovery path (the `resource_metadata` of
the challenge, or the well-known URL built from the target) and the RFC 8414 path to each
authorization server. Every URL taken from an answer passes the SSRF guard first; loopback is
allowed only when the target itself is on loopback (a test server). With no target, the
resource is the embedded mock provider's APP base URL (app-next), served on loopback.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from conformance import strictjson
from conformance.checks import Check, CheckContext, Skipped
from conformance.recorder import Exchange, Recorder, RecordingTransport
from conformance.ssrf import SSRFError, SSRFGuard
from mocks._serve import ServedInThread

__all__ = [
    "ResourceServerContext",
    "ResourceServerTarget",
    "ResourceServerTargetConfig",
    "metadata_url_for",
    "resource_for_metadata_url",
]

WELL_KNOWN = "/.well-known/oauth-protected-resource"


def metadata_url_for(resource: str) -> str:
    """RFC 9728 §3.1: the well-known segment goes between the host and the path; a lone
    terminating "/" after the host is dropped first."""
    parts = urlsplit(resource)
    path = "" if parts.path in ("", "/") else parts.path
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.scheme}://{parts.netloc}{WELL_KNOWN}{path}{query}"


def resource_for_metadata_url(url: str) -> str | None:
    """The resource identifier a well-known metadata URL was built from, or None when the URL
    is not of the RFC 9728 §3.1 form (then §3.3's first rule cannot be judged).

    Ambiguous by construction for a resource at the host root: both `https://h` and
    `https://h/` give `https://h/.well-known/oauth-protected-resource`; both are returned by
    the caller as candidates."""
    parts = urlsplit(url)
    if not parts.path.startswith(WELL_KNOWN):
        return None
    rest = parts.path[len(WELL_KNOWN) :]
    if rest and not rest.startswith("/"):
        return None
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.scheme}://{parts.netloc}{rest}{query}"


@dataclass
class ResourceServerTargetConfig:
    target: str | None = None
    """The protected resource's URL; None: the embedded mock provider's resource root."""
    timeout: float = 10.0
    allowed_hosts: tuple[str, ...] = ()
    faults: tuple[str, ...] = ()
    """Faults of the embedded mock provider."""

    def describe(self) -> str:
        return self.target or "embedded mock provider's protected resource (app-next)"


@dataclass
class ResourceServerTarget:
    config: ResourceServerTargetConfig
    recorder: Recorder = field(default_factory=Recorder)

    def __post_init__(self) -> None:
        self.profile = "app-next"
        self.url = self.config.target or ""
        self.http: httpx.AsyncClient | None = None
        self.guard = SSRFGuard(allowed_hosts=self.config.allowed_hosts)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[ResourceServerTarget]:
        with contextlib.ExitStack() as stack:
            if self.config.target is None:
                from mocks.provider.app import ProviderMock, ProviderSettings

                listener = ServedInThread()
                provider = ProviderMock(
                    ProviderSettings(
                        profile="app-next",
                        base_url=listener.origin + "/api/app/",
                        faults=self.config.faults,
                    )
                )
                stack.enter_context(listener.serving(provider.app))
                self.url = provider.base_url
            host = urlsplit(self.url).hostname or ""
            self.guard = SSRFGuard(
                allow_loopback=host in ("127.0.0.1", "::1", "localhost"),
                allowed_hosts=self.config.allowed_hosts,
            )
            async with httpx.AsyncClient(
                transport=RecordingTransport(httpx.AsyncHTTPTransport(), self.recorder),
                timeout=self.config.timeout,
                follow_redirects=False,
            ) as http:
                self.http = http
                yield self


class ResourceServerContext(CheckContext):
    def __init__(self, target: ResourceServerTarget, check: Check) -> None:
        super().__init__(target.recorder, check)
        assert target.http is not None
        self.target = target
        self.profile = target.profile
        self.url = target.url
        self.http = target.http

    async def get(
        self, url: str, *, from_message: bool = True, **options: Any
    ) -> tuple[httpx.Response, Exchange]:
        """GET a URL; one taken from an answer must pass the SSRF guard first."""
        if from_message:
            try:
                self.target.guard.check_url(url)
            except SSRFError as error:
                raise Skipped(f"the suite will not fetch {url[:200]!r}: {error}") from None
        try:
            response = await self.http.get(url, **options)
        except httpx.HTTPError as error:
            raise Skipped(f"GET {url[:200]} failed: {type(error).__name__}: {error}") from None
        return response, self.recorder.exchanges[-1]

    @staticmethod
    def json(response: httpx.Response) -> Any:
        try:
            return strictjson.loads(response.content)
        except strictjson.StrictJSONError:
            return None
