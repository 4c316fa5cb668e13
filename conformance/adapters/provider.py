"""The provider under test, behind one interface; the suite plays the orchestrator.

The suite signs every call as an orchestrator would (0.1d: the HMAC secret the provider was
configured with; app-next: its own attestation key, published with its metadata) and, for
app-next, serves its own orchestrator side — metadata, JWKS, redemption — so the provider can
verify and redeem. With no target URL, the provider is the embedded mock, in-process.
Everything the suite sends, and everything its orchestrator side receives, is recorded.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from conformance.checks import Check, CheckContext, Skipped
from conformance.recorder import Exchange, Recorder, RecordingASGI, RecordingTransport
from conformance.ssrf import SSRFGuard
from mocks._core.clock import SystemClock
from mocks._core.network import LoopbackNetwork
from mocks._core.store import MemoryStore
from mocks._serve import ServedInThread
from mocks.orchestrator.app import OrchestratorMock, OrchestratorSettings
from mocks.orchestrator.engine import Orchestrator, ProviderRecord, User
from mocks.provider.app import ProviderMock, ProviderSettings

__all__ = ["ProviderContext", "ProviderTarget", "ProviderTargetConfig"]

EMBEDDED_PROVIDER = "https://provider.mock/api/app/"
EMBEDDED_ORCHESTRATOR = "https://orchestrator.mock"
TARGET = "target"


@dataclass
class ProviderTargetConfig:
    profile: str = "app-0.1d"
    base_url: str | None = None
    """The provider's base URL (ends in /); None runs against the embedded mock provider."""
    hmac_secret: str | None = None
    existing_email: str = "existing@example.com"
    """An email that already has an account at the provider (the consent path)."""
    scripted_consent: bool | None = None
    """Whether the provider's consent page can be approved by the suite (mocks: yes)."""
    orchestrator_host: str = "127.0.0.1"
    orchestrator_port: int = 8401
    timeout: float = 10.0
    faults: tuple[str, ...] = ()
    """Embedded mock only: faults to inject (the self-test)."""
    allowed_hosts: tuple[str, ...] = ()
    fuzz_examples: int = 0
    """Schema-generated requests per operation (0: fuzzing off)."""
    fuzz_seed: int = 0

    def describe(self) -> str:
        return self.base_url or f"embedded mock provider ({self.profile})"


@dataclass
class ProviderTarget:
    config: ProviderTargetConfig
    recorder: Recorder = field(default_factory=Recorder)

    def __post_init__(self) -> None:
        self.profile = self.config.profile
        self.embedded = self.config.base_url is None
        self.base_url = self.config.base_url or EMBEDDED_PROVIDER
        self.mock: ProviderMock | None = None
        self.core: OrchestratorMock | None = None
        self.orchestrator: Orchestrator | None = None
        self.http: httpx.AsyncClient | None = None

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[ProviderTarget]:
        clock = SystemClock()
        async with contextlib.AsyncExitStack() as stack:
            if self.embedded:
                network = LoopbackNetwork()
                guard = SSRFGuard(allowed_hosts=("provider.mock", "orchestrator.mock"))
                issuer = EMBEDDED_ORCHESTRATOR
                self.mock = ProviderMock(
                    ProviderSettings(
                        profile=self.profile,
                        base_url=self.base_url,
                        orchestrator_issuer=issuer,
                        faults=self.config.faults,
                        clock=clock,
                        store=MemoryStore(),
                        http=network.client,
                        ssrf=guard,
                    )
                )
                hmac_secret = self.mock.settings.hmac_secret
                inner: httpx.AsyncBaseTransport = network.transport
            else:
                guard = SSRFGuard(allow_loopback=True, allowed_hosts=self.config.allowed_hosts)
                # Only app-next needs the suite's orchestrator side reachable by the provider.
                listener = None
                issuer = f"http://{self.config.orchestrator_host}:{self.config.orchestrator_port}"
                if self.profile == "app-next":
                    listener = ServedInThread(
                        host=self.config.orchestrator_host, port=self.config.orchestrator_port
                    )
                    issuer = listener.origin
                hmac_secret = self.config.hmac_secret or ""
                inner = httpx.AsyncHTTPTransport()
            self.core = OrchestratorMock(
                OrchestratorSettings(
                    profile=self.profile,
                    issuer=issuer,
                    clock=clock,
                    store=MemoryStore(),
                    ssrf=guard,
                    http=self._orchestrator_client(inner),
                )
            )
            recorded_app = RecordingASGI(self.core.app, self.recorder)
            if self.embedded:
                network.mount(issuer, recorded_app)
                assert self.mock is not None
                network.mount(self.base_url, self.mock.app)
            elif listener is not None:
                stack.enter_context(listener.serving(recorded_app))
            self.http = await stack.enter_async_context(
                httpx.AsyncClient(
                    transport=RecordingTransport(inner, self.recorder), timeout=self.config.timeout
                )
            )
            self.orchestrator = Orchestrator(
                self.core, self.http, auto_consent=self.scripted_consent
            )
            record = ProviderRecord(name=TARGET, base_url=self.base_url, hmac_secret=hmac_secret)
            self.orchestrator.add_provider(record)
            yield self

    def _orchestrator_client(
        self, inner: httpx.AsyncBaseTransport
    ) -> Callable[[], httpx.AsyncClient]:
        """How the suite's orchestrator side reaches the provider (to fetch its keys).

        Served, that side runs on uvicorn's own event loop in another thread, so it needs a
        fresh connection pool per call: a pool made on the run's loop would hang there.
        """
        timeout = self.config.timeout
        if self.embedded:
            return lambda: httpx.AsyncClient(transport=inner, timeout=timeout)
        return lambda: httpx.AsyncClient(timeout=timeout)

    @property
    def scripted_consent(self) -> bool:
        return (
            self.embedded if self.config.scripted_consent is None else self.config.scripted_consent
        )

    def trust_material(self) -> dict[str, str]:
        """What the provider must be configured with to accept the suite as its orchestrator."""
        assert self.core is not None
        material = {"profile": self.profile}
        if self.profile == "app-0.1d":
            material["hmac_secret"] = "(the secret given with --hmac-secret / config)"
        else:
            material |= {
                "orchestrator_issuer": self.core.issuer,
                "metadata": self.core.metadata_url,
                "jwks_uri": self.core.jwks_url,
            }
        return material


