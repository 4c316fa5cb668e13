"""What the mock agent knows before it runs: the CLI answers that need a person, its exit
codes and waits, how it runs the orchestrator CLI, and what it hands back."""

from __future__ import annotations

import shlex
import subprocess
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

__all__ = [
    "CONSENT_WAIT_S",
    "ESCALATIONS",
    "EXIT_DONE",
    "EXIT_ESCALATED",
    "EXIT_FAILED",
    "HUMAN_EMAIL",
    "OTHER_PROVIDER",
    "POLL_INTERVAL_S",
    "UNBOUNDED_POLLS",
    "AgentResult",
    "Runner",
    "json_object",
    "loose",
    "subprocess_runner",
]

Runner = Callable[[Sequence[str]], tuple[int, str]]
ESCALATIONS = {
    "CONSENT_REQUIRED": "the provider needs the human to approve linking an existing account",
    "PAYMENT_METHOD_REQUIRED": "the human must add a payment method",
    "CONFIRMATION_REQUIRED": "the service costs money: the human must confirm",
    "TOS_ACCEPTANCE_REQUIRED": "the human must accept the provider's terms",
    "SPEND_CAP_EXCEEDED": "the monthly spend cap is reached: the human must raise it",
    "JSON_REQUIRES_AUTH": "the orchestrator session is signed out: the human must sign in",
    "ACCOUNT_NOT_ELIGIBLE": "this account cannot use the provider: the human must choose another",
    "DIRECTORY_SELECTION_REQUIRED": "the human must choose a directory",
}
POLL_INTERVAL_S = 1.0
"""The first status check comes at once, the next after a second: never more often."""
UNBOUNDED_POLLS = 11
"""How often the polls-pending-unbounded fault checks a pending resource (a sane budget is 2;
the suite allows 10)."""
OTHER_PROVIDER = "otherprov"
"""A provider no task is about (the removes-other-providers-resource fault)."""
HUMAN_EMAIL = "dev@example.com"
"""The address the passes-own-identity fault claims for the human."""
EXIT_DONE, EXIT_FAILED, EXIT_ESCALATED = 0, 1, 3
CONSENT_WAIT_S = 30.0
"""How long the agent waits for the human to approve its authorization request."""


def subprocess_runner(command: str, *, timeout: float = 60.0) -> Runner:
    """Run the orchestrator CLI as a child process (the way a real agent shells out)."""
    base = shlex.split(command)

    def run(arguments: Sequence[str]) -> tuple[int, str]:
        try:
            done = subprocess.run(
                [*base, *arguments], capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            return 124, ""
        return done.returncode, done.stdout

    return run


@dataclass
class AgentResult:
    exit_code: int
    transcript: list[str] = field(default_factory=list)
    """What the agent printed, line by line (checked for leaked secrets)."""
    commands: list[list[str]] = field(default_factory=list)
    """Every orchestrator CLI invocation, in order."""


def json_object(answer: httpx.Response) -> dict[str, Any]:
    try:
        document = answer.json()
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}


def loose(text: str) -> str:
    """How a careless agent compares ids: case, spacing and invisible characters ignored."""
    kept = "".join(c for c in text if unicodedata.category(c) not in ("Cf", "Zs"))
    return kept.strip().casefold().replace("\u0435", "e")
