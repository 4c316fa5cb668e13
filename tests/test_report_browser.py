"""Issue 15: the HTML report works in a real browser: headless Chromium (Debian's `chromium`)
driven by Playwright, with a fresh profile and no network.

It renders, its filters and expanders work (a click shows the content), the "not judged"
links open their requirement, no console error occurs, no request leaves the file, and no
secret appears. Skipped only on a developer machine without Chromium or Playwright; in CI
(`CI` set) a missing browser fails the test: `.ci/run` installs Debian's chromium.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conformance.cli import main
from conformance.report import write_html
from conformance.results import Status
from tests.report_world import MUST_IDS, SECRET, World, make_result

FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
"""What Chromium needs here (as root, offline); Playwright adds --headless."""


def _missing(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{why}: in CI this test must run (.ci/run installs Debian's chromium)")
    pytest.skip(why)


@pytest.fixture(scope="module")
def browser(
    tmp_path_factory: pytest.TempPathFactory, run_report: Path, world_report: Path
) -> Iterator[Any]:
    """One Chromium for the module, on a fresh --user-data-dir. The reports are made first:
    Playwright's sync API holds an event loop, and a run needs its own."""
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        _missing("Chromium is not installed (Debian: apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing('Playwright is not installed (pip install -e ".[test]")')
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=executable,
            headless=True,
            args=FLAGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            yield context
        finally:
            context.close()


class Page:
    """A report opened in the browser, with what it logged and requested."""

    def __init__(self, context: Any, path: Path) -> None:
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page = context.new_page()
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.goto(path.as_uri())
        self.page.wait_for_load_state("load")

    def visible(self, selector: str) -> int:
        return int(self.page.locator(selector).filter(visible=True).count())


@pytest.fixture(scope="module")
def world_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every kind of content: failed, warned, unjudged MUSTs, long bodies, a compared pair."""
    statuses = {
        MUST_IDS[1]: Status.FAILED,
        MUST_IDS[2]: Status.ERROR,
        MUST_IDS[4]: Status.SKIPPED,
        "PRV-DSC-005": Status.WARNING,
    }
    result = make_result(World(statuses))
    finding = next(f for f in result.findings if f.requirement.id == MUST_IDS[1])
    finding.message = f"the provider echoed whsec_{SECRET}"  # masked by the finding
    path = tmp_path_factory.mktemp("world") / "report.html"
    write_html(result, path)
    return path


@pytest.fixture(scope="module")
def run_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real run's report: a fault, so that evidence is there, and a secret on the command line."""
    reports = tmp_path_factory.mktemp("run")
    arguments = ["run", "--fault", "accept-bad-signature", "--steps", "attestation,discovery"]
    assert main([*arguments, "--hmac-secret", SECRET, "--quiet", "--report-dir", str(reports)]) == 1
    return reports / "report.html"


def test_a_real_run_report_renders_filters_and_stays_offline(
    browser: Any, run_report: Path
) -> None:
    page = Page(browser, run_report)
    assert "FAIL" in page.page.title()
    assert page.page.locator("#matrix").is_visible()
    assert page.page.locator("#verdict").inner_text() == "FAIL"
    total = page.visible("details.req")
    assert total > 2
    page.page.select_option("#f-status", "failed")
    assert page.visible("details.req") == 2
    assert page.page.locator("#shown").inner_text() == "2"
    page.page.select_option("#f-status", "")
    page.page.fill("#f-text", "PRV-ATT-004")
    assert page.visible("details.req") == 1
    page.page.fill("#f-text", "")
    page.page.locator('td[data-filter="discovery|passed"]').click()
    assert page.visible("details.req") == int(
        page.page.locator('td[data-filter="discovery|passed"]').inner_text()
    )
    assert page.page.locator("#provenance").is_visible()
    assert SECRET not in page.page.content()
    assert page.errors == []
    assert all(url.startswith("file://") for url in page.requests), page.requests


def test_expanders_open_to_show_their_content(browser: Any, world_report: Path) -> None:
    page = Page(browser, world_report)
    failed = page.page.locator(f"#req-{MUST_IDS[1]}")
    assert failed.get_attribute("open") is not None  # a failure opens by itself
    rest = failed.locator("details.more pre.rest").first
    assert not rest.is_visible()
    failed.locator("details.more > summary").first.click()
    assert rest.is_visible()
    assert '"n": 59' in rest.inner_text()
    warned = page.page.locator("#req-PRV-DSC-005")
    body = warned.locator(".body")
    assert not body.is_visible()
    warned.locator("summary").first.click()
    assert body.is_visible()
    assert "warning because of the world" in body.inner_text()
    config = page.page.locator("#provenance details pre").first
    assert not config.is_visible()
    page.page.locator("#provenance details > summary").click()
    assert config.is_visible()
    assert page.errors == []


def test_not_judged_comes_first_and_links_to_its_requirement(
    browser: Any, world_report: Path
) -> None:
    page = Page(browser, world_report)
    section = page.page.locator("#not-judged")
    assert section.is_visible()
    first = page.page.locator("#not-judged, #matrix").first
    assert first.get_attribute("id") == "not-judged"
    assert f"skipped because of the world ({MUST_IDS[4]})" in section.inner_text()
    page.page.select_option("#f-status", "passed")  # the link must find it whatever the filter
    section.locator(f'a[data-req="{MUST_IDS[4]}"]').click()
    target = page.page.locator(f"#req-{MUST_IDS[4]}")
    assert target.get_attribute("open") is not None
    assert target.locator(".body").is_visible()
    assert page.errors == []


def test_compared_requests_sit_side_by_side_with_the_change_marked(
    browser: Any, world_report: Path
) -> None:
    page = Page(browser, world_report)
    pair = page.page.locator(f"#req-{MUST_IDS[1]} .pair").first
    assert pair.is_visible()
    left, right = pair.locator(".col").all()
    assert left.bounding_box()["x"] < right.bounding_box()["x"]
    assert "acctreQ_1" in pair.locator(".diff").all_inner_texts()[-1]
    assert SECRET not in page.page.content()
    assert page.errors == []
