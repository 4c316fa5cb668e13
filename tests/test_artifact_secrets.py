"""Issue 19, finding 6: no credential the mocks hand out reaches an artifact of a run.

Every credential the embedded mocks mint in this process — dashboard deep-link login tokens,
OAuth authorization codes, access and refresh tokens, API keys, PKCE verifiers, payment
tokens — is planted with a marker, a real run is made, and every file it wrote (results.json,
cassette.json, junit.xml, report.html, allure-results/) is searched for the marker. The
marker also shows a credential that was cut or re-encoded, as long as its start survives.
"""

from __future__ import annotations

import secrets
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from conformance.cli import main

MARK = "PLANTED"
SITES = {
    "deep_links": "a dashboard deep link's login token",
    "issue_code": "an OAuth authorization code",
    "issue_tokens": "an access or refresh token",
    "new_api_key": "an API key",
    "pkce_pair": "a PKCE code verifier",
    "_payment_credentials": "a payment token",
}
"""The functions (in mocks/) that mint credentials, by the name `secrets` sees calling it."""


@pytest.fixture
def planted(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    minted: Counter[str] = Counter()

    def marking(real: Callable[[int | None], str]) -> Callable[[int | None], str]:
        def mint(nbytes: int | None = None) -> str:
            value = real(nbytes)
            site = sys._getframe(1).f_code.co_name
            if site not in SITES:
                return value
            minted[site] += 1
            return MARK + value

        return mint

    monkeypatch.setattr(secrets, "token_urlsafe", marking(secrets.token_urlsafe))
    monkeypatch.setattr(secrets, "token_hex", marking(secrets.token_hex))
    return minted


def artifacts(directory: Path) -> dict[str, str]:
    return {
        str(path.relative_to(directory)): path.read_text("utf-8", errors="replace")
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def leaks(directory: Path) -> list[str]:
    found = []
    for name, text in artifacts(directory).items():
        at = text.find(MARK)
        if at >= 0:
            found.append(f"{name}: …{text[max(at - 80, 0) : at + 40]}…")
    return found


@pytest.mark.parametrize(
    ("role", "profile", "expected"),
    [
        ("provider", "app-0.1d", {"deep_links", "issue_code", "issue_tokens", "new_api_key"}),
        ("provider", "app-next", {"deep_links", "issue_code", "issue_tokens", "new_api_key"}),
        ("orchestrator", "app-next", {"issue_code", "issue_tokens"}),
    ],
)
def test_no_planted_credential_reaches_any_artifact_of_a_run(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    planted: Counter[str],
    role: str,
    profile: str,
    expected: set[str],
) -> None:
    reports = tmp_path / "reports"
    main(["run", "--role", role, "--profile", profile, "--report-dir", str(reports), "--quiet"])
    printed = capsys.readouterr()
    written = artifacts(reports)
    assert {"results.json", "cassette.json", "junit.xml", "report.html"} <= set(written)
    assert any(name.startswith("allure-results") for name in written)
    missing = expected - set(planted)
    assert not missing, f"the run minted no {', '.join(SITES[site] for site in missing)}"
    assert leaks(reports) == []
    assert MARK not in printed.out + printed.err
