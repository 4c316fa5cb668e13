"""What a run found: one finding per requirement, with its evidence, the verdict and the
exit code.

The verdict is honest about what was judged: `pass` only when every MUST of the run was
judged and none failed; `incomplete` when none failed but some MUST was not judged (skipped,
untested); `error` when the suite or the environment kept something from being judged;
`fail` when a requirement failed. `certified` holds only for a `--certify` run that passed.
"""

from __future__ import annotations

import datetime as dt
import platform
import re
import shlex
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from conformance import __version__
from conformance.provenance import profile_digest, registry_digest, seal
from conformance.recorder import Recorder, mask_text
from spec.requirement import Level, Requirement
from wire.errors import ProvspecError

__all__ = [
    "EXIT_CODES",
    "EXIT_ERROR",
    "EXIT_FAILED",
    "EXIT_INCOMPLETE",
    "EXIT_OK",
    "EXIT_USAGE",
    "VERDICTS",
    "Blame",
    "Finding",
    "RunResult",
    "Status",
    "Verdict",
]

EXIT_OK = 0
"""Every MUST of the run was judged, and none failed."""
EXIT_FAILED = 1
"""A requirement failed, or a baseline entry is stale or expired."""
EXIT_USAGE = 2
"""A usage or configuration error (a failed preflight that the configuration explains)."""
EXIT_ERROR = 3
"""No requirement failed, but the suite or the environment kept some from being judged
(a failed preflight that the environment explains: DNS, TLS, connection refused)."""
EXIT_INCOMPLETE = 4
"""No requirement failed and nothing went wrong, but some MUST was not judged."""

EXIT_CODES = (
    (EXIT_OK, "PASS", "every MUST of the run was judged and none failed"),
    (EXIT_FAILED, "FAIL", "a requirement failed, or a baseline entry is stale or expired"),
    (EXIT_USAGE, "-", "usage or configuration error, or a preflight the configuration fails"),
    (
        EXIT_ERROR,
        "ERROR",
        "nothing failed, but the environment (unreachable, DNS, TLS) or the suite kept "
        "something from being judged, or a preflight the environment fails",
    ),
    (EXIT_INCOMPLETE, "INCOMPLETE", "nothing failed, but some MUST was not judged"),
)
"""The exit codes of `provspec run`: (code, verdict word, meaning); README and help agree."""

VERDICTS = {code: word for code, word, _ in EXIT_CODES if word != "-"}
"""The verdict word of each exit code a run can end with."""


_REQUIREMENT_ID = re.compile(r"\b(?:PRV|ORC|AGT|RSV)-[A-Z]{3}-\d{3}\b")


