"""What the self-test would cost if each fault ran only the checks that consult it (issue 17).

Not what `provspec selftest` does, and not a proposal to make it so without a decision: a
measurement behind one. Mutation-testing tools run, per mutant, only the tests that reach it.
The self-test could do the same: in a clean run, record which checks ask the mock whether
each fault is active (`FaultSet.active`); a fault run would then run only those checks. This
script makes one such recording per role and profile and prints, per row: the clean run's CPU,
the full self-test's cost (every fault a full run, as now), and the selected cost (the checks
consulting the fault plus the run's set-up), with how many checks consult a fault.

Why it is not sound as it stands, which the figures show:
- "at set-up": faults asked about while the run sets up (the mock is built), which may change
  everything after; they are costed as a full run.
- "never consulted": faults no clean run asks about. Their hooks sit behind a test of the
  fault set itself (`faults and faults.active(...)`), so a clean run cannot tell which checks
  they change, and selection would never run them.
- Checks share the mock's state (one signed-in user, one spend ledger, the same providers).
  A fault that changes the state in one check can change a later check that never asks
  about it; a full run shows that as an extra failure, a selected run hides it. The
  self-test's promise that extra failures are caught rests on the full run.

CPU is the process's, threads included, attributed to the check running when it was spent.
Figures vary with the machine and its load.

    python bench/check_selection.py [--roles orchestrator] [--profiles app-next]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from run_speed import PROFILES, ROLES, failures, plan_for

from conformance.engine import run_sync
from conformance.events import Activity, Event
from mocks.faults import FaultSet, catalogue
from spec.requirement import Role

SETUP_PREFIX = "setting up"
"""How the engine names a run's set-up activities (paid by every run, selected or not)."""


@dataclass
class Recording:
    """Per activity of one clean run: its CPU seconds, and which faults it consulted."""

    cpu_s: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    consulted: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    current: str = "before the first activity"
    _mark: float = 0.0

    def listen(self, event: Event) -> None:
        if isinstance(event, Activity):
            self._close()
            self.current = event.doing

    def _close(self) -> None:
        now = time.process_time()
        self.cpu_s[self.current] += now - self._mark
        self._mark = now

    def start(self) -> None:
        self._mark = time.process_time()

    def finish(self) -> None:
        self._close()


def record(role: Role, profile: str) -> Recording:
    """One clean run of `role` with every `FaultSet.active` question attributed to the
    activity (check or set-up) under way when it was asked."""
    recording = Recording()
    original: Callable[[FaultSet, str], bool] = FaultSet.active  # type: ignore[assignment]

    def active(fault_set: FaultSet, name: str) -> bool:
        recording.consulted[name].add(recording.current)
        return original(fault_set, name)

    FaultSet.active = active  # type: ignore[assignment,method-assign]
    try:
        recording.start()
        result = run_sync(plan_for(role, profile), listeners=[recording.listen])
        recording.finish()
    finally:
        FaultSet.active = original  # type: ignore[assignment,method-assign]
    failed = failures(result)
    if failed:
        raise SystemExit(f"{role.value} {profile}: the clean run failed {', '.join(failed)}")
    return recording


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--roles", default=",".join(role.value for role in ROLES))
    parser.add_argument("--profiles", default=",".join(PROFILES))
    args = parser.parse_args(argv)
    print(
        f"{'role':<13}{'profile':<10}{'faults':>7}{'clean CPU s':>12}{'full CPU s':>11}"
        f"{'selected CPU s':>15}{'x less':>7}{'checks/fault':>13}{'at set-up':>10}{'never':>6}"
    )
    full_total = selected_total = 0.0
    unsound: list[str] = []
    for role in [Role(name) for name in args.roles.split(",") if name]:
        for profile in [name for name in args.profiles.split(",") if name]:
            faults = [
                f.name
                for f in catalogue().values()
                if f.mock == role.value and profile in f.profiles
            ]
            run_sync(plan_for(role, profile))  # warm: imports, schemas, what a worker pays once
            recording = record(role, profile)
            clean = sum(recording.cpu_s.values())
            setup = sum(s for doing, s in recording.cpu_s.items() if doing.startswith(SETUP_PREFIX))
            checks = {doing for doing in recording.cpu_s if not doing.startswith(SETUP_PREFIX)}
            asked = [recording.consulted.get(name, set()) for name in faults]
            at_setup = [name for name, by in zip(faults, asked, strict=True) if by - checks]
            # A fault asked about at set-up may change every check after it: all of them run.
            per_fault = [checks if by - checks else by for by in asked]
            selected = sum(setup + sum(recording.cpu_s[c] for c in chosen) for chosen in per_fault)
            never = [name for name, by in zip(faults, asked, strict=True) if not by]
            unsound += [f"{role.value} {profile}: {name}" for name in never]
            full = clean * len(faults)
            full_total += full
            selected_total += selected
            median = statistics.median(len(chosen) for chosen in per_fault) if faults else 0
            print(
                f"{role.value:<13}{profile:<10}{len(faults):>7}{clean:>12.2f}{full:>11.1f}"
                f"{selected:>15.1f}{full / max(selected, 1e-9):>7.1f}"
                f"{f'{median:g} of {len(checks)}':>13}{len(at_setup):>10}{len(never):>6}",
                flush=True,
            )
    print(
        f"\ntotal: full {full_total:.1f} s CPU, selected {selected_total:.1f} s CPU "
        f"({full_total / max(selected_total, 1e-9):.1f}x less), {len(unsound)} faults "
        "no clean run consults (selection would never judge them)"
    )
    for line in unsound:
        print(f"  never consulted: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
