"""Provider checks: the suite plays the orchestrator and judges the provider's answers."""

from __future__ import annotations

from conformance.packs.provider import (  # noqa: F401  (importing registers the checks)
    accounts,
    attestation,
    capabilities,
    consent,
    credentials,
    discovery,
    fuzz,
    payment,
    provisioning,
    revocation,
)
