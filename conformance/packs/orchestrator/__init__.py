"""Orchestrator checks: the suite plays the provider (and reads the agent-facing CLI)."""

from __future__ import annotations

from conformance.packs.orchestrator import (  # noqa: F401  (importing registers the checks)
    accounts,
    calls,
    cap,
    capabilities,
    catalog,
    cli,
    consent,
    custody,
    payment,
    provisioning,
    redemption,
    redemption_input,
    redemption_keys,
    refunds,
    revocation,
    signing,
    spend,
)