class Verdict(StrEnum):
    """A run's verdict (results.json `verdict`); fail beats error beats incomplete beats pass."""

    PASS = "pass"
    FAIL = "fail"
    INCOMPLETE = "incomplete"
    ERROR = "error"


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
    reproduction: str | None = None
    """For a failure: a shell command that sends the request that broke the rule again
    (`curl`, the secret as an environment variable, the signature by `provspec sign`)."""

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
            "reproduction": self.reproduction,
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
    certify: bool = False
    """Whether the run was made with --certify (everything a certification needs on)."""
    stopped: str | None = None
    """Why the run stopped before its last check (--max-failures), if it did."""
    check_times: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Per check: when it started (Unix time, s) and how long it ran, re-runs included."""
    started_at: float | None = None
    """When the run started (Unix time, s); None: taken as now less `duration_s`."""
    command: list[str] | None = None
    """The command line that made the run, program name first, secrets masked; None when
    the run was not started from the command line."""
    config: dict[str, Any] = field(default_factory=dict)
    """The configuration the run used, secrets masked: the file, its values, the
    command-line options and the role's effective settings (`provspec run` fills it)."""

    def __post_init__(self) -> None:
        if self.started_at is None:
            self.started_at = time.time() - self.duration_s

    @property
    def started(self) -> dt.datetime:
        """When the run started, in UTC."""
        return dt.datetime.fromtimestamp(self.started_at or 0.0, dt.UTC)

    def timing(self, finding: Finding) -> tuple[float, float]:
        """When the checks that judged `finding` started (Unix time, s) and how long they ran
        together; the run's start and 0 for a requirement no check judged."""
        times = [self.check_times[name] for name in finding.checks if name in self.check_times]
        if not times:
            return (self.started_at or 0.0, 0.0)
        return (min(start for start, _ in times), sum(duration for _, duration in times))

    def provenance(self) -> dict[str, Any]:
        """Where this result came from: enough to date it, reproduce it and tell whether two
        results judged the same rules (see conformance/provenance.py)."""
        digests: dict[str, str | None] = {"registry_digest": None, "profile_digest": None}
        try:
            digests["registry_digest"] = registry_digest(self.role, self.profile)
            digests["profile_digest"] = profile_digest(self.profile)
        except (ValueError, KeyError, ProvspecError):
            pass  # a profile or role this install does not know: no digest, not a crash
        return {
            "provspec_version": __version__,
            **digests,
            "timestamp": self.started.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "command": self.command,
            "command_line": shlex.join(self.command) if self.command is not None else None,
            "config": self.config,
            "target": self.target,
            "role": self.role,
            "profile": self.profile,
            "strict": self.strict,
            "python": platform.python_version(),
            "platform": platform.platform(terse=True),
        }

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

    def unjudged(self) -> list[Finding]:
        """The MUSTs of the run that were not judged (skipped, untested or error), each with
        the reason in its message: what would enable it. A MUST skipped because of a failure
        the baseline knows (its reason names that requirement) is left out: the team has
        accepted the cause, and it is judged again once the known failure is fixed."""
        known = {f.requirement.id for f in self.findings if f.status is Status.KNOWN}
        return [
            finding
            for finding in self.findings
            if finding.requirement.level is Level.MUST
            and finding.status in (Status.SKIPPED, Status.UNTESTED, Status.ERROR)
            and not (finding.status is Status.SKIPPED and _blocked_by(finding, known))
        ]

    @property
    def verdict(self) -> Verdict:
        """fail beats error beats incomplete beats pass."""
        if self.failed() or self.baseline_problems:
            return Verdict.FAIL
        if self.errors() or self.harness_problems:
            return Verdict.ERROR
        if self.unjudged():
            return Verdict.INCOMPLETE
        return Verdict.PASS

    @property
    def certified(self) -> bool:
        """A --certify run that passed with no MUST failure excused: none known to the
        baseline, none flaky."""
        excused = any(
            finding.requirement.level is Level.MUST
            and finding.status in (Status.KNOWN, Status.FLAKY)
            for finding in self.findings
        )
        return self.certify and self.verdict is Verdict.PASS and not excused

    @property
    def exit_code(self) -> int:
        """1 fail (even when errors occurred too), 3 error, 4 incomplete, 0 pass."""
        return {
            Verdict.FAIL: EXIT_FAILED,
            Verdict.ERROR: EXIT_ERROR,
            Verdict.INCOMPLETE: EXIT_INCOMPLETE,
            Verdict.PASS: EXIT_OK,
        }[self.verdict]

    def as_json(self) -> dict[str, Any]:
        """The results.json document (schemas/results/run.schema.json), sealed with its
        integrity digests (`provspec report --verify` checks them)."""
        document = {
            "provspec": "results/1",
            "role": self.role,
            "profile": self.profile,
            "target": self.target,
            "strict": self.strict,
            "duration_s": round(self.duration_s, 3),
            "verdict": self.verdict.value,
            "certify": self.certify,
            "certified": self.certified,
            "unjudged": [
                {"id": f.requirement.id, "status": f.status.value, "message": f.message}
                for f in self.unjudged()
            ],
            "stopped": self.stopped,
            "exit_code": self.exit_code,
            "counts": self.counts(),
            "harness_problems": self.harness_problems,
            "baseline_problems": self.baseline_problems,
            "requirements": [
                {**finding.as_json(), "duration_s": round(self.timing(finding)[1], 6)}
                for finding in self.findings
            ],
            "exchanges": [exchange.as_json() for exchange in self.recorder.exchanges],
            "cli_calls": [call.as_json() for call in self.recorder.cli_calls],
            "provenance": self.provenance(),
        }
        document["integrity"] = seal(document)
        return document


def _blocked_by(finding: Finding, known: set[str]) -> bool:
    """Whether a skip's reason names requirements, all of them known failures."""
    named = set(_REQUIREMENT_ID.findall(finding.message)) - {finding.requirement.id}
    return bool(named) and named <= known


def downgrade(status: Status, level: Level) -> Status:
    """A failed SHOULD or MAY is a warning, not a failure."""
    if status is Status.FAILED and level is not Level.MUST:
        return Status.WARNING
    return status
