"""The suite's own errors, kept apart from conformance failures.

A `ProvspecError` means provspec itself was misused or misconfigured (a bad registry, an
unknown profile, a missing data file): the user has to fix their setup, not their server.
The CLI turns one into a message on stderr and its `exit_code` (2), never a traceback.

A `PreflightError` stops a run before its first check: the target cannot be judged at all
(unreachable, not the protocol, refusing the suite's credentials). It names the root cause
and what to change, and exits 2 when the configuration explains it (a wrong secret, a base
URL answering HTML or 404, a missing CLI) or 3 when the environment does (DNS, TLS, a
connection refused).
"""

from __future__ import annotations

__all__ = ["PreflightError", "ProvspecError", "SetupError", "UsageError"]


class ProvspecError(Exception):
    """Base of every error that means 'the suite is misconfigured', not 'the target is wrong'."""

    exit_code = 2


class UsageError(ProvspecError):
    """A name or option given by the user does not exist (unknown profile, message, role, …)."""


class SetupError(ProvspecError):
    """The run's world could not be started (a port in use, an agent command that won't run)."""


class PreflightError(ProvspecError):
    """The run cannot judge the target at all; `cause` names why, `fix` what to change."""

    CONFIGURATION = 2
    ENVIRONMENT = 3

    def __init__(self, cause: str, fix: str, *, environment: bool = False) -> None:
        super().__init__(f"preflight failed: {cause}\n  to fix: {fix}")
        self.cause = cause
        self.fix = fix
        self.exit_code = self.ENVIRONMENT if environment else self.CONFIGURATION
