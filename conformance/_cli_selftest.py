"""`provspec selftest`'s output: a progress line per run as it finishes, with the time left,
then the whole detection matrix in the catalogue's order, the reference runs and the totals.

Runs finish longest first and side by side, so the progress lines come in no fixed order;
the matrix at the end is the one to read.
"""

from __future__ import annotations

import argparse
import fnmatch
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from conformance.selftest import FaultRow, SelftestProgress, run_selftest
from mocks.faults import catalogue
from spec.requirement import Role
from spec.schemas import default_store
from wire.errors import UsageError

__all__ = ["SelftestColumns", "clock", "progress_line", "result_text", "selftest_command"]


@dataclass(frozen=True)
class SelftestColumns:
    """The selftest matrix's column widths: each as wide as its longest entry (a draft's
    profile directory, a long fault name), so no two columns ever run together."""

    mock: int
    fault: int
    profile: int
    expected: int

    @staticmethod
    def fitting(profiles: Iterable[str], faults: Iterable[Any]) -> SelftestColumns:
        faults = list(faults)
        return SelftestColumns(
            mock=max([len("mock"), *(len(f.mock) for f in faults)]),
            fault=max([len("fault"), *(len(f.name) for f in faults)]),
            profile=max([len("profile"), *(len(p) for p in profiles)]),
            expected=min(max([len("expected"), *(len(", ".join(f.breaks)) for f in faults)]), 40),
        )

    def line(self, mock: str, fault: str, profile: str, expected: str, result: str) -> str:
        """One row; two spaces at least between columns, whatever a cell holds."""
        return (
            f"  {mock:<{self.mock}}  {fault:<{self.fault}}  {profile:<{self.profile}}  "
            f"{expected:<{self.expected}}  {result}"
        )


def result_text(row: FaultRow) -> str:
    """A row's verdict: caught exactly, not run (and why), or what was missed or also failed."""
    if row.status == "not-run":
        return f"not run: {row.why_not_run}"
    if row.status == "exact":
        return "caught exactly"
    parts = []
    if row.missing:
        parts.append(f"MISSED {', '.join(sorted(row.missing))}")
    if row.extra:
        parts.append(f"also failed {', '.join(sorted(row.extra))}")
    return "; ".join(parts)


def clock(seconds: float) -> str:
    """m:ss (h:mm:ss past an hour)."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def progress_line(step: SelftestProgress) -> str:
    """One finished run: how far the self-test is, the time left, and what the run found."""
    width = len(str(step.total))
    head = (
        f"[{step.done:>{width}}/{step.total} {clock(step.elapsed_s)}, ~{clock(step.left_s)} left]"
    )
    if step.row is None:
        state = (
            "clean" if not step.stats.failed else f"FAILED {', '.join(sorted(step.stats.failed))}"
        )
        what = f"reference mock {step.role} ({step.profile}): {state}"
    else:
        what = f"{step.role} {step.row.fault.name} ({step.profile}): {result_text(step.row)}"
    return f"{head} {what} ({step.stats.wall_s:.1f} s)"


def _say(text: str = "") -> None:
    """One line out at once (progress shows while the runs go on, even through a pipe)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def selftest_command(args: argparse.Namespace) -> int:
    profiles = tuple(args.profile or default_store().profiles())
    for profile in profiles:
        default_store().profile(profile)
    if args.fault and not any(
        fnmatch.fnmatchcase(name, glob) for glob in args.fault for name in catalogue()
    ):
        raise UsageError(
            f"no fault matches {', '.join(args.fault)}; `provspec mock --list-faults` lists them"
        )
    roles = tuple(Role(name) for name in args.role) if args.role else tuple(Role)
    if args.jobs < 1:
        raise UsageError("--jobs wants a positive number of processes")
    _say(f"provspec selftest: reference mocks, then every named fault ({', '.join(profiles)})\n")

    def tick(step: SelftestProgress) -> None:
        _say(progress_line(step))

    def planned(runs: int) -> None:
        workers = "in this process" if args.jobs == 1 else f"over {args.jobs} cores"
        _say(f"{runs} runs (each reference, then each fault), longest first, {workers}:")

    outcome = run_selftest(
        profiles, roles=roles, jobs=args.jobs, only=args.fault, tick=tick, on_plan=planned
    )
    columns = SelftestColumns.fitting(profiles, catalogue().values())
    _say("\n" + columns.line("mock", "fault", "profile", "expected", "result"))
    for row in outcome.rows:
        expected = ", ".join(row.fault.breaks)
        _say(columns.line(row.fault.mock, row.fault.name, row.profile, expected, result_text(row)))
    for (role, profile), failed in outcome.references.items():
        state = "clean" if not failed else f"FAILED {', '.join(failed)}"
        _say(f"\nreference mock {role} ({profile}): {state}")
    run_rows = outcome.run_rows
    caught = sum(1 for r in run_rows if not r.missing)
    _say(
        f"\ndetection rate {outcome.detection_rate:.0%} ({caught}/{len(run_rows)} "
        f"fault runs caught), false positives {outcome.false_positives}, "
        f"{len(outcome.rows) - len(run_rows)} fault runs not yet covered, "
        f"{outcome.duration_s:.1f} s"
    )
    return outcome.exit_code
