"""The one engine behind `provspec run`, the pytest plugin and `provspec selftest`.

A run (`EngineRun`) picks the checks of one role and profile (optionally some steps), gives
each a fresh context on the target, runs it with a time limit, and tells its listeners as it
goes (`conformance.events`). Its result folds the checks' verdicts into one finding per
requirement of that role and profile, by the rules every front end shares
(`conformance.verdict`): failed (with the evidence), warning (a SHOULD or MAY that failed),
passed, skipped (with why), or untested (no check covers it yet), the baseline applied.

Before the first check, a preflight (`conformance.preflight`) proves the run can judge
anything at all: the target is reachable, answers the protocol, accepts the suite's
credentials. A failed preflight stops the run with one message naming the root cause.

Every result that is not a pass carries a blame: `implementation` (the target broke a rule),
`environment` (the target could not be reached at all: connection refused, DNS, TLS, a
connect timeout) or `harness` (a check crashed, or one of the suite's own mocks sent a
message that fails its schema). Only implementation failures count against conformance; the
other two become `error` results, which fail the run with exit code 3.

A target that was reached and then misbehaved (hung after connecting, reset the connection,
flooded the suite, answered garbage) is an implementation failure, as before. A check that
cannot go on from what the target answered raises `Unexpected`: the rule the answer broke
fails, the check's other requirements are skipped as blocked by it. A requirement a check
ended without judging is skipped, never passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

from conformance import events, verdict
from conformance.adapters.agent import AgentContext, AgentTarget, AgentTargetConfig
from conformance.adapters.orchestrator import (
    OrchestratorContext,
    OrchestratorTarget,
    OrchestratorTargetConfig,
)
from conformance.adapters.provider import ProviderContext, ProviderTarget, ProviderTargetConfig
from conformance.adapters.resource_server import (
    ResourceServerContext,
    ResourceServerTarget,
    ResourceServerTargetConfig,
)
from conformance.baseline import Baseline
from conformance.checks import Check, CheckContext, NotApplicable, Skipped, Unexpected
from conformance.errors import SetupError
from conformance.events import Events, Listener
from conformance.network import environment_error
from conformance.preflight import preflight
from conformance.reproduce import attach_reproductions
from conformance.results import Blame, RunResult, Status, downgrade
from conformance.suite import checks_for
from conformance.verdict import (
    CheckOutcome,
    apply_baseline,
    combine,
    failed_so_far,
    merge_rerun,
    rerun_wanted,
)
from spec.registry import default_registry
from spec.requirement import Role, Step
from wire.errors import ProvspecError

__all__ = [
    "Activity",
    "CheckOutcome",
    "EngineRun",
    "HarnessError",
    "RunPlan",
    "environment_error",
    "run",
    "run_check",
    "run_sync",
    "selected_checks",
]


@dataclass
class RunPlan:
    role: Role
    profile: str
    provider: ProviderTargetConfig = field(default_factory=ProviderTargetConfig)
    orchestrator: OrchestratorTargetConfig = field(default_factory=OrchestratorTargetConfig)
    agent: AgentTargetConfig = field(default_factory=AgentTargetConfig)
    resource_server: ResourceServerTargetConfig = field(default_factory=ResourceServerTargetConfig)
    steps: tuple[Step, ...] | None = None
    strict: bool = False
    check_timeout: float = 60.0
    rerun_failures: int = 0
    """Re-run a check that failed up to this many times alone; a pass then makes it flaky."""
    only_checks: tuple[str, ...] | None = None
    """Run just these checks (by name), e.g. to replay one requirement."""
    only_requirements: tuple[str, ...] | None = None
    """Judge just these requirements (`--requirement`): the checks that judge them run, and
    the results list only them."""
    max_failures: int | None = None
    """Stop after this many failed requirements (`--max-failures`); the rest are skipped."""
    certify: bool = False
    """`--certify`: the CLI has turned on what a certification needs; the result says so."""
    preflight: bool = True
    """Prove the target can be judged before the first check (a real target only)."""
    baseline: Baseline | None = None
    """The team's known failures (`--baseline`), applied to the result (`verdict`)."""
    command: list[str] | None = None
    """Provenance: the command line that made the run, secrets masked (results.json)."""
    recorded_config: dict[str, Any] = field(default_factory=dict)
    """Provenance: the configuration the run used, secrets masked (`RunResult.config`)."""


class HarnessError(Exception):
    """The suite itself cannot go on (e.g. a replay cassette holds no answer for a request)."""


Progress = Callable[[CheckOutcome], None]
Activity = Callable[[str], None]
"""Told what the run is doing now (setting up, preflight, a check's name)."""


