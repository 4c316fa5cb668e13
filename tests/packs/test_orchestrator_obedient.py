"""The orchestrator pack against orchestrators that obey every MUST as written, each in its
own way: no MUST is skipped for want of a probe that fits (issue 14). And the contract
layer: an answer outside the CLI contract fails the requirement it breaks, never the harness;
a real orchestrator's clock is moved through the test clock it declares."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from conformance.adapters.orchestrator import (
    OrchestratorContext,
    OrchestratorTarget,
    OrchestratorTargetConfig,
    contract_issues,
)
from conformance.adapters.orchestrator_control import configured_control
from conformance.checks import Skipped, all_checks
from conformance.engine import RunPlan, run_sync
from conformance.results import RunResult, Status
from spec.requirement import Level, Role
from wire.clock import OffsetClock


def run(*faults: str, options: tuple[str, ...] = ()) -> RunResult:
    config = OrchestratorTargetConfig(profile="app-next", faults=faults, mock_options=options)
    return run_sync(RunPlan(Role.ORCHESTRATOR, "app-next", orchestrator=config))


def test_an_orchestrator_that_mints_the_whole_remainder_is_judged_without_skips() -> None:
    """`--token-amount remaining`: a token for a stated price allows the whole remaining cap
    (ORC-PAY-015 allows it), and nothing is minted below the price (ORC-CAP-010)."""
    result = run(options=("--token-amount", "remaining"))
    unjudged = [
        (f.requirement.id, f.status.value, f.message)
        for f in result.findings
        if f.requirement.level is Level.MUST and f.status is not Status.PASSED
    ]
    assert unjudged == []
    assert result.exit_code == 0


def test_a_list_where_the_contract_wants_an_object_fails_pro_015_not_the_harness() -> None:
    result = run("env-variables-as-list")
    statuses = {f.requirement.id: (f.status, f.message) for f in result.findings}
    assert statuses["ORC-PRO-015"][0] is Status.FAILED
    assert "cli_env_data" in statuses["ORC-PRO-015"][1]
    for blocked in ("ORC-CRD-001", "ORC-CRD-003"):
        status, message = statuses[blocked]
        assert status is Status.SKIPPED
        assert message.startswith("blocked by ORC-PRO-015")
    assert not [f for f in result.findings if f.status is Status.ERROR]
    assert result.exit_code == 1


@pytest.mark.parametrize(
    ("command", "envelope", "found"),
    [
        ("env", {"ok": True, "data": {"variables": {"A_KEY": "••"}}}, False),
        ("env", {"ok": True, "data": {"variables": [{"name": "A_KEY"}]}}, True),
        ("env", {"ok": False, "error": {"code": "X", "message": "y"}}, False),
        ("billing", {"ok": True, "data": {"caps": []}}, True),
        ("add", {"ok": False, "data": {"status": "spend_cap_exceeded"}}, True),
        ("add", {"ok": False, "data": None, "error": {"code": "PROVIDER_ERROR"}}, False),
        ("unlisted", {"ok": True, "data": []}, False),
        ("env", {}, False),
    ],
)
def test_contract_issues_name_what_breaks_the_commands_schema(
    command: str, envelope: dict[str, object], found: bool
) -> None:
    assert bool(contract_issues("app-next", command, envelope)) is found


def _clock_config(log: Path) -> OrchestratorTargetConfig:
    script = f"import sys; open({str(log)!r}, 'a').write(sys.argv[1] + ' ' + sys.argv[2] + '\\n')"
    return OrchestratorTargetConfig(
        profile="app-next",
        command="true",  # an external orchestrator; only its clock command runs here
        clock_command=f"{sys.executable} -c {script!r} {{offset}} {{timestamp}}",
    )


def test_a_declared_test_clock_is_moved_for_a_probe_and_back(tmp_path: Path) -> None:
    log = tmp_path / "clock.log"
    target = OrchestratorTarget(_clock_config(log))
    # what running() sets up when clock_command is configured: a control offering set_clock
    target.control = configured_control(None, target.config.clock_command, target.recorder, 30)
    target.clock = OffsetClock()
    check = next(
        c for c in all_checks() if c.name == "cap.the_spend_resets_at_midnight_utc_on_the_first"
    )
    target.provider = target.other_provider = object()  # type: ignore[assignment]
    target.http = object()  # type: ignore[assignment]
    context = OrchestratorContext(target, check)
    with context.shifted_clock(86400):
        assert abs(context.now() - (target.clock.timestamp())) <= 1
    offsets = [line.split()[0] for line in log.read_text().splitlines()]
    assert offsets == ["86400", "0"]
    assert len(target.recorder.cli_calls) == 2  # each move is recorded as evidence


def test_without_a_test_clock_the_month_boundary_is_not_judged_and_says_why() -> None:
    target = OrchestratorTarget(OrchestratorTargetConfig(profile="app-next", command="true"))
    target.provider = target.other_provider = object()  # type: ignore[assignment]
    target.http = object()  # type: ignore[assignment]
    check = next(
        c for c in all_checks() if c.name == "cap.the_spend_resets_at_midnight_utc_on_the_first"
    )
    context = OrchestratorContext(target, check)
    with (
        pytest.raises(Skipped, match=r"no test control for moving its clock \(set_clock\)"),
        context.shifted_clock(60),
    ):
        pass


def test_the_clock_command_is_read_from_the_config_and_checked(tmp_path: Path) -> None:
    from conformance.config import load_config
    from wire.errors import UsageError

    config = tmp_path / "provspec.toml"
    config.write_text('[orchestrator]\nclock_command = "orc test-clock --offset {offset}"\n')
    assert load_config(config).get("orchestrator", "clock_command") == (
        "orc test-clock --offset {offset}"
    )
    config.write_text('[orchestrator]\nclock_command = "orc test-clock"\n')
    with pytest.raises(UsageError, match="clock_command must be a command naming"):
        load_config(config)
