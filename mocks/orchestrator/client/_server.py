"""What the client side needs of its orchestrator's server side, as a protocol.

The engine acting for the user signs with the server's key, mints payment tokens the
server later redeems, and shares its store, ledger and clock. It reaches all that through
this protocol, so the client package never imports the server (`mocks.orchestrator.app`),
which imports the client to finish a consent on its redirect URI.
"""

from __future__ import annotations

from typing import Any, Protocol

from mocks._core.store import Store
from mocks.faults import FaultSet
from mocks.orchestrator.ledger import SpendLedger
from spec.profiles import Profile, ProfileParameters
from wire import jose
from wire.clock import Clock
from wire.ssrf import SSRFGuard

__all__ = ["OrchestratorServer"]


class OrchestratorServer(Protocol):
    @property
    def issuer(self) -> str: ...
    @property
    def announced_issuer(self) -> str:
        """The issuer as metadata, attestations and tokens state it (faults may skew it)."""
        ...

    @property
    def spec(self) -> Profile: ...
    @property
    def params(self) -> ProfileParameters: ...
    @property
    def faults(self) -> FaultSet: ...
    @property
    def clock(self) -> Clock: ...
    @property
    def store(self) -> Store: ...
    @property
    def ledger(self) -> SpendLedger: ...
    @property
    def signing_key(self) -> jose.SigningKey: ...
    @property
    def ssrf(self) -> SSRFGuard:
        """The guard every URL taken from a message passes before it is fetched."""
        ...

    def unpublished_key(self) -> jose.SigningKey:
        """A key the JWKS never shows (the payment-token-unpublished-key fault's)."""
        ...

    def minted(self, claims: dict[str, Any]) -> None:
        """Told of every payment token the client mints."""
        ...