async def run_check(check: Check, context: CheckContext, timeout: float) -> CheckOutcome:
    """Run one check; any way it can end becomes a status per requirement, never an exception."""
    started = time.perf_counter()
    outcome: tuple[Status, str] | None = None
    blame = Blame.IMPLEMENTATION
    blocked: str | None = None
    harness_before = len(context.recorder.harness_problems)
    try:
        await asyncio.wait_for(check.func(context), timeout)
    except Unexpected as answer:
        # The target's answer, not the suite, stopped the check: fail the rule it broke (when
        # this check judges it) and block the rest on it.
        if answer.requirement in check.requirements and not answer.blocked:
            context.require(answer.requirement, False, answer.message, *answer.evidence)
        blocked = f"blocked by {answer.requirement}: {answer.message}"
        outcome = (Status.SKIPPED, blocked)
    except NotApplicable as reason:
        outcome = (Status.NOT_APPLICABLE, str(reason))
    except Skipped as reason:
        outcome = (Status.SKIPPED, str(reason))
    except TimeoutError:
        outcome = (
            Status.FAILED,
            f"the check did not finish within {timeout:.0f} s: the target is too slow or hangs",
        )
    except HarnessError as error:
        outcome, blame = (Status.ERROR, f"the suite could not go on: {error}"), Blame.HARNESS
    except httpx.HTTPError as error:
        if environment_error(error):
            outcome, blame = (
                (
                    Status.ERROR,
                    f"the target could not be reached: {type(error).__name__}: {error}",
                ),
                Blame.ENVIRONMENT,
            )
        else:
            outcome = (
                Status.FAILED,
                f"the target was reached, then hung, reset the connection or broke its "
                f"answer: {type(error).__name__}: {error}",
            )
    except Exception as error:  # a crash in a check is the suite's own error, with the cause
        outcome, blame = (
            (
                Status.ERROR,
                f"the check crashed (a suite error, not the target's): "
                f"{type(error).__name__}: {error}",
            ),
            Blame.HARNESS,
        )
    statuses: dict[str, tuple[Status, str, list[int]]] = {}
    blames: dict[str, Blame] = {}
    registry = default_registry()
    last = [context.recorder.mark] if context.recorder.exchanges else []
    for requirement_id in check.requirements:
        failures = context.failures.get(requirement_id)
        level = registry[requirement_id].level
        if failures:
            message = "; ".join(dict.fromkeys(failure.message for failure in failures))
            evidence = [item for failure in failures for item in failure.evidence]
            statuses[requirement_id] = (downgrade(Status.FAILED, level), message, evidence)
        elif requirement_id in context.skips and outcome is None:
            statuses[requirement_id] = (Status.SKIPPED, context.skips[requirement_id], [])
        elif outcome is not None:
            status, message = outcome
            statuses[requirement_id] = (
                downgrade(status, level),
                message,
                last if status in (Status.FAILED, Status.ERROR) else [],
            )
            if status is Status.ERROR:
                blames[requirement_id] = blame
        elif requirement_id in context.judged_ids:
            statuses[requirement_id] = (Status.PASSED, "", [])
        else:
            statuses[requirement_id] = (Status.SKIPPED, _not_judged(context), [])
    _withhold_after_harness_problems(context, statuses, blames, harness_before)
    return CheckOutcome(check, statuses, time.perf_counter() - started, blames)


def _not_judged(context: CheckContext) -> str:
    """Why a requirement the check ended without judging is skipped: blocked by a sibling
    that failed, or nothing on the target to judge it on."""
    for requirement_id in context.check.requirements:
        failures = context.failures.get(requirement_id)
        if failures:
            return f"blocked by {requirement_id}: {failures[0].message}"
    return (
        "not judged: the check found nothing on this target to judge it on (e.g. no entry, "
        "request or answer the rule is about)"
    )


def _withhold_after_harness_problems(
    context: CheckContext,
    statuses: dict[str, tuple[Status, str, list[int]]],
    blames: dict[str, Blame],
    before: int,
) -> None:
    """Once one of the suite's own mocks has sent an invalid message, a failure is not
    blamed on the target: the verdict is withheld as a harness error."""
    problems = context.recorder.harness_problems
    if not problems:
        return
    new = problems[before:] or problems[-1:]
    cited = "; ".join(f"#{p['exchange']} {p['message']}" for p in new[:3])
    for requirement_id, (status, message, evidence) in list(statuses.items()):
        if status in (Status.FAILED, Status.WARNING):
            statuses[requirement_id] = (
                Status.ERROR,
                f"verdict withheld: the suite's own mock sent an invalid message ({cited}); "
                f"the check said: {message}",
                evidence + [p["exchange"] for p in new[:3]],
            )
            blames[requirement_id] = Blame.HARNESS


