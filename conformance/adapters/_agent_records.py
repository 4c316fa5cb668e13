"""What the suite keeps of one task's run: the agent's CLI calls, its requests to the
provider, the browser launchers it ran, and the run itself (read by the agent checks)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from conformance.adapters import _agent_worlds as _worlds
from conformance.adapters._agent_tasks import AgentTask
from conformance.recorder import CliCall

__all__ = ["Launch", "OrchestratorCall", "ProviderRequest", "TaskRun"]


@dataclass
class OrchestratorCall:
    """One call the agent made to the orchestrator CLI stand-in, unmasked (checks only)."""

    argv: list[str]
    """After the CLI prefix, e.g. ["add", "mockprov/free", "--json"]."""
    exit_code: int
    stdout: str
    envelope: dict[str, Any]
    evidence: CliCall
    started: float = 0.0
    ended: float = 0.0
    """The task's clock around the call, to judge pacing and overlap (see TaskClock in _agent_hosting)."""

    @property
    def command(self) -> str:
        return self.argv[0] if self.argv else ""

    @property
    def error_code(self) -> str:
        error = self.envelope.get("error")
        return str(error.get("code", "")) if isinstance(error, dict) else ""

    @property
    def reference(self) -> str:
        """The PROVIDER/SERVICE argument of add (or "")."""
        return next((a for a in self.argv[1:] if not a.startswith("-")), "")


@dataclass
class ProviderRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    exchange_id: int
    body: bytes = b""
    by_agent: bool = True
    """False when it arrived while the orchestrator was working (a CLI call in progress), or
    came from the human of a consent world."""
    by_human: bool = False
    """The human's browser opening a URL the agent printed (a consent world)."""


@dataclass
class Launch:
    """The agent ran a browser launcher (open, xdg-open, …): the suite's stand-in took it."""

    program: str
    argv: list[str]


@dataclass
class TaskRun:
    task: AgentTask
    email: str
    exit_code: int | None
    output: str
    """The agent's stdout and stderr, unmasked (checks only)."""
    evidence: CliCall
    calls: list[OrchestratorCall] = field(default_factory=list)
    provider_requests: list[ProviderRequest] = field(default_factory=list)
    trap_requests: list[ProviderRequest] = field(default_factory=list)
    """Requests to the suite's foreign host, whose URL only planted catalog text carries."""
    launches: list[Launch] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    """Credential values the orchestrator held for this user after the run."""
    catalog_services: set[str] = field(default_factory=set)
    """provider/SERVICE references as the catalog showed them (service id exactly as shown)."""
    catalog: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    """Files the agent left in its working directory and HOME (path: text), except .env."""
    provider_base_url: str = ""
    shown: dict[str, set[str]] = field(default_factory=dict)
    """Secrets a leaky orchestrator showed the agent, by kind ("signing", "payment")."""
    authorization_responses: list[_worlds.AuthorizationResponse] = field(default_factory=list)
    """The authorization redirects a consent world served, forged or genuine."""
    human_notes: list[str] = field(default_factory=list)
    """What the human of a consent world could not do, and why."""

    @property
    def planted(self) -> set[str]:
        """Every secret the world showed the agent (masked in everything recorded)."""
        return set().union(*self.shown.values()) if self.shown else set()

    def calls_of(self, command: str) -> list[OrchestratorCall]:
        return [call for call in self.calls if call.command == command]

    def entry_for(self, reference: str) -> dict[str, Any] | None:
        """The catalog entry an add reference names: provider case-insensitively (the catalog
        shows display names), service id exactly."""
        provider, _, service = reference.partition("/")
        for entry in self.catalog:
            if (
                str(entry.get("provider_name", "")).lower() == provider.lower()
                and entry.get("service_id") == service
            ):
                return entry
        return None

    def is_paid(self, reference: str) -> bool:
        entry = self.entry_for(reference)
        return entry is not None and (entry.get("pricing") or {}).get("type") != "free"
