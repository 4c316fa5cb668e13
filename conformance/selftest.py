"""`provspec selftest`: the suite judged against its own reference mocks and every fault.

The reference mocks must pass clean; each injected fault must fail exactly the requirement(s)
it names. The detection matrix shows, per fault, whether the expected requirement failed and
whether anything else did; the totals are the detection rate and the false positives.
"""

from __future__ import annotations

import fnmatch
import multiprocessing
import re
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field

from conformance.adapters.agent import AgentTargetConfig
from conformance.adapters.orchestrator import OrchestratorTargetConfig
from conformance.adapters.provider import ProviderTargetConfig
from conformance.adapters.resource_server import ResourceServerTargetConfig
from conformance.checks import checks_for
from conformance.engine import RunPlan, run_sync
from conformance.events import Event, ExchangeRecorded, RunFinished
from conformance.recorder import CliCall, Exchange
from conformance.results import RunResult, Status
from mocks.faults import Fault, catalogue
from spec.drafts.consistency import consistency
from spec.registry import default_registry
from spec.requirement import Role
from spec.schemas import default_store
from wire.errors import ProvspecError

__all__ = [
    "FaultRow",
    "RunStats",
    "SelftestProgress",
    "SelftestResult",
    "count_signatures",
    "judge_run",
    "startable",
    "run_selftest",
]

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
    runs: list[tuple[str, str, tuple[str, ...], RunStats]] = field(default_factory=list)
    """Every run made (role, profile, faults, what it cost), references included."""

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


@dataclass(frozen=True)
class RunStats:
    """What one full run of a role's checks found and cost, measured where it ran."""

    failed: frozenset[str]
    wall_s: float
    cpu_s: float
    """CPU time of the process that ran it (each worker runs one run at a time)."""
    exchanges: int
    signatures: int
    """Signatures the exchanges carried (signature headers and compact JWS seen on the wire;
    masked values hide some, so this is a floor estimate)."""
    cli_calls: int


_JWS = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{16,}")
_SHOWN_JWS = re.compile(r"header \{[^{}]*\} claims \{")
"""A JWS as the recorder shows it in evidence: header and claims decoded, signature masked."""


def count_signatures(exchanges: Iterable[Exchange]) -> int:
    """Signatures an exchange made or checked: one per signature header, one per compact JWS
    (raw, or as the recorder shows it) in its headers or bodies; a token issued in one answer
    and sent back later counts twice: signed once, verified once."""
    total = 0
    for exchange in exchanges:
        headers = [*exchange.request_headers.items(), *exchange.response_headers.items()]
        total += sum(1 for name, _ in headers if name.lower().endswith("signature"))
        texts = [exchange.request_body, exchange.response_body, *(v for _, v in headers)]
        total += sum(
            len(_JWS.findall(text)) + len(_SHOWN_JWS.findall(text)) for text in texts if text
        )
    return total


def _plan(role: Role, profile: str, faults: Sequence[str]) -> RunPlan:
    if role is Role.PROVIDER:
        # A few generated requests per operation, so the fuzzing check is proven too.
        provider = ProviderTargetConfig(profile=profile, faults=tuple(faults), fuzz_examples=3)
        return RunPlan(role, profile, provider)
    if role is Role.ORCHESTRATOR:
        # A smaller cap race (2 rounds of 10, not 20 of 50): its fault races whenever two
        # redemptions overlap, and the full race in every fault run would cost minutes.
        config = OrchestratorTargetConfig(
            profile=profile, faults=tuple(faults), concurrent_redemptions=10, concurrency_rounds=2
        )
        return RunPlan(role, profile, orchestrator=config)
    if role is Role.AGENT:
        return RunPlan(
            role, profile, agent=AgentTargetConfig(profile=profile, faults=tuple(faults))
        )
    resource_server = ResourceServerTargetConfig(profile=profile, faults=tuple(faults))
    return RunPlan(role, profile, resource_server=resource_server)


