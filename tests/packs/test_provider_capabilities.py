"""Optional provider features: judged where offered, not applicable where not, and a feature
advertised but absent fails PRV-DSC-013 (false advertising)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.adapters.provider import ProviderTargetConfig
from conformance.cli import main
from conformance.config import load_config
from conformance.engine import RunPlan, run_sync
from conformance.results import RunResult, Status
from spec.requirement import Role, Step
from wire.errors import UsageError


def run(profile: str, *faults: str, **capabilities: bool) -> RunResult:
    config = ProviderTargetConfig(profile=profile, faults=faults, capabilities=capabilities)
    return run_sync(
        RunPlan(
            Role.PROVIDER,
            profile,
            config,
            steps=(Step.DISCOVERY, Step.PROVISIONING, Step.REVOCATION),
        )
    )


def finding(result: RunResult, requirement_id: str) -> tuple[Status, str]:
    found = next(f for f in result.findings if f.requirement.id == requirement_id)
    return found.status, found.message


@pytest.mark.parametrize("profile", ["app-0.1d", "app-next"])
def test_the_mock_advertises_what_it_offers(profile: str) -> None:
    assert finding(run(profile), "PRV-DSC-013")[0] is Status.PASSED


@pytest.mark.parametrize("profile", ["app-0.1d", "app-next"])
def test_allowed_updates_that_are_refused_are_false_advertising(profile: str) -> None:
    result = run(profile, "allowed-updates-not-honoured")
    status, message = finding(result, "PRV-DSC-013")
    assert status is Status.FAILED
    assert message.startswith("false advertising: plan changes (update_service) advertised")
    if profile == "app-next":  # app-0.1d leaves allowed_updates to the orchestrator
        assert finding(result, "PRV-PRO-010")[0] is Status.PASSED
    assert [f.requirement.id for f in result.failed()] == ["PRV-DSC-013"]


def test_a_feature_the_config_rules_out_is_not_applicable_saying_why() -> None:
    result = run(
        "app-next", deep_links=False, update_service=False, refresh_tokens=False, pending=False
    )
    for requirement_id in ("PRV-PRO-014", "PRV-PRO-010", "PRV-REV-004", "PRV-PRO-009"):
        status, message = finding(result, requirement_id)
        assert status is Status.NOT_APPLICABLE, requirement_id
        assert "provspec.toml [capabilities]" in message
    assert finding(result, "PRV-REV-001")[0] is Status.PASSED  # revocation still offered
    assert not result.failed()


def test_the_config_section_is_checked(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text("[capabilities]\ndeep_links = false\n")
    assert load_config(good).get("capabilities", "deep_links") is False
    bad = tmp_path / "bad.toml"
    bad.write_text('[capabilities]\ndeep_links = "no"\nwebhooks = true\n')
    with pytest.raises(UsageError, match=r"capabilities\.deep_links must be true or false"):
        load_config(bad)
    with pytest.raises(UsageError, match=r"unknown key capabilities\.webhooks"):
        load_config(bad)


def test_the_run_command_passes_the_capabilities_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "provspec.toml"
    config.write_text("[capabilities]\ndeep_links = false\n")
    code = main(
        [
            "run",
            "--config",
            str(config),
            "--steps",
            "provisioning",
            "--fuzz-examples",
            "1",
            "--report-dir",
            str(tmp_path),
        ]
    )
    assert code == 0
    assert "n/a   PRV-PRO-014" in capsys.readouterr().out
