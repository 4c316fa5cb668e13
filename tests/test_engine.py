"""The engine against the embedded mock provider: green when correct, exact when faulty."""

from __future__ import annotations

import dataclasses

import pytest

from conformance.adapters.provider import ProviderTargetConfig
from conformance.checks import all_checks
from conformance.engine import RunPlan, run_sync
from conformance.recorder import Exchange
from conformance.results import RunResult, Status
from mocks.faults import catalogue
from spec.registry import default_registry
from spec.requirement import Level, Role, Step

PROFILES = ["app-0.1d", "app-next"]
PROVIDER_FAULTS = [
    (fault.name, profile)
    for fault in sorted(catalogue().values(), key=lambda fault: fault.name)
    if fault.mock == "provider"
    for profile in fault.profiles
]


def run(profile: str, *faults: str) -> RunResult:
    return run_sync(
        RunPlan(
            Role.PROVIDER,
            profile,
            # A few generated requests per operation, so the fuzzing check is judged too.
            ProviderTargetConfig(profile=profile, faults=faults, fuzz_examples=3),
        )
    )


@pytest.mark.parametrize("profile", PROFILES)
def test_the_reference_mock_provider_passes_every_check(profile: str) -> None:
    result = run(profile)
    # These judge only what a target happens to show (a pending resource, a retried
    # redemption); the mock shows neither, so they skip, saying why. Nothing else may skip.
    observed_only = {"PRV-PRO-009", "PRV-RED-006"}
    bad = [
        (f.requirement.id, f.status.value, f.message)
        for f in result.findings
        if f.status in (Status.FAILED, Status.WARNING)
        or (f.status is Status.SKIPPED and f.requirement.id not in observed_only)
    ]
    assert bad == []
    assert result.exit_code == 0
    assert sum(f.status is Status.PASSED for f in result.findings) >= 40


@pytest.mark.parametrize(("fault", "profile"), PROVIDER_FAULTS, ids=lambda v: str(v))
def test_every_provider_fault_fails_exactly_the_requirements_it_names(
    fault: str, profile: str
) -> None:
    result = run(profile, fault)
    failed = {
        f.requirement.id for f in result.findings if f.status in (Status.FAILED, Status.WARNING)
    }
    # A fault may break a rule the profile does not have too (another profile's variant).
    kept = {r.id for r in default_registry().select(role=Role.PROVIDER, profile=profile)}
    assert failed == set(catalogue()[fault].breaks) & kept
    musts = [f for f in result.findings if f.status is Status.FAILED]
    # Without a failed MUST, a fault that keeps a MUST from being judged is INCOMPLETE (4).
    assert result.exit_code == (1 if musts else 4 if result.unjudged() else 0)
    for finding in result.findings:
        if finding.status is Status.FAILED:
            assert finding.evidence, f"{finding.requirement.id} failed without evidence"


def test_every_check_names_requirements_of_its_own_role_and_a_failed_should_is_a_warning() -> None:
    registry = default_registry()
    for item in all_checks():
        assert {registry[r].role for r in item.requirements} == {item.role}
    result = run("app-next", "token-cacheable")
    # PRV-CNS-013 is a MUST: a failure, exit 1. A SHOULD failure alone would be a warning, exit 0.
    assert registry["PRV-CNS-013"].level is Level.MUST
    assert result.exit_code == 1


def test_evidence_masks_secrets() -> None:
    result = run("app-0.1d")
    signed = [e for e in result.recorder.exchanges if "stripe-signature" in e.request_headers]
    assert signed
    assert all(e.request_headers["stripe-signature"].startswith("«masked") for e in signed)
    bearer = [
        e.request_headers["authorization"]
        for e in result.recorder.exchanges
        if "authorization" in e.request_headers
    ]
    assert bearer
    assert all(value.startswith("Bearer «masked") for value in bearer)
    text = " ".join(e.response_body for e in result.recorder.exchanges)
    assert "pmk_" not in text
    assert "pma_" not in text


def test_a_run_tells_its_listeners_what_happens_in_order() -> None:
    """Issue 16: one engine with events; every front end listens to the same ones."""
    from conformance import events

    heard: list[events.Event] = []
    plan = RunPlan(Role.PROVIDER, "app-next", steps=(Step.DISCOVERY,))
    result = run_sync(plan, listeners=[heard.append])
    started, finished = heard[0], heard[-1]
    assert isinstance(started, events.RunStarted)
    assert (started.role, started.profile) == (Role.PROVIDER, "app-next")
    assert isinstance(finished, events.RunFinished)
    assert finished.result is result
    checks = [e.outcome.check.name for e in heard if isinstance(e, events.CheckFinished)]
    assert checks == list(started.checks)
    assert checks
    recorded = [e.item for e in heard if isinstance(e, events.ExchangeRecorded)]
    everything = [e.id for e in result.recorder.exchanges] + [
        c.id for c in result.recorder.cli_calls
    ]
    assert sorted(item.id for item in recorded) == sorted(everything)
    whole = [i for i in recorded if isinstance(i, Exchange) and (i.error or i.status is not None)]
    assert len(whole) == len(result.recorder.exchanges)  # each one heard once complete
    doing = [e.doing for e in heard if isinstance(e, events.Activity)]
    assert doing[0].startswith("setting up")
    assert f"discovery: {checks[0]}" in doing
    with pytest.raises(dataclasses.FrozenInstanceError):
        finished.result = result  # type: ignore[misc]
