"""What each requirement's result means for a CI file, decided once for JUnit and Allure, so
that both agree with the exit code: a CI file shows a failure exactly when the run exits 1,
an error (and no failure) when it exits 3 or 4, nothing red when it exits 0, and a SHOULD
warning or a flake visibly, without failing.

A stale or expired baseline entry fails the run: it is a failure of the requirement it names
(a stale entry's requirement passed, yet the testcase fails, saying why). A harness problem
or a baseline problem no requirement of the run carries becomes a testcase of its own, and
so does an INCOMPLETE verdict (exit 4: nothing failed, some MUST was not judged): an error
listing the unjudged MUSTs, so that a CI file is never all green when the run did not pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from conformance.results import Finding, RunResult, Status
from spec.requirement import Level

__all__ = ["Outcome", "CaseStatus", "extra_outcomes", "outcome", "unjudged_musts", "verdict_word"]

UNJUDGED = (Status.SKIPPED, Status.UNTESTED, Status.ERROR)
"""A MUST with one of these statuses was not judged (the run is INCOMPLETE or ERROR)."""


def verdict_word(result: RunResult) -> str:
    """The run's verdict in capitals: PASS, FAIL, ERROR or INCOMPLETE."""
    verdict: object = result.verdict
    return str(getattr(verdict, "value", verdict)).upper()


def unjudged_musts(result: RunResult) -> list[Finding]:
    """The MUSTs of the run that were neither passed nor failed, each with its reason."""
    return [
        finding
        for finding in result.findings
        if finding.requirement.level is Level.MUST and finding.status in UNJUDGED
    ]


class CaseStatus(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    SKIPPED = "skipped"
    WARNING = "warning"
    """A SHOULD broken: visible, but not a failure (unless --strict)."""
    FLAKY = "flaky"
    """Failed, then passed alone: visible, but not a failure (unless --strict)."""


@dataclass(frozen=True)
class Outcome:
    status: CaseStatus
    message: str
    """Why, in one line or a few: empty for a plain pass."""


def _baseline_problem(result: RunResult, finding: Finding) -> str | None:
    if finding.baseline not in ("stale", "expired"):
        return None
    needle = f"{finding.baseline} baseline entry {finding.requirement.id}"
    for problem in result.baseline_problems:
        if problem.startswith(needle):
            return problem
    return f"{needle}: it fails the run"


def outcome(result: RunResult, finding: Finding) -> Outcome:
    status = finding.status
    problem = _baseline_problem(result, finding)
    if problem is not None:
        shown = f"{problem} (the requirement itself is {status.value})"
        if finding.message:
            shown += f": {finding.message}"
        return Outcome(CaseStatus.FAILED, shown)
    if status is Status.FAILED:
        return Outcome(CaseStatus.FAILED, finding.message)
    if status in (Status.WARNING, Status.FLAKY) and result.strict:
        return Outcome(
            CaseStatus.FAILED, f"{status.value} (fails under --strict): {finding.message}"
        )
    if status is Status.ERROR:
        blame = finding.as_json()["blame"]
        return Outcome(CaseStatus.ERROR, f"{blame} error: {finding.message}")
    if status is Status.WARNING:
        return Outcome(
            CaseStatus.WARNING,
            f"warning: {finding.requirement.level.value} not met (does not fail the run; "
            f"--strict makes it a failure): {finding.message}",
        )
    if status is Status.FLAKY:
        return Outcome(CaseStatus.FLAKY, finding.message)
    if status is Status.KNOWN:
        return Outcome(CaseStatus.SKIPPED, f"known failure (baseline): {finding.message}")
    if status in (Status.SKIPPED, Status.NOT_APPLICABLE, Status.UNTESTED):
        return Outcome(CaseStatus.SKIPPED, f"{status.value.replace('_', ' ')}: {finding.message}")
    return Outcome(CaseStatus.PASSED, "")


def extra_outcomes(result: RunResult) -> list[tuple[str, Outcome]]:
    """Run-level problems as (name, outcome): baseline entries no requirement of this run
    carries, and messages the suite's own mocks sent that fail their schema."""
    carried = {
        problem
        for finding in result.findings
        if (problem := _baseline_problem(result, finding)) is not None
    }
    extras = [
        (f"baseline: {problem.split(':', 1)[0]}", Outcome(CaseStatus.FAILED, problem))
        for problem in result.baseline_problems
        if problem not in carried
    ]
    if verdict_word(result) == "INCOMPLETE":
        unjudged = unjudged_musts(result)
        listed = "\n".join(f"{f.requirement.id} ({f.status.value}): {f.message}" for f in unjudged)
        extras.append(
            (
                f"verdict: INCOMPLETE, {len(unjudged)} MUST(s) not judged",
                Outcome(
                    CaseStatus.ERROR,
                    f"incomplete: nothing failed, but {len(unjudged)} MUST requirement(s) "
                    f"were not judged, so the run proves nothing about them:\n{listed}",
                ),
            )
        )
    if result.harness_problems:
        listed = "\n".join(f"#{p['exchange']} {p['message']}" for p in result.harness_problems)
        extras.append(
            (
                "harness: the suite's own mocks sent invalid messages",
                Outcome(CaseStatus.ERROR, f"harness error: {listed}"),
            )
        )
    return extras
