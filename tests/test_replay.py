"""Every run writes a cassette; one requirement's check replays offline to the same verdict."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conformance.cli import main
from conformance.recorder import SECRET_MEMBERS


def record(tmp_path: Path, *arguments: str) -> Path:
    reports = tmp_path / "reports"
    main(["run", *arguments, "--report-dir", str(reports), "--quiet"])
    return reports / "cassette.json"


def test_a_recorded_failure_replays_offline_to_the_same_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cassette = record(tmp_path, "--fault", "refresh-no-rotation", "--steps", "revocation")
    capsys.readouterr()

    # Offline: any attempt to open a real connection fails the test.
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("replay must not touch the network")

    monkeypatch.setattr("httpx.AsyncHTTPTransport.handle_async_request", no_network)
    assert main(["replay", str(cassette), "--requirement", "PRV-REV-004"]) == 1
    out = capsys.readouterr().out
    assert "verdict:  failed (implementation)" in out
    assert "the replaced access token must stop working" in out
    assert "same verdict as recorded" in out


def test_a_passing_requirement_replays_as_a_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cassette = record(tmp_path, "--steps", "provisioning")
    assert main(["replay", str(cassette), "--requirement", "PRV-PRO-003"]) == 0
    assert "same verdict as recorded" in capsys.readouterr().out


def test_the_cassette_keeps_no_secret(tmp_path: Path) -> None:
    cassette = json.loads(record(tmp_path, "--steps", "accounts,provisioning").read_text())
    assert cassette["provspec"] == "cassette/1"
    assert cassette["checks"]
    assert cassette["exchanges"]
    for exchange in cassette["exchanges"]:
        for text in (exchange["response_body"], exchange["request_body"]):
            try:
                document = json.loads(text)
            except ValueError:  # the suite's deliberately malformed bodies
                continue
            if isinstance(document, dict):
                for key in SECRET_MEMBERS - {"code"}:
                    value = document.get(key)
                    assert value is None or str(value).startswith("«masked"), (key, value)
        assert (
            "authorization" not in exchange["request_headers"]
            or "«masked" in (exchange["request_headers"]["authorization"])
        )


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["missing.json", "--requirement", "PRV-PRO-003"], "does not exist"),
        (["CASSETTE", "--requirement", "PRV-NOP-001"], "has no requirement PRV-NOP-001"),
        (["ORCH", "--requirement", "ORC-DSC-001"], "replay covers provider runs"),
    ],
)
def test_bad_replays_are_usage_errors(
    arguments: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if arguments[0] == "CASSETTE":
        arguments[0] = str(record(tmp_path, "--steps", "discovery"))
    elif arguments[0] == "ORCH":
        path = tmp_path / "orchestrator.json"
        path.write_text(
            json.dumps(
                {
                    "provspec": "cassette/1",
                    "role": "orchestrator",
                    "verdicts": {"ORC-DSC-001": {"status": "passed", "checks": ["x"]}},
                }
            )
        )
        arguments[0] = str(path)
    capsys.readouterr()
    assert main(["replay", *arguments]) == 2
    assert message in capsys.readouterr().err
