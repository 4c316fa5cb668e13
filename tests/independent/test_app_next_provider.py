"""The provider checks against an app-next provider written from the draft alone (issue 14).

The correct build must fail no MUST; each one-bug variant must fail the requirement whose rule
it breaks. Where the suite and this reading of the draft disagree, the draft is ambiguous:
tests/independent/README.md lists what was found.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest

from conformance.cli import main
from mocks.hosting import ServedInThread
from tests.independent.app_next_provider import FAULTS, AppNextProvider


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(tmp_path: Path, target: str, orchestrator_port: int, fuzz: int) -> Path:
    path = tmp_path / "provspec.toml"
    path.write_text(
        f"""
[run]
role = "provider"
profile = "app-next"
fuzz_examples = {fuzz}

[provider]
target = "{target}"
existing_email = "existing@example.com"
scripted_consent = true
orchestrator_host = "127.0.0.1"
orchestrator_port = {orchestrator_port}

# The API the issued credentials unlock: GET {{api_url}}/whoami with the key as a bearer.
[[provider.credential_probe]]
credential = "api_key"
method = "GET"
url = "{{api_url}}/whoami"
headers = {{ Authorization = "Bearer {{api_key}}" }}
works = [200]
refused = [401]
judge = ["works", "rotation", "removal"]

[timeouts]
request = 5
check = 30
"""
    )
    return path


def run_suite(
    tmp_path: Path, fault: str | None, fuzz: int = 0
) -> tuple[int, dict[str, dict[str, Any]]]:
    """(exit code, requirement id -> result entry for every requirement that did not pass)."""
    orchestrator_port = _free_port()
    listener = ServedInThread()
    target = f"{listener.origin}/api/app/"
    provider = AppNextProvider(target, f"http://127.0.0.1:{orchestrator_port}", fault=fault)
    reports = tmp_path / (fault or "correct")
    with listener.serving(provider.app):
        code = main(
            [
                "run",
                "--config",
                str(_config(tmp_path, target, orchestrator_port, fuzz)),
                "--report-dir",
                str(reports),
                "--quiet",
            ]
        )
    results = json.loads((reports / "results.json").read_text())
    unmet = {
        entry["id"]: entry
        for entry in results["requirements"]
        if entry["status"] not in ("passed", "not_applicable", "skipped")
    }
    return code, unmet


def test_the_correct_build_fails_no_must(tmp_path: Path) -> None:
    # A few schema-generated requests per operation, so that PRV-PRO-016 is judged too.
    code, unmet = run_suite(tmp_path, None, fuzz=5)
    summary = {rid: (entry["status"], entry["message"]) for rid, entry in unmet.items()}
    assert not unmet, summary
    assert code == 0, summary


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_each_variant_fails_the_requirement_it_breaks(fault: str, tmp_path: Path) -> None:
    # The correct build fails nothing (above), so whatever fails here is the variant's doing.
    code, unmet = run_suite(tmp_path, fault)
    beyond = {rid: entry["status"] for rid, entry in unmet.items()}
    assert beyond.get(FAULTS[fault]) in ("failed", "warning"), beyond
    # Variant runs leave fuzzing off, so with no MUST failed the verdict is INCOMPLETE (4).
    assert code == (1 if "failed" in beyond.values() else 4)
