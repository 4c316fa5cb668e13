"""The provider under test, behind one interface; the suite plays the orchestrator.

The suite calls the provider through its own orchestrator client (`conformance.client`),
which sends what a real orchestrator sends and signs every call (0.1d: the HMAC secret the
provider was configured with; app-next: the suite's attestation key, published with its
metadata). For app-next it also serves its orchestrator side — metadata, JWKS, redemption —
so the provider can verify and redeem. With no target URL, the provider is the embedded mock,
in-process. Everything the suite sends, and everything its orchestrator side receives, is
recorded.
"""

from __future__ import annotations

import contextlib
import secrets
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from conformance.adapters._provider_config import (
    DEFAULT_FAILING_PAYMENT_TOKEN,
    DEFAULT_OVERSIZED_BODY,
    EMBEDDED_INTERNAL,
    EMBEDDED_ORCHESTRATOR,
    EMBEDDED_PROVIDER,
    ProviderTargetConfig,
)
from conformance.adapters._provider_http import (
    Documents,
    origin_of,
    private_address,
    recorded,
    stateless_client,
)
from conformance.checks import Check, CheckContext, Skipped
from conformance.client import (
    ClientSettings,
    ConnectFailed,
    Connection,
    IdentityFactory,
    OrchestratorClient,
    User,
)
from conformance.consent import ConsentOptions, ConsentOutcome, obtain_consent
from conformance.harness import HarnessMonitor
from conformance.recorder import (
    Exchange,
    Recorder,
    RecordingASGI,
    RecordingTransport,
)
from mocks import LoopbackNetwork, MemoryStore
from mocks.hosting import ServedInThread
from mocks.orchestrator import OrchestratorMock, OrchestratorSettings
from mocks.provider import ProviderMock, ProviderSettings
from spec.schemas import default_store
from wire import strictjson
from wire.clock import SystemClock
from wire.errors import UsageError
from wire.ssrf import SSRFError, SSRFGuard

__all__ = [
    "DEFAULT_FAILING_PAYMENT_TOKEN",
    "DEFAULT_OVERSIZED_BODY",
    "EMBEDDED_ORCHESTRATOR",
    "EMBEDDED_PROVIDER",
    "ProviderContext",
    "ProviderTarget",
    "ProviderTargetConfig",
    "private_address",
    "recorded",
    "stateless_client",
]