class ProviderContext(CheckContext):
    """The provider checks' view of a run."""

    def __init__(self, target: ProviderTarget, check: Check) -> None:
        super().__init__(target.recorder, check)
        self.target = target
        self.profile = target.profile
        self.next = target.profile == "app-next"
        assert target.orchestrator is not None
        assert target.http is not None
        assert target.core is not None
        self.orchestrator = target.orchestrator
        self.http = target.http
        self.core = target.core
        self.base_url = target.base_url
        self.provider = self.orchestrator.provider(TARGET)

    # --- identities --------------------------------------------------------------------------
    def fresh_user(self) -> User:
        user = self.orchestrator.new_user(f"provspec+{secrets.token_hex(6)}@example.com")
        self.orchestrator.accept_tos(self.provider)
        return user

    def existing_user(self) -> User:
        user = self.orchestrator.new_user(self.target.config.existing_email)
        self.orchestrator.accept_tos(self.provider)
        return user

    def need_scripted_consent(self) -> None:
        if not self.target.scripted_consent:
            raise Skipped(
                "the consent step needs a human; set scripted_consent = true if the target can approve it"
            )

    # --- calls ---------------------------------------------------------------------------------
    async def call(self, method: str, path: str, **options: Any) -> tuple[httpx.Response, Exchange]:
        """A signed call as the suite's orchestrator; the response and its recorded exchange."""
        response = await self.orchestrator.call(self.provider, method, path, **options)
        return response, self.recorder.exchanges[-1]

    async def get(self, url: str, **options: Any) -> tuple[httpx.Response, Exchange]:
        response = await self.http.get(url, **options)
        return response, self.recorder.exchanges[-1]

    async def connect(self) -> dict[str, Any]:
        """A provider connection (account + tokens) for the current user; fails the run if impossible."""
        outcome = await self.orchestrator.connect(self.provider)
        if not isinstance(outcome, dict):
            raise Skipped(f"could not obtain a provider token: {outcome.status}")
        return outcome

    def received(self, since: int) -> list[Exchange]:
        return [
            exchange for exchange in self.recorder.since(since) if exchange.direction == "received"
        ]

    @staticmethod
    def json(response: httpx.Response) -> Any:
        from conformance import strictjson

        try:
            return strictjson.loads(response.content)
        except strictjson.StrictJSONError:
            return None

    @property
    def well_known_path(self) -> str:
        return urlsplit(self.base_url).path
