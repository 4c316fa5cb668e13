"""What a mock orchestrator is configured with (`OrchestratorSettings`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

from mocks._core.store import MemoryStore, Store
from spec.profiles import Profile, ProfileParameters
from spec.schemas import default_store
from wire.clock import Clock, SystemClock
from wire.ssrf import FetchLimits, SSRFGuard

__all__ = ["OrchestratorSettings"]

_KEY_FETCH = FetchLimits(max_bytes=64 * 1024, timeout=4.0)
"""A caller's RFC 9728 metadata and JWKS: both fetches within 4 s, each at most 64 KiB."""


@dataclass
class OrchestratorSettings:
    profile: Profile | str = "app-next"
    """The profile object (a name or a draft's path is resolved on construction): header
    names, lifetimes, algorithms, the default cap and error codes come from its parameters."""
    issuer: str = "http://orchestrator.mock"
    default_limit: int | None = None
    """None: the profile's [parameters.default_cap] limit."""
    faults: tuple[str, ...] = ()
    clock: Clock = field(default_factory=SystemClock)
    store: Store = field(default_factory=MemoryStore)
    http: Callable[[], httpx.AsyncClient] | None = None
    ssrf: SSRFGuard = field(default_factory=lambda: SSRFGuard(allow_loopback=True))
    key_fetch: FetchLimits = field(default_factory=lambda: _KEY_FETCH)
    """What loading a caller's keys (its RFC 9728 metadata, then its JWKS) may cost."""
    before_charge: Callable[[], Awaitable[None]] | None = None
    """Awaited after a redemption takes its idempotency key and before it charges: the seam
    tests use to hold a request "in flight" without sleeping."""

    def __post_init__(self) -> None:
        self.spec: Profile = (
            default_store().profile(self.profile) if isinstance(self.profile, str) else self.profile
        )
        self.params: ProfileParameters = self.spec.params
        if self.default_limit is None:
            self.default_limit = self.params.default_cap.limit
        parts = urlsplit(self.issuer)
        if (
            parts.scheme not in ("http", "https")
            or not parts.netloc
            or parts.query
            or parts.fragment
        ):
            raise ValueError(
                f"issuer must be an http(s) URL without query or fragment: {self.issuer!r}"
            )
