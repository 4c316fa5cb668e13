"""Single runs on the embedded mocks: wall and CPU seconds per role and profile (issue 17).

Each (role, profile) runs once to warm the process (imports, schema compilation, the fuzz
cases: what a selftest worker pays once), then `--repeats` more times in the same process;
the median of those is the per-run figure, the first run is shown beside it. The runs are
configured as `provspec selftest` configures them (3 fuzz examples per provider operation,
a cap race of 2 rounds of 10 for the orchestrator). CPU is the process's, threads included
(the orchestrator's embedded CLI runs in threads). Every run must pass clean: a run with a
failure is no speed figure. Not a test: figures vary with the machine and its load.

    python bench/run_speed.py [--repeats 3] [--roles provider,orchestrator] [--profiles app-next]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass

from conformance.adapters.agent import AgentTargetConfig
from conformance.adapters.orchestrator import OrchestratorTargetConfig
from conformance.adapters.provider import ProviderTargetConfig
from conformance.engine import RunPlan, run_sync
from conformance.results import RunResult, Status
from spec.requirement import Role

PROFILES = ("app-0.1d", "app-next")
ROLES = (Role.PROVIDER, Role.ORCHESTRATOR, Role.AGENT)
TARGETS = {Role.PROVIDER: 1.0, Role.ORCHESTRATOR: 4.0, Role.AGENT: 3.0}
"""Issue 17's wall-time targets for a single run, in seconds."""


@dataclass(frozen=True)
class Timing:
    wall_s: float
    cpu_s: float
    exchanges: int


def plan_for(role: Role, profile: str) -> RunPlan:
    """The run the selftest makes for `role` on a clean mock."""
    if role is Role.PROVIDER:
        return RunPlan(role, profile, ProviderTargetConfig(profile=profile, fuzz_examples=3))
    if role is Role.ORCHESTRATOR:
        config = OrchestratorTargetConfig(
            profile=profile, concurrent_redemptions=10, concurrency_rounds=2
        )
        return RunPlan(role, profile, orchestrator=config)
    return RunPlan(role, profile, agent=AgentTargetConfig(profile=profile))


def timed_run(role: Role, profile: str) -> Timing:
    plan = plan_for(role, profile)
    wall, cpu = time.perf_counter(), time.process_time()
    result = run_sync(plan)
    timing = Timing(
        time.perf_counter() - wall, time.process_time() - cpu, len(result.recorder.exchanges)
    )
    failed = failures(result)
    if failed:
        raise SystemExit(f"{role.value} {profile}: the clean run failed {', '.join(failed)}")
    return timing


def failures(result: RunResult) -> list[str]:
    bad = (Status.FAILED, Status.WARNING, Status.ERROR)
    return sorted({f.requirement.id for f in result.findings if f.status in bad})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="warm runs per role and profile")
    parser.add_argument("--roles", default=",".join(role.value for role in ROLES))
    parser.add_argument("--profiles", default=",".join(PROFILES))
    args = parser.parse_args(argv)
    roles = [Role(name) for name in args.roles.split(",") if name]
    profiles = [name for name in args.profiles.split(",") if name]
    print(
        f"{'role':<13}{'profile':<10}{'first wall/cpu s':>18}"
        f"{'median wall/cpu s':>19}{'exchanges':>11}{'target wall s':>15}"
    )
    for role in roles:
        for profile in profiles:
            first = timed_run(role, profile)
            warm = [timed_run(role, profile) for _ in range(args.repeats)]
            wall = statistics.median(timing.wall_s for timing in warm)
            cpu = statistics.median(timing.cpu_s for timing in warm)
            verdict = "ok" if wall <= TARGETS[role] else "over"
            print(
                f"{role.value:<13}{profile:<10}"
                f"{first.wall_s:>9.2f}/{first.cpu_s:<8.2f}"
                f"{wall:>10.2f}/{cpu:<8.2f}"
                f"{warm[-1].exchanges:>11}"
                f"{TARGETS[role]:>10.1f} {verdict}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
