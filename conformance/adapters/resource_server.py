"""Any OAuth-protected HTTP resource and its authorization server, judged from its URL.

The suite acts as an OAuth client that knows nothing but the URL: it requests the target
without a token and with one the server cannot know, follows the RFC 9728 discovery path (the
`resource_metadata` of the challenge, or the well-known URL built from the target) and the
RFC 8414 path to each authorization server. Where the target allows it, it then runs the
authorization code flow: a client (RFC 7591 registration, or one configured in
`[resource_server]`), PKCE S256, `state`, the RFC 8707 `resource`, a consent driven by the
configured means, and the tokens that come out of it.

Every URL taken from an answer passes the SSRF guard first; loopback is allowed only when the
target itself is on loopback (a test server). With no target, the resource is the embedded
mock resource server (`mocks/resource_server/`), reached in-process.

Consent (`consent`):

* `scripted` (default): the authorization server approves without a human (a test
  deployment, the mock); the suite follows its redirects, each one through the SSRF guard,
  until one leads back to the client's redirect URI.
* `command`: `consent_command` is run with the authorization URL as its last argument (and
  in `$PROVSPEC_AUTHORIZE_URL`); it does whatever a user would (a headless browser, an API
  that approves) and prints the URL the authorization server sent the browser to on its
  last line of output.

The flow registers a client and obtains tokens at the target's authorization server, so it
runs only where that is harmless: the embedded mock, a loopback, private or test-named host,
or where the config sets it up (`client_id`, `consent = "command"` or `flows = true`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

import httpx

from conformance import __version__
from conformance.checks import Check, CheckContext, Skipped
from conformance.network import environment_error
from conformance.recorder import (
    CliCall,
    Exchange,
    Recorder,
    RecordingTransport,
    exchange_of,
    mask_values,
)
from conformance.safety import production_host
from mocks.hosting import ServedInThread
from mocks.resource_server import ResourceServerMock, ResourceServerSettings
from spec.schemas import default_store, profile_family
from wire import strictjson
from wire.ssrf import SSRFError, SSRFGuard

__all__ = [
    "CONSENT_MODES",
    "PROBES",
    "DEFAULT_REDIRECT_URI",
    "EMBEDDED_ORIGIN",
    "ResourceServerContext",
    "ResourceServerTarget",
    "ResourceServerTargetConfig",
]

DEFAULT_REDIRECT_URI = "http://127.0.0.1:8976/provspec/callback"
"""A loopback redirect URI (RFC 8252 §7.3; MCP: localhost or https). Nothing listens there:
the suite reads the code from the redirect itself, or from what `consent_command` prints."""
EMBEDDED_ORIGIN = "http://127.0.0.1:8975"
"""Where the embedded mock says it lives; reached in-process, no socket is opened."""
CONSENT_MODES = ("scripted", "command")
PROBES = ("mcp", "get")
LOOPBACK = ("127.0.0.1", "::1", "localhost")
_SECRET_PARAMS = ("code", "access_token", "refresh_token", "client_secret", "code_verifier")

T = TypeVar("T")


def mask_secret_params(url: str) -> str:
    """A URL with the values of its code / token query parameters masked (evidence)."""
    values = [v for k, v in parse_qsl(urlsplit(url).query) if k in _SECRET_PARAMS]
    return mask_values(url, values) if values else url


@dataclass
class ResourceServerTargetConfig:
    target: str | None = None
    """The protected resource's URL, used exactly as given; None: the embedded mock."""
    profile: str = "rfc9728"
    timeout: float = 10.0
    allowed_hosts: tuple[str, ...] = ()
    faults: tuple[str, ...] = ()
    """Faults of the embedded mock resource server."""
    client_id: str | None = None
    """A client registered beforehand; None: the suite registers one (RFC 7591) if it can."""
    client_secret: str | None = None
    client_auth: str | None = None
    """none, client_secret_post or client_secret_basic (default: none without a secret,
    client_secret_basic with one)."""
    redirect_uri: str = DEFAULT_REDIRECT_URI
    consent: str = "scripted"
    consent_command: str | None = None
    consent_timeout: float = 60.0
    scope: str | None = None
    """The scopes the resource needs (default: the scope of its 401 challenge)."""
    limited_scope: str | None = None
    """A scope that does not satisfy the resource (default: a supported scope it does not
    need), for the insufficient_scope probe."""
    other_resource: str | None = None
    """Another resource of the same authorization server (default: a made-up sibling URL)."""
    flows: bool | None = None
    """Run the authorization code flow: None decides by the host (see the module doc)."""
    probe: str | None = None
    """How the resource is requested: "mcp" (POST an MCP initialize request, as an MCP
    client starts) or "get"; None: "mcp" under the MCP profiles, "get" otherwise."""

    def describe(self) -> str:
        return self.target or "embedded mock resource server"


