"""`provspec selftest`: the suite judged against its own reference mocks and every fault.

The reference mocks must pass clean; each injected fault must fail exactly the requirement(s)
it names. The detection matrix shows, per fault, whether the expected requirement failed and
whether anything else did; the totals are the detection rate and the false positives.
"""

from __future__ import annotations

import contextlib
import fnmatch
import multiprocessing
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from conformance.adapters.agent import AgentTargetConfig
from conformance.adapters.orchestrator import OrchestratorTargetConfig
from conformance.adapters.provider import ProviderTargetConfig
from conformance.adapters.resource_server import ResourceServerTargetConfig
from conformance.checks import checks_for
from conformance.engine import RunPlan, run_sync
from conformance.results import Status
from mocks.faults import Fault, catalogue
from spec.drafts.consistency import consistency
from spec.registry import default_registry
from spec.requirement import Role
from spec.schemas import default_store
from wire.errors import ProvspecError

__all__ = ["FaultRow", "SelftestResult", "run_selftest"]

BUILT_ROLES = (Role.PROVIDER, Role.ORCHESTRATOR, Role.AGENT, Role.RESOURCE_SERVER)


@dataclass
class FaultRow:
    fault: Fault
    profile: str
    failed: set[str]
    status: str
    """exact, missed, extra (caught, plus false positives), or not-run (no check covers it yet)."""
    why_not_run: str = ""
    kept: frozenset[str] | None = None
    """The fault's requirements the profile keeps (a draft may drop some); None: all."""

    @property
    def expected(self) -> set[str]:
        breaks = set(self.fault.breaks)
        return breaks if self.kept is None else breaks & self.kept

    @property
    def missing(self) -> set[str]:
        return self.expected - self.failed

    @property
    def extra(self) -> set[str]:
        return self.failed - self.expected


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


def _failed(role: Role, profile: str, faults: Sequence[str]) -> set[str]:
    if role is Role.PROVIDER:
        # A few generated requests per operation, so the fuzzing check is proven too.
        provider = ProviderTargetConfig(profile=profile, faults=tuple(faults), fuzz_examples=3)
        plan = RunPlan(role, profile, provider)
    elif role is Role.ORCHESTRATOR:
        # A smaller cap race (2 rounds of 10, not 20 of 50): its fault races whenever two
        # redemptions overlap, and the full race in every fault run would cost minutes.
        config = OrchestratorTargetConfig(
            profile=profile, faults=tuple(faults), concurrent_redemptions=10, concurrency_rounds=2
        )
        plan = RunPlan(role, profile, orchestrator=config)
    elif role is Role.AGENT:
        plan = RunPlan(
            role, profile, agent=AgentTargetConfig(profile=profile, faults=tuple(faults))
        )
    else:
        resource_server = ResourceServerTargetConfig(profile=profile, faults=tuple(faults))
        plan = RunPlan(role, profile, resource_server=resource_server)
    result = run_sync(plan)
    # A harness or environment error is never a catch: it shows as an extra failure, named so
    # it cannot match what a fault breaks.
    return {
        f.requirement.id for f in result.findings if f.status in (Status.FAILED, Status.WARNING)
    } | {f"{f.requirement.id} (error)" for f in result.findings if f.status is Status.ERROR}


def _uncovered(fault: Fault, profile: str) -> str:
    """Why this fault cannot be judged yet, or "" when some check covers what it breaks."""
    role = Role(fault.mock)
    if role not in BUILT_ROLES:
        return "the pack for this role is not built yet"
    kept = {r.id for r in default_registry().select(role=role, profile=profile)}
    if not set(fault.breaks) & kept:
        return f"the profile drops {', '.join(fault.breaks)}"
    covered = {r for c in checks_for(role, profile) for r in c.requirements}
    if not set(fault.breaks) & covered:
        return f"no check covers {', '.join(fault.breaks)} yet"
    return ""


def _failed_job(job: tuple[str, str, tuple[str, ...]]) -> set[str]:
    role, profile, faults = job
    return _failed(Role(role), profile, faults)


def judged(role: Role, profile: str) -> bool:
    """Whether `profile` has requirements of `role` (the resource-server profiles have none
    of the APP roles', and the APP profiles none of the resource server's)."""
    return bool(default_registry().select(role=role, profile=profile))


def run_selftest(
    profiles: Sequence[str] | None = None,
    progress: Callable[[FaultRow], None] | None = None,
    roles: Sequence[Role] = tuple(Role),
    jobs: int = 1,
    only: Sequence[str] = (),
) -> SelftestResult:
    """Judge the reference mocks, then every fault; `jobs` > 1 spreads the runs over processes
    (each run is independent: its own mocks, ports and state). `only`: fault-name globs; the
    reference runs always happen, since a fault only means something next to a clean run.
    `profiles` defaults to every built-in profile; each role runs in the profiles that have
    requirements of it."""
    started = time.perf_counter()
    store = default_store()
    if profiles is None:
        profiles = store.profiles()
    for profile in profiles:  # a draft the mocks cannot satisfy is reported before they run
        spec = store.profile(profile)
        if not spec.builtin:
            problems = consistency(spec.name)
            if problems:
                listing = "\n".join(f"  - {problem}" for problem in problems)
                raise ProvspecError(
                    f"the draft profile {spec.name!r} cannot be satisfied "
                    f"({len(problems)} problem(s)):\n{listing}"
                )
    # A draft is named by its directory in the worker processes, which load it again.
    specs = {profile: store.profile(profile).spec for profile in profiles}
    reference_jobs = [
        (role.value, profile, ())
        for role in BUILT_ROLES
        if role in roles
        for profile in profiles
        if judged(role, profile)
    ]
    planned: list[tuple[Fault, str, str]] = []
    for fault in sorted(catalogue().values(), key=lambda f: (f.mock, f.name)):
        for profile in profiles:
            family = store.profile(profile).family
            wanted = not only or any(fnmatch.fnmatchcase(fault.name, glob) for glob in only)
            if family in fault.profiles and Role(fault.mock) in roles and wanted:
                planned.append((fault, profile, _uncovered(fault, profile)))
    fault_jobs = [(f.mock, specs[profile], (f.name,)) for f, profile, why in planned if not why]
    reference_jobs = [(role, specs[profile], faults) for role, profile, faults in reference_jobs]
    with contextlib.ExitStack() as stack:
        if jobs > 1:
            pool = stack.enter_context(
                ProcessPoolExecutor(
                    max_workers=jobs, mp_context=multiprocessing.get_context("spawn")
                )
            )
            results: Iterator[set[str]] = pool.map(_failed_job, [*reference_jobs, *fault_jobs])
        else:
            results = map(_failed_job, [*reference_jobs, *fault_jobs])
        names = {spec: profile for profile, spec in specs.items()}
        references = {
            (role, names[spec]): sorted(next(results)) for role, spec, _ in reference_jobs
        }
        rows: list[FaultRow] = []
        for fault, profile, why in planned:
            if why:
                row = FaultRow(fault, profile, set(), "not-run", why)
            else:
                kept = {
                    r.id for r in default_registry().select(role=Role(fault.mock), profile=profile)
                }
                failed = next(results)
                expected = set(fault.breaks) & kept
                status = (
                    "exact"
                    if failed == expected
                    else ("missed" if not expected <= failed else "extra")
                )
                row = FaultRow(fault, profile, failed, status, kept=frozenset(kept))
            rows.append(row)
            if progress is not None:
                progress(row)
    return SelftestResult(references, rows, time.perf_counter() - started)
