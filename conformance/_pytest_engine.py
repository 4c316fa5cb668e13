"""The engine inside pytest: with --provspec-role, pytest collects the registry's checks.

Each check becomes one test item; all items share one target (entered once per session on a
private event loop) and run through `engine.run_check`, the function `provspec run` uses, so
both give the same verdicts. A failed MUST fails the item with the requirement, the message
and the evidence; a failed SHOULD is a warning (a failure under --provspec-strict); a
skipped or not-applicable check is a pytest skip that says why.
"""

from __future__ import annotations

import asyncio
import warnings
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from conformance.checks import Check, checks_for
from conformance.engine import Target, make_context, make_target, run_check
from conformance.recorder import CliCall, Exchange
from conformance.results import Status
from spec.requirement import Step

__all__ = ["ProvspecItem", "ProvspecSession", "add_options", "collect"]


class ProvspecWarning(UserWarning):
    """A SHOULD requirement failed."""


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("provspec", "provspec conformance run")
    group.addoption(
        "--provspec-role",
        help="run the provspec checks of this role (provider, orchestrator, agent)",
    )
    group.addoption(
        "--provspec-target", help="the role under test's base URL (default: the embedded mock)"
    )
    group.addoption(
        "--provspec-profile",
        help="app-0.1d or app-next (default: app-0.1d); resource-server: rfc9728 (default), "
        "mcp-2025-06-18 or mcp-2025-11-25",
    )
    group.addoption("--provspec-config", help="provspec.toml")
    group.addoption("--provspec-strict", action="store_true", help="a failed SHOULD fails its test")
    group.addoption("--provspec-steps", help="comma-separated steps to run")
    group.addoption(
        "--provspec-hmac-secret", help="app-0.1d: the provider's Stripe-Signature secret"
    )
    group.addoption("--provspec-orchestrator-cli", help="orchestrator under test: its CLI prefix")
    group.addoption("--provspec-agent-cmd", help="agent under test: the command to run")
    group.addoption(
        "--provspec-baseline",
        help="known failures (provspec-baseline.toml): xfail; a stale or expired entry fails",
    )
    group.addoption(
        "--provspec-i-know-this-is-live",
        action="store_true",
        help="run although the target looks like production or a live key is configured",
    )
    group.addoption(
        "--provspec-fuzz-examples",
        type=int,
        help="provider: schema-generated requests per operation",
    )


class ProvspecSession:
    def __init__(self, config: pytest.Config) -> None:
        from conformance._cli_ci import before_run
        from conformance._cli_run import _plan
        from conformance.baseline import Baseline, load_baseline

        arguments = _Args(config)
        self.plan, _ = _plan(arguments)  # type: ignore[arg-type]
        before_run(arguments, self.plan)  # type: ignore[arg-type]
        self.baseline: Baseline | None = (
            load_baseline(arguments.baseline) if arguments.baseline is not None else None
        )
        self.loop = asyncio.new_event_loop()
        self.target, _ = make_target(self.plan)
        self._running: AbstractAsyncContextManager[Any] | None = None

    def ensure_started(self) -> Target:
        if self._running is None:
            from conformance.preflight import PreflightError, preflight

            self._running = self.target.running()
            self.loop.run_until_complete(self._running.__aenter__())
            try:
                self.loop.run_until_complete(preflight(self.target, self.plan))
            except PreflightError as error:
                # One message naming the root cause, as `provspec run` gives, not a failure
                # per check for the same reason.
                pytest.exit(f"provspec: {error}", returncode=error.exit_code)
        return self.target

    def close(self) -> None:
        if self._running is not None:
            self.loop.run_until_complete(self._running.__aexit__(None, None, None))
        self.loop.close()


class _Args:
    """The CLI's argument names, read from pytest options (one set of rules for both)."""

    def __init__(self, config: pytest.Config) -> None:
        option = config.getoption
        self.role = option("provspec_role")
        self.target = option("provspec_target")
        self.profile = option("provspec_profile")
        path = option("provspec_config")
        self.config = Path(path) if path else None
        self.steps = option("provspec_steps")
        self.strict = True if option("provspec_strict") else None
        self.hmac_secret = option("provspec_hmac_secret")
        self.orchestrator_cli = option("provspec_orchestrator_cli")
        self.agent_cmd = option("provspec_agent_cmd")
        self.fuzz_examples = option("provspec_fuzz_examples")
        self.fuzz_seed = None
        self.existing_email = None
        self.orchestrator_port = None
        self.fault: list[str] = []
        self.report_dir = None
        baseline = option("provspec_baseline")
        self.baseline = Path(baseline) if baseline else None
        self.i_know_this_is_live = bool(option("provspec_i_know_this_is_live"))
        self.rerun_failures = 0