@dataclass
class _Tally:
    """Listens to one run's events: what it exchanged, and the result it finished with."""

    exchanges: list[Exchange] = field(default_factory=list)
    cli_calls: int = 0
    result: RunResult | None = None

    def __call__(self, event: Event) -> None:
        if isinstance(event, ExchangeRecorded):
            if isinstance(event.item, CliCall):
                self.cli_calls += 1
            else:
                self.exchanges.append(event.item)
        elif isinstance(event, RunFinished):
            self.result = event.result


def judge_run(role: Role, profile: str, faults: Sequence[str]) -> RunStats:
    """One full run of `role`'s checks against its mock with `faults` injected, judged by
    the engine's events like every other front end."""
    started, cpu = time.perf_counter(), time.process_time()
    tally = _Tally()
    run_sync(_plan(role, profile, faults), listeners=[tally])
    result = tally.result
    if result is None:
        raise ProvspecError(f"the {role.value} run ended without its RunFinished event")
    # A harness or environment error is never a catch: it shows as an extra failure, named so
    # it cannot match what a fault breaks.
    failed = {
        f.requirement.id for f in result.findings if f.status in (Status.FAILED, Status.WARNING)
    } | {f"{f.requirement.id} (error)" for f in result.findings if f.status is Status.ERROR}
    return RunStats(
        frozenset(failed),
        time.perf_counter() - started,
        time.process_time() - cpu,
        len(tally.exchanges),
        count_signatures(tally.exchanges),
        tally.cli_calls,
    )


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


def judged(role: Role, profile: str) -> bool:
    """Whether `profile` has requirements of `role` (the resource-server profiles have none
    of the APP roles', and the APP profiles none of the resource server's)."""
    return bool(default_registry().select(role=role, profile=profile))


Job = tuple[str, str, tuple[str, ...]]
"""role, profile (a name or a draft's directory: what a worker process can load), faults."""

COST_HINT_S: dict[tuple[str, str], float] = {
    ("orchestrator", "app-next"): 8.0,
    ("orchestrator", "app-0.1d"): 5.0,
    ("agent", "app-next"): 2.5,
    ("agent", "app-0.1d"): 2.5,
    ("provider", "app-next"): 1.5,
    ("provider", "app-0.1d"): 0.8,
}
"""Seconds one run of a role takes, by profile family (bench/selftest_speed.py measures them):
the longest runs start first, so the pool does not end on one long run while the other
workers idle, and the time left is guessed before any run of a kind has finished."""
DEFAULT_COST_S = 0.3
"""The resource-server runs, which take a fraction of a second."""
CPU_SHARE: dict[tuple[str, str], float] = {
    ("orchestrator", "app-next"): 0.85,
    ("orchestrator", "app-0.1d"): 0.65,
    ("agent", "app-next"): 0.6,
    ("agent", "app-0.1d"): 0.6,
    ("provider", "app-next"): 0.85,
    ("provider", "app-0.1d"): 0.85,
}
"""How much of one core a run of a kind keeps busy (its CPU time over its wall time), until
runs of the kind have shown it: the pool starts runs while the shares of those going add up
to at most `jobs` cores, so runs that partly wait (the agents' worlds, the orchestrator's
timeouts) overlap instead of each holding a core the whole time."""
DEFAULT_SHARE = 0.8


@dataclass(frozen=True)
class SelftestProgress:
    """One run finished: what it was, what it cost, and how far the self-test is."""

    role: str
    profile: str
    row: FaultRow | None
    """None for a reference run."""
    stats: RunStats
    done: int
    total: int
    elapsed_s: float
    left_s: float
    """Estimated time left: the runs not finished, by the cost of their kind so far."""


def _warm_worker() -> None:
    """Each worker pays the fixed costs once, before its first run: the profile store and its
    compiled schemas, the requirement registry, the fault catalogue."""
    store = default_store()
    for profile in store.profiles():
        store.profile(profile)
    default_registry()
    catalogue()


def _run_job(job: Job) -> RunStats:
    role, profile, faults = job
    return judge_run(Role(role), profile, faults)


