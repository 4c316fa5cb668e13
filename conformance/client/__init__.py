"""The suite's orchestrator side as a client: what a real orchestrator sends a provider.

Provider checks drive the provider under test through `OrchestratorClient`; every probe
starts from the complete, valid requests built here and changes one thing.
"""

from __future__ import annotations

from conformance.client._identity import (
    IdentityFactory,
    OrchestratorIdentity,
    User,
    new_seed,
    stripe_account_id,
)
from conformance.client._signing import ATTESTATION_TYP, attestation, stripe_signature, stripe_v1
from conformance.client.session import (
    AccountAnswer,
    ClientSettings,
    ConnectFailed,
    Connection,
    ConsentNeeded,
    OrchestratorClient,
)

__all__ = [
    # the client
    "OrchestratorClient",
    "ClientSettings",
    "AccountAnswer",
    "Connection",
    "ConnectFailed",
    "ConsentNeeded",
    # who it acts for
    "IdentityFactory",
    "OrchestratorIdentity",
    "User",
    "new_seed",
    "stripe_account_id",
    # wire primitives it signs with
    "ATTESTATION_TYP",
    "attestation",
    "stripe_signature",
    "stripe_v1",
]