class ProvspecItem(pytest.Item):
    def __init__(self, *, check: Check, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check = check
        self.add_marker(pytest.mark.requirement(*check.requirements))

    def runtest(self) -> None:
        session: ProvspecSession = self.config.stash[SESSION]
        target = session.ensure_started()
        outcome = session.loop.run_until_complete(
            run_check(self.check, make_context(target, self.check), session.plan.check_timeout)
        )
        recorded: list[Exchange | CliCall] = [
            *target.recorder.exchanges,
            *target.recorder.cli_calls,
        ]
        exchanges = {item.id: item for item in recorded}
        _allure_labels(self.check, outcome.statuses)
        known, failures = self._baseline(session, outcome.statuses)
        skips: list[str] = []
        for requirement_id, (status, message, evidence) in outcome.statuses.items():
            shown = "\n".join(
                exchanges[i].describe() for i in dict.fromkeys(evidence) if i in exchanges
            )
            text = f"{requirement_id}: {message}" + (f"\n{shown}" if shown else "")
            if status is Status.ERROR:
                blame = outcome.blames.get(requirement_id)
                failures.append(f"[{blame.value if blame else 'harness'} error] {text}")
            elif requirement_id in known and status in (Status.FAILED, Status.WARNING):
                continue
            elif status is Status.FAILED or (status is Status.WARNING and session.plan.strict):
                failures.append(text)
            elif status is Status.WARNING:
                warnings.warn(ProvspecWarning(text), stacklevel=1)
            elif status in (Status.SKIPPED, Status.NOT_APPLICABLE):
                skips.append(f"{requirement_id}: {message}")
        if failures:
            raise ProvspecFailure("\n\n".join(failures))
        if known:
            pytest.xfail("; ".join(f"{rid}: known failure ({why})" for rid, why in known.items()))
        if skips and len(skips) == len(outcome.statuses):
            pytest.skip("; ".join(skips))

    def _baseline(
        self, session: ProvspecSession, statuses: dict[str, tuple[Status, str, list[int]]]
    ) -> tuple[dict[str, str], list[str]]:
        """The baseline's word on this check: known failures (id -> reason), and stale or
        expired entries, which fail the test."""
        from conformance import _cli_ci

        known: dict[str, str] = {}
        problems: list[str] = []
        if session.baseline is None:
            return known, problems
        today = _cli_ci.today()
        for entry in session.baseline.entries:
            if entry.id not in statuses or entry.profile not in (None, session.plan.profile):
                continue
            if entry.scenario is not None and entry.scenario != self.check.name:
                continue
            status = statuses[entry.id][0]
            if entry.expires is not None and entry.expires < today:
                problems.append(
                    f"expired baseline entry {entry.describe()}: it expired on "
                    f"{entry.expires.isoformat()} ({entry.reason})"
                )
            elif status in (Status.FAILED, Status.WARNING, Status.FLAKY):
                known[entry.id] = entry.reason
            elif status is Status.PASSED:
                problems.append(
                    f"stale baseline entry {entry.describe()}: it passes now; delete the entry"
                )
        return known, problems

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, ProvspecFailure):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[str, int | None, str]:
        return (
            f"provspec/{self.check.role.value}",
            None,
            f"{self.check.name} {' '.join(self.check.requirements)}",
        )


class ProvspecFailure(AssertionError):
    pass


SESSION = pytest.StashKey[ProvspecSession]()


def collect(session: pytest.Session) -> list[pytest.Item]:
    state = ProvspecSession(session.config)
    session.config.stash[SESSION] = state
    plan = state.plan
    steps = plan.steps
    items: list[pytest.Item] = []
    for item in sorted(
        checks_for(plan.role, plan.profile, steps), key=lambda c: (list(Step).index(c.step), c.name)
    ):
        items.append(
            ProvspecItem.from_parent(
                session, name=f"{plan.profile}::{item.step.value}::{item.name}", check=item
            )
        )
    return items


def _allure_labels(check: Check, statuses: dict[str, Any]) -> None:
    try:
        import allure
    except ImportError:  # pragma: no cover - allure-pytest is a dependency
        return
    for requirement_id in check.requirements:
        allure.dynamic.label("requirement", requirement_id)  # type: ignore[no-untyped-call]
    allure.dynamic.label("step", check.step.value)  # type: ignore[no-untyped-call]
    allure.dynamic.suite(check.step.value)  # type: ignore[no-untyped-call]
