"""Verdicts a team can trust and act on: blame that follows the evidence, nothing passed
that was not judged, INCOMPLETE and CERTIFIED, and what a failure hands over to act on it
(a reproduction, a re-run of chosen requirements, a stop after N failures)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from conformance import checks as checks_module
from conformance.adapters.provider import ProviderTargetConfig
from conformance.checks import Unexpected, all_checks
from conformance.cli import main
from conformance.engine import RunPlan, run_sync
from conformance.report import results_schema
from conformance.results import (
    EXIT_FAILED,
    EXIT_INCOMPLETE,
    EXIT_USAGE,
    Blame,
    RunResult,
    Status,
    Verdict,
)
from mocks.hosting import ServedInThread
from mocks.provider.app import ProviderMock, ProviderSettings
from spec.requirement import Role, Step

CATALOG = "discovery.catalog_shape"  # judges PRV-DSC-002, -003, -004, -006, -007


def certified(result: RunResult) -> bool:
    """Read anew: mypy would keep an earlier `assert result.certified` for the property."""
    return result.certified


def verdict(result: RunResult) -> Verdict:
    """Read anew after the result changed (see `certified`)."""
    return result.verdict


def replace_check(monkeypatch: pytest.MonkeyPatch, name: str, func: Any) -> None:
    original = next(c for c in all_checks() if c.name == name)
    monkeypatch.setitem(checks_module._CHECKS, name, dataclasses.replace(original, func=func))


def run_one(name: str, **plan: Any) -> Any:
    return run_sync(
        RunPlan(Role.PROVIDER, "app-0.1d", ProviderTargetConfig(), only_checks=(name,), **plan)
    )


def statuses(result: Any) -> dict[str, tuple[str, str]]:
    return {f.requirement.id: (f.status.value, f.message) for f in result.findings}


# --- blame ------------------------------------------------------------------------------------


def test_an_unexpected_answer_fails_the_rule_it_broke_and_blocks_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def html_catalog(ctx: Any) -> None:
        _, exchange = await ctx.call("GET", "provisioning/services")
        raise Unexpected("PRV-DSC-002", "the catalog is an HTML page, not JSON", exchange)

    replace_check(monkeypatch, CATALOG, html_catalog)
    result = run_one(CATALOG)
    found = statuses(result)
    assert found["PRV-DSC-002"] == ("failed", "the catalog is an HTML page, not JSON")
    for sibling in ("PRV-DSC-003", "PRV-DSC-004", "PRV-DSC-007"):
        status, message = found[sibling]
        assert status == "skipped"
        assert message == "blocked by PRV-DSC-002: the catalog is an HTML page, not JSON"
    finding = next(f for f in result.findings if f.requirement.id == "PRV-DSC-002")
    assert finding.blame is Blame.IMPLEMENTATION
    assert finding.evidence
    assert not result.errors()  # never "the check crashed (a suite error)"


def test_an_unexpected_answer_of_another_rule_only_blocks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def blocked(ctx: Any) -> None:
        raise Unexpected("PRV-PRO-003", "the resource names no id", blocked=True)

    replace_check(monkeypatch, CATALOG, blocked)
    found = statuses(run_one(CATALOG))
    assert {status for status, _ in found.values()} == {"skipped"}
    assert all(m.startswith("blocked by PRV-PRO-003") for _, m in found.values())


def test_only_a_crash_in_provspecs_own_code_is_a_harness_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def crashes(ctx: Any) -> None:
        raise ZeroDivisionError("a bug in the suite")

    replace_check(monkeypatch, CATALOG, crashes)
    result = run_one(CATALOG)
    assert {f.blame for f in result.errors()} == {Blame.HARNESS}
    assert result.verdict is Verdict.ERROR


def test_a_requirement_the_check_never_judged_is_skipped_not_passed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def judges_one(ctx: Any) -> None:
        ctx.require("PRV-DSC-002", True, "")
        ctx.require("PRV-DSC-006", False, "Content-Type is 'text/html'")

    replace_check(monkeypatch, CATALOG, judges_one)
    found = statuses(run_one(CATALOG))
    assert found["PRV-DSC-002"][0] == "passed"
    assert found["PRV-DSC-006"][0] == "warning"
    assert found["PRV-DSC-003"] == (
        "skipped",
        "blocked by PRV-DSC-006: Content-Type is 'text/html'",
    )


def test_a_check_with_nothing_to_judge_passes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    async def looks_at_nothing(ctx: Any) -> None:
        catalog: list[Any] = []  # an empty catalog: no entry to judge
        for entry in catalog:
            ctx.require("PRV-DSC-003", bool(entry), "")

    replace_check(monkeypatch, CATALOG, looks_at_nothing)
    result = run_one(CATALOG)
    assert not [f for f in result.findings if f.status is Status.PASSED]
    assert "found nothing on this target to judge" in statuses(result)["PRV-DSC-003"][1]
    assert result.verdict is Verdict.INCOMPLETE


def test_a_target_serving_html_does_not_pass_prv_acc_010(tmp_path: Path) -> None:
    """Even with the preflight off, the account checks judge nothing on an HTML page."""
    from starlette.responses import HTMLResponse

    page = HTMLResponse("<html><body>Sign in</body></html>", status_code=404)
    with ServedInThread().serving(page) as origin:
        plan = RunPlan(
            Role.PROVIDER,
            "app-0.1d",
            ProviderTargetConfig(base_url=origin + "/api/", hmac_secret="whsec_x"),
            steps=(Step.ACCOUNTS,),
            preflight=False,
        )
        result = run_sync(plan)
    acc_010 = next(f for f in result.findings if f.requirement.id == "PRV-ACC-010")
    assert acc_010.status is not Status.PASSED
    assert not result.errors()


# --- verdicts ------------------------------------------------------------------------------------


def test_an_unjudged_must_makes_the_run_incomplete_with_what_would_enable_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: the embedded provider run said PASS with MUST PRV-PRO-016 skipped.
    code = main(["run", "--steps", "provisioning", "--report-dir", str(tmp_path), "--quiet"])
    assert code == EXIT_INCOMPLETE
    out = capsys.readouterr().out
    assert "INCOMPLETE: 0 failing requirement(s)" in out
    assert "PRV-PRO-016  fuzzing is off; run with --fuzz-examples N" in out
    results = json.loads((tmp_path / "results.json").read_text())
    Draft202012Validator(results_schema()).validate(results)
    assert results["verdict"] == "incomplete"
    assert results["exit_code"] == EXIT_INCOMPLETE
    assert [u["id"] for u in results["unjudged"]] == ["PRV-PRO-016"]
    assert results["certified"] is False


def test_a_failure_beats_everything_unjudged(tmp_path: Path) -> None:
    code = main(
        ["run", "--fault", "code-reuse", "--report-dir", str(tmp_path), "--quiet"]
    )  # PRV-PRO-016 unjudged too
    assert code == EXIT_FAILED
    assert json.loads((tmp_path / "results.json").read_text())["verdict"] == "fail"


def test_certify_turns_fuzzing_on_and_says_certified_only_when_everything_held(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from conformance._cli_run import CERTIFY_FUZZ_EXAMPLES, _plan, _summary
    from conformance.cli import _parser

    plan, _ = _plan(_parser().parse_args(["run", "--certify"]))
    assert plan.certify
    assert plan.provider.fuzz_examples == CERTIFY_FUZZ_EXAMPLES
    # A certified run (here with fewer generated requests, to keep the test short).
    plan.provider.fuzz_examples = 2
    result = run_sync(plan)
    assert result.certified
    _summary(result)
    assert "\nCERTIFIED: 0 failing requirement(s)" in capsys.readouterr().out
    # The same run missing one judged MUST is not certified, and says so.
    result.findings[0].status = Status.SKIPPED
    assert not certified(result)
    _summary(result)
    assert "INCOMPLETE (not certified)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "config", "said"),
    [
        (["--steps", "discovery"], "", "leave out --steps and --requirement"),
        (["--max-failures", "3"], "", "leave out --max-failures"),
        ([], "[capabilities]\ndeep_links = false\n", "remove [capabilities] deep_links = false"),
        (
            ["--target", "http://127.0.0.1:9/api/"],
            "",
            "set [provider] test_payment_token",
        ),
        (
            ["--target", "http://127.0.0.1:9/api/"],
            "",
            "the consent MUSTs: this run has no way to give consent",
        ),
        (
            ["--role", "orchestrator", "--orchestrator-cli", "true"],
            "",
            "set [orchestrator] control (or clock_command)",
        ),
    ],
    ids=["partial", "max-failures", "hidden-feature", "payment", "consent", "clock"],
)
def test_certify_refuses_what_cannot_be_certified(
    argv: list[str],
    config: str,
    said: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PROVSPEC_HMAC_SECRET", "whsec_x")
    path = tmp_path / "provspec.toml"
    path.write_text(config)
    assert main(["run", "--certify", "--config", str(path), *argv]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "--certify cannot certify this run" in err
    assert said in err


# --- acting on a failure ---------------------------------------------------------------------------


def test_a_failure_carries_a_reproduction_that_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "whsec_provspec_reproduction"
    monkeypatch.setenv("PROVSPEC_HMAC_SECRET", secret)
    listener = ServedInThread()
    base = listener.origin + "/api/app/"
    mock = ProviderMock(
        ProviderSettings(base_url=base, hmac_secret=secret, faults=("health-wrong-versions",))
    )
    with listener.serving(mock.app):
        code = main(
            ["run", "--target", base, "--steps", "discovery", "--report-dir", str(tmp_path)]
        )
        assert code == EXIT_FAILED
        results = json.loads((tmp_path / "results.json").read_text())
        finding = next(r for r in results["requirements"] if r["id"] == "PRV-DSC-001")
        command = finding["reproduction"]
        assert secret not in command
        assert "provspec sign --profile app-0.1d" in command
        assert command in capsys.readouterr().out.replace("\n        ", "\n")
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        done = subprocess.run(
            ["bash", "-c", command],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, "PATH": path},
        )
    assert done.returncode == 0, done.stderr
    assert "HTTP/1.1 200" in done.stdout  # signed afresh: accepted
    assert '"supported_versions":[]' in done.stdout.replace(" ", "")  # the fault, again


def test_sign_prints_the_stripe_signature_of_a_body(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from conformance.client._signing import stripe_signature

    body = tmp_path / "b.json"
    body.write_bytes(b'{"id":"acctreq_1"}')
    monkeypatch.setenv("PROVSPEC_HMAC_SECRET", "whsec_sign")
    argv = ["sign", "--profile", "app-0.1d", "--body-file", str(body), "--timestamp", "1700000000"]
    assert main(argv) == 0
    expected = stripe_signature("whsec_sign", body.read_bytes(), 1700000000)
    assert capsys.readouterr().out.strip() == expected
    monkeypatch.delenv("PROVSPEC_HMAC_SECRET")
    assert main(argv) == EXIT_USAGE
    assert "$PROVSPEC_HMAC_SECRET is not set" in capsys.readouterr().err


def test_sign_makes_an_attestation_with_a_served_orchestrators_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mocks._core.store import SQLiteStore
    from mocks.orchestrator.app import OrchestratorMock, OrchestratorSettings
    from wire import jose

    state = tmp_path / "orchestrator.db"
    issuer = "http://127.0.0.1:8401"
    store = SQLiteStore(state)
    key = OrchestratorMock(OrchestratorSettings(profile="app-next", issuer=issuer, store=store))
    public = key.signing_key.public_key()
    store.close()
    body = tmp_path / "b.json"
    body.write_bytes(b"{}")
    claims = {"iss": issuer, "sub": "usr_1", "aud": "http://p.test/api/", "email": "a@b.test"}
    argv = ["sign", "--profile", "app-next", "--state", str(state), "--body-file", str(body)]
    assert main([*argv, "--claims", json.dumps(claims)]) == 0
    token = capsys.readouterr().out.strip()
    header, payload, _ = jose.unverified_parts(token)
    assert header["typ"] == "app-attestation+jwt"
    assert {k: payload[k] for k in claims} == claims
    assert payload["exp"] > payload["iat"] >= int(time.time()) - 5
    jose.verify_signature(
        token,
        keys={key.signing_key.kid: public},
        algorithms=[key.signing_key.alg],
        typ="app-attestation+jwt",
    )


def test_requirement_reruns_only_the_chosen_requirements(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "run",
            "--fault",
            "code-reuse",
            "--requirement",
            "prv-cns-007,PRV-DSC-001",
            "--report-dir",
            str(tmp_path),
            "--quiet",
        ]
    )
    assert code == EXIT_FAILED
    results = json.loads((tmp_path / "results.json").read_text())
    assert {r["id"]: r["status"] for r in results["requirements"]} == {
        "PRV-CNS-007": "failed",
        "PRV-DSC-001": "passed",
    }
    assert "FAIL: 1 failing requirement(s): PRV-CNS-007" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("PRV-CNS-070", "PRV-CNS-070: not a requirement; did you mean PRV-CNS-007?"),
        ("ORC-DSC-001", "ORC-DSC-001: not a provider requirement of app-0.1d"),
        (",", "wants at least one requirement ID"),
    ],
)
def test_requirement_names_what_is_wrong(
    value: str, said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--requirement", value]) == EXIT_USAGE
    assert said in capsys.readouterr().err


def test_max_failures_stops_and_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "run",
            "--fault",
            "health-wrong-versions",
            "--fault",
            "code-reuse",
            "--max-failures",
            "1",
            "--report-dir",
            str(tmp_path),
            "--quiet",
        ]
    )
    assert code == EXIT_FAILED
    out = capsys.readouterr().out
    assert "stopped early: the run stopped after 1 failed requirement(s) (--max-failures 1)" in out
    results = json.loads((tmp_path / "results.json").read_text())
    Draft202012Validator(results_schema()).validate(results)
    assert results["stopped"]
    found = {r["id"]: r for r in results["requirements"]}
    assert found["PRV-DSC-001"]["status"] == "failed"
    assert found["PRV-CNS-007"]["status"] == "skipped"  # never reached
    assert "--max-failures 1" in found["PRV-CNS-007"]["message"]


def test_list_checks_lists_checks_with_their_requirements(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["run", "--list-checks", "--steps", "discovery"]) == 0
    out = capsys.readouterr().out
    assert "discovery.health_lists_the_profile_version" in out
    assert "PRV-DSC-001 (MUST)" in out
    assert "consent." not in out
    assert main(["run", "--list-checks", "--requirement", "PRV-CNS-007"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "PRV-CNS-007" in line]
    assert lines
    assert all("consent" in line for line in lines)


def test_a_must_blocked_by_a_known_failure_does_not_make_the_run_incomplete(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import datetime as dt

    from conformance.baseline import parse_baseline
    from conformance.verdict import apply_baseline

    async def html_catalog(ctx: Any) -> None:
        raise Unexpected("PRV-DSC-002", "the catalog is an HTML page, not JSON")

    replace_check(monkeypatch, CATALOG, html_catalog)
    result = run_one(CATALOG)
    assert result.verdict is Verdict.FAIL
    known = parse_baseline({"known": [{"id": "PRV-DSC-002", "reason": "until v2"}]}, "test")
    apply_baseline(result, known, dt.date(2026, 1, 1))
    # PRV-DSC-003 and -004 are blocked by the known failure: accepted with it, not unjudged.
    assert result.unjudged() == []
    assert verdict(result) is Verdict.PASS
    assert not result.certified


FAKE_ORCHESTRATOR = """#!/usr/bin/env python3
import json, sys
# Lists both of the suite's providers and never asks either for its catalog again.
print(json.dumps({"ok": True, "data": {"services": [
    {"provider_name": "provspecmock", "service_id": "free"},
    {"provider_name": "provspecmock2", "service_id": "free"}]}}))