def _in_order(checks: Iterable[Check]) -> list[Check]:
    return sorted(checks, key=lambda c: (list(Step).index(c.step), c.name))


class EngineRun:
    """One run of a plan, told to its listeners as events (`conformance.events`).

    Entered, it starts the target's world and proves with the preflight that the target can
    be judged; then the checks run, all in order (`run_all`, for `provspec run`) or one at a
    time (`check`, for the pytest plugin's tests); `result` combines their outcomes per
    requirement and applies the baseline, the same way for every front end (`verdict`)."""

    def __init__(self, plan: RunPlan, listeners: Iterable[Listener] = ()) -> None:
        self.plan = plan
        self.events = Events(listeners)
        self.target, self.described = make_target(plan)
        self.checks = _in_order(selected_checks(plan))
        """The checks the plan makes, in the order they run."""
        self.outcomes: list[CheckOutcome] = []
        self.stopped: str | None = None
        """Why the run stopped before its last check (--max-failures), if it did."""
        self._spans: dict[str, tuple[int, int]] = {}
        self._began: dict[str, float] = {}
        self._started, self._started_at = time.perf_counter(), time.time()
        self._world = contextlib.AsyncExitStack()
        self.target.recorder.listeners.append(self.events.exchange)

    async def __aenter__(self) -> EngineRun:
        plan = self.plan
        names = tuple(item.name for item in self.checks)
        self.events.emit(events.RunStarted(plan.role, plan.profile, self.described, names))
        self._tell(f"setting up {self.described}")
        await self._world.enter_async_context(_set_up(self.target, self.described))
        try:
            if plan.preflight:
                self._tell("preflight: can the target be judged at all")
                await preflight(self.target, plan)
        except BaseException as error:
            if not await self._world.__aexit__(type(error), error, error.__traceback__):
                raise
        return self

    async def __aexit__(self, *exc_info: Any) -> bool:
        return bool(await self._world.__aexit__(*exc_info))

    def _tell(self, doing: str) -> None:
        self.events.emit(events.Activity(doing))

    async def check(self, item: Check) -> CheckOutcome:
        """Run one check on the (entered) target; its outcome counts in the result."""
        recorder = self.target.recorder
        before = recorder.last_id
        self._began[item.name] = time.time()
        self._tell(f"{item.step.value}: {item.name}")
        outcome = await run_check(item, make_context(self.target, item), self.plan.check_timeout)
        self._spans[item.name] = (before, recorder.last_id)
        self.outcomes.append(outcome)
        self.events.emit(events.CheckFinished(outcome))
        return outcome

    async def run_all(self) -> None:
        """Every check in order (the rest skipped once --max-failures is reached), then the
        re-runs of the failed ones (--rerun-failures)."""
        plan = self.plan
        for position, item in enumerate(self.checks):
            if self.stopped is not None:
                self.outcomes.append(_not_run(item, self.stopped))
                continue
            await self.check(item)
            failed = failed_so_far(self.outcomes, plan.strict)
            if plan.max_failures is not None and failed >= plan.max_failures:
                left = len(self.checks) - position - 1
                if left:
                    self.stopped = (
                        f"not run: the run stopped after {failed} failed requirement(s) "
                        f"(--max-failures {plan.max_failures}); {left} check(s) left"
                    )
        for index, outcome in enumerate(self.outcomes):
            for attempt in range(1, plan.rerun_failures + 1):
                if not rerun_wanted(outcome):
                    break
                self._tell(f"re-running {outcome.check.name} alone (attempt {attempt})")
                context = make_context(self.target, outcome.check)
                again = await run_check(outcome.check, context, plan.check_timeout)
                outcome = self.outcomes[index] = merge_rerun(outcome, again, attempt)
                self.events.emit(events.CheckFinished(outcome, attempt))

    def result(self) -> RunResult:
        """The findings of the checks run so far, one per requirement, the baseline applied."""
        plan = self.plan
        only = _judged_here(plan, self.checks)
        findings = combine(plan.role, plan.profile, self.outcomes, plan.steps, only)
        attach_reproductions(findings, self.target)
        recorder = self.target.recorder
        result = RunResult(
            plan.role.value,
            plan.profile,
            self.described,
            findings,
            recorder,
            time.perf_counter() - self._started,
            plan.strict,
            harness_problems=list(recorder.harness_problems),
            check_spans=dict(self._spans),
            check_times={
                o.check.name: (self._began[o.check.name], o.duration_s)
                for o in self.outcomes
                if o.check.name in self._began
            },
            started_at=self._started_at,
            certify=plan.certify,
            stopped=self.stopped,
            command=plan.command,
            config=plan.recorded_config,
        )
        if plan.baseline is not None:
            apply_baseline(result, plan.baseline, verdict.today())
        return result

    def finish(self) -> RunResult:
        """The result, told to the listeners (`RunFinished`)."""
        result = self.result()
        self.events.emit(events.RunFinished(result))
        return result


