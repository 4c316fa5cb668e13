"""Blame labels: implementation, harness, environment; only the first counts against
conformance, the other two fail the run with exit code 3."""

from __future__ import annotations

import dataclasses
import json
import socket
import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator

from conformance import checks as checks_module
from conformance.adapters.provider import ProviderTargetConfig
from conformance.checks import all_checks
from conformance.cli import main
from conformance.engine import RunPlan, environment_error, run_sync
from conformance.report import results_schema
from conformance.results import EXIT_ERROR, Blame, Status
from mocks._core.http import json_response
from mocks.orchestrator.app import OrchestratorMock
from spec.requirement import Role, Step


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_unreachable_target_stops_at_preflight_with_one_environment_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = f"http://127.0.0.1:{unused_port()}/api/app/"  # nothing listens: refused
    code = main(
        [
            "run",
            "--target",
            target,
            "--hmac-secret",
            "whsec_test_x",
            "--report-dir",
            str(tmp_path),
        ]
    )
    assert code == EXIT_ERROR
    captured = capsys.readouterr()
    assert "connection refused" in captured.err
    assert "to fix: start it there" in captured.err
    assert "ERR" not in captured.out  # one root cause, not a line per requirement
    assert not (tmp_path / "results.json").exists()


def test_a_target_lost_mid_run_gives_environment_errors_and_exit_3(tmp_path: Path) -> None:
    # Past preflight (here: none), a refused connection is still no verdict on the target.
    target = f"http://127.0.0.1:{unused_port()}/api/app/"
    plan = RunPlan(
        Role.PROVIDER,
        "app-0.1d",
        ProviderTargetConfig(base_url=target, hmac_secret="whsec_test_x"),
        steps=(Step.DISCOVERY,),
        preflight=False,
    )
    result = run_sync(plan)
    judged = [f for f in result.findings if f.status is not Status.UNTESTED]
    assert judged
    assert all(f.status is Status.ERROR for f in judged)
    assert {f.blame for f in judged} == {Blame.ENVIRONMENT}
    assert result.exit_code == EXIT_ERROR
    results = result.as_json()
    Draft202012Validator(results_schema()).validate(results)
    assert results["verdict"] == "error"


def test_what_counts_as_environment() -> None:
    request = httpx.Request("GET", "https://x.test/")
    assert environment_error(httpx.ConnectError("refused", request=request))
    assert environment_error(httpx.ConnectTimeout("slow connect", request=request))
    wrapped = httpx.TransportError("tls")
    wrapped.__cause__ = ssl.SSLError("bad handshake")
    assert environment_error(wrapped)
    dns = httpx.TransportError("dns")
    dns.__context__ = socket.gaierror("no such host")
    assert environment_error(dns)
    # Reached, then misbehaved: the target's failure.
    assert not environment_error(httpx.ReadTimeout("hung", request=request))
    assert not environment_error(httpx.RemoteProtocolError("reset", request=request))


def test_an_invalid_message_from_the_suites_own_mock_is_a_harness_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Test-only injection: the suite's orchestrator side serves metadata whose jwks_uri is a
    # number, which the orchestrator_metadata schema refuses.
    async def broken_metadata(self: OrchestratorMock, request: Any) -> Any:
        return json_response({"issuer": self.issuer, "jwks_uri": 12345})

    monkeypatch.setattr(OrchestratorMock, "metadata", broken_metadata)
    plan = RunPlan(
        Role.PROVIDER,
        "app-next",
        ProviderTargetConfig(profile="app-next"),
        steps=(Step.ATTESTATION, Step.ACCOUNTS),
    )
    result = run_sync(plan)
    assert result.harness_problems
    assert "orchestrator_metadata" in result.harness_problems[0]["message"]
    not_passed = [f for f in result.findings if f.status in (Status.FAILED, Status.ERROR)]
    assert not_passed, "the provider cannot verify attestations without the suite's keys"
    assert all(f.status is Status.ERROR and f.blame is Blame.HARNESS for f in not_passed)
    assert "the suite's own mock sent an invalid message" in not_passed[0].message
    assert not result.failed()
    assert result.exit_code == EXIT_ERROR
    Draft202012Validator(results_schema()).validate(result.as_json())


def test_a_check_that_crashes_is_a_harness_error(monkeypatch: pytest.MonkeyPatch) -> None:
    original = next(
        c for c in all_checks() if c.name == "discovery.health_lists_the_profile_version"
    )

    async def crashes(ctx: Any) -> None:
        raise ZeroDivisionError("a bug in the suite")

    monkeypatch.setitem(
        checks_module._CHECKS, original.name, dataclasses.replace(original, func=crashes)
    )
    result = run_sync(
        RunPlan(
            Role.PROVIDER,
            "app-0.1d",
            ProviderTargetConfig(),
            only_checks=(original.name,),
        )
    )
    finding = next(f for f in result.findings if f.requirement.id in original.requirements)
    assert finding.status is Status.ERROR
    assert finding.blame is Blame.HARNESS
    assert "ZeroDivisionError" in finding.message
    assert result.exit_code == EXIT_ERROR


def test_a_target_failure_is_blamed_on_the_implementation(tmp_path: Path) -> None:
    assert (
        main(
            [
                "run",
                "--fault",
                "deep-link-long-lived",
                "--steps",
                "provisioning",
                "--report-dir",
                str(tmp_path),
                "--quiet",
            ]
        )
        == 1
    )
    results = json.loads((tmp_path / "results.json").read_text())
    failed = [r for r in results["requirements"] if r["status"] == "failed"]
    assert [r["id"] for r in failed] == ["PRV-PRO-014"]
    assert failed[0]["blame"] == "implementation"
    assert all(r["blame"] is None for r in results["requirements"] if r["status"] == "passed")


def test_an_invalid_answer_of_the_suites_own_provider_is_a_harness_problem(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from conformance.adapters.orchestrator import OrchestratorTargetConfig
    from mocks.provider._discovery import Discovery

    async def broken_health(self: Discovery, request: Any, raw: bytes, caller: Any) -> Any:
        return json_response({"status": "ok", "supported_versions": "0.1d"})  # not an array

    # The suite's own provider is the mock provider; its health room answers out of schema.
    monkeypatch.setattr(Discovery, "health", broken_health)
    plan = RunPlan(
        Role.ORCHESTRATOR,
        "app-0.1d",
        orchestrator=OrchestratorTargetConfig(profile="app-0.1d"),
        steps=(Step.DISCOVERY,),
    )
    result = run_sync(plan)
    assert result.harness_problems
    assert "health_response" in result.harness_problems[0]["message"]
    assert not result.failed()
    assert result.exit_code == EXIT_ERROR
