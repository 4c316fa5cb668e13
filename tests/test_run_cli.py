"""`provspec run`, `selftest`, `init` and `keys` from the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from conformance.cli import main
from conformance.report import results_schema
from conformance.results import EXIT_INCOMPLETE


def test_run_against_the_embedded_mock_is_green_and_writes_every_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Fuzzing on (two requests per operation): every MUST judged, so the verdict is PASS.
    argv = ["run", "--profile", "app-next", "--fuzz-examples", "2", "--report-dir", str(tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "PASS: 0 failing requirement(s)" in out
    assert "\nattestation\n" in out  # live progress, per step
    results = json.loads((tmp_path / "results.json").read_text())
    Draft202012Validator(results_schema()).validate(results)
    assert results["exit_code"] == 0
    assert results["verdict"] == "pass"
    assert results["unjudged"] == []
    assert (tmp_path / "junit.xml").read_text().startswith("<?xml")
    assert '<table id="matrix">' in (tmp_path / "report.html").read_text()
    assert list((tmp_path / "allure-results").glob("*-result.json"))


def test_a_fault_fails_its_requirement_and_the_exit_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", "--fault", "code-reuse", "--report-dir", str(tmp_path), "--quiet"])
    assert code == 1
    assert "FAIL: 1 failing requirement(s): PRV-CNS-007" in capsys.readouterr().out
    junit = (tmp_path / "junit.xml").read_text()
    assert 'name="PRV-CNS-007 [MUST]"' in junit
    assert "<failure" in junit


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--target", "ftp://x/"], "not a usable base URL"),
        (["--target", "https://x/?a=1"], "query or a fragment"),
        (["--target", "https://provider.example/"], "HMAC secret"),
        (["--profile", "app-nxt"], "did you mean app-next"),
        (["--steps", "discovery,signup"], "known steps"),
        (["--fault", "no-such-fault"], "unknown fault"),
        (["--config", "/nonexistent/provspec.toml"], "does not exist"),
    ],
)
def test_bad_arguments_are_usage_errors_with_a_fix(
    arguments: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PROVSPEC_HMAC_SECRET", raising=False)
    assert main(["run", *arguments]) == 2
    assert message in capsys.readouterr().err


def test_a_bad_config_lists_every_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "provspec.toml"
    config.write_text('[run]\nrol = "provider"\n[provider]\norchestrator_port = "x"\n[mystery]\n')
    assert main(["run", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "unknown key run.rol" in err
    assert "orchestrator_port must be an integer" in err
    assert "unknown section [mystery]" in err


def test_init_writes_a_config_that_loads_and_refuses_to_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "provspec.toml"
    assert main(["init", str(path)]) == 0
    # The starter leaves fuzzing off: nothing fails, but PRV-PRO-016 is not judged.
    argv = ["run", "--config", str(path), "--report-dir", str(tmp_path / "r"), "--quiet"]
    assert main(argv) == EXIT_INCOMPLETE
    assert main(["init", str(path)]) == 2
    assert "--force" in capsys.readouterr().err


def test_keys_says_what_the_provider_must_trust(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "--profile", "app-next", "--orchestrator-port", "9000"]) == 0
    assert "http://127.0.0.1:9000/.well-known/app-orchestrator" in capsys.readouterr().out


def test_selftest_catches_every_fault_exactly(capsys: pytest.CaptureFixture[str]) -> None:
    # The whole matrix, once in the project's tests; runs are independent, so spread them.
    assert main(["selftest", "--jobs", str(max(2, os.cpu_count() or 1))]) == 0
    out = capsys.readouterr().out
    for role in ("provider", "orchestrator"):
        for profile in ("app-0.1d", "app-next"):
            assert f"reference mock {role} ({profile}): clean" in out
    assert "detection rate 100%" in out
    assert "false positives 0" in out


def test_run_by_url_against_a_served_mock_provider_with_a_fault(tmp_path: Path) -> None:
    """The done-when of the engine issue: a served mock in another process, by URL."""
    from mocks.hosting import bind

    probe = bind("127.0.0.1", 0)
    port = probe.port
    probe.sock.close()
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [
        sys.executable,
        "-m",
        "conformance",
        "mock",
        "provider",
        "--port",
        str(port),
        "--hmac-secret",
        "whsec_provspec_test",
        "--fault",
        "token-cacheable",
    ]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment
    ) as mock:
        try:
            assert mock.stdout is not None
            mock.stdout.readline()
            run = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "conformance",
                    "run",
                    "--target",
                    f"http://127.0.0.1:{port}/api/app/",
                    "--hmac-secret",
                    "whsec_provspec_test",
                    "--report-dir",
                    str(tmp_path),
                    "--quiet",
                ],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
        finally:
            mock.terminate()
            mock.wait(timeout=15)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "FAIL: 1 failing requirement(s): PRV-CNS-013" in run.stdout
