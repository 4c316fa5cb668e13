"""The pytest plugin honours the baseline file too: stale and expired entries fail the check's
test; a bad file is a usage error; a live-looking target is refused."""

from __future__ import annotations

import datetime as dt

import pytest

from conformance import _cli_ci


@pytest.fixture(autouse=True)
def fixed_day(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_cli_ci, "today", lambda: dt.date(2026, 6, 1))


def run(pytester: pytest.Pytester, baseline: str, *extra: str) -> pytest.RunResult:
    path = pytester.makefile(".toml", **{"provspec-baseline": baseline})
    return pytester.runpytest(
        "--provspec-role",
        "provider",
        "--provspec-profile",
        "app-0.1d",
        "--provspec-steps",
        "provisioning",
        "--provspec-baseline",
        str(path),
        *extra,
    )


def test_a_stale_entry_fails_its_checks_test(pytester: pytest.Pytester) -> None:
    result = run(pytester, '[[known]]\nid = "PRV-PRO-003"\nreason = "fixed since"\n')
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed") == 1
    result.stdout.fnmatch_lines(["*stale baseline entry PRV-PRO-003*"])


def test_an_expired_entry_fails_its_checks_test(pytester: pytest.Pytester) -> None:
    result = run(pytester, '[[known]]\nid = "PRV-PRO-014"\nreason = "r"\nexpires = 2026-05-31\n')
    assert result.parseoutcomes().get("failed") == 1
    result.stdout.fnmatch_lines(["*expired baseline entry PRV-PRO-014*"])


def test_a_bad_baseline_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = run(pytester, '[[known]]\nid = "PRV-NOPE-1"\nreason = "r"\n')
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*not a requirement of the registry*"])


def test_a_live_looking_target_is_refused(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(
        "--provspec-role",
        "provider",
        "--provspec-target",
        "https://api.realprovider.com/app/",
        "--provspec-hmac-secret",
        "whsec_x",
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*refusing to run*--i-know-this-is-live*"])
