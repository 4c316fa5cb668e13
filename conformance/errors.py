"""The suite's own errors, kept apart from conformance failures.

A `ProvspecError` means provspec itself was misused or misconfigured (a bad registry, an
unknown profile, a missing data file): the user has to fix their setup, not their server.
The CLI turns one into a message on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

__all__ = ["ProvspecError", "SetupError", "UsageError"]


class ProvspecError(Exception):
    """Base of every error that means 'the suite is misconfigured', not 'the target is wrong'."""


class UsageError(ProvspecError):
    """A name or option given by the user does not exist (unknown profile, message, role, …)."""


class SetupError(ProvspecError):
    """The run's world could not be started (a port in use, an agent command that won't run)."""
