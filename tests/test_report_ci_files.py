"""Issue 15: the CI files agree with the exit code.

JUnit and Allure show a failure exactly when the run exits 1 (a stale or expired baseline
entry included), an error and no failure when it exits 3 or 4, nothing red when it exits 0;
a SHOULD warning is visible without failing; durations are real; JUnit has its totals.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest

from conformance.cli import main
from conformance.report import render_junit, write_allure
from conformance.results import VERDICTS, RunResult, Status
from tests.report_world import MUST_IDS, SHOULD_ID, T0, World, make_result

INCOMPLETE = 4 if "INCOMPLETE" in VERDICTS.values() else 0
"""The exit code of a run that left a MUST unjudged (4 once the engine has that verdict)."""
WORLDS = {
    "all-pass": (World(), 0),
    "failed-must": (World({MUST_IDS[1]: Status.FAILED}), 1),
    "stale-baseline": (World(stale=(MUST_IDS[0],)), 1),
    "expired-baseline": (World({MUST_IDS[1]: Status.FAILED}, expired=(MUST_IDS[1],)), 1),
    "expired-but-passing": (World(expired=(MUST_IDS[2],)), 1),
    "should-warning": (World({SHOULD_ID: Status.WARNING}), 0),
    "should-warning-strict": (World({SHOULD_ID: Status.WARNING}, strict=True), 1),
    "flaky": (World({MUST_IDS[3]: Status.FLAKY}), 0),
    "harness-error": (World({MUST_IDS[2]: Status.ERROR}), 3),
    "harness-problem-only": (World(harness=True), 3),
    "incomplete": (World({MUST_IDS[4]: Status.SKIPPED, MUST_IDS[3]: Status.UNTESTED}), INCOMPLETE),
    "known": (World({MUST_IDS[1]: Status.KNOWN}), 0),
}


def junit_of(result: RunResult) -> ET.Element:
    return ET.fromstring(render_junit(result))


def allure_of(result: RunResult, directory: Path) -> list[dict[str, Any]]:
    write_allure(result, directory)
    return [json.loads(path.read_text()) for path in sorted(directory.glob("*-result.json"))]


@pytest.mark.parametrize("name", list(WORLDS))
def test_junit_and_allure_agree_with_the_exit_code(name: str, tmp_path: Path) -> None:
    world, exit_code = WORLDS[name]
    result = make_result(world)
    assert result.exit_code == exit_code
    root = junit_of(result)
    failures, errors = int(root.get("failures", "-1")), int(root.get("errors", "-1"))
    statuses = {item["status"] for item in allure_of(result, tmp_path)}
    if exit_code == 1:
        assert failures > 0
        assert "failed" in statuses
    else:
        assert failures == 0
        assert "failed" not in statuses
    if exit_code in (3, 4):
        assert errors > 0
        assert "broken" in statuses
    if exit_code == 0:
        assert errors == 0
        assert statuses <= {"passed", "skipped", "unknown"}


def case(root: ET.Element, requirement_id: str) -> ET.Element:
    found = [c for c in root.iter("testcase") if c.get("name", "").startswith(requirement_id)]
    assert len(found) == 1
    return found[0]


def properties(element: ET.Element) -> dict[str, str]:
    holder = element.find("properties")
    assert holder is not None
    return {p.get("name", ""): p.get("value", "") for p in holder.iter("property")}


def test_a_stale_entry_fails_its_testcase_in_junit_and_allure(tmp_path: Path) -> None:
    result = make_result(World(stale=(MUST_IDS[0],)))
    stale = case(junit_of(result), MUST_IDS[0])
    failure = stale.find("failure")
    assert failure is not None
    assert failure.get("message", "").startswith(f"stale baseline entry {MUST_IDS[0]}")
    assert properties(stale)["baseline"] == "stale"
    [allure] = [a for a in allure_of(result, tmp_path) if MUST_IDS[0] in a["name"]]
    assert allure["status"] == "failed"
    assert "stale baseline entry" in allure["statusDetails"]["message"]
    categories = json.loads((tmp_path / "categories.json").read_text())
    assert categories[0]["matchedStatuses"] == ["failed"]
    assert "baseline" in categories[0]["name"]


def test_a_should_warning_is_visible_but_passes(tmp_path: Path) -> None:
    result = make_result(World({SHOULD_ID: Status.WARNING}))
    warned = case(junit_of(result), SHOULD_ID)
    assert warned.find("failure") is None
    assert warned.find("skipped") is None
    assert properties(warned)["status"] == "warning"
    out = warned.find("system-out")
    assert out is not None
    assert (out.text or "").startswith("WARNING: warning: SHOULD not met (does not fail the run")
    [allure] = [a for a in allure_of(result, tmp_path) if SHOULD_ID in a["name"]]
    assert allure["status"] == "unknown"
    labels = {(label["name"], label["value"]) for label in allure["labels"]}
    assert ("severity", "minor") in labels
    assert ("tag", "warning") in labels


@pytest.mark.skipif(not INCOMPLETE, reason="the engine has no INCOMPLETE verdict yet")
def test_incomplete_lists_the_unjudged_musts_as_one_error() -> None:
    result = make_result(World({MUST_IDS[4]: Status.SKIPPED}))
    root = junit_of(result)
    [verdict] = [c for c in root.iter("testcase") if c.get("name", "").startswith("verdict")]
    error = verdict.find("error")
    assert error is not None
    assert MUST_IDS[4] in (error.text or "")
    assert case(root, MUST_IDS[4]).find("skipped") is not None


def test_durations_are_real_and_junit_has_its_totals(tmp_path: Path) -> None:
    result = make_result(World({MUST_IDS[1]: Status.FAILED, MUST_IDS[4]: Status.SKIPPED}))
    root = junit_of(result)
    cases = list(root.iter("testcase"))
    for attribute in ("tests", "failures", "errors", "skipped", "time"):
        assert root.get(attribute) is not None, attribute
    assert int(root.get("tests", "0")) == len(cases)
    assert float(root.get("time", "0")) == pytest.approx(9.5)
    assert int(root.get("skipped", "0")) == 1
    for suite in root.iter("testsuite"):
        own = suite.findall("testcase")
        assert int(suite.get("tests", "-1")) == len(own)
        assert float(suite.get("time", "0")) == pytest.approx(
            sum(float(c.get("time", "0")) for c in own)
        )
    timed = [c for c in cases if c.get("name", "").startswith(MUST_IDS)]
    assert all(float(c.get("time", "0")) >= 0.25 for c in timed)
    allure = [a for a in allure_of(result, tmp_path) if a["name"].startswith(MUST_IDS[1])]
    assert allure[0]["start"] == round((T0 + 1) * 1000)
    assert allure[0]["stop"] - allure[0]["start"] == 260


def test_provenance_is_in_junit_properties_and_allure_environment(tmp_path: Path) -> None:
    result = make_result(World())
    digest = result.as_json()["integrity"]["digest"]
    for suite in junit_of(result).iter("testsuite"):
        shown = properties(suite)
        assert shown["provspec.version"]
        assert shown["provspec.registry_digest"].startswith("sha256:")
        assert shown["provspec.profile_digest"].startswith("sha256:")
        assert shown["provspec.timestamp"].endswith("Z")
        assert shown["provspec.command"] == "provspec run --hmac-secret '«masked»'"
        assert shown["provspec.results_digest"] == digest
    write_allure(result, tmp_path)
    environment = (tmp_path / "environment.properties").read_text(encoding="latin-1")
    assert "provspec.registry_digest=sha256:" in environment
    assert "provspec.target=https\\://p.test/api/app/" not in environment  # values unescaped
    assert "provspec.target=https://p.test/api/app/" in environment
    assert "\\u00abmasked\\u00bb" in environment


def test_allure_shows_this_run_only(tmp_path: Path) -> None:
    write_allure(make_result(World({MUST_IDS[1]: Status.FAILED})), tmp_path)
    write_allure(make_result(World()), tmp_path)
    statuses = {json.loads(p.read_text())["status"] for p in tmp_path.glob("*-result.json")}
    assert statuses == {"passed"}


def test_a_real_run_with_a_stale_entry_exits_1_and_its_ci_files_say_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    baseline = tmp_path / "baseline.toml"
    baseline.write_text('[[known]]\nid = "PRV-ATT-001"\nreason = "fixed since"\n')
    reports = tmp_path / "reports"
    arguments = ["run", "--steps", "attestation", "--baseline", str(baseline), "--quiet"]
    assert main([*arguments, "--report-dir", str(reports)]) == 1
    capsys.readouterr()
    root = ET.parse(reports / "junit.xml").getroot()
    assert root.get("failures") == "1"
    assert case(root, "PRV-ATT-001").find("failure") is not None
    assert float(root.get("time", "0")) > 0
    assert any(float(c.get("time", "0")) > 0 for c in root.iter("testcase"))
    results = [
        json.loads(p.read_text()) for p in (reports / "allure-results").glob("*-result.json")
    ]
    assert [r["status"] for r in results if "PRV-ATT-001" in r["name"]] == ["failed"]
    assert all(r["start"] > 0 and r["stop"] >= r["start"] for r in results)
