"""Consent a human gives at a provider: how the suite gets it on a real target.

Some checks need the human step of an OAuth flow — a provider's consent page after
`requires_auth` (0.1d) or its authorization endpoint (app-next, resource servers). The
suite's mocks approve scripted; a real provider shows a login page. The options, as the OpenID
Foundation suite offers them:

- `interactive` (the default in a terminal): the suite prints the URL and waits for the human
  to open it, approve, and paste the URL the browser was sent back to (or the code alone).
- `command`: `consent_command` runs with the URL as its last argument (and in
  `$PROVSPEC_AUTHORIZE_URL`); the last line it prints is the redirect URL. For CI.
- `browser`: headless Chromium (Playwright, with Debian's `chromium`) opens the URL, follows
  the configured steps (fill a field, click a button) for a staging test user, and the first
  request to a URL carrying `code=` — where the provider sends the browser back — ends it.

Every URL handed to a command or a browser passed the SSRF guard first (it comes from a
message). Secrets a step needs (a staging password) come from the environment, never from
the config file.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import shutil
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "CONSENT_MODES",
    "ConsentOptions",
    "ConsentOutcome",
    "ConsentStep",
    "obtain_consent",
    "parse_steps",
]

CONSENT_MODES = ("scripted", "interactive", "command", "browser", "none")
STEP_ACTIONS = ("fill", "click", "press", "wait")
CHROMIUM_FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
"""What Chromium needs here: as root, with no network beyond the run's own targets."""


@dataclass(frozen=True)
class ConsentStep:
    """One thing the browser does on the provider's pages."""

    action: str
    """fill (type `value` into `selector`), click, press (key `value` in `selector`), wait
    (until `selector` is visible)."""
    selector: str
    value: str | None = None
    """May name `{email}` and `{login_hint}` (the user the suite acts for)."""
    value_env: str | None = None
    """The value is this environment variable's (a password): never in the config file."""

    def resolve(self, context: Mapping[str, str]) -> str:
        if self.value_env is not None:
            return os.environ.get(self.value_env, "")
        value = self.value or ""
        for name, replacement in context.items():
            value = value.replace("{" + name + "}", replacement)
        return value


@dataclass(frozen=True)
class ConsentOptions:
    mode: str = "none"
    command: str | None = None
    timeout: float = 300.0
    steps: tuple[ConsentStep, ...] = ()
    chromium: str | None = None
    """Chromium's executable; None: `chromium` (or `chromium-browser`) on PATH."""

    @property
    def available(self) -> bool:
        return self.mode != "none"

    def describe(self) -> str:
        return {
            "scripted": "the target's scripted consent (provspec's mocks)",
            "interactive": "a human at this terminal",
            "command": f"consent_command {self.command!r}",
            "browser": f"headless Chromium with {len(self.steps)} step(s)",
            "none": "nobody",
        }[self.mode]


@dataclass
class ConsentOutcome:
    redirect: str | None = None
    """Where the browser was sent back, with `code`, `state`, `iss` in its query."""
    why: str = ""
    """What happened when there is no redirect."""
    transcript: list[str] = field(default_factory=list)
    """What a command printed or the browser did, for the evidence (never a secret value)."""

    @property
    def params(self) -> dict[str, str]:
        if not self.redirect:
            return {}
        query = parse_qs(urlsplit(self.redirect).query, keep_blank_values=True)
        return {name: values[0] for name, values in query.items()}

    @property
    def code(self) -> str | None:
        return self.params.get("code")


def parse_steps(raw: Any, where: str) -> tuple[tuple[ConsentStep, ...], list[str]]:
    """`[[provider.consent_step]]` tables, and every problem with them."""
    if raw is None:
        return (), []
    if not isinstance(raw, list):
        return (), [f"{where} must be an array of tables"]
    steps: list[ConsentStep] = []
    problems: list[str] = []
    for index, table in enumerate(raw):
        at = f"{where}[{index}]"
        if not isinstance(table, dict):
            problems.append(f"{at} must be a table")
            continue
        unknown = set(table) - {"action", "selector", "value", "value_env"}
        if unknown:
            problems.append(f"{at}: unknown keys {sorted(unknown)}")
        action, selector = table.get("action"), table.get("selector")
        value, value_env = table.get("value"), table.get("value_env")
        if action not in STEP_ACTIONS:
            problems.append(f"{at}: action must be one of {list(STEP_ACTIONS)}, not {action!r}")
        if not isinstance(selector, str) or not selector:
            problems.append(f"{at}: selector must be a CSS selector")
        if action in ("fill", "press") and not (
            isinstance(value, str) or isinstance(value_env, str)
        ):
            problems.append(f"{at}: {action} needs value (or value_env for a secret)")
        if value is not None and value_env is not None:
            problems.append(f"{at}: give value or value_env, not both")
        if isinstance(action, str) and isinstance(selector, str) and not problems:
            steps.append(
                ConsentStep(
                    action,
                    selector,
                    value if isinstance(value, str) else None,
                    value_env if isinstance(value_env, str) else None,
                )
            )
    return tuple(steps), problems


def _redirect_from(text: str) -> str | None:
    """A pasted or printed answer: a URL carrying code=, or a bare code."""
    answer = text.strip()
    if not answer:
        return None
    if "://" in answer:
        return answer
    return f"urn:provspec:pasted?code={answer}"