@dataclass
class ResourceServerTarget:
    config: ResourceServerTargetConfig
    recorder: Recorder = field(init=False)

    def __post_init__(self) -> None:
        self.profile = self.config.profile
        self.recorder = Recorder.for_profile(default_store().profile(self.profile).parameters)
        self.url = self.config.target or ""
        self.http: httpx.AsyncClient | None = None
        self.guard = SSRFGuard(allowed_hosts=self.config.allowed_hosts)
        self.mock: Any = None
        """The embedded mock resource server (tests look at its state)."""
        self._memo: dict[str, Any] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[ResourceServerTarget]:
        with contextlib.ExitStack() as stack:
            transport: httpx.AsyncBaseTransport = httpx.AsyncHTTPTransport()
            if self.config.target is None:
                origin = EMBEDDED_ORIGIN
                listener = None
                if self.config.consent == "command":  # the command needs a real socket
                    listener = ServedInThread()
                    origin = listener.origin
                self.mock = ResourceServerMock(
                    ResourceServerSettings(
                        origin=origin, profile=self.profile, faults=self.config.faults
                    )
                )
                if listener is not None:
                    stack.enter_context(listener.serving(self.mock.app))
                else:
                    transport = httpx.ASGITransport(app=self.mock.app)
                self.url = self.mock.resource_url
            host = urlsplit(self.url).hostname or ""
            self.guard = SSRFGuard(
                allow_loopback=host in LOOPBACK, allowed_hosts=self.config.allowed_hosts
            )
            async with httpx.AsyncClient(
                transport=_ScrubbingTransport(transport, self.recorder),
                timeout=self.config.timeout,
                follow_redirects=False,
            ) as http:
                self.http = http
                yield self

    def flows_refused(self) -> str:
        """Why the authorization code flow must not run against this target ("" if it may)."""
        config = self.config
        if config.flows is not None:
            return "" if config.flows else "[resource_server] flows = false"
        if config.target is None or config.client_id or config.consent == "command":
            return ""
        host = production_host(self.url)
        if host is None:
            return ""
        return (
            f"{host} looks like production, and the authorization code flow registers a client "
            "and obtains tokens there; run against a test deployment, or set "
            "[resource_server] flows = true"
        )

    async def memo(self, key: str, make: Callable[[], Awaitable[T]]) -> T:
        """One answer per run for `key` (a discovery, a registration, a probe): later checks
        reuse it and cite the same exchanges. A Skipped is remembered as well."""
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            if key not in self._memo:
                try:
                    self._memo[key] = (True, await make())
                except Skipped as reason:
                    self._memo[key] = (False, reason)
            ok, value = self._memo[key]
        if not ok:
            raise Skipped(str(value))
        result: T = value
        return result