class _Estimate:
    """The time left, from what each kind of run (role, profile) has cost so far; a kind not
    yet seen costs its hint, scaled by how the seen kinds compare with theirs. Likewise the
    share of a core a kind keeps busy: its CPU time over its wall time so far, else its hint."""

    def __init__(
        self,
        kinds: Sequence[tuple[str, str]],
        hints: Sequence[float],
        shares: Sequence[float] = (),
    ) -> None:
        self._hint = dict(zip(kinds, hints, strict=True))
        self._share_hint = dict(zip(kinds, shares or [DEFAULT_SHARE] * len(kinds), strict=True))
        self._seen: dict[tuple[str, str], list[float]] = {}
        self._busy: dict[tuple[str, str], list[float]] = {}
        self._startup: float | None = None
        """Seconds before the first run started (workers starting), once a run has finished."""

    def record(self, kind: tuple[str, str], wall_s: float, cpu_s: float | None = None) -> None:
        self._seen.setdefault(kind, []).append(wall_s)
        if cpu_s is not None:
            self._busy.setdefault(kind, [0.0, 0.0])
            self._busy[kind][0] += cpu_s
            self._busy[kind][1] += wall_s

    def share(self, kind: tuple[str, str]) -> float:
        """Between a quarter and one core: a run never counts as free, nor as more than one
        process can use (its threads share one interpreter)."""
        cpu, wall = self._busy.get(kind, (0.0, 0.0))
        share = cpu / wall if wall > 0 else self._share_hint[kind]
        return min(1.0, max(0.25, share))

    def cost(self, kind: tuple[str, str]) -> float:
        seen = self._seen.get(kind)
        if seen:
            return sum(seen) / len(seen)
        ratios = [sum(v) / len(v) / self._hint[k] for k, v in self._seen.items()]
        return self._hint[kind] * (sum(ratios) / len(ratios) if ratios else 1.0)

    def left(self, pending: Iterable[tuple[str, str]], elapsed_s: float, done: int) -> float:
        """Pending work over the rate the finished work went at (which counts the pool's width),
        from when the first run started: starting the workers is not a rate to go on at."""
        pending = list(pending)
        if not pending or not done:
            return 0.0 if not pending else sum(self.cost(kind) for kind in pending)
        if self._startup is None:
            # The first run to finish started about when the pool could start any.
            first = next(iter(self._seen.values()))[0]
            self._startup = max(0.0, elapsed_s - first)
        finished = sum(sum(v) for v in self._seen.values())
        rate = max(elapsed_s - self._startup, 0.0) / finished if finished else 1.0
        return sum(self.cost(kind) for kind in pending) * rate


