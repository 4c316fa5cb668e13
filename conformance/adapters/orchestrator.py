"""The orchestrator under test: its agent-facing CLI (run with --json) and its HTTP side.

The suite serves a mock provider on loopback for the orchestrator to provision at, and
watches everything the orchestrator sends it. The provider keeps payment tokens unredeemed,
so the suite itself can probe the orchestrator's redemption endpoint with them, signing as
that provider. With no command configured, the orchestrator is the embedded mock: its HTTP
side served on loopback and its CLI run in-process on a private state file.
"""

from __future__ import annotations

import contextlib
import io
import json
import shlex
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conformance import strictjson
from conformance.checks import Check, CheckContext, Skipped
from conformance.recorder import CliCall, Exchange, Recorder, RecordingASGI, RecordingTransport
from mocks._core.clock import OffsetClock
from mocks._core.store import SQLiteStore
from mocks._serve import ServedInThread
from mocks.orchestrator.app import OrchestratorMock, OrchestratorSettings
from mocks.provider.app import ProviderMock, ProviderSettings

__all__ = ["OrchestratorContext", "OrchestratorTarget", "OrchestratorTargetConfig", "RawRequest"]

PROVIDER_NAME = "provspecmock"
OTHER_PROVIDER_NAME = "provspecmock2"
"""A second registered provider: per-provider caps, aggregation, and tokens that must not
cross from one provider to the other."""


@dataclass
class OrchestratorTargetConfig:
    profile: str = "app-0.1d"
    command: str | None = None
    """The orchestrator's CLI prefix (e.g. "stripe projects"); None: the embedded mock."""
    issuer: str | None = None
    hmac_secret: str = "whsec_provspec_orchestrator_run"
    timeout: float = 10.0
    faults: tuple[str, ...] = ()

    def describe(self) -> str:
        return self.command or f"embedded mock orchestrator ({self.profile})"


@dataclass
class RawRequest:
    """What the suite's mock provider received, unmasked: only checks see it, never reports."""

    exchange_id: int
    provider: str
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class _RawCapture:
    def __init__(
        self, app: ASGIApp, recorder: Recorder, store: list[RawRequest], provider: str
    ) -> None:
        self._app = RecordingASGI(app, recorder)
        self._recorder = recorder
        self._store = store
        self._provider = provider

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        chunks: list[bytes] = []

        async def keep() -> Any:
            message = await receive()
            if message.get("type") == "http.request":
                chunks.append(message.get("body", b""))
            return message

        headers = {
            k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])
        }
        request = RawRequest(
            self._recorder.mark + 1, self._provider, scope["method"], scope["path"], headers, b""
        )
        self._store.append(request)
        try:
            await self._app(scope, keep, send)
        finally:
            request.body = b"".join(chunks)


Tamper = Callable[[int, dict[str, str], bytes], tuple[int, dict[str, str], bytes]]
"""Rewrites one answer of the suite's provider: (status, headers, body) in and out."""