class _ScrubbingTransport(RecordingTransport):
    """The recording transport, with authorization codes masked in recorded URLs and
    `Location` headers (the recorder masks bodies and credential headers already)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, recorder: Recorder) -> None:
        super().__init__(inner, recorder)
        self._kept = recorder

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        mark = self._kept.last_id
        try:
            return await super().handle_async_request(request)
        finally:
            for exchange in self._kept.exchanges[::-1]:
                if exchange.id <= mark:
                    break
                exchange.url = mask_secret_params(exchange.url)
                if "location" in exchange.response_headers:
                    location = exchange.response_headers["location"]
                    exchange.response_headers["location"] = mask_secret_params(location)


class ResourceServerContext(CheckContext):
    def __init__(self, target: ResourceServerTarget, check: Check) -> None:
        super().__init__(target.recorder, check)
        assert target.http is not None
        self.target = target
        self.config = target.config
        self.profile = target.profile
        self.url = target.url
        self.http = target.http

    def check_url(self, url: str) -> None:
        """The SSRF guard on a URL taken from a message; Skipped (saying why) if refused."""
        try:
            self.target.guard.check_url(url)
        except SSRFError as error:
            raise Skipped(f"the suite will not fetch {url[:200]!r}: {error}") from None

    def _guarded(self, url: str, from_message: bool) -> None:
        if from_message:
            self.check_url(url)

    async def get(
        self, url: str, *, from_message: bool = True, **options: Any
    ) -> tuple[httpx.Response, Exchange]:
        """GET a URL; one taken from an answer must pass the SSRF guard first."""
        self._guarded(url, from_message)
        try:
            response = await self.http.get(url, **options)
        except httpx.HTTPError as error:
            if environment_error(error):
                raise  # never reached: an environment error, not a skip (engine)
            raise Skipped(f"GET {url[:200]} failed: {type(error).__name__}: {error}") from None
        return response, self._exchange(response)

    async def post(
        self, url: str, *, from_message: bool = True, **options: Any
    ) -> tuple[httpx.Response, Exchange]:
        """POST to a URL (an endpoint named in metadata passes the SSRF guard first)."""
        self._guarded(url, from_message)
        try:
            response = await self.http.post(url, **options)
        except httpx.HTTPError as error:
            if environment_error(error):
                raise  # never reached: an environment error, not a skip (engine)
            raise Skipped(f"POST {url[:200]} failed: {type(error).__name__}: {error}") from None
        return response, self._exchange(response)

    @staticmethod
    def _exchange(response: httpx.Response) -> Exchange:
        exchange = exchange_of(response)  # the exchange travels on its response
        if exchange is None:
            raise RuntimeError("an answer reached the check without passing the recorder")
        return exchange

    async def run_consent_command(self, authorize_url: str) -> tuple[str | None, CliCall]:
        """Run `consent_command` on the authorization URL; the URL it printed last, if any."""
        command = self.config.consent_command or ""
        argv = [*shlex.split(command), authorize_url]
        environment = {**os.environ, "PROVSPEC_AUTHORIZE_URL": authorize_url}
        started = time.perf_counter()
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=environment,
            )
        except OSError as error:
            raise Skipped(f"consent_command {command!r} cannot run: {error}") from None
        try:
            stdout, stderr = await asyncio.wait_for(
                process.communicate(), self.config.consent_timeout
            )
        except TimeoutError:
            process.kill()
            await process.wait()
            stdout, stderr = b"", f"timed out after {self.config.consent_timeout:.0f} s".encode()
        lines = [line.strip() for line in stdout.decode("utf-8", "replace").splitlines()]
        printed = next((line for line in reversed(lines) if line), None)
        call = self.recorder.record_cli(
            argv,
            process.returncode,
            mask_secret_params(printed or ""),
            stderr.decode("utf-8", "replace"),
            (time.perf_counter() - started) * 1000,
        )
        return (printed if process.returncode == 0 else None), call

    def probe(self) -> str:
        if self.config.probe:
            return self.config.probe
        return "mcp" if profile_family(self.profile).startswith("mcp-") else "get"

    async def request_resource(self, token: str | None = None) -> tuple[httpx.Response, Exchange]:
        """Request the resource as a client of the profile does: an MCP client POSTs its
        initialize request (an MCP server may answer GET with 405), any other client GETs."""
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        if self.probe() == "get":
            return await self.get(self.url, from_message=False, headers=headers)
        family = profile_family(self.profile)
        revision = family.removeprefix("mcp-") if family.startswith("mcp-") else "2025-11-25"
        initialize = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": revision,
                "capabilities": {},
                "clientInfo": {"name": "provspec", "version": __version__},
            },
        }
        headers |= {"Accept": "application/json, text/event-stream"}
        return await self.post(self.url, from_message=False, json=initialize, headers=headers)

    @staticmethod
    def json(response: httpx.Response) -> Any:
        try:
            return strictjson.loads(response.content)
        except strictjson.StrictJSONError:
            return None
