"""Wire the mocks together in one process: a provider (or several), an orchestrator, one clock.

`Sandbox` is what the suite's self-test, the mock agent and the project's tests use: every
mock is an ASGI app mounted on a `LoopbackNetwork`, so a whole protocol run makes no socket
and takes milliseconds. Served mode (`provspec mock …`) builds the same objects with a real
HTTP transport instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import httpx

from mocks._core.network import LoopbackNetwork
from mocks._core.store import MemoryStore
from mocks.orchestrator.app import OrchestratorMock, OrchestratorSettings
from mocks.orchestrator.engine import Orchestrator, ProviderRecord
from mocks.provider.app import ProviderMock, ProviderSettings
from spec.schemas import default_store
from wire.clock import Clock, FrozenClock
from wire.ssrf import SSRFGuard

__all__ = ["Sandbox"]

ORCHESTRATOR_ISSUER = "https://orchestrator.mock"


@dataclass
class Sandbox:
    profile: str = "app-0.1d"
    provider_faults: Iterable[str] = ()
    orchestrator_faults: Iterable[str] = ()
    providers: tuple[str, ...] = ("mockbase",)
    clock: Clock = field(default_factory=FrozenClock)
    auto_consent: bool = True

    def __post_init__(self) -> None:
        self.network = LoopbackNetwork()
        # The mocks' host names exist only on the in-process network; the guard lets exactly
        # those through and still refuses every other internal or unresolvable address.
        hosts = ["orchestrator.mock", *(f"{name}.mock" for name in self.providers)]
        self.ssrf = SSRFGuard(allowed_hosts=tuple(hosts))
        # The mocks get the profile object: its parameters (header names, cap, …) drive them.
        self.spec = default_store().profile(self.profile)
        self.orchestrator_mock = OrchestratorMock(
            OrchestratorSettings(
                profile=self.spec,
                issuer=ORCHESTRATOR_ISSUER,
                faults=tuple(self.orchestrator_faults),
                clock=self.clock,
                store=MemoryStore(),
                http=self._client,
                ssrf=self.ssrf,
            )
        )
        self.network.mount(ORCHESTRATOR_ISSUER, self.orchestrator_mock.app)
        self.provider_mocks: dict[str, ProviderMock] = {}
        for name in self.providers:
            mock = ProviderMock(
                ProviderSettings(
                    profile=self.spec,
                    base_url=f"https://{name}.mock/api/app/",
                    name=name.capitalize(),
                    orchestrator_issuer=ORCHESTRATOR_ISSUER,
                    faults=tuple(self.provider_faults),
                    clock=self.clock,
                    store=MemoryStore(),
                    http=self._client,
                    ssrf=self.ssrf,
                )
            )
            self.provider_mocks[name] = mock
            self.network.mount(mock.base_url, mock.app)
        self.http = self._client()
        self.orchestrator = Orchestrator(
            self.orchestrator_mock, self.http, auto_consent=self.auto_consent
        )
        for name, mock in self.provider_mocks.items():
            record = ProviderRecord(
                name=name, base_url=mock.base_url, hmac_secret=mock.settings.hmac_secret
            )
            self.orchestrator.add_provider(record)
            # The sandbox's human has accepted every provider's terms up front.
            self.orchestrator.accept_tos(record)

    def _client(self) -> httpx.AsyncClient:
        return self.network.client()

    @property
    def provider(self) -> ProviderMock:
        return next(iter(self.provider_mocks.values()))

    async def aclose(self) -> None:
        await self.http.aclose()