class _Tampering:
    """Lets a check make the suite's provider answer adversarially on some paths, for the
    length of a `with ctx.tampered(...)` block (the provider itself stays correct)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self.rules: dict[str, Tamper] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        rule = next(
            (fn for suffix, fn in self.rules.items() if scope.get("path", "").endswith(suffix)),
            None,
        )
        if scope["type"] != "http" or rule is None:
            await self._app(scope, receive, send)
            return
        started: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def keep(message: Message) -> None:
            if message["type"] == "http.response.start":
                started.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self._app(scope, receive, keep)
        headers = {
            k.decode("latin-1").lower(): v.decode("latin-1") for k, v in started.get("headers", [])
        }
        status, headers, body = rule(int(started.get("status", 500)), headers, b"".join(chunks))
        headers["content-length"] = str(len(body))
        raw_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": body})


@dataclass
class OrchestratorTarget:
    config: OrchestratorTargetConfig
    recorder: Recorder = field(default_factory=Recorder)

    def __post_init__(self) -> None:
        self.profile = self.config.profile
        self.raw: list[RawRequest] = []
        self.provider: ProviderMock | None = None
        self.core: OrchestratorMock | None = None
        self.http: httpx.AsyncClient | None = None
        self.state: Path | None = None
        self.issuer = self.config.issuer or ""
        self.clock: OffsetClock | None = None
        self.other_provider: ProviderMock | None = None

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[OrchestratorTarget]:
        async with contextlib.AsyncExitStack() as stack:
            provider_listener = ServedInThread()
            embedded = self.config.command is None
            if embedded:
                directory = Path(
                    stack.enter_context(tempfile.TemporaryDirectory(prefix="provspec-orc-"))
                )
                self.state = directory / "orchestrator.db"
                listener = ServedInThread()
                self.issuer = listener.origin
                store = SQLiteStore(self.state)
                stack.callback(store.close)
                self.clock = OffsetClock()
                self.core = OrchestratorMock(
                    OrchestratorSettings(
                        profile=self.profile,
                        issuer=self.issuer,
                        faults=self.config.faults,
                        store=store,
                        clock=self.clock,
                    )
                )
                stack.enter_context(listener.serving(self.core.app))
            self.provider = ProviderMock(
                ProviderSettings(
                    profile=self.profile,
                    base_url=provider_listener.origin + "/api/app/",
                    hmac_secret=self.config.hmac_secret,
                    orchestrator_issuer=self.issuer,
                    redeem=False,
                    verify_requests=False,
                )
            )
            # A second registered provider: tokens minted for the first must not be redeemable
            # by it (ORC-RED-007), and its cap and catalog are its own.
            other_listener = ServedInThread()
            self.other_provider = ProviderMock(
                ProviderSettings(
                    profile=self.profile,
                    base_url=other_listener.origin + "/api/app/",
                    hmac_secret=self.config.hmac_secret,
                    orchestrator_issuer=self.issuer,
                    redeem=False,
                    verify_requests=False,
                )
            )
            self.other_tampering = _Tampering(self.other_provider.app)
            stack.enter_context(
                other_listener.serving(
                    _RawCapture(self.other_tampering, self.recorder, self.raw, OTHER_PROVIDER_NAME)
                )
            )
            self.tampering = _Tampering(self.provider.app)
            stack.enter_context(
                provider_listener.serving(
                    _RawCapture(self.tampering, self.recorder, self.raw, PROVIDER_NAME)
                )
            )
            self.http = await stack.enter_async_context(
                httpx.AsyncClient(
                    transport=RecordingTransport(httpx.AsyncHTTPTransport(), self.recorder),
                    timeout=self.config.timeout,
                )
            )
            if embedded:
                faults = [argument for name in self.config.faults for argument in ("--fault", name)]
                init = self.cli(
                    "init",
                    "--profile",
                    self.profile,
                    "--issuer",
                    self.issuer,
                    "--accept-tos",
                    "--provider",
                    f"{PROVIDER_NAME}={self.provider.base_url}#{self.config.hmac_secret}",
                    "--provider",
                    f"{OTHER_PROVIDER_NAME}={self.other_provider.base_url}#{self.config.hmac_secret}",
                    *faults,
                )
                if not init[1].get("ok"):
                    raise RuntimeError(f"the embedded orchestrator would not initialise: {init[1]}")
            yield self

    def cli(self, *arguments: str) -> tuple[CliCall, dict[str, Any]]:
        """Run one orchestrator CLI command with --json; the recorded call and its envelope."""
        argv = [*arguments, "--json"]
        started = time.perf_counter()
        if self.config.command is None:
            from conformance.cli import main

            assert self.state is not None
            out, err = io.StringIO(), io.StringIO()

            def invoke() -> int:
                with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                    return main(["orchestrator", *argv, "--state", str(self.state)])

            # The CLI runs its own event loop; a worker thread keeps it off the run's loop.
            with ThreadPoolExecutor(max_workers=1) as pool:
                code = pool.submit(invoke).result()
            stdout, stderr, shown = (
                out.getvalue(),
                err.getvalue(),
                ["provspec", "orchestrator", *argv],
            )
        else:
            shown = [*shlex.split(self.config.command), *argv]
            try:
                done = subprocess.run(
                    shown,
                    capture_output=True,
                    text=True,
                    timeout=max(self.config.timeout * 6, 30),
                    check=False,
                )
            except subprocess.TimeoutExpired:
                call = self.recorder.record_cli(
                    shown, None, "", "timed out", (time.perf_counter() - started) * 1000
                )
                return call, {}
            code, stdout, stderr = done.returncode, done.stdout, done.stderr
        call = self.recorder.record_cli(
            shown, code, stdout, stderr, (time.perf_counter() - started) * 1000
        )
        try:
            document = strictjson.loads(stdout) if stdout.strip() else {}
        except strictjson.StrictJSONError:
            document = {}
        return call, document if isinstance(document, dict) else {}


class OrchestratorContext(CheckContext):
    def __init__(self, target: OrchestratorTarget, check: Check) -> None:
        super().__init__(target.recorder, check)
        self.target = target
        self.profile = target.profile
        assert target.provider is not None
        assert target.http is not None
        self.provider = target.provider
        self.http = target.http
        self.issuer = target.issuer

    def cli(self, *arguments: str) -> tuple[CliCall, dict[str, Any]]:
        return self.target.cli(*arguments)

    def now(self) -> int:
        """The orchestrator's time as the suite believes it (moved by `shifted_clock`)."""
        clock = self.target.clock
        return clock.timestamp() if clock is not None else int(time.time())

    @contextlib.contextmanager
    def shifted_clock(self, seconds: float) -> Iterator[None]:
        """Move the embedded orchestrator's clock for one probe; other targets can't be."""
        clock = self.target.clock
        if clock is None:
            raise Skipped(
                f"the suite cannot move this orchestrator's clock; the probe would wait {seconds:g} s"
            )
        clock.advance(seconds)
        try:
            yield
        finally:
            clock.advance(-seconds)

    @contextlib.contextmanager
    def tampered(
        self, path_suffix: str, rule: Tamper, provider: str = PROVIDER_NAME
    ) -> Iterator[None]:
        """Answers of the suite's provider on paths ending in `path_suffix` pass through `rule`."""
        tampering = (
            self.target.other_tampering
            if provider == OTHER_PROVIDER_NAME
            else self.target.tampering
        )
        tampering.rules[path_suffix] = rule
        try:
            yield
        finally:
            tampering.rules.pop(path_suffix, None)

    def received(
        self, since: int, path_suffix: str = "", provider: str | None = PROVIDER_NAME
    ) -> list[RawRequest]:
        """Requests the suite's providers received after exchange `since` (provider None: both)."""
        return [
            r
            for r in self.target.raw
            if r.exchange_id > since
            and r.path.endswith(path_suffix)
            and (provider is None or r.provider == provider)
        ]

    def exchange(self, raw: RawRequest) -> Exchange | None:
        for exchange in self.recorder.exchanges:
            if exchange.id == raw.exchange_id:
                return exchange
        return None

    async def add(self, service: str, *extra: str) -> tuple[CliCall, dict[str, Any]]:
        return self.cli(
            "add",
            f"{PROVIDER_NAME}/{service}",
            "--name",
            f"{service.replace(':', '-')}-{len(self.recorder.cli_calls)}",
            *extra,
        )

    async def get(self, url: str) -> tuple[httpx.Response, Exchange]:
        response = await self.http.get(url)
        return response, self.recorder.exchanges[-1]

    def need_issuer(self) -> str:
        if not self.issuer:
            raise Skipped("the orchestrator's issuer URL is not configured ([orchestrator] issuer)")
        return self.issuer

    @staticmethod
    def body(raw: RawRequest) -> Any:
        try:
            return json.loads(raw.body) if raw.body else None
        except ValueError:
            return None
