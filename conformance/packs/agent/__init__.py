"""Agent checks: the agent is judged by the CLI calls it makes, the requests it sends to the
provider, and what it prints, over the scripted tasks of conformance/adapters/agent.py."""

from __future__ import annotations

from conformance.packs.agent import (  # noqa: F401  (importing registers the checks)
    boundaries,
    escalation,
    hygiene,
    scenarios,
)