def run_selftest(
    profiles: Sequence[str] | None = None,
    progress: Callable[[FaultRow], None] | None = None,
    roles: Sequence[Role] = tuple(Role),
    jobs: int = 1,
    only: Sequence[str] = (),
    tick: Callable[[SelftestProgress], None] | None = None,
    on_plan: Callable[[int], None] | None = None,
) -> SelftestResult:
    """Judge the reference mocks, then every fault; `jobs` > 1 spreads the runs over processes
    (each run is independent: its own mocks, ports and state; each worker loads what every run
    needs once). `only`: fault-name globs; the reference runs always happen, since a fault only
    means something next to a clean run. `profiles` defaults to every built-in profile; each
    role runs in the profiles that have requirements of it. `progress` hears of each fault row
    and `tick` of every run, references included, as they finish (longest runs first, so not
    in the matrix's order); `on_plan` of how many runs there are, before the first starts."""
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
    names = {spec: profile for profile, spec in specs.items()}
    references: list[tuple[str, str]] = [
        (role.value, profile)
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
    # Every run, references first; then the order they are handed out: longest first.
    runs: list[Job] = [(role, specs[profile], ()) for role, profile in references]
    runs += [(f.mock, specs[profile], (f.name,)) for f, profile, why in planned if not why]
    kinds = sorted({(role, names[spec]) for role, spec, _ in runs})
    families = [(role, store.profile(profile).family) for role, profile in kinds]
    estimate = _Estimate(
        kinds,
        [COST_HINT_S.get(family, DEFAULT_COST_S) for family in families],
        [CPU_SHARE.get(family, DEFAULT_SHARE) for family in families],
    )
    order = sorted(range(len(runs)), key=lambda i: -estimate.cost((runs[i][0], names[runs[i][1]])))
    kind_of = [(role, names[spec]) for role, spec, _ in runs]
    rows_by_run = {
        len(references) + n: index
        for n, index in enumerate(i for i, (_, _, why) in enumerate(planned) if not why)
    }
    rows: list[FaultRow | None] = [
        FaultRow(fault, profile, set(), "not-run", why) if why else None
        for fault, profile, why in planned
    ]
    outcomes: dict[int, RunStats] = {}
    pending = set(range(len(runs)))

    def finished(index: int, stats: RunStats) -> None:
        outcomes[index] = stats
        pending.discard(index)
        role, spec, _ = runs[index]
        kind = (role, names[spec])
        estimate.record(kind, stats.wall_s, stats.cpu_s)
        row = None
        if index in rows_by_run:
            fault, profile, _ = planned[rows_by_run[index]]
            row = _row(fault, profile, set(stats.failed))
            rows[rows_by_run[index]] = row
            if progress is not None:
                progress(row)
        if tick is not None:
            elapsed = time.perf_counter() - started
            left = estimate.left(
                ((runs[i][0], names[runs[i][1]]) for i in pending), elapsed, len(outcomes)
            )
            tick(
                SelftestProgress(
                    role, names[spec], row, stats, len(outcomes), len(runs), elapsed, left
                )
            )

    if on_plan is not None:
        on_plan(len(runs))
    if jobs > 1:
        _pooled(runs, order, lambda: [estimate.share(kind) for kind in kind_of], jobs, finished)
    else:
        for index in order:
            finished(index, _run_job(runs[index]))
    for row in rows:
        if row is not None and row.status == "not-run" and progress is not None:
            progress(row)
    return SelftestResult(
        {
            (role, profile): sorted(outcomes[index].failed)
            for index, (role, profile) in enumerate(references)
        },
        [row for row in rows if row is not None],
        time.perf_counter() - started,
        runs=[(runs[i][0], names[runs[i][1]], runs[i][2], outcomes[i]) for i in range(len(runs))],
    )


def startable(
    waiting: Sequence[int], shares: Sequence[float], busy: float, going: int, jobs: int
) -> list[int]:
    """Which waiting runs (in the order given, longest first) start now: while their shares
    of a core fit in `jobs` beside the `busy` ones of the `going` runs, a run that does not
    fit letting a smaller one behind it go; at most twice `jobs` at once; one at least when
    none is going."""
    chosen: list[int] = []
    for index in waiting:
        if going + len(chosen) >= 2 * jobs:
            break
        if (going or chosen) and busy + shares[index] > jobs + 1e-9:
            continue
        chosen.append(index)
        busy += shares[index]
    return chosen


def _pooled(
    runs: Sequence[Job],
    order: Sequence[int],
    shares_now: Callable[[], Sequence[float]],
    jobs: int,
    finished: Callable[[int, RunStats], None],
) -> None:
    """Runs over up to twice `jobs` worker processes, started longest first while the cores
    they keep busy (their shares) fit in `jobs`; a run that does not fit yet lets a smaller
    one behind it go first. Each worker loads what every run needs once, then runs one run
    at a time."""
    waiting = list(order)
    going: dict[Future[RunStats], int] = {}
    holding: dict[int, float] = {}
    """The share each going run was started with (what it frees when it ends)."""
    busy = 0.0
    with ProcessPoolExecutor(
        max_workers=2 * jobs,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_warm_worker,
    ) as pool:
        while waiting or going:
            shares = shares_now()
            for index in startable(waiting, shares, busy, len(going), jobs):
                waiting.remove(index)
                going[pool.submit(_run_job, runs[index])] = index
                holding[index] = shares[index]
                busy += shares[index]
            done, _ = wait(going, return_when=FIRST_COMPLETED)
            for future in done:
                index = going.pop(future)
                busy -= holding.pop(index)
                finished(index, future.result())


def _row(fault: Fault, profile: str, failed: set[str]) -> FaultRow:
    kept = {r.id for r in default_registry().select(role=Role(fault.mock), profile=profile)}
    expected = set(fault.breaks) & kept
    status = "exact" if failed == expected else ("missed" if not expected <= failed else "extra")
    return FaultRow(fault, profile, failed, status, kept=frozenset(kept))