"""


def test_an_orchestrator_that_never_reads_the_hostile_catalog_passes_nothing(
    tmp_path: Path,
) -> None:
    # Before: ORC-DSC-012 passed with nothing to judge.
    cli = tmp_path / "fake-orchestrator"
    cli.write_text(FAKE_ORCHESTRATOR)
    cli.chmod(0o755)
    config = tmp_path / "provspec.toml"
    config.write_text("[orchestrator]\nprovider_port = 0\nother_provider_port = 0\n")
    argv = ["run", "--role", "orchestrator", "--orchestrator-cli", str(cli), "--config"]
    argv += [str(config), "--requirement", "ORC-DSC-012", "--report-dir", str(tmp_path), "--quiet"]
    assert main(argv) == EXIT_INCOMPLETE
    results = json.loads((tmp_path / "results.json").read_text())
    (finding,) = results["requirements"]
    assert finding["status"] == "skipped"
    assert "did not fetch provspecmock2's catalog" in finding["message"]


def test_a_reproduction_keeps_secrets_out_and_says_what_to_fill_in() -> None:
    from types import SimpleNamespace

    from conformance.recorder import Exchange
    from conformance.reproduce import curl_for
    from spec.schemas import default_store

    exchange = Exchange(
        7,
        "POST",
        "https://p.test/api/oauth/token",
        {
            "authorization": "Bearer «masked 0123abcd»",
            "stripe-signature": "«masked 89abcdef»",
            "content-type": "application/x-www-form-urlencoded",
            "user-agent": "python-httpx",
        },
        "grant_type=authorization_code&code=%C2%ABmasked+c646e068%C2%BB",
    )
    target = SimpleNamespace(params=default_store().profile("app-0.1d").params, profile="app-0.1d")
    command = curl_for(exchange, target)
    assert '-H "authorization: Bearer $PROVSPEC_ACCESS_TOKEN"' in command
    assert "provspec sign --profile app-0.1d --body-file -" in command
    assert "put the real ones in first" in command  # the masked code in the body
    assert "user-agent" not in command
    assert "«masked 89abcdef»" not in command  # the stale signature is never re-sent
