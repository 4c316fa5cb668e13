"""The suite's checks: every pack loaded into the check registry.

A pack registers its checks when it is imported (the `@check` decorator in
`conformance.checks`); this module imports them all, so whoever asks here gets the whole
suite. The front ends (the engine, the CLI) ask here; `conformance.checks` itself knows no
pack, which is what keeps the packs free to import it.
"""

from __future__ import annotations

from collections.abc import Iterable

# Importing a pack registers its checks.
import conformance.packs.agent
import conformance.packs.orchestrator
import conformance.packs.provider
import conformance.packs.resource_server  # noqa: F401
from conformance import checks
from conformance.checks import Check
from spec.requirement import Role, Step

__all__ = ["all_checks", "checks_for"]


def all_checks() -> list[Check]:
    """Every check of every pack."""
    return checks.all_checks()


def checks_for(role: Role, profile: str, steps: Iterable[Step] | None = None) -> list[Check]:
    """The checks of `role` for `profile`'s family (a draft runs its base's checks)."""
    return checks.checks_for(role, profile, steps)
