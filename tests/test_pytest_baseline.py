"""The pytest plugin honours the baseline file too, by the rules `provspec run` applies: a
known failure is an xfail, stale and expired entries fail the baseline's own test (run after
every check's); a bad file is a usage error; a live-looking target is refused."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from conformance import verdict
from conformance.cli import main
from conformance.results import EXIT_FAILED
from mocks.hosting import ServedInThread
from mocks.provider import ProviderMock, ProviderSettings


@pytest.fixture(autouse=True)
def fixed_day(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verdict, "today", lambda: dt.date(2026, 6, 1))


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


def test_a_stale_entry_fails_the_baseline_test(pytester: pytest.Pytester) -> None:
    result = run(pytester, '[[known]]\nid = "PRV-PRO-003"\nreason = "fixed since"\n')
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed") == 1
    result.stdout.fnmatch_lines(["*stale baseline entry PRV-PRO-003*"])


def test_an_expired_entry_fails_the_baseline_test(pytester: pytest.Pytester) -> None:
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


def test_the_plugin_and_provspec_run_give_the_same_verdict_on_a_baseline(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    """Issue 16: PRV-ACC-010 is judged by two checks; against `requires-auth-without-url` one
    fails it and the other passes it. Per requirement it failed, so a baseline listing it
    knows the failure: the plugin once judged each check alone and called the entry stale
    on the check that passed, failing where `provspec run` passed."""
    secret = "whsec_provspec_baseline"
    listener = ServedInThread()
    base = listener.origin + "/api/app/"
    mock = ProviderMock(
        ProviderSettings(base_url=base, hmac_secret=secret, faults=("requires-auth-without-url",))
    )
    baseline = pytester.makefile(
        ".toml",
        **{
            "provspec-baseline": '[[known]]\nid = "PRV-ACC-002"\nreason = "auth url, PROJ-1"\n\n'
            '[[known]]\nid = "PRV-ACC-010"\nreason = "auth url, PROJ-1"\n'
        },
    )
    common = ["--steps", "accounts", "--hmac-secret", secret, "--baseline", str(baseline)]
    with listener.serving(mock.app):
        code = main(["run", "--target", base, *common, "--report-dir", str(tmp_path), "--quiet"])
        plugin = pytester.runpytest(
            *[
                f"--provspec-{option[2:]}" if option.startswith("--") else option
                for option in common
            ],
            "--provspec-role",
            "provider",
            "--provspec-target",
            base,
            "-p",
            "no:cacheprovider",
        )
    results = json.loads((tmp_path / "results.json").read_text())
    by_id = {item["id"]: item for item in results["requirements"]}
    assert by_id["PRV-ACC-010"]["status"] == "known"  # the failure the baseline lists
    assert set(by_id["PRV-ACC-010"]["checks"]) == {
        "accounts.new_identity_gets_an_account_and_a_code",
        "accounts.existing_account_is_linked_or_sent_to_consent",
    }
    assert not results["baseline_problems"]
    assert code == results["exit_code"] != EXIT_FAILED
    # The plugin: the known failures are xfails, nothing fails, and it ends with the verdict
    # `provspec run` gave.
    assert plugin.ret == pytest.ExitCode.OK, plugin.stdout.str()
    outcomes = plugin.parseoutcomes()
    assert outcomes.get("failed", 0) == 0
    assert outcomes.get("xfailed", 0) >= 1
    word = results["verdict"].upper()
    plugin.stdout.fnmatch_lines([f"provspec: {word}: 0 failing requirement(s): none"])