def _callbacks(progress: Progress | None, activity: Activity | None) -> list[Listener]:
    """The older callbacks as listeners: `progress` hears each check's first outcome,
    `activity` what the run is doing now."""

    def listener(event: events.Event) -> None:
        if progress is not None and isinstance(event, events.CheckFinished) and not event.rerun:
            progress(event.outcome)
        elif activity is not None and isinstance(event, events.Activity):
            activity(event.doing)

    return [listener] if progress is not None or activity is not None else []


async def run(
    plan: RunPlan,
    progress: Progress | None = None,
    activity: Activity | None = None,
    listeners: Iterable[Listener] = (),
) -> RunResult:
    """Run the plan's checks; the listeners hear every event (`progress` each check's
    outcome, `activity` what the run is doing now, so a caller can say so while a long step
    is silent)."""
    engine = EngineRun(plan, [*listeners, *_callbacks(progress, activity)])
    async with engine:
        await engine.run_all()
    return engine.finish()


def selected_checks(plan: RunPlan) -> list[Check]:
    """The checks a plan runs: its role and profile, its steps, and (`--requirement`) only
    those judging a chosen requirement."""
    checks = checks_for(plan.role, plan.profile, plan.steps)
    if plan.only_checks is not None:
        checks = [item for item in checks if item.name in plan.only_checks]
    if plan.only_requirements is not None:
        chosen = set(plan.only_requirements)
        checks = [item for item in checks if chosen & set(item.requirements)]
    return checks


def _judged_here(plan: RunPlan, checks: list[Check]) -> set[str] | None:
    """The requirements a run chosen by requirement or by check reports on (None: every one
    of its role, profile and steps): the rest were never meant to run, so are not untested."""
    if plan.only_requirements is None and plan.only_checks is None:
        return None
    chosen = {rid for item in checks for rid in item.requirements}
    if plan.only_requirements is not None:
        chosen &= set(plan.only_requirements)
    return chosen


def _not_run(item: Check, why: str) -> CheckOutcome:
    return CheckOutcome(item, {rid: (Status.SKIPPED, why, []) for rid in item.requirements}, 0.0)


Target = ProviderTarget | OrchestratorTarget | AgentTarget | ResourceServerTarget


def make_target(plan: RunPlan) -> tuple[Target, str]:
    """The adapter for the plan's role, and how to describe what it runs against."""
    if plan.role is Role.PROVIDER:
        return ProviderTarget(plan.provider), plan.provider.describe()
    if plan.role is Role.ORCHESTRATOR:
        return OrchestratorTarget(plan.orchestrator), plan.orchestrator.describe()
    if plan.role is Role.AGENT:
        return AgentTarget(plan.agent), plan.agent.describe()
    # The run's profile decides how the resource is judged (and which faults its mock takes).
    config = dataclasses.replace(plan.resource_server, profile=plan.profile)
    return ResourceServerTarget(config), config.describe()


def make_context(target: Target, item: Check) -> CheckContext:
    if isinstance(target, ProviderTarget):
        return ProviderContext(target, item)
    if isinstance(target, OrchestratorTarget):
        return OrchestratorContext(target, item)
    if isinstance(target, AgentTarget):
        return AgentContext(target, item)
    return ResourceServerContext(target, item)


@contextlib.asynccontextmanager
async def _set_up(target: Target, described: str) -> AsyncIterator[None]:
    """Start the target's world; a failure to start it is a setup error with a message, never
    a traceback (the checks' own errors are caught per check by run_check)."""
    entered = False
    try:
        async with target.running():
            entered = True
            yield
    except ProvspecError:
        raise
    except Exception as error:
        if entered:
            raise
        raise SetupError(
            f"could not set up the run against {described}: {type(error).__name__}: {error}"
        ) from error


def run_sync(
    plan: RunPlan,
    progress: Progress | None = None,
    activity: Activity | None = None,
    listeners: Iterable[Listener] = (),
) -> RunResult:
    return asyncio.run(run(plan, progress, activity, listeners))


Runner = Callable[[RunPlan], Awaitable[RunResult]]
