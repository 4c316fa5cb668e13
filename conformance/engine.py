"""The one engine behind `provspec run`, the pytest plugin and `provspec selftest`.

A run picks the checks of one role and profile (optionally some steps), gives each a fresh
context on the target, runs it with a time limit, and folds the verdicts into one finding per
requirement of that role and profile: failed (with the evidence), warning (a SHOULD or MAY
that failed), passed, skipped (with why), or untested (no check covers it yet).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field

import httpx

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
from conformance.checks import Check, CheckContext, NotApplicable, Skipped, checks_for
from conformance.errors import ProvspecError, SetupError
from conformance.registry import Role, Step, default_registry
from conformance.results import Finding, RunResult, Status, downgrade

__all__ = ["CheckOutcome", "RunPlan", "run", "run_check", "run_sync"]

_RANK = {
    Status.FAILED: 5,
    Status.WARNING: 4,
    Status.PASSED: 3,
    Status.SKIPPED: 2,
    Status.NOT_APPLICABLE: 1,
    Status.UNTESTED: 0,
}


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


@dataclass
class CheckOutcome:
    check: Check
    statuses: dict[str, tuple[Status, str, list[int]]]
    duration_s: float


Progress = Callable[[CheckOutcome], None]


async def run_check(check: Check, context: CheckContext, timeout: float) -> CheckOutcome:
    """Run one check; any way it can end becomes a status per requirement, never an exception."""
    started = time.perf_counter()
    outcome: tuple[Status, str] | None = None
    try:
        await asyncio.wait_for(check.func(context), timeout)
    except NotApplicable as reason:
        outcome = (Status.NOT_APPLICABLE, str(reason))
    except Skipped as reason:
        outcome = (Status.SKIPPED, str(reason))
    except TimeoutError:
        outcome = (
            Status.FAILED,
            f"the check did not finish within {timeout:.0f} s: the target is too slow or hangs",
        )
    except httpx.HTTPError as error:
        outcome = (
            Status.FAILED,
            f"the target could not be reached or broke the connection: {type(error).__name__}: {error}",
        )
    except Exception as error:  # a crash in a check is reported as its failure, with the cause
        outcome = (Status.FAILED, f"the check could not complete: {type(error).__name__}: {error}")
    statuses: dict[str, tuple[Status, str, list[int]]] = {}
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
                last if status is Status.FAILED else [],
            )
        else:
            statuses[requirement_id] = (Status.PASSED, "", [])
    return CheckOutcome(check, statuses, time.perf_counter() - started)


def fold(
    role: Role, profile: str, outcomes: Iterable[CheckOutcome], steps: Iterable[Step] | None
) -> list[Finding]:
    wanted = set(steps) if steps is not None else None
    findings: dict[str, Finding] = {
        requirement.id: Finding(
            requirement, Status.UNTESTED, "no check covers this requirement yet"
        )
        for requirement in default_registry().select(role=role, profile=profile)
        if wanted is None or requirement.step in wanted
    }
    for outcome in outcomes:
        for requirement_id, (status, message, evidence) in outcome.statuses.items():
            finding = findings.get(requirement_id)
            if finding is None:
                continue
            finding.checks.append(outcome.check.name)
            if _RANK[status] > _RANK[finding.status] or finding.status is Status.UNTESTED:
                finding.status, finding.message = status, message
            if status in (Status.FAILED, Status.WARNING):
                finding.evidence.extend(evidence)
    return list(findings.values())


async def run(plan: RunPlan, progress: Progress | None = None) -> RunResult:
    started = time.perf_counter()
    target, described = make_target(plan)
    checks = checks_for(plan.role, plan.profile, plan.steps)
    outcomes: list[CheckOutcome] = []
    async with _set_up(target, described):
        for item in sorted(checks, key=lambda c: (list(Step).index(c.step), c.name)):
            context = make_context(target, item)
            outcome = await run_check(item, context, plan.check_timeout)
            outcomes.append(outcome)
            if progress is not None:
                progress(outcome)
    findings = fold(plan.role, plan.profile, outcomes, plan.steps)
    return RunResult(
        plan.role.value,
        plan.profile,
        described,
        findings,
        target.recorder,
        time.perf_counter() - started,
        plan.strict,
    )


Target = ProviderTarget | OrchestratorTarget | AgentTarget | ResourceServerTarget


def make_target(plan: RunPlan) -> tuple[Target, str]:
    """The adapter for the plan's role, and how to describe what it runs against."""
    if plan.role is Role.PROVIDER:
        return ProviderTarget(plan.provider), plan.provider.describe()
    if plan.role is Role.ORCHESTRATOR:
        return OrchestratorTarget(plan.orchestrator), plan.orchestrator.describe()
    if plan.role is Role.AGENT:
        return AgentTarget(plan.agent), plan.agent.describe()
    return ResourceServerTarget(plan.resource_server), plan.resource_server.describe()


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


def run_sync(plan: RunPlan, progress: Progress | None = None) -> RunResult:
    return asyncio.run(run(plan, progress))


Runner = Callable[[RunPlan], Awaitable[RunResult]]
