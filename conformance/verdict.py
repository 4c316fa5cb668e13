"""The verdict, written once: what every front end (`provspec run`, the pytest plugin,
`provspec selftest`) concludes from the checks' outcomes.

* A check's outcome (`CheckOutcome`) is a status per requirement it declares.
* `combine` folds the outcomes into one finding per requirement of the run: the worst
  status wins (error, failed, flaky, warning, passed, skipped, not applicable), the profile's
  level decides whether a failure is a failure or a warning, and a requirement no check
  covers is untested.
* `apply_baseline` then reads the team's baseline per requirement: a listed failure is
  known (it does not fail the run), a listed requirement that passes is a stale entry and an
  entry past its expiry date is expired (each fails the run). `known_failures` is the same
  rule for one check's outcome, which is all the pytest plugin knows while a test runs: its
  stale and expired entries are judged per requirement once every check has run.
* The run's verdict and exit code follow from the findings (`RunResult.verdict`,
  `RunResult.exit_code`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from conformance.baseline import Baseline, BaselineEntry
from conformance.checks import Check
from conformance.results import Blame, Finding, RunResult, Status, downgrade
from spec.registry import default_registry
from spec.requirement import Level, Role, Step

__all__ = [
    "UNTESTED",
    "BaselineWord",
    "CheckOutcome",
    "apply_baseline",
    "combine",
    "failed_so_far",
    "headline",
    "known_failures",
    "merge_rerun",
    "rerun_wanted",
    "today",
]

_RANK = {
    Status.ERROR: 7,
    Status.FAILED: 6,
    Status.FLAKY: 5,
    Status.WARNING: 4,
    Status.PASSED: 3,
    Status.SKIPPED: 2,
    Status.NOT_APPLICABLE: 1,
    Status.UNTESTED: 0,
}
_BASELINED = (Status.FAILED, Status.WARNING, Status.FLAKY)
"""The statuses a baseline entry excuses (reports as known)."""

UNTESTED = (
    "no check covers this requirement yet: provspec cannot judge it (a gap in the suite, "
    "not in your setup)"
)

BaselineWord = Literal["known", "stale", "expired"]


def today_utc() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


today: Callable[[], dt.date] = today_utc
"""The day baselines are judged on; tests replace it (never the real date in a test)."""


@dataclass
class CheckOutcome:
    check: Check
    statuses: dict[str, tuple[Status, str, list[int]]]
    """Per requirement the check declares: its status, why, and the evidence (recorder ids)."""
    duration_s: float
    blames: dict[str, Blame] = field(default_factory=dict)
    """Per requirement whose status is not a pass: who it is on (implementation if absent)."""


# --- combining the checks' outcomes per requirement ------------------------------------------


def combine(
    role: Role,
    profile: str,
    outcomes: Iterable[CheckOutcome],
    steps: Iterable[Step] | None,
    only: Iterable[str] | None = None,
) -> list[Finding]:
    """One finding per requirement of the role and profile (its steps; `only` these)."""
    wanted = set(steps) if steps is not None else None
    chosen = set(only) if only is not None else None
    findings: dict[str, Finding] = {
        requirement.id: Finding(requirement, Status.UNTESTED, UNTESTED)
        for requirement in default_registry().select(role=role, profile=profile)
        if (wanted is None or requirement.step in wanted)
        and (chosen is None or requirement.id in chosen)
    }
    for outcome in outcomes:
        for requirement_id, (status, message, evidence) in outcome.statuses.items():
            finding = findings.get(requirement_id)
            if finding is None:
                continue
            finding.checks.append(outcome.check.name)
            if status in (Status.FAILED, Status.WARNING):  # the profile's level decides
                status = downgrade(Status.FAILED, finding.requirement.level)
            if _RANK[status] > _RANK[finding.status] or finding.status is Status.UNTESTED:
                finding.status, finding.message = status, message
                finding.blame = outcome.blames.get(requirement_id)
            if status in (Status.FAILED, Status.WARNING, Status.ERROR, Status.FLAKY):
                finding.evidence.extend(evidence)
    for finding in findings.values():
        if finding.status in (Status.FAILED, Status.WARNING, Status.FLAKY):
            finding.blame = Blame.IMPLEMENTATION
    return list(findings.values())


def merge_rerun(first: CheckOutcome, again: CheckOutcome, attempt: int) -> CheckOutcome:
    """A requirement that failed and then passed when its check ran again alone is flaky;
    one that failed again keeps its first verdict and evidence."""
    statuses = dict(first.statuses)
    for requirement_id, (status, message, evidence) in first.statuses.items():
        if status not in (Status.FAILED, Status.WARNING) or first.blames.get(requirement_id):
            continue
        if again.statuses.get(requirement_id, (Status.FAILED, "", []))[0] is Status.PASSED:
            statuses[requirement_id] = (
                Status.FLAKY,
                f"flaky: failed, then passed on re-run {attempt} of the check alone; "
                f"the failure was: {message}",
                evidence,
            )
    return CheckOutcome(first.check, statuses, first.duration_s + again.duration_s, first.blames)


def rerun_wanted(outcome: CheckOutcome) -> bool:
    """Whether the check failed a requirement on the target's account (worth a re-run)."""
    return any(
        status in (Status.FAILED, Status.WARNING) and requirement_id not in outcome.blames
        for requirement_id, (status, _, _) in outcome.statuses.items()
    )


