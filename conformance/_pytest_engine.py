"""The engine inside pytest: with --provspec-role, pytest collects the registry's checks.

Each check becomes one test item; all items share one engine run (`EngineRun`, the one
`provspec run` makes, its target entered once per session on a private event loop), built
from the same plan (`conformance.plan`), so both give the same verdicts. A failed MUST fails
the item with the requirement, the message and the evidence; a failed SHOULD is a warning (a
failure under --provspec-strict); a skipped or not-applicable check is a pytest skip that
says why. A failure the baseline knows is an xfail (`verdict.known_failures`); the
baseline's stale and expired entries are judged per requirement by one last item, once every
check has run, as `provspec run` judges them; the terminal summary ends with the run's
verdict, as `provspec run` words it.
"""

from __future__ import annotations

import asyncio
import warnings
from pathlib import Path
from typing import Any

import pytest

from conformance import verdict
from conformance.checks import Check
from conformance.config import load_config
from conformance.engine import EngineRun, Target
from conformance.errors import PreflightError
from conformance.plan import RunOptions, build_plan, refuse_live
from conformance.recorder import CliCall, Exchange
from conformance.results import RunResult, Status

__all__ = ["ProvspecBaselineItem", "ProvspecItem", "ProvspecSession", "add_options", "collect"]


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
    """The run behind a pytest session: one engine run, its target entered on the first
    test, each test one of its checks, its result taken when the last test has run."""

    def __init__(self, config: pytest.Config) -> None:
        options = _options(config)
        self.plan = build_plan(load_config(options.config), options)
        refuse_live(self.plan, options)
        self.loop = asyncio.new_event_loop()
        self.engine = EngineRun(self.plan)
        self._state = "new"
        self._result: RunResult | None = None

    def ensure_started(self) -> Target:
        if self._state == "new":
            self._state = "failed"
            try:
                self.loop.run_until_complete(self.engine.__aenter__())
            except PreflightError as error:
                # One message naming the root cause, as `provspec run` gives, not a failure
                # per check for the same reason.
                pytest.exit(f"provspec: {error}", returncode=error.exit_code)
            self._state = "running"
        return self.engine.target

    def run(self, check: Check) -> verdict.CheckOutcome:
        self.ensure_started()
        return self.loop.run_until_complete(self.engine.check(check))

    def checks_of(self, requirement_id: str) -> list[str]:
        """The session's checks that judge `requirement_id` (a baseline scenario names one)."""
        return [c.name for c in self.engine.checks if requirement_id in c.requirements]

    def known_failures(self, outcome: verdict.CheckOutcome) -> dict[str, str]:
        """The failures of one test the baseline knows, by the rule `provspec run` applies."""
        if self.plan.baseline is None:
            return {}
        return verdict.known_failures(
            self.plan.baseline, outcome, self.checks_of, self.plan.profile, verdict.today()
        )

    def result(self) -> RunResult | None:
        """The run's result so far (None before the first test), as `provspec run` gives it."""
        if self._state != "running":
            return None
        return self.engine.result()

    def finish(self) -> RunResult | None:
        """The result once every test has run, told to the engine's listeners once."""
        if self._result is None and self._state == "running":
            self._result = self.engine.finish()
        return self._result

    def close(self) -> None:
        if self._state == "running":
            self.loop.run_until_complete(self.engine.__aexit__(None, None, None))
        self.loop.close()


def _options(config: pytest.Config) -> RunOptions:
    """`provspec run`'s options, read from pytest's (one set of rules for both)."""
    option = config.getoption
    path = option("provspec_config")
    baseline = option("provspec_baseline")
    return RunOptions(
        role=option("provspec_role"),
        target=option("provspec_target"),
        profile=option("provspec_profile"),
        config=Path(path) if path else None,
        steps=option("provspec_steps"),
        strict=True if option("provspec_strict") else None,
        hmac_secret=option("provspec_hmac_secret"),
        orchestrator_cli=option("provspec_orchestrator_cli"),
        agent_cmd=option("provspec_agent_cmd"),
        fuzz_examples=option("provspec_fuzz_examples"),
        baseline=Path(baseline) if baseline else None,
        i_know_this_is_live=bool(option("provspec_i_know_this_is_live")),
    )


class ProvspecItem(pytest.Item):
    def __init__(self, *, check: Check, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check = check
        self.add_marker(pytest.mark.requirement(*check.requirements))

    def runtest(self) -> None:
        session: ProvspecSession = self.config.stash[SESSION]
        outcome = session.run(self.check)
        target = session.engine.target
        recorded: list[Exchange | CliCall] = [
            *target.recorder.exchanges,
            *target.recorder.cli_calls,
        ]
        exchanges = {item.id: item for item in recorded}
        _allure_labels(self.check, outcome.statuses)
        known = session.known_failures(outcome)
        failures: list[str] = []
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


class ProvspecBaselineItem(pytest.Item):
    """The baseline's stale and expired entries, judged per requirement once every check
    has run (a check alone cannot tell: another one may fail what the entry lists)."""

    def runtest(self) -> None:
        session: ProvspecSession = self.config.stash[SESSION]
        result = session.result()
        if result is not None and result.baseline_problems:
            raise ProvspecFailure("\n".join(result.baseline_problems))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, ProvspecFailure):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[str, int | None, str]:
        return ("provspec/baseline", None, "the baseline's stale and expired entries")


SESSION = pytest.StashKey[ProvspecSession]()


def collect(session: pytest.Session) -> list[pytest.Item]:
    state = ProvspecSession(session.config)
    session.config.stash[SESSION] = state
    plan = state.plan
    items: list[pytest.Item] = [
        ProvspecItem.from_parent(
            session, name=f"{plan.profile}::{item.step.value}::{item.name}", check=item
        )
        for item in state.engine.checks
    ]
    if plan.baseline is not None:
        items.append(ProvspecBaselineItem.from_parent(session, name=f"{plan.profile}::baseline"))
    return items


def settle(session: pytest.Session) -> None:
    """Once pytest has chosen and ordered the tests: the run judges only the checks chosen
    (`-k`, `--deselect`), as `provspec run` judges a run of some checks, and the baseline's
    test goes after every check's, whatever reordered them (e.g. pytest-randomly): it
    judges what they found."""
    items = session.items
    baseline: list[pytest.Item] = [i for i in items if isinstance(i, ProvspecBaselineItem)]
    items[:] = [item for item in items if not isinstance(item, ProvspecBaselineItem)] + baseline
    state = session.config.stash.get(SESSION, None)
    if state is None:
        return
    chosen = {item.check.name for item in items if isinstance(item, ProvspecItem)}
    if chosen != {check.name for check in state.engine.checks}:
        state.plan.only_checks = tuple(sorted(chosen))
        state.engine.checks = [c for c in state.engine.checks if c.name in chosen]


def _allure_labels(check: Check, statuses: dict[str, Any]) -> None:
    try:
        import allure
    except ImportError:  # pragma: no cover - allure-pytest is a dependency
        return
    for requirement_id in check.requirements:
        allure.dynamic.label("requirement", requirement_id)  # type: ignore[no-untyped-call]
    allure.dynamic.label("step", check.step.value)  # type: ignore[no-untyped-call]
    allure.dynamic.suite(check.step.value)  # type: ignore[no-untyped-call]
