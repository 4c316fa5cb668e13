"""What a run found: one finding per requirement, with its evidence, and the exit code."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from conformance.recorder import Recorder, mask_text
from conformance.registry import Level, Requirement

__all__ = ["EXIT_ERROR", "Blame", "Finding", "RunResult", "Status"]

EXIT_ERROR = 3
"""No requirement failed, but some could not be judged: the suite or the environment failed."""


class Status(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    WARNING = "warning"
    """A SHOULD that failed (a failure under --strict)."""
    SKIPPED = "skipped"
    NOT_APPLICABLE = "not_applicable"
    UNTESTED = "untested"
    """No check in this run covers the requirement yet."""
    ERROR = "error"
    """Not judged: the suite itself (harness) or the environment (network, DNS, TLS) failed."""
    KNOWN = "known"
    """A failure the baseline file lists: reported, but it does not fail the run."""
    FLAKY = "flaky"
    """Failed, then passed when the check ran again alone (`--rerun-failures`)."""


class Blame(StrEnum):
    """Who a non-passing result is on. Only `implementation` counts against conformance."""

    IMPLEMENTATION = "implementation"
    """The target broke a rule."""
    HARNESS = "harness"
    """The suite or one of its own mocks misbehaved."""
    ENVIRONMENT = "environment"
    """The target could not be reached: connection refused, DNS, TLS, connect timeout."""


BLAMED = (Status.FAILED, Status.WARNING, Status.ERROR, Status.KNOWN, Status.FLAKY)
"""The statuses that carry a blame label."""


@dataclass
class Finding:
    requirement: Requirement
    status: Status
    message: str = ""
    checks: list[str] = field(default_factory=list)
    evidence: list[int] = field(default_factory=list)
    """Exchange and CLI call ids from the run's recorder."""
    blame: Blame | None = None
    """Set for every status in BLAMED (implementation unless the engine knows better)."""
    baseline: str | None = None
    """known, stale or expired when a baseline entry names this requirement."""

    def __setattr__(self, name: str, value: Any) -> None:
        # A verdict may quote what the target sent (a deep link, a redirect): it reaches every
        # report, so it is masked like the recorded exchanges, whoever sets it.
        if name == "message" and isinstance(value, str):
            value = mask_text(value)
        super().__setattr__(name, value)

    def as_json(self) -> dict[str, Any]:
        requirement = self.requirement
        blame = self.blame or (Blame.IMPLEMENTATION if self.status in BLAMED else None)
        return {
            "id": requirement.id,
            "level": requirement.level.value,
            "role": requirement.role.value,
            "step": requirement.step.value,
            "profiles": list(requirement.profiles),
            "text": requirement.text,
            "source": requirement.source,
            "status": self.status.value,
            "message": self.message,
            "checks": self.checks,
            "evidence": self.evidence,
            "blame": blame.value if blame is not None else None,
            "baseline": self.baseline,
        }


@dataclass
class RunResult:
    role: str
    profile: str
    target: str
    findings: list[Finding]
    recorder: Recorder
    duration_s: float = 0.0
    strict: bool = False
    harness_problems: list[dict[str, Any]] = field(default_factory=list)
    """Messages the suite's own mocks sent that fail their schema: {exchange, message}."""
    baseline_problems: list[str] = field(default_factory=list)
    """Stale or expired baseline entries; each fails the run."""
    check_spans: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Per check: the recorder ids (after, up to) of what it sent and received (replay)."""

    def counts(self) -> dict[str, dict[str, int]]:
        """Counts by level, then status."""
        table: dict[str, dict[str, int]] = {}
        for finding in self.findings:
            row = table.setdefault(finding.requirement.level.value, {})
            row[finding.status.value] = row.get(finding.status.value, 0) + 1
        return table

    def failed(self) -> list[Finding]:
        """The implementation failures that fail the run (a flaky one only under --strict)."""
        strict_too = (Status.WARNING, Status.FLAKY) if self.strict else ()
        return [
            finding
            for finding in self.findings
            if finding.status is Status.FAILED or finding.status in strict_too
        ]

    def errors(self) -> list[Finding]:
        """Requirements not judged because the harness or the environment failed."""
        return [finding for finding in self.findings if finding.status is Status.ERROR]

    @property
    def exit_code(self) -> int:
        """1: a requirement failed or the baseline is stale or expired (even when errors
        occurred too); 3: nothing failed but the harness or the environment did; else 0."""
        if self.failed() or self.baseline_problems:
            return 1
        if self.errors() or self.harness_problems:
            return EXIT_ERROR
        return 0

    def as_json(self) -> dict[str, Any]:
        return {
            "provspec": "results/1",
            "role": self.role,
            "profile": self.profile,
            "target": self.target,
            "strict": self.strict,
            "duration_s": round(self.duration_s, 3),
            "exit_code": self.exit_code,
            "counts": self.counts(),
            "harness_problems": self.harness_problems,
            "baseline_problems": self.baseline_problems,
            "requirements": [finding.as_json() for finding in self.findings],
            "exchanges": [exchange.as_json() for exchange in self.recorder.exchanges],
            "cli_calls": [call.as_json() for call in self.recorder.cli_calls],
        }


def downgrade(status: Status, level: Level) -> Status:
    """A failed SHOULD or MAY is a warning, not a failure."""
    if status is Status.FAILED and level is not Level.MUST:
        return Status.WARNING
    return status