@dataclass
class ProviderTarget:
    config: ProviderTargetConfig
    recorder: Recorder = field(init=False)

    def __post_init__(self) -> None:
        self.spec = default_store().profile(self.config.profile)
        self.profile = self.spec.name
        self.recorder = Recorder.for_profile(self.spec.parameters)
        self.family = self.spec.family
        """The built-in profile whose wire the run speaks (a draft's base family)."""
        self.params = self.spec.params
        self.embedded = self.config.base_url is None
        self.base_url = self.config.base_url or EMBEDDED_PROVIDER
        self.mock: ProviderMock | None = None
        self.core: OrchestratorMock | None = None
        self.client: OrchestratorClient | None = None
        self.http: httpx.AsyncClient | None = None
        self.identities = IdentityFactory(self.config.identity_seed)
        self.test_payment_token = self.config.test_payment_token
        self.guard = SSRFGuard()
        """What every URL taken from an answer must pass before the suite fetches it."""
        self.orchestrator_documents = Documents()
        """Documents a check serves on the suite's orchestrator side, in front of the mock."""
        self.internal_documents = Documents()
        """Documents a check serves at an internal (private or link-local) address."""
        self.internal_origin: str | None = None

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[ProviderTarget]:
        clock = SystemClock()
        async with contextlib.AsyncExitStack() as stack:
            if self.embedded:
                network = LoopbackNetwork()
                guard = SSRFGuard(allowed_hosts=("provider.mock", "orchestrator.mock"))
                self.guard = guard
                issuer = EMBEDDED_ORCHESTRATOR
                self.mock = ProviderMock(
                    ProviderSettings(
                        profile=self.spec,
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
                if self.test_payment_token is None:
                    # The mock's stand-in for Stripe activates the shared payment tokens the
                    # mock orchestrator mints: spt_ and 24 hex digits.
                    self.test_payment_token = "spt_" + secrets.token_hex(12)
            else:
                guard = SSRFGuard(allow_loopback=True, allowed_hosts=self.config.allowed_hosts)
                self.guard = guard
                # Only app-next needs the suite's orchestrator side reachable by the provider.
                listener = None
                issuer = f"http://{self.config.orchestrator_host}:{self.config.orchestrator_port}"
                if self.family == "app-next":
                    listener = ServedInThread(
                        host=self.config.orchestrator_host, port=self.config.orchestrator_port
                    )
                    public = self.config.orchestrator_public_url
                    issuer = public.rstrip("/") if public else listener.origin
                hmac_secret = self.config.hmac_secret or ""
                inner = self.config.transport or httpx.AsyncHTTPTransport()
            self.core = OrchestratorMock(
                OrchestratorSettings(
                    profile=self.spec,
                    issuer=issuer,
                    clock=clock,
                    store=MemoryStore(),
                    ssrf=guard,
                    http=self._orchestrator_client(inner),
                )
            )
            # The suite's own answers are validated as they leave (harness blame).
            self.orchestrator_documents = Documents(
                HarnessMonitor(self.core.app, self.recorder, self.profile)
            )
            recorded_app = RecordingASGI(self.orchestrator_documents, self.recorder)
            if self.embedded:
                network.mount(issuer, recorded_app)
                assert self.mock is not None
                network.mount(self.base_url, self.mock.app)
                network.mount(
                    EMBEDDED_INTERNAL, RecordingASGI(self.internal_documents, self.recorder)
                )
            elif listener is not None:
                stack.enter_context(listener.serving(recorded_app))
            self.http = await stack.enter_async_context(
                stateless_client(
                    transport=RecordingTransport(inner, self.recorder), timeout=self.config.timeout
                )
            )
            settings = self.config.client or ClientSettings(orchestrator=self.config.orchestrator)
            self.client = OrchestratorClient(
                self.http,
                base_url=self.base_url,
                family=self.family,
                params=self.params,
                hmac_secret=hmac_secret,
                attestation_key=self.core.signing_key if self.family == "app-next" else None,
                issuer=self.core.issuer,
                settings=settings,
                identities=self.identities,
                clock=clock.timestamp,
            )
            yield self

    @contextlib.contextmanager
    def at_internal_address(self) -> Iterator[str | None]:
        """An origin at an internal address serving `internal_documents`, for the block; None
        when this host has none to offer. Embedded: the link-local metadata address on the
        in-process network. Against a real provider: a listener on a private address of this
        host, other than the orchestrator side's own host (which the provider must trust)."""
        if self.embedded:
            self.internal_origin = EMBEDDED_INTERNAL
            try:
                yield EMBEDDED_INTERNAL
            finally:
                self.internal_origin = None
            return
        assert self.core is not None
        trusted = urlsplit(self.core.issuer).hostname or ""
        address = private_address(exclude=(trusted, *self.config.allowed_hosts))
        if address is None:
            yield None
            return
        try:
            listener = ServedInThread(host=address, port=0, timeout=self.config.timeout)
        except UsageError:
            yield None
            return
        with listener.serving(RecordingASGI(self.internal_documents, self.recorder)) as origin:
            self.internal_origin = origin
            try:
                yield origin
            finally:
                self.internal_origin = None

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
        return self.consent_options.mode == "scripted"

    @property
    def consent_options(self) -> ConsentOptions:
        """How consent is had: the configured options; scripted_consent = true; the mocks'
        scripted consent when embedded; else a human at this terminal, when there is one."""
        if self.config.scripted_consent:
            return ConsentOptions(mode="scripted")
        if self.config.consent is not None:
            return self.config.consent
        if self.embedded and self.config.scripted_consent is None:
            return ConsentOptions(mode="scripted")
        return ConsentOptions(mode="interactive" if sys.stdin.isatty() else "none")

    @property
    def hmac_secret(self) -> str:
        assert self.client is not None
        return self.client.hmac_secret

    def trust_material(self) -> dict[str, str]:
        """What the provider must be configured with to accept the suite as its orchestrator."""
        assert self.core is not None
        material = {"profile": self.profile}
        if self.family == "app-0.1d":
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
        self.family = target.family
        self.params = target.params
        """The active profile's parameters: header names, lifetimes, algorithms, cap."""
        self.next = target.family == "app-next"
        assert target.client is not None
        assert target.http is not None
        assert target.core is not None
        self.client = target.client
        self.http = target.http
        self.core = target.core
        self.base_url = target.base_url

    # --- identities --------------------------------------------------------------------------
    @property
    def user(self) -> User:
        """The user the suite's orchestrator acts for now."""
        return self.client.user

    def fresh_user(self, *, email_verified: bool = True) -> User:
        """A user the provider has never seen."""
        return self.client.new_user(email_verified=email_verified)

    def existing_user(self, email: str | None = None, *, email_verified: bool = True) -> User:
        """A user whose email already has an account at the provider."""
        return self.client.new_user(
            email or self.target.config.existing_email, email_verified=email_verified
        )

    def need_consent(self) -> None:
        """Skipped, saying how to enable it, when no one can give consent in this run."""
        if not self.target.consent_options.available:
            raise Skipped(
                "the consent step needs a human and this run has none: in a terminal the suite "
                'asks you; for CI set [provider] consent = "command" (consent_command) or '
                '"browser" (consent_step), or scripted_consent = true for a test provider '
                "that approves by itself"
            )

    async def consent(self, url: str) -> ConsentOutcome:
        """The human's consent at `url` (a consent page or an authorization request): where
        the browser was sent back. The URL passes the SSRF guard first: a command or a
        browser is about to fetch it."""
        try:
            self.target.guard.check_url(url)
        except SSRFError as refused:
            return ConsentOutcome(why=f"the consent URL is not one the suite may open: {refused}")
        return await obtain_consent(
            self.target.consent_options,
            url,
            context={"email": self.user.email, "login_hint": self.user.email},
        )

    # --- calls ---------------------------------------------------------------------------------
    async def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        form: Mapping[str, str] | None = None,
        content: bytes | None = None,
        bearer: str | None = None,
        headers_override: Mapping[str, str] | None = None,
    ) -> tuple[httpx.Response, Exchange]:
        """A signed call as the suite's orchestrator; the response and its recorded exchange
        (the call itself, not what the provider sent the suite's orchestrator side meanwhile).
        `headers_override` replaces headers after signing; an empty value removes one."""
        response = await self.client.send(
            method,
            path,
            body=body,
            form=form,
            content=content,
            bearer=bearer,
            headers=headers_override,
        )
        return response, recorded(response)

    async def get(self, url: str, **options: Any) -> tuple[httpx.Response, Exchange]:
        response = await self.http.get(url, **options)
        return response, recorded(response)

    async def fetch(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
    ) -> tuple[httpx.Response, Exchange]:
        """An unsigned request to any URL (a credential probe at the provider's API)."""
        response = await self.http.request(method, url, headers=headers, content=content)
        return response, recorded(response)

    async def connect(self) -> Connection:
        """An account and tokens for the current user; Skipped (saying where the chain
        stopped) when the provider gives none, since the account checks judge that."""
        try:
            return await self.client.connect(scripted_consent=self.target.scripted_consent)
        except ConnectFailed as why:
            raise Skipped(
                f"could not obtain a provider token: {why} (see the account and consent checks)"
            ) from None

    @contextlib.contextmanager
    def serving(self, documents: Mapping[str, Any]) -> Iterator[None]:
        """For the block, GET on each URL answers its JSON document: URLs on the suite's
        orchestrator side (in front of what it serves there) or at the internal origin of
        `target.at_internal_address()`."""
        placed: list[tuple[Documents, str]] = []
        orchestrator = origin_of(self.core.issuer)
        internal = self.target.internal_origin
        try:
            for url, document in documents.items():
                origin, path = origin_of(url), urlsplit(url).path
                if origin == orchestrator:
                    where = self.target.orchestrator_documents
                elif internal is not None and origin == origin_of(internal):
                    where = self.target.internal_documents
                else:
                    raise ValueError(f"the suite serves nothing at {url}")
                where.documents[path] = document
                placed.append((where, path))
            yield
        finally:
            for where, path in placed:
                where.documents.pop(path, None)

    def received(self, since: int) -> list[Exchange]:
        return [
            exchange for exchange in self.recorder.since(since) if exchange.direction == "received"
        ]

    @staticmethod
    def json(response: httpx.Response) -> Any:
        try:
            return strictjson.loads(response.content)
        except strictjson.StrictJSONError:
            return None

    @property
    def well_known_path(self) -> str:
        return urlsplit(self.base_url).path