def failed_so_far(outcomes: Iterable[CheckOutcome], strict: bool) -> int:
    """Distinct requirements failed so far, as the verdict counts them (a SHOULD and a flaky
    result only under --strict), at the level the registry gives them."""
    registry = default_registry()
    failing = {Status.FAILED, Status.WARNING} if strict else {Status.FAILED}
    return len(
        {
            requirement_id
            for outcome in outcomes
            for requirement_id, (status, _, _) in outcome.statuses.items()
            if status in failing
            and (strict or registry[requirement_id].level is Level.MUST)
            and requirement_id not in outcome.blames
        }
    )


# --- the baseline ------------------------------------------------------------------------------


def _judge(
    entry: BaselineEntry,
    requirement_id: str,
    status: Status,
    checks: Iterable[str],
    profile: str,
    day: dt.date,
) -> BaselineWord | None:
    """What one entry says of one requirement's status: known, stale, expired or nothing
    (another requirement's or profile's entry, another scenario, a result it has no word on)."""
    if entry.id != requirement_id or (entry.profile is not None and entry.profile != profile):
        return None
    if entry.expires is not None and entry.expires < day:
        return "expired"
    if entry.scenario is not None and entry.scenario not in checks:
        return None
    if status in _BASELINED:
        return "known"
    if status is Status.PASSED:
        return "stale"
    return None


def apply_baseline(result: RunResult, baseline: Baseline, day: dt.date) -> None:
    """Mark listed failures known, and record stale and expired entries (each fails the run)."""
    ours = {finding.requirement.id: finding for finding in result.findings}
    for entry in baseline.entries:
        finding = ours.get(entry.id)
        if finding is None:
            continue  # another role's requirement, or a step this run left out
        word = _judge(entry, entry.id, finding.status, finding.checks, result.profile, day)
        if word == "expired":
            assert entry.expires is not None
            finding.baseline = "expired"
            result.baseline_problems.append(
                f"expired baseline entry {entry.describe()}: it expired on "
                f"{entry.expires.isoformat()} ({entry.reason}); fix the failure or renew the entry"
            )
        elif word == "known":
            finding.message = f"known failure ({entry.reason}): {finding.message}"
            finding.status = Status.KNOWN
            finding.baseline = "known"
        elif word == "stale":
            finding.baseline = "stale"
            result.baseline_problems.append(
                f"stale baseline entry {entry.describe()}: the requirement now passes; "
                "delete the entry"
            )


def known_failures(
    baseline: Baseline,
    outcome: CheckOutcome,
    checks_of: Callable[[str], Iterable[str]],
    profile: str,
    day: dt.date,
) -> dict[str, str]:
    """The failures of one check's outcome the baseline knows (requirement id -> reason),
    by the rule `apply_baseline` applies to the whole requirement. `checks_of(id)`: the
    checks of the run that judge that requirement (a scenario names one of them).

    Whether an entry is stale is not known from one check: another check may fail the
    requirement the entry lists. That, and expiry, is judged once the run is over."""
    known: dict[str, str] = {}
    for entry in baseline.entries:
        judged = outcome.statuses.get(entry.id)
        if judged is None:
            continue
        word = _judge(entry, entry.id, judged[0], checks_of(entry.id), profile, day)
        if word == "known":
            known[entry.id] = entry.reason
    return known


def headline(result: RunResult) -> str:
    """The run's verdict in one line, as every front end ends with it:
    `FAIL: 2 failing requirement(s): PRV-ACC-002, PRV-ACC-010`."""
    word = "CERTIFIED" if result.certified else result.verdict.value.upper()
    if result.certify and not result.certified:
        word += " (not certified)"
    failed = result.failed()
    names = ", ".join(f.requirement.id for f in failed) or "none"
    return f"{word}: {len(failed)} failing requirement(s): {names}"
