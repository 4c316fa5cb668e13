"""The baseline file: known failures don't fail the run; stale and expired entries do."""

from __future__ import annotations

import datetime as dt
import json
import tomllib
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from conformance import verdict
from conformance.baseline import parse_baseline
from conformance.cli import main
from conformance.report import results_schema
from conformance.verdict import apply_baseline

TODAY = dt.date(2026, 6, 1)
# Fuzzing on (one request per operation), so every MUST of the step is judged: a run whose
# only failure the baseline knows is a pass, not incomplete.
FAULT_RUN = [
    "--fault",
    "deep-link-long-lived",
    "--steps",
    "provisioning",
    "--fuzz-examples",
    "1",
    "--quiet",
]
"""A provider run whose only failure is PRV-PRO-014."""


@pytest.fixture(autouse=True)
def fixed_day(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verdict, "today", lambda: TODAY)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def run(tmp_path: Path, baseline: Path, *extra: str) -> tuple[int, dict[str, object]]:
    reports = tmp_path / "reports"
    code = main(
        ["run", *FAULT_RUN, *extra, "--baseline", str(baseline), "--report-dir", str(reports)]
    )
    results = json.loads((reports / "results.json").read_text())
    Draft202012Validator(results_schema()).validate(results)
    return code, results


def status_of(results: dict[str, object], requirement_id: str) -> dict[str, object]:
    found = [r for r in results["requirements"] if r["id"] == requirement_id]  # type: ignore[attr-defined]
    return found[0]  # type: ignore[no-any-return]


def test_a_listed_failure_is_known_and_does_not_fail_the_run(tmp_path: Path) -> None:
    baseline = write(
        tmp_path / "provspec-baseline.toml",
        '[[known]]\nid = "PRV-PRO-014"\nreason = "links live 1 h until PROJ-1"\nexpires = 2026-12-31\n',
    )
    code, results = run(tmp_path, baseline)
    assert code == 0
    entry = status_of(results, "PRV-PRO-014")
    assert entry["status"] == "known"
    assert entry["baseline"] == "known"
    assert "PROJ-1" in str(entry["message"])
    assert entry["blame"] == "implementation"
    assert results["baseline_problems"] == []


def test_a_listed_requirement_that_passes_is_stale_and_fails_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    baseline = write(
        tmp_path / "b.toml",
        '[[known]]\nid = "PRV-PRO-014"\nreason = "r"\n\n[[known]]\nid = "PRV-PRO-003"\nreason = "fixed since"\n',
    )
    code, results = run(tmp_path, baseline)
    assert code == 1
    assert status_of(results, "PRV-PRO-003")["baseline"] == "stale"
    assert any("stale baseline entry PRV-PRO-003" in p for p in results["baseline_problems"])  # type: ignore[attr-defined]
    assert "stale baseline entry PRV-PRO-003" in capsys.readouterr().out


def test_an_expired_entry_fails_the_run(tmp_path: Path) -> None:
    baseline = write(
        tmp_path / "b.toml", '[[known]]\nid = "PRV-PRO-014"\nreason = "r"\nexpires = 2026-05-31\n'
    )
    code, results = run(tmp_path, baseline)
    assert code == 1
    assert status_of(results, "PRV-PRO-014")["status"] == "failed"
    assert any("expired on 2026-05-31" in p for p in results["baseline_problems"])  # type: ignore[attr-defined]


def test_entries_scoped_to_another_profile_or_scenario_do_not_apply(tmp_path: Path) -> None:
    baseline = write(
        tmp_path / "b.toml",
        '[[known]]\nid = "PRV-PRO-014"\nprofile = "app-next"\nreason = "r"\n\n'
        '[[known]]\nid = "PRV-PRO-014"\nscenario = "provisioning.elsewhere"\nreason = "r"\n',
    )
    code, results = run(tmp_path, baseline)
    assert code == 1
    assert status_of(results, "PRV-PRO-014")["status"] == "failed"


def test_baseline_write_records_todays_failures_and_then_they_are_known(tmp_path: Path) -> None:
    reports = tmp_path / "first"
    assert main(["run", *FAULT_RUN, "--report-dir", str(reports)]) == 1
    baseline = tmp_path / "provspec-baseline.toml"
    assert (
        main(
            [
                "baseline",
                "write",
                "--from",
                str(reports / "results.json"),
                "--output",
                str(baseline),
                "--expires",
                "2026-09-30",
            ]
        )
        == 0
    )
    written = tomllib.loads(baseline.read_text())
    assert [(e["id"], e["profile"], e["expires"]) for e in written["known"]] == [
        ("PRV-PRO-014", "app-0.1d", dt.date(2026, 9, 30))
    ]
    code, _ = run(tmp_path, baseline)
    assert code == 0


def test_baseline_write_can_run_the_suite_itself(tmp_path: Path) -> None:
    baseline = tmp_path / "b.toml"
    assert main(["baseline", "write", *FAULT_RUN, "--output", str(baseline)]) == 0
    assert [e["id"] for e in tomllib.loads(baseline.read_text())["known"]] == ["PRV-PRO-014"]
    assert main(["baseline", "write", "--from", "x.json", "--output", str(baseline)]) == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[known]]\nid = "PRV-XXX-999"\nreason = "r"\n', "not a requirement"),
        ('[[known]]\nid = "PRV-PRO-014"\n', "a reason is required"),
        ('[[known]]\nid = "PRV-PRO-014"\nreason = "r"\nexpires = "soon"\n', "TOML date"),
        ('[[known]]\nid = "PRV-PRO-014"\nreason = "r"\nowner = "me"\n', "unknown key"),
        ("[[known]\n", "not valid TOML"),
    ],
)
def test_a_bad_baseline_is_a_usage_error_before_the_run(
    text: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    baseline = write(tmp_path / "b.toml", text)
    code = main(
        ["run", *FAULT_RUN, "--baseline", str(baseline), "--report-dir", str(tmp_path / "r")]
    )
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_dates_come_from_the_caller() -> None:
    from conformance.adapters.provider import ProviderTargetConfig
    from conformance.engine import RunPlan, run_sync
    from spec.requirement import Role, Step

    result = run_sync(
        RunPlan(
            Role.PROVIDER,
            "app-0.1d",
            ProviderTargetConfig(faults=("deep-link-long-lived",), fuzz_examples=1),
            steps=(Step.PROVISIONING,),
        )
    )
    baseline = parse_baseline(
        {"known": [{"id": "PRV-PRO-014", "reason": "r", "expires": dt.date(2030, 1, 1)}]}, "test"
    )
    apply_baseline(result, baseline, dt.date(2030, 1, 1))  # the last valid day
    assert result.exit_code == 0
    result.baseline_problems.clear()
    apply_baseline(result, baseline, dt.date(2030, 1, 2))
    assert result.exit_code == 1
