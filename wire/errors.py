"""The suite's own errors, kept apart from conformance failures.

A `ProvspecError` means provspec itself was misused or misconfigured (a bad registry, an
unknown profile, a missing data file): the user has to fix their setup, not their server.
The CLI turns one into a message on stderr and its `exit_code` (2), never a traceback.
Both sides raise them (a mock refuses an unknown fault with a `UsageError` too), so they
live here; the suite's run-time errors (`SetupError`, `PreflightError`) are in
`conformance.errors`.
"""

from __future__ import annotations

__all__ = ["ProvspecError", "UsageError"]


class ProvspecError(Exception):
    """Base of every error that means 'the suite is misconfigured', not 'the target is wrong'."""

    exit_code = 2


class UsageError(ProvspecError):
    """A name or option given by the user does not exist (unknown profile, message, role, …)."""
