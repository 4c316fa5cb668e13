"""Issue 15: a results file carries its provenance, and `provspec report --verify` tells an
intact file from an edited one, saying what changed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conformance.cli import main
from conformance.provenance import (
    MASK,
    mask_command,
    mask_settings,
    profile_digest,
    registry_digest,
    secret_values,
    verify,
)
from conformance.report import write_json
from conformance.results import Status
from tests.report_world import MUST_IDS, SECRET, World, make_result


def written(tmp_path: Path, world: World | None = None) -> Path:
    path = tmp_path / "results.json"
    write_json(make_result(world or World({MUST_IDS[1]: Status.FAILED})), path)
    return path


def edit(path: Path, change: Any) -> Path:
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))
    return path


def test_digests_are_stable_and_tell_profiles_apart() -> None:
    assert registry_digest("provider", "app-0.1d") == registry_digest("provider", "app-0.1d")
    assert registry_digest("provider", "app-0.1d") != registry_digest("provider", "app-next")
    assert registry_digest("provider", "app-0.1d") != registry_digest("orchestrator", "app-0.1d")
    assert profile_digest("app-0.1d") != profile_digest("app-next")
    assert profile_digest("app-next").startswith("sha256:")


def test_an_intact_file_verifies_and_shows_where_it_came_from(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = written(tmp_path)
    assert main(["report", "--verify", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"{path}: intact (sha256:" in out
    assert "started 2026-" in out
    assert "command provspec run --hmac-secret '«masked»'" in out
    assert "requirement set sha256:" in out
    assert "(same as this install)" in out


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda d: d["requirements"][1].update(status="passed"),
            ["member 'requirements' changed", "  requirement PRV-ATT-002 changed"],
        ),
        (lambda d: d.update(exit_code=0), ["member 'exit_code' changed"]),
        (
            lambda d: d["exchanges"].pop(),
            ["member 'exchanges' changed", "  exchange #2 removed"],
        ),
        (lambda d: d.pop("baseline_problems"), ["member 'baseline_problems' removed"]),
        (lambda d: d.update(signed_off="yes"), ["member 'signed_off' added"]),
        (
            lambda d: d["integrity"].update(digest="sha256:" + "0" * 64),
            [
                "the document digest does not match, though every member does: "
                "the integrity member itself was edited"
            ],
        ),
    ],
)
def test_an_edited_file_fails_verification_saying_what_changed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: Any, expected: list[str]
) -> None:
    path = edit(written(tmp_path), change)
    assert main(["report", "--verify", str(path)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{path}: CHANGED since the run wrote it (integrity digest does not match)"
    assert [line.removeprefix("  ") for line in lines[1:]] == expected


def test_a_file_without_digests_cannot_be_verified(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = edit(written(tmp_path), lambda d: d.pop("integrity"))
    assert main(["report", "--verify", str(path)]) == 2
    assert "carries no integrity digest" in capsys.readouterr().err


def test_keyed_digests_need_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PROVSPEC_RESULTS_KEY", "team-key-1")
    path = written(tmp_path)
    document = json.loads(path.read_text())
    assert document["integrity"]["algorithm"] == "hmac-sha256"
    assert verify(document) == []
    monkeypatch.setenv("PROVSPEC_RESULTS_KEY", "another-key")
    assert verify(document)  # a forger without the key cannot produce matching digests
    monkeypatch.delenv("PROVSPEC_RESULTS_KEY")
    assert main(["report", "--verify", str(path)]) == 2
    assert "set $PROVSPEC_RESULTS_KEY" in capsys.readouterr().err


def test_secret_options_and_values_are_masked_in_the_command_line() -> None:
    argv = [
        "run",
        "--hmac-secret",
        SECRET,
        f"--client-secret={SECRET}",
        "--target",
        f"https://x.test/?k={SECRET}",
    ]
    shown = mask_command(argv, [SECRET])
    assert shown[:4] == ["run", "--hmac-secret", MASK, f"--client-secret={MASK}"]
    assert SECRET not in " ".join(shown)


def test_secret_settings_are_masked_and_collected() -> None:
    settings = {
        "provider": {"hmac_secret": SECRET, "client_secret_env": "MY_VAR", "timeout": 10.0},
        "notes": [f"uses {SECRET}"],
        "test_payment_token": None,
    }
    assert secret_values(settings) == [SECRET]
    shown = mask_settings(settings, [SECRET])
    assert shown["provider"] == {
        "hmac_secret": MASK,
        "client_secret_env": "MY_VAR",
        "timeout": 10.0,
    }
    assert SECRET not in json.dumps(shown)
    assert shown["test_payment_token"] is None


def test_a_real_run_records_its_command_and_configuration_masked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROVSPEC_HMAC_SECRET", SECRET)
    config = tmp_path / "provspec.toml"
    config.write_text('[run]\nsteps = ["attestation"]\n')
    reports = tmp_path / "reports"
    arguments = ["run", "--config", str(config), "--hmac-secret", SECRET, "--quiet"]
    main([*arguments, "--report-dir", str(reports)])
    capsys.readouterr()
    document = json.loads((reports / "results.json").read_text())
    provenance = document["provenance"]
    assert provenance["command"][:3] == ["provspec", "run", "--config"]
    assert MASK in provenance["command"]
    assert provenance["config"]["file"] == str(config)
    assert provenance["config"]["values"] == {"run": {"steps": ["attestation"]}}
    assert provenance["config"]["settings"]["provider"]["hmac_secret"] == MASK
    assert provenance["timestamp"].endswith("Z")
    assert verify(document) == []
    leaked = [
        p.name
        for p in reports.rglob("*")
        if p.is_file() and SECRET in p.read_text("utf-8", "replace")
    ]
    assert leaked == []
