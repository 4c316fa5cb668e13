"""`provspec selftest`: the suite judged against its own reference mocks and every fault.

The reference mocks must pass clean; each injected fault must fail exactly the requirement(s)
it names. The detection matrix shows, per fault, whether the expected requirement failed and
whether anything else did; the totals are the detection rate and the false positives.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from conformance.adapters.provider import ProviderTargetConfig
from conformance.engine import RunPlan, run_sync
from conformance.registry import Role
from conformance.results import Status
from mocks._core.faults import Fault, catalogue

__all__ = ["FaultRow", "SelftestResult", "run_selftest"]

BUILT_ROLES = (Role.PROVIDER,)


@dataclass
class FaultRow:
    fault: Fault
    profile: str
    failed: set[str]
    status: str
    """exact, missed, extra (caught, plus false positives), or not-run (the role's pack is not built)."""

    @property
    def missing(self) -> set[str]:
        return set(self.fault.breaks) - self.failed

    @property
    def extra(self) -> set[str]:
        return self.failed - set(self.fault.breaks)


@dataclass
class SelftestResult:
    references: dict[tuple[str, str], list[str]]
    """(role, profile) -> requirement IDs that failed against the reference mock (should be none)."""
    rows: list[FaultRow]
    duration_s: float

    @property
    def run_rows(self) -> list[FaultRow]:
        return [row for row in self.rows if row.status != "not-run"]

    @property
    def detection_rate(self) -> float:
        rows = self.run_rows
        return sum(1 for row in rows if not row.missing) / len(rows) if rows else 0.0

    @property
    def false_positives(self) -> int:
        return sum(len(row.extra) for row in self.run_rows) + sum(
            len(v) for v in self.references.values()
        )

    @property
    def exit_code(self) -> int:
        return 0 if self.detection_rate == 1.0 and self.false_positives == 0 else 1


def _failed(profile: str, faults: Sequence[str]) -> set[str]:
    result = run_sync(
        RunPlan(Role.PROVIDER, profile, ProviderTargetConfig(profile=profile, faults=tuple(faults)))
    )
    return {
        f.requirement.id for f in result.findings if f.status in (Status.FAILED, Status.WARNING)
    }


def run_selftest(
    profiles: Sequence[str] = ("app-0.1d", "app-next"),
    progress: Callable[[FaultRow], None] | None = None,
) -> SelftestResult:
    started = time.perf_counter()
    references = {("provider", profile): sorted(_failed(profile, ())) for profile in profiles}
    rows: list[FaultRow] = []
    for fault in sorted(catalogue().values(), key=lambda f: (f.mock, f.name)):
        for profile in fault.profiles:
            if profile not in profiles:
                continue
            if Role(fault.mock) not in BUILT_ROLES:
                row = FaultRow(fault, profile, set(), "not-run")
            else:
                failed = _failed(profile, (fault.name,))
                expected = set(fault.breaks)
                status = (
                    "exact"
                    if failed == expected
                    else ("missed" if not expected <= failed else "extra")
                )
                row = FaultRow(fault, profile, failed, status)
            rows.append(row)
            if progress is not None:
                progress(row)
    return SelftestResult(references, rows, time.perf_counter() - started)
