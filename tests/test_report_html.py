"""Issue 15: the HTML report shows what was not judged first, keeps long evidence readable,
puts compared requests side by side, carries its provenance, stays self-contained and masked,
and every status pill is readable (WCAG AA, computed here)."""

from __future__ import annotations

import html
import re

import pytest

from conformance.recorder import Exchange
from conformance.report import render_html
from conformance.report._html import COLOURS, CSS, PILL_TEXT, PREVIEW_CHARS, VERDICT_COLOURS
from conformance.results import Status
from tests.report_world import MUST_IDS, SECRET, World, exchange, make_result

AA = 4.5
"""WCAG 2.x AA: the least contrast for normal-size text (the pills' 12 px included)."""


def luminance(colour: str) -> float:
    """WCAG relative luminance of #rrggbb."""
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(foreground: str, background: str) -> float:
    high, low = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_contrast_formula_matches_wcag_reference_values() -> None:
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast("#767676", "#ffffff") == pytest.approx(4.54, abs=0.01)


@pytest.mark.parametrize("status", list(Status))
def test_every_status_pill_is_readable(status: Status) -> None:
    ratio = contrast(PILL_TEXT, COLOURS[status])
    assert ratio >= AA, f"{status.value}: {ratio:.2f}:1 on {COLOURS[status]}"


@pytest.mark.parametrize("verdict", list(VERDICT_COLOURS))
def test_every_verdict_badge_is_readable(verdict: str) -> None:
    assert contrast("#ffffff", VERDICT_COLOURS[verdict]) >= AA


def test_the_dimmed_and_muted_texts_are_readable_too() -> None:
    dimmed = re.search(r"td\.zero\{color:(#[0-9a-f]{6})\}", CSS)
    muted = re.search(r"\.muted\{color:(#[0-9a-f]{6})\}", CSS)
    assert dimmed is not None
    assert muted is not None
    assert contrast(dimmed.group(1), "#ffffff") >= AA
    assert contrast(muted.group(1), "#fafafa") >= AA


def test_the_pills_in_the_page_use_those_colours() -> None:
    page = render_html(make_result(World({MUST_IDS[1]: Status.FAILED})))
    used = set(
        re.findall(r'class="pill" style="background:(#[0-9a-f]{6});color:(#[0-9a-f]{6})', page)
    )
    assert used
    assert all(contrast(text, background) >= AA for background, text in used)


def test_unjudged_musts_come_first_with_their_reasons() -> None:
    world = World(
        {MUST_IDS[4]: Status.SKIPPED, MUST_IDS[3]: Status.UNTESTED, MUST_IDS[2]: Status.ERROR}
    )
    page = render_html(make_result(world))
    section = page[page.index('<section id="not-judged"') : page.index("</section>")]
    assert page.index('<section id="not-judged"') < page.index('<table id="matrix">')
    assert "Not judged: 3 MUST requirement(s)" in section
    for identifier, status in (
        (MUST_IDS[4], "skipped"),
        (MUST_IDS[3], "untested"),
        (MUST_IDS[2], "error"),
    ):
        assert f'data-req="{identifier}"' in section
        assert f"{status} because of the world ({identifier})" in section


def test_a_run_that_judged_every_must_says_so() -> None:
    page = render_html(make_result(World({MUST_IDS[1]: Status.NOT_APPLICABLE})))
    section = page[page.index('<section id="not-judged"') : page.index("</section>")]
    assert "Every applicable MUST (4) was judged." in section
    assert "1 MUST(s) not applicable" in section


def test_long_bodies_are_cut_with_an_expander_and_short_ones_are_not() -> None:
    page = render_html(make_result(World({MUST_IDS[1]: Status.FAILED})))
    previews = re.findall(r'<pre class="preview">(.*?)</pre>', page, re.S)
    assert previews
    assert all(len(html.unescape(text)) <= PREVIEW_CHARS for text in previews)
    assert '<details class="more"><summary>show the other' in page
    assert "&quot;n&quot;: 59" in page  # the end of the long body, behind the expander
    short = re.findall(r"<pre>(\{\s*&quot;id&quot;: &quot;acctreq_1&quot;.*?)</pre>", page, re.S)
    assert short


def test_requests_to_one_endpoint_are_compared_side_by_side() -> None:
    page = render_html(make_result(World({MUST_IDS[1]: Status.FAILED})))
    pair = page[page.index('<div class="pair">') :]
    assert "request #1" in pair
    assert "request #2, same endpoint" in pair
    marked = re.findall(r'<span class="diff">(.*?)</span>', pair)
    assert any("acctreQ_1" in line for line in marked)
    assert not any("email" in line for line in marked)


def test_a_tampered_request_is_labelled_next_to_its_original() -> None:
    result = make_result(World({MUST_IDS[1]: Status.FAILED}))
    tampered = exchange(result.recorder, '{"id": "acctreq_1", "amount": -1}')
    tampered.tampered_from = 1  # type: ignore[attr-defined]
    finding = next(f for f in result.findings if f.requirement.id == MUST_IDS[1])
    finding.evidence = [1, tampered.id]
    page = render_html(result)
    assert "original request #1" in page
    assert f"tampered request #{tampered.id}" in page


def test_the_footer_carries_the_provenance() -> None:
    result = make_result(World())
    page = render_html(result)
    footer = page[page.index('<footer id="provenance">') :]
    document = result.as_json()
    provenance = document["provenance"]
    for value in (
        provenance["provspec_version"],
        provenance["registry_digest"],
        provenance["profile_digest"],
        provenance["timestamp"],
        "provspec run --hmac-secret &#x27;«masked»&#x27;",
        "https://p.test/api/app/",
        document["integrity"]["digest"],
        "configuration (secrets masked)",
    ):
        assert value in footer, value


def test_the_page_is_self_contained() -> None:
    page = render_html(make_result(World({MUST_IDS[1]: Status.FAILED})))
    assert not re.search(r"<(link|img|iframe|object|embed)\b", page)
    assert not re.search(r"<script[^>]+src=", page)
    assert "@import" not in page
    assert "url(" not in page
    assert not re.search(r'href="(?!#)', page)


def test_no_secret_reaches_the_page() -> None:
    result = make_result(World({MUST_IDS[1]: Status.FAILED}))
    result.recorder.exchanges.append(
        Exchange(99, "GET", f"https://p.test/x?token={SECRET}", {}, "", 200, {}, "")
    )
    finding = next(f for f in result.findings if f.requirement.id == MUST_IDS[1])
    finding.message = f"the provider echoed whsec_{SECRET}"
    page = render_html(result)
    assert SECRET not in page
