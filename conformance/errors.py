"""The suite's run-time errors: a world that would not start, a target that cannot be judged.

Both are `wire.errors.ProvspecError`s (the suite is misconfigured, not the target wrong), so
the CLI prints them as one message with their `exit_code`, never a traceback.

A `PreflightError` stops a run before its first check: the target cannot be judged at all
(unreachable, not the protocol, refusing the suite's credentials). It names the root cause
and what to change, and exits 2 when the configuration explains it (a wrong secret, a base
URL answering HTML or 404, a missing CLI) or 3 when the environment does (DNS, TLS, a
connection refused).
"""

from __future__ import annotations

from wire.errors import ProvspecError

__all__ = ["PreflightError", "SetupError"]


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
