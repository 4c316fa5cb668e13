"""Consent on a real provider: by a command, by a human at the terminal, by a headless browser."""

from __future__ import annotations

import asyncio
import io
import os
import sys
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from conformance.consent import (
    ConsentOptions,
    ConsentStep,
    chromium_path,
    obtain_consent,
    parse_steps,
)
from mocks.hosting import ServedInThread


def test_a_command_gets_the_url_and_prints_the_redirect(tmp_path: Path) -> None:
    script = tmp_path / "approve.py"
    script.write_text(
        "import os, sys\n"
        "assert sys.argv[-1] == os.environ['PROVSPEC_AUTHORIZE_URL']\n"
        "print('approving', sys.argv[-1])\n"
        "print('https://orchestrator.example/cb?code=c-1&state=s-1')\n"
    )
    options = ConsentOptions(mode="command", command=f"{sys.executable} {script}")
    outcome = asyncio.run(obtain_consent(options, "https://provider.example/authorize?x=1"))
    assert outcome.code == "c-1"
    assert outcome.params["state"] == "s-1"


def test_a_failing_command_says_so(tmp_path: Path) -> None:
    options = ConsentOptions(
        mode="command", command=f"{sys.executable} -c 'import sys; sys.exit(3)'"
    )
    outcome = asyncio.run(obtain_consent(options, "https://provider.example/authorize"))
    assert outcome.redirect is None
    assert "exited 3" in outcome.why
    missing = ConsentOptions(mode="command", command="/nonexistent/approve")
    assert "cannot run" in asyncio.run(obtain_consent(missing, "https://p.example/")).why


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_human_pastes_the_redirect_or_the_code() -> None:
    shown = io.StringIO()
    options = ConsentOptions(mode="interactive", timeout=5)
    url = "https://provider.example/authorize?state=s"
    outcome = asyncio.run(
        obtain_consent(
            options, url, stdin=Terminal("https://cb.example/?code=c-2&state=s\n"), stdout=shown
        )
    )
    assert outcome.code == "c-2"
    assert url in shown.getvalue()
    bare = asyncio.run(obtain_consent(options, url, stdin=Terminal("c-3\n"), stdout=shown))
    assert bare.code == "c-3"


def test_without_a_terminal_the_reason_names_the_unattended_options() -> None:
    outcome = asyncio.run(
        obtain_consent(
            ConsentOptions(mode="interactive"), "https://p.example/", stdin=io.StringIO("x\n")
        )
    )
    assert outcome.redirect is None
    assert "not a terminal" in outcome.why
    assert '"command" or "browser"' in outcome.why


def test_steps_are_checked_and_secrets_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    steps, problems = parse_steps(
        [
            {"action": "fill", "selector": "#email", "value": "{email}"},
            {"action": "fill", "selector": "#password", "value_env": "STAGING_PASSWORD"},
            {"action": "click", "selector": "button"},
        ],
        "s",
    )
    assert not problems
    monkeypatch.setenv("STAGING_PASSWORD", "hunter2")
    assert steps[0].resolve({"email": "a@example.com"}) == "a@example.com"
    assert steps[1].resolve({}) == "hunter2"
    _, problems = parse_steps(
        [{"action": "teleport", "selector": ""}, {"action": "fill", "selector": "#x"}], "s"
    )
    assert any("action must be one of" in p for p in problems)
    assert any("fill needs value" in p for p in problems)


def _login_app(seen: list[str]) -> Starlette:
    """A provider's consent page as a browser meets it: a login form, then a redirect back
    to the client with the code."""

    async def page(request: Request) -> Response:
        if request.method == "GET":
            return HTMLResponse(
                "<!doctype html><form method=post>"
                "<input id=email name=email><input id=password name=password type=password>"
                "<button type=submit>Allow</button></form>"
            )
        form = await request.form()
        seen.append(f"{form.get('email')}:{form.get('password')}")
        state = request.query_params.get("state", "")
        return RedirectResponse(f"http://127.0.0.1:9/callback?code=c-4&state={state}", 302)

    return Starlette(routes=[Route("/authorize", page, methods=["GET", "POST"])])


def test_a_headless_browser_follows_the_steps_to_the_redirect(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("playwright")
    if chromium_path(None) is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing in CI: .ci/run installs Debian's chromium")
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium)")
    monkeypatch.setenv("STAGING_PASSWORD", "pw-5")
    seen: list[str] = []
    steps = (
        ConsentStep("fill", "#email", "{email}"),
        ConsentStep("fill", "#password", value_env="STAGING_PASSWORD"),
        ConsentStep("click", "button[type=submit]"),
    )
    with ServedInThread().serving(_login_app(seen)) as origin:
        outcome = asyncio.run(
            obtain_consent(
                ConsentOptions(mode="browser", steps=steps, timeout=30),
                f"{origin}/authorize?state=s-4",
                context={"email": "user@example.com"},
            )
        )
    assert outcome.code == "c-4", outcome.why
    assert outcome.params["state"] == "s-4"
    assert seen == ["user@example.com:pw-5"]
    assert outcome.transcript == ["fill #email", "fill #password", "click button[type=submit]"]
