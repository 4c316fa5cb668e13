"""Orchestrator checks: the suite plays the provider (and reads the agent-facing CLI)."""

from __future__ import annotations

from conformance.packs.orchestrator import (  # noqa: F401  (importing registers the checks)
    calls,
    cli,
    consent,
    redemption,
)
