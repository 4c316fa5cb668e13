"""The orchestrator pack against the embedded mock orchestrator (its CLI run in-process, its
HTTP side on loopback, the suite's provider served for it): green when correct, exact when
faulty, and redemption checks blocked rather than failed when the minted token is unusable."""

from __future__ import annotations

import pytest

from conformance.adapters.orchestrator import OrchestratorTargetConfig
from conformance.engine import RunPlan, run_sync
from conformance.packs.orchestrator._tokens import token_defects
from conformance.results import RunResult, Status
from mocks.faults import catalogue
from spec.requirement import Role


def run(profile: str, *faults: str, race: tuple[int, int] = (10, 2)) -> RunResult:
    """A run on the embedded mock; `race`: ORC-CAP-002's redemptions at once and rounds
    (the selftest's by default; the reference runs below take `provspec run`'s)."""
    config = OrchestratorTargetConfig(
        profile=profile,
        faults=faults,
        concurrent_redemptions=race[0],
        concurrency_rounds=race[1],
    )
    return run_sync(RunPlan(Role.ORCHESTRATOR, profile, orchestrator=config))


DEFAULT_RACE = (
    OrchestratorTargetConfig.concurrent_redemptions,
    OrchestratorTargetConfig.concurrency_rounds,
)


def failed(result: RunResult) -> set[str]:
    return {
        f.requirement.id for f in result.findings if f.status in (Status.FAILED, Status.WARNING)
    }


@pytest.mark.parametrize(("profile", "at_least"), [("app-0.1d", 8), ("app-next", 35)])
def test_the_reference_mock_orchestrator_passes_every_check(profile: str, at_least: int) -> None:
    result = run(profile, race=DEFAULT_RACE)
    bad = [
        (f.requirement.id, f.status.value, f.message)
        for f in result.findings
        if f.status in (Status.FAILED, Status.WARNING, Status.SKIPPED)
    ]
    assert bad == []
    assert result.exit_code == 0
    assert sum(f.status is Status.PASSED for f in result.findings) >= at_least
    assert any(call.argv[-1] == "--json" for call in result.recorder.cli_calls)


@pytest.mark.parametrize(
    "fault",
    [
        "idempotency-key-optional",
        "replay-double-charges",
        "metadata-issuer-mismatch",
        "jwks-private-key-leak",
        "cap-not-atomic",
    ],
)
def test_a_fault_fails_exactly_its_requirement_with_evidence(fault: str) -> None:
    result = run("app-next", fault)
    assert failed(result) == set(catalogue()[fault].breaks)
    assert result.exit_code == 1
    for finding in result.findings:
        if finding.status is Status.FAILED:
            assert finding.evidence, f"{finding.requirement.id} failed without evidence"


def test_a_token_the_orchestrator_should_not_have_minted_blocks_the_redemption_checks() -> None:
    result = run("app-next", "payment-token-wrong-aud")
    assert failed(result) == {"ORC-PAY-003"}
    blocked = {
        f.requirement.id: f.message
        for f in result.findings
        if f.status is Status.SKIPPED and f.requirement.id.startswith(("ORC-RED", "ORC-CAP"))
    }
    assert "ORC-RED-002" in blocked
    assert all("blocked by ORC-PAY-003" in why for why in blocked.values())


AUDIENCE = "http://127.0.0.1:1/api/app/"
SOUND = {
    "aud": AUDIENCE,
    "iat": 1000,
    "exp": 1300,
    "max_amount": 5000,
    "currency": "usd",
}


@pytest.mark.parametrize(
    ("change", "defect"),
    [
        ({}, None),
        ({"aud": AUDIENCE.rstrip("/")}, "ORC-PAY-003"),
        ({"aud": [AUDIENCE]}, "ORC-PAY-003"),
        ({"exp": 1000 + 901}, "ORC-PAY-004"),
        ({"exp": 1000}, "ORC-PAY-004"),
        ({"max_amount": 5000.0}, "ORC-PAY-005"),
        ({"max_amount": True}, "ORC-PAY-005"),
        ({"currency": "USD"}, "ORC-PAY-005"),
        ({"max_amount": 0}, "ORC-PAY-005"),
    ],
)
def test_token_defects_judge_each_binding_claim(
    change: dict[str, object], defect: str | None
) -> None:
    defects = token_defects({**SOUND, **change}, AUDIENCE, 900)
    assert set(defects) == ({defect} if defect else set())
