from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conformance.cli import main
from spec.registry import default_registry


def test_requirements_json_lists_every_requirement_with_a_source(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["requirements", "--format", "json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["count"] == len(payload["requirements"]) == len(default_registry()) >= 150
    assert all(entry["source"].strip() for entry in payload["requirements"])
    assert {entry["role"] for entry in payload["requirements"]} == {
        "provider",
        "orchestrator",
        "agent",
        "resource-server",
    }
    assert {p for entry in payload["requirements"] for p in entry["profiles"]} == {
        "app-0.1d",
        "app-next",
        "rfc9728",
        "mcp-2025-06-18",
        "mcp-2025-11-25",
    }


def test_requirements_filters_combine(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "requirements",
                "--format",
                "json",
                "--role",
                "provider",
                "--profile",
                "app-0.1d",
                "--step",
                "attestation",
            ]
        )
        == 0
    )
    payload = json.loads(capsys.readouterr().out)
    assert payload["filters"] == {"role": "provider", "profile": "app-0.1d", "step": "attestation"}
    assert payload["count"] > 0
    assert all(
        e["role"] == "provider" and "app-0.1d" in e["profiles"] and e["step"] == "attestation"
        for e in payload["requirements"]
    )


def test_requirements_table_is_readable(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["requirements", "--role", "agent"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:4] == ["ID", "LEVEL", "STEP", "PROFILES"]
    assert "AGT-" in out
    assert "PRV-" not in out
    assert out.rstrip().splitlines()[-1].endswith(")")
    assert "requirements (" in out


def test_unknown_profile_is_a_usage_error_with_a_suggestion(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["requirements", "--profile", "app-nxt"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("provspec: error: unknown profile 'app-nxt'")
    assert "app-next" in err


def test_bad_option_value_exits_2_without_traceback() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "conformance", "requirements", "--role", "bank"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "invalid choice: 'bank'" in result.stderr
    assert "Traceback" not in result.stderr


def test_validate_reports_valid_and_invalid_messages(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "health.json"
    good.write_text('{"supported_versions": ["0.1d"], "status": "ok"}')
    assert main(["validate", str(good), "--message", "health_response"]) == 0
    assert "valid app-0.1d health_response" in capsys.readouterr().out
    bad = tmp_path / "bad.json"
    bad.write_text('{"status": "ok"}')
    assert main(["validate", str(bad), "--message", "health_response"]) == 1
    assert "supported_versions" in capsys.readouterr().out


def test_validate_refuses_non_strict_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dup = tmp_path / "dup.json"
    dup.write_text('{"status": "ok", "status": "down"}')
    assert main(["validate", str(dup), "--message", "health_response"]) == 1
    assert "refused (duplicate_key)" in capsys.readouterr().out


def test_validate_strict_reports_drift(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    drifted = tmp_path / "drift.json"
    drifted.write_text('{"supported_versions": ["0.1d"], "status": "ok", "region": "eu"}')
    assert main(["validate", str(drifted), "--message", "health_response"]) == 0
    capsys.readouterr()
    assert main(["validate", str(drifted), "--message", "health_response", "--strict"]) == 1
    assert "'region'" in capsys.readouterr().out


def test_validate_missing_file_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "/nonexistent/x.json", "--message", "health_response"]) == 2
    assert "cannot read /nonexistent/x.json" in capsys.readouterr().err
