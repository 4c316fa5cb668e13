"""What every room of the mock provider reads: its settings, the profile's parameters, the
active faults, the clock, the records, and the URLs derived from `base_url`.

The rooms (`_authentication`, `_accounts`, `_oauth`, `_discovery`, `_provisioning`,
`_payment`) each take this one object instead of reaching into each other; `app.py`
assembles them behind the routes.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from mocks._core.http import HTTPProblem
from mocks._core.network import DEFAULT_TIMEOUT
from mocks._core.replay import ReplayCache
from mocks._core.store import MemoryStore, Store
from mocks.faults import FaultSet
from mocks.provider._state import ProviderState
from spec.profiles import Profile, ProfileParameters
from spec.schemas import default_store
from wire import jose
from wire.clock import Clock, SystemClock
from wire.ssrf import SSRFGuard
from wire.tls import tls_context
from wire.urls import as_metadata_url, prm_url

__all__ = ["Caller", "ProviderContext", "ProviderSettings"]

PROFILE_SCOPE = "profile"
"""Granted with the profile's provisioning scope; a refresh may narrow a token to it alone
(RFC 6749 §6), which then lacks what provisioning calls need."""


@dataclass
class ProviderSettings:
    """What a mock provider needs to know; every default suits an in-process test."""

    profile: Profile | str = "app-0.1d"
    """The profile object (a name or a draft's path is resolved on construction): header
    names, lifetimes, algorithms and error codes come from its parameters."""
    base_url: str = "http://provider.mock/api/app/"
    name: str = "Mockbase"
    hmac_secret: str = field(default_factory=lambda: "whsec_" + secrets.token_hex(16))
    orchestrator_issuer: str = "http://orchestrator.mock"
    existing_emails: tuple[str, ...] = ("existing@example.com",)
    faults: tuple[str, ...] = ()
    clock: Clock = field(default_factory=SystemClock)
    store: Store = field(default_factory=MemoryStore)
    http: Callable[[], httpx.AsyncClient] | None = None
    """Makes the client the provider uses to reach the orchestrator (transport seam)."""
    ssrf: SSRFGuard = field(default_factory=lambda: SSRFGuard(allow_loopback=True))
    redeem: bool = True
    """False: keep payment tokens unredeemed (the suite, testing an orchestrator, redeems them
    itself to probe the redemption endpoint). Tokens are kept in `ProviderMock.tokens`."""
    verify_requests: bool = True
    """False: the suite's instrument when it tests an orchestrator. It accepts and records
    every request (reading attestation claims unverified) so that the checks, not this mock,
    judge the orchestrator's signatures, one requirement at a time."""

    def __post_init__(self) -> None:
        self.spec: Profile = (
            default_store().profile(self.profile) if isinstance(self.profile, str) else self.profile
        )
        self.params: ProfileParameters = self.spec.params  # complete, or a ProvspecError
        parts = urlsplit(self.base_url)
        if (
            parts.scheme not in ("http", "https")
            or not parts.netloc
            or not parts.path.endswith("/")
        ):
            raise ValueError(
                f"base_url must be an absolute http(s) URL ending in '/': {self.base_url!r}"
            )
        if parts.query or parts.fragment:
            raise ValueError("base_url must not carry a query or fragment")


@dataclass
class Caller:
    """Who signed a request, as far as its authentication says (app-next attestations)."""

    issuer: str | None = None
    subject: str | None = None
    email: str | None = None
    email_verified: bool = False


class ProviderContext:
    """The shared, read-mostly part of a mock provider; built once per `ProviderMock`."""

    def __init__(self, settings: ProviderSettings) -> None:
        self.settings = settings
        self.spec = settings.spec
        self.params = settings.spec.params
        self.profile = settings.spec.name
        self.next = settings.spec.family == "app-next"
        self.faults = FaultSet("provider", settings.spec.family, settings.faults)
        self.clock = settings.clock
        self.state = ProviderState(settings.store)
        self.replay = ReplayCache(settings.store)
        self.base_url = settings.base_url
        self.base_path = urlsplit(settings.base_url).path
        self.resource_id = settings.base_url
        self.issuer = settings.base_url.rstrip("/")
        self.prm_url = prm_url(settings.base_url)
        if self.faults.active("prm-wrong-location"):
            self.prm_url = prm_url(settings.base_url).replace(
                "/.well-known/oauth-protected-resource", "/oauth-protected-resource"
            )
        self.as_metadata_url = as_metadata_url(self.issuer)
        self.scope = self.params.provisioning_scope
        self.granted_scope = f"{self.scope} {PROFILE_SCOPE}"
        self.currency = self.params.default_cap.currency
        """The currency of every price in the catalog (the profile's cap currency)."""
        self.signing_key = jose.generate_key("EdDSA")
        self.retired_key = jose.generate_key("EdDSA")
        """Rotated out: served only by the jwks-leaks-private-key fault."""
        self.schemas = default_store()

    def validate(self, message: str, body: dict[str, Any]) -> None:
        """A 400 naming the first schema issue of `body` as the profile's `message`."""
        if not self.settings.verify_requests:
            return  # the suite's instrument: the orchestrator checks judge body shapes
        issues = self.schemas.validate(self.profile, message, body)
        if issues:
            first = issues[0]
            raise HTTPProblem(400, "invalid_request", f"{first.path or '/'}: {first.message}")

    def challenge_header(
        self, error: str | None = None, description: str | None = None, *, metadata: bool = True
    ) -> str:
        """The RFC 6750 `WWW-Authenticate: Bearer …` value, with RFC 9728 resource_metadata."""
        params = []
        if metadata:
            params.append(f'resource_metadata="{self.prm_url}"')
        params.append(f'scope="{self.scope}"')
        if error:
            params.append(f'error="{error}"')
        if description:
            params.append(f'error_description="{description}"')
        return "Bearer " + ", ".join(params)

    def client(self) -> httpx.AsyncClient:
        """A client to reach the orchestrator (the settings' transport seam, if any)."""
        if self.settings.http is not None:
            return self.settings.http()
        return httpx.AsyncClient(
            timeout=DEFAULT_TIMEOUT, follow_redirects=False, verify=tls_context()
        )
