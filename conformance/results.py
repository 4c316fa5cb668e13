"""What a run found: one finding per requirement, with its evidence, and the exit code."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from conformance.recorder import Recorder
from conformance.registry import Level, Requirement

__all__ = ["Finding", "RunResult", "Status"]


class Status(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    WARNING = "warning"
    """A SHOULD that failed (a failure under --strict)."""
    SKIPPED = "skipped"
    NOT_APPLICABLE = "not_applicable"
    UNTESTED = "untested"
    """No check in this run covers the requirement yet."""


@dataclass
class Finding:
    requirement: Requirement
    status: Status
    message: str = ""
    checks: list[str] = field(default_factory=list)
    evidence: list[int] = field(default_factory=list)
    """Exchange and CLI call ids from the run's recorder."""

    def as_json(self) -> dict[str, Any]:
        requirement = self.requirement
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

    def counts(self) -> dict[str, dict[str, int]]:
        """Counts by level, then status."""
        table: dict[str, dict[str, int]] = {}
        for finding in self.findings:
            row = table.setdefault(finding.requirement.level.value, {})
            row[finding.status.value] = row.get(finding.status.value, 0) + 1
        return table

    def failed(self) -> list[Finding]:
        return [
            finding
            for finding in self.findings
            if finding.status is Status.FAILED or (self.strict and finding.status is Status.WARNING)
        ]

    @property
    def exit_code(self) -> int:
        return 1 if self.failed() else 0

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
            "requirements": [finding.as_json() for finding in self.findings],
            "exchanges": [exchange.as_json() for exchange in self.recorder.exchanges],
            "cli_calls": [call.as_json() for call in self.recorder.cli_calls],
        }


def downgrade(status: Status, level: Level) -> Status:
    """A failed SHOULD or MAY is a warning, not a failure."""
    if status is Status.FAILED and level is not Level.MUST:
        return Status.WARNING
    return status