async def obtain_consent(
    options: ConsentOptions,
    url: str,
    *,
    context: Mapping[str, str] | None = None,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> ConsentOutcome:
    """The human's consent at `url` (already through the SSRF guard), by `options.mode`."""
    if options.mode == "command":
        return await _by_command(options, url)
    if options.mode == "interactive":
        return await _by_terminal(options, url, stdin or sys.stdin, stdout or sys.stderr)
    if options.mode == "browser":
        return await _by_browser(options, url, dict(context or {}), clock)
    return ConsentOutcome(why=f"consent by {options.describe()} cannot approve {url[:120]}")


async def _by_command(options: ConsentOptions, url: str) -> ConsentOutcome:
    argv = [*shlex.split(options.command or ""), url]
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PROVSPEC_AUTHORIZE_URL": url},
        )
    except OSError as error:
        return ConsentOutcome(why=f"consent_command {options.command!r} cannot run: {error}")
    try:
        out, err = await asyncio.wait_for(process.communicate(), options.timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        return ConsentOutcome(why=f"consent_command gave no answer in {options.timeout:.0f} s")
    lines = [line.strip() for line in out.decode("utf-8", "replace").splitlines() if line.strip()]
    if process.returncode != 0 or not lines:
        tail = err.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
        return ConsentOutcome(
            why=f"consent_command exited {process.returncode} and printed no redirect "
            f"({tail[0][:160]})"
        )
    return ConsentOutcome(redirect=_redirect_from(lines[-1]), transcript=[f"$ {argv[0]} …"])


async def _by_terminal(
    options: ConsentOptions, url: str, stdin: TextIO, stdout: TextIO
) -> ConsentOutcome:
    if not stdin.isatty():
        return ConsentOutcome(
            why="consent needs a human and standard input is not a terminal; set [provider] "
            'consent = "command" or "browser" for unattended runs'
        )
    print(
        "\nprovspec: a check needs your consent at the provider.\n"
        f"  1. Open: {url}\n"
        "  2. Sign in as the test user and approve.\n"
        "  3. Paste the address your browser was sent back to (or just the code), then Enter:",
        file=stdout,
        flush=True,
    )
    loop = asyncio.get_running_loop()
    try:
        line = await asyncio.wait_for(loop.run_in_executor(None, stdin.readline), options.timeout)
    except TimeoutError:
        return ConsentOutcome(why=f"no answer was pasted within {options.timeout:.0f} s")
    redirect = _redirect_from(line)
    if redirect is None:
        return ConsentOutcome(why="an empty answer was pasted")
    return ConsentOutcome(redirect=redirect, transcript=["pasted by the human"])


def chromium_path(configured: str | None) -> str | None:
    if configured:
        return configured if os.path.exists(configured) else shutil.which(configured)
    return shutil.which("chromium") or shutil.which("chromium-browser")


async def _by_browser(
    options: ConsentOptions, url: str, context: dict[str, str], clock: Callable[[], float]
) -> ConsentOutcome:
    try:
        from playwright.async_api import Error as PlaywrightError
        from playwright.async_api import async_playwright
    except ImportError:
        return ConsentOutcome(
            why='consent = "browser" needs Playwright: pip install "provspec[browser]"'
        )
    executable = chromium_path(options.chromium)
    if executable is None:
        return ConsentOutcome(
            why='consent = "browser" needs Chromium (Debian: apt-get install chromium); '
            "none was found on PATH"
        )
    transcript: list[str] = []
    seen: list[str] = []

    def watch(request: Any) -> None:
        if "code=" in urlsplit(request.url).query and not seen:
            seen.append(request.url)

    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=executable, headless=True, args=list(CHROMIUM_FLAGS)
            )
            try:
                page = await browser.new_page()
                page.on("request", watch)
                timeout_ms = options.timeout * 1000
                # a redirect to an address that does not answer still shows its URL
                with contextlib.suppress(PlaywrightError):
                    await page.goto(url, timeout=timeout_ms)
                for step in options.steps:
                    if seen:
                        break
                    transcript.append(f"{step.action} {step.selector}")
                    await _step(page, step, context, timeout_ms)
                deadline = clock() + options.timeout
                while not seen and clock() < deadline:
                    await asyncio.sleep(0.05)  # the last click's navigation, in flight
            finally:
                await browser.close()
    except PlaywrightError as error:
        first = str(error).strip().splitlines()[:1] or [""]
        return ConsentOutcome(why=f"the browser stopped: {first[0][:200]}", transcript=transcript)
    if not seen:
        return ConsentOutcome(
            why="the browser was never sent back with a code", transcript=transcript
        )
    return ConsentOutcome(redirect=seen[0], transcript=transcript)


async def _step(page: Any, step: ConsentStep, context: Mapping[str, str], timeout: float) -> None:
    from playwright.async_api import Error as PlaywrightError

    try:
        if step.action == "fill":
            await page.fill(step.selector, step.resolve(context), timeout=timeout)
        elif step.action == "click":
            await page.click(step.selector, timeout=timeout)
        elif step.action == "press":
            await page.press(step.selector, step.resolve(context), timeout=timeout)
        else:
            await page.wait_for_selector(step.selector, timeout=timeout)
    except PlaywrightError:
        if step.action != "click":
            raise
        # a click that navigates away (to a redirect that does not answer) is done
