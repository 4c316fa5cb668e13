"""`--rerun-failures N`: a failed check runs again alone; a flip is flaky, never a pass."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from conformance import checks as checks_module
from conformance.adapters.provider import ProviderTargetConfig
from conformance.checks import all_checks
from conformance.engine import RunPlan, run_sync
from conformance.results import Status
from spec.requirement import Role

NAME = "discovery.health_lists_the_profile_version"


def patched(monkeypatch: pytest.MonkeyPatch, fail_times: int) -> list[int]:
    original = next(c for c in all_checks() if c.name == NAME)
    calls: list[int] = []

    async def sometimes(ctx: Any) -> None:
        calls.append(1)
        if len(calls) <= fail_times:
            ctx.require("PRV-DSC-001", False, "health answered 503 this time")
            return
        await original.func(ctx)

    monkeypatch.setitem(checks_module._CHECKS, NAME, dataclasses.replace(original, func=sometimes))
    return calls


def run(reruns: int, strict: bool = False) -> Any:
    plan = RunPlan(
        Role.PROVIDER,
        "app-0.1d",
        ProviderTargetConfig(),
        only_checks=(NAME,),
        rerun_failures=reruns,
        strict=strict,
    )
    return run_sync(plan)


def test_a_failure_that_passes_alone_is_flaky(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = patched(monkeypatch, fail_times=1)
    result = run(1)
    finding = next(f for f in result.findings if f.requirement.id == "PRV-DSC-001")
    assert finding.status is Status.FLAKY
    assert "health answered 503 this time" in finding.message
    assert len(calls) == 2
    assert result.exit_code == 0


def test_strict_fails_on_flaky(monkeypatch: pytest.MonkeyPatch) -> None:
    patched(monkeypatch, fail_times=1)
    assert run(1, strict=True).exit_code == 1


def test_a_failure_that_fails_again_stays_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = patched(monkeypatch, fail_times=5)
    result = run(2)
    finding = next(f for f in result.findings if f.requirement.id == "PRV-DSC-001")
    assert finding.status is Status.FAILED
    assert len(calls) == 3
    assert result.exit_code == 1


def test_without_reruns_nothing_runs_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = patched(monkeypatch, fail_times=1)
    assert run(0).exit_code == 1
    assert len(calls) == 1
