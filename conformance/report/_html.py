"""A self-contained HTML report: what was not judged first, then the requirement matrix, then
every requirement, filterable, each opening to its text, source, verdict and evidence, and
the run's provenance in the footer. No external assets: one file, its CSS and script inline.

- **Not judged, up front**: every MUST that was skipped, untested or not judged for an error,
  with its reason, above the matrix (a PASS that left MUSTs unjudged is not certification).
- **Evidence that stays readable**: bodies are pretty-printed JSON where they are JSON and
  cut after `PREVIEW_CHARS` with a `<details>` expander for the rest; requests to the same
  endpoint in one requirement's evidence are shown side by side with the differing lines
  marked (the original and the tampered request of a tamper check, where the evidence holds
  both; an exchange naming `tampered_from` is labelled as such).
- **Readable pills**: every status colour carries white text at a WCAG AA contrast of at
  least 4.5:1 (tests/test_report_html.py computes it).
- Everything shown comes from the recorder and the findings, which mask secrets; the
  configuration and the command line in the footer are masked too.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from html import escape
from typing import Any
from urllib.parse import urlsplit

from conformance.recorder import CliCall, Exchange
from conformance.report._outcome import unjudged_musts, verdict_word
from conformance.results import Finding, RunResult, Status
from spec.requirement import Level, Step

__all__ = ["COLOURS", "PILL_TEXT", "PREVIEW_CHARS", "VERDICT_COLOURS", "render_html"]

ORDER = [
    Status.FAILED,
    Status.ERROR,
    Status.FLAKY,
    Status.WARNING,
    Status.KNOWN,
    Status.PASSED,
    Status.SKIPPED,
    Status.NOT_APPLICABLE,
    Status.UNTESTED,
]
COLOURS = {
    Status.FAILED: "#c62828",
    Status.ERROR: "#6a1b9a",
    Status.FLAKY: "#ad1457",
    Status.KNOWN: "#795548",
    Status.WARNING: "#a84300",
    Status.PASSED: "#2e7d32",
    Status.SKIPPED: "#616161",
    Status.NOT_APPLICABLE: "#546e7a",
    Status.UNTESTED: "#6d6d6d",
}
"""Pill backgrounds; the text on them is PILL_TEXT."""
PILL_TEXT = "#ffffff"
VERDICT_COLOURS = {
    "PASS": COLOURS[Status.PASSED],
    "FAIL": COLOURS[Status.FAILED],
    "ERROR": COLOURS[Status.ERROR],
    "INCOMPLETE": COLOURS[Status.WARNING],
}
PREVIEW_CHARS = 1200
"""A body longer than this shows its start; the rest opens with an expander."""

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1d1d1d;background:#fafafa}
h1{font-size:20px;margin:0 0 4px} h2{font-size:16px;margin:20px 0 8px} .sub{color:#555;margin-bottom:16px}
.verdict{display:inline-block;padding:4px 10px;border-radius:4px;color:#fff;font-weight:600}
table{border-collapse:collapse;background:#fff;box-shadow:0 1px 2px #0002}
th,td{padding:6px 10px;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
th{background:#f0f0f0;font-weight:600} td.n{text-align:right;font-variant-numeric:tabular-nums}
td.zero{color:#767676} .pill{display:inline-block;white-space:nowrap;min-width:86px;text-align:center;padding:1px 6px;border-radius:10px;color:#fff;font-size:12px}
.alert{background:#fff4f4;border-left:4px solid #c62828;padding:8px 12px;margin:8px 0}
.alert p{margin:2px 0}
#not-judged{background:#fff;border-left:4px solid #a84300;padding:8px 12px;margin:8px 0 16px}
#not-judged.none{border-left-color:#2e7d32}
#not-judged table{box-shadow:none;width:100%} #not-judged td.why{color:#333}
.filters{margin:18px 0 10px;display:flex;gap:10px;flex-wrap:wrap;align-items:center}
select,input{font:inherit;padding:3px 6px}
details.req{background:#fff;border-bottom:1px solid #eee} details.req>summary{cursor:pointer;padding:6px 10px;display:flex;gap:10px;align-items:baseline}
summary .id{font-family:ui-monospace,monospace;min-width:96px} summary .lvl{min-width:64px;color:#555}
summary .txt{flex:1} .body{padding:4px 12px 12px 116px} .body p{margin:4px 0}
.ex{border:1px solid #e4e4e4;background:#fcfcfc;margin:8px 0;padding:6px 8px}
.ex h4{margin:0 0 4px;font:600 12px ui-monospace,monospace;word-break:break-all}
.ex table{box-shadow:none;font:12px ui-monospace,monospace} .ex th,.ex td{padding:1px 6px;border:0}
pre{background:#f6f6f6;border:1px solid #e4e4e4;padding:8px;overflow:auto;max-height:420px;font-size:12px;white-space:pre-wrap;word-break:break-all;margin:4px 0}
details.more>summary{cursor:pointer;color:#1a4f8b;font-size:12px}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:8px;margin:8px 0}
.pair .col{min-width:0} .pair h4{margin:0 0 4px;font:600 12px system-ui,sans-serif}
.pair pre .diff{background:#ffe08a;color:#1d1d1d;display:block}
.muted{color:#555555}
footer{margin-top:28px;padding-top:10px;border-top:1px solid #ddd;color:#333;font-size:12px}
footer table{box-shadow:none;font-size:12px} footer td{padding:2px 8px;border:0;word-break:break-all}
code{font-family:ui-monospace,monospace}
"""

JS = """
function applyFilters(){
  const step=document.getElementById('f-step').value, level=document.getElementById('f-level').value,
        status=document.getElementById('f-status').value, text=document.getElementById('f-text').value.toLowerCase();
  let shown=0;
  document.querySelectorAll('details.req').forEach(d=>{
    const ok=(!step||d.dataset.step===step)&&(!level||d.dataset.level===level)&&(!status||d.dataset.status===status)
      &&(!text||d.textContent.toLowerCase().includes(text));
    d.style.display=ok?'':'none'; if(ok) shown++;
  });
  document.getElementById('shown').textContent=shown;
}
function openRequirement(id){
  const d=document.getElementById('req-'+id); if(!d) return;
  ['f-step','f-level','f-status','f-text'].forEach(f=>{document.getElementById(f).value='';});
  applyFilters(); d.open=true; d.scrollIntoView();
}
document.querySelectorAll('.filters select,.filters input').forEach(e=>e.addEventListener('input',applyFilters));
document.querySelectorAll('td[data-filter]').forEach(td=>td.addEventListener('click',()=>{
  const [step,status]=td.dataset.filter.split('|');
  document.getElementById('f-step').value=step; document.getElementById('f-status').value=status; applyFilters();
  document.getElementById('requirements').scrollIntoView();
}));
document.querySelectorAll('a[data-req]').forEach(a=>a.addEventListener('click',e=>{
  e.preventDefault(); openRequirement(a.dataset.req);
}));
if(location.hash.startsWith('#req-')) openRequirement(location.hash.slice(5));
"""


def _options(values: Iterable[str]) -> str:
    return "".join(f'<option value="{escape(v)}">{escape(v)}</option>' for v in values)


def _pill(status: Status) -> str:
    return (
        f'<span class="pill" style="background:{COLOURS[status]};color:{PILL_TEXT}">'
        f"{escape(status.value.replace('_', ' '))}</span>"
    )


def _pretty(body: str) -> str:
    """A JSON body indented; anything else as it is."""
    if body.lstrip()[:1] in ("{", "["):
        try:
            return json.dumps(json.loads(body), indent=2, ensure_ascii=False)
        except ValueError:
            return body
    return body


def _block(text: str) -> str:
    """A `<pre>` of at most PREVIEW_CHARS; the rest behind an expander."""
    if len(text) <= PREVIEW_CHARS:
        return f"<pre>{escape(text)}</pre>"
    cut = text.rfind("\n", 0, PREVIEW_CHARS)
    cut = cut if cut > PREVIEW_CHARS // 2 else PREVIEW_CHARS
    head, rest = text[:cut], text[cut:]
    return (
        f'<pre class="preview">{escape(head)}</pre>'
        f'<details class="more"><summary>show the other {len(rest)} characters</summary>'
        f'<pre class="rest">{escape(rest)}</pre></details>'
    )


def _headers(headers: dict[str, str], mark: str) -> str:
    if not headers:
        return ""
    rows = "".join(
        f"<tr><th>{mark} {escape(name)}</th><td>{escape(value)}</td></tr>"
        for name, value in headers.items()
    )
    return f"<table>{rows}</table>"


def _exchange(exchange: Exchange) -> str:
    direction = "received by the suite" if exchange.direction == "received" else "sent"
    if exchange.error:
        answer = f'<p class="muted">! {escape(exchange.error)}</p>'
    else:
        answer = f"<p><b>&lt; {exchange.status}</b></p>" + _headers(
            exchange.response_headers, "&lt;"
        )
        if exchange.response_body:
            answer += _block(_pretty(exchange.response_body))
    request = _headers(exchange.request_headers, "&gt;")
    if exchange.request_body:
        request += _block(_pretty(exchange.request_body))
    return (
        f'<div class="ex" id="ex-{exchange.id}"><h4>#{exchange.id} {escape(exchange.method)} '
        f'{escape(exchange.url)} <span class="muted">({direction}, '
        f"{exchange.elapsed_ms:.0f} ms)</span></h4>{request}{answer}</div>"
    )


def _cli_call(call: CliCall) -> str:
    out = _block(call.stdout) if call.stdout else ""
    err = _block(call.stderr) if call.stderr else ""
    return (
        f'<div class="ex" id="ex-{call.id}"><h4>#{call.id} $ {escape(" ".join(call.argv))} '
        f'<span class="muted">(exit {call.exit_code}, {call.elapsed_ms:.0f} ms)</span></h4>'
        f"{out}{err}</div>"
    )


def _request_text(exchange: Exchange) -> list[str]:
    lines = [f"{exchange.method} {exchange.url}"]
    lines += [f"{name}: {value}" for name, value in exchange.request_headers.items()]
    if exchange.request_body:
        lines += ["", *_pretty(exchange.request_body).splitlines()]
    return lines


def _pairs(shown: list[Exchange]) -> list[tuple[Exchange, Exchange]]:
    """Requests to compare: an exchange with the one it names as `tampered_from`, else the
    first two different requests one requirement's evidence sent to the same endpoint."""
    by_id = {exchange.id: exchange for exchange in shown}
    pairs: list[tuple[Exchange, Exchange]] = []
    used: set[int] = set()
    for exchange in shown:
        original = by_id.get(getattr(exchange, "tampered_from", None) or -1)
        if original is not None:
            pairs.append((original, exchange))
            used |= {original.id, exchange.id}
    groups: dict[tuple[str, str, str], list[Exchange]] = {}
    for exchange in shown:
        if exchange.id not in used:
            endpoint = urlsplit(exchange.url)
            key = (exchange.direction, exchange.method, f"{endpoint.netloc}{endpoint.path}")
            groups.setdefault(key, []).append(exchange)
    for group in groups.values():
        if len(group) >= 2 and _request_text(group[0]) != _request_text(group[1]):
            pairs.append((group[0], group[1]))
    return pairs


def _comparison(left: Exchange, right: Exchange) -> str:
    tampered = getattr(right, "tampered_from", None) == left.id
    labels = (
        (f"original request #{left.id}", f"tampered request #{right.id}")
        if tampered
        else (f"request #{left.id}", f"request #{right.id}, same endpoint")
    )
    a, b = _request_text(left), _request_text(right)
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    same_a = {block.a + i for block in matcher.get_matching_blocks() for i in range(block.size)}
    same_b = {block.b + i for block in matcher.get_matching_blocks() for i in range(block.size)}

    def column(lines: list[str], same: set[int], label: str) -> str:
        shown = "".join(
            escape(line) + "\n" if i in same else f'<span class="diff">{escape(line) or " "}</span>'
            for i, line in enumerate(lines)
        )
        return f'<div class="col"><h4>{escape(label)}</h4><pre>{shown}</pre></div>'

    differ = (len(a) - len(same_a)) + (len(b) - len(same_b))
    return (
        f'<p class="muted">{differ} line(s) differ, marked:</p>'
        f'<div class="pair">{column(a, same_a, labels[0])}{column(b, same_b, labels[1])}</div>'
    )


def _evidence(finding: Finding, items: dict[int, Exchange | CliCall]) -> str:
    shown = [items[i] for i in dict.fromkeys(finding.evidence) if i in items]
    exchanges = [item for item in shown if isinstance(item, Exchange)]
    compared = "".join(_comparison(left, right) for left, right in _pairs(exchanges))
    rendered = "".join(
        _exchange(item) if isinstance(item, Exchange) else _cli_call(item) for item in shown
    )
    return compared + rendered


def _not_judged(result: RunResult) -> str:
    musts = [f for f in result.findings if f.requirement.level is Level.MUST]
    open_ones = unjudged_musts(result)
    absent = [f for f in musts if f.status is Status.NOT_APPLICABLE]
    not_applicable = ""
    if absent:
        listed = "".join(
            f"<li><code>{escape(f.requirement.id)}</code> {escape(f.message)}</li>" for f in absent
        )
        not_applicable = (
            f'<details><summary class="muted">{len(absent)} MUST(s) not applicable: the target '
            f"does not offer the feature</summary><ul>{listed}</ul></details>"
        )
    if not open_ones:
        return (
            f'<section id="not-judged" class="none"><h2>Not judged</h2>'
            f"<p>Every applicable MUST ({len(musts) - len(absent)}) was judged.</p>"
            f"{not_applicable}</section>"
        )
    rows = "".join(
        f'<tr><td>{_pill(f.status)}</td><td><a href="#req-{escape(f.requirement.id)}" '
        f'data-req="{escape(f.requirement.id)}"><code>{escape(f.requirement.id)}</code></a></td>'
        f"<td>{escape(f.requirement.text)}</td>"
        f'<td class="why">{escape(f.message or "no reason given")}</td></tr>'
        for f in sorted(open_ones, key=lambda f: (ORDER.index(f.status), f.requirement.id))
    )
    return (
        f'<section id="not-judged"><h2>Not judged: {len(open_ones)} MUST requirement(s)</h2>'
        '<p class="muted">These were neither passed nor failed; a run that leaves any of them '
        "open proves nothing about them. The reason says what would let the suite judge it.</p>"
        "<table><thead><tr><th>status</th><th>requirement</th><th>rule</th><th>why not judged</th>"
        f"</tr></thead><tbody>{rows}</tbody></table>{not_applicable}</section>"
    )


def _footer(result: RunResult, provenance: dict[str, Any], digest: str) -> str:
    rows = [
        ("provspec", provenance["provspec_version"]),
        ("started (UTC)", provenance["timestamp"]),
        ("role / profile", f"{provenance['role']} / {provenance['profile']}"),
        ("target", provenance["target"]),
        ("command", provenance["command_line"] or "(not run from the command line)"),
        ("requirement set digest", provenance["registry_digest"] or "unknown"),
        ("profile digest", provenance["profile_digest"] or "unknown"),
        ("results digest", f"{digest} (provspec report --verify results.json)"),
        ("python / platform", f"{provenance['python']} / {provenance['platform']}"),
    ]
    table = "".join(
        f"<tr><td>{escape(name)}</td><td><code>{escape(str(value))}</code></td></tr>"
        for name, value in rows
    )
    config = json.dumps(provenance["config"], indent=2, ensure_ascii=False, sort_keys=True)
    return (
        f'<footer id="provenance"><b>Provenance</b> (verdict {escape(verdict_word(result))}, exit '
        f"{result.exit_code})<table>{table}</table>"
        f"<details><summary>configuration (secrets masked)</summary>{_block(config)}</details>"
        "</footer>"
    )


def render_html(result: RunResult) -> str:
    document = result.as_json()
    items: dict[int, Exchange | CliCall] = {e.id: e for e in result.recorder.exchanges}
    items.update({call.id: call for call in result.recorder.cli_calls})
    steps = [step for step in Step if any(f.requirement.step is step for f in result.findings)]
    musts_failed = [f for f in result.findings if f.status is Status.FAILED]
    verdict = verdict_word(result)
    verdict_colour = VERDICT_COLOURS.get(verdict, COLOURS[Status.FAILED])
    head = (
        [f"<th>{escape(result.role)} / step</th>"]
        + [f"<th>{_pill(status)}</th>" for status in ORDER]
        + ["<th>total</th>"]
    )
    rows = []
    for step in steps:
        cells = [f"<td>{escape(step.value)}</td>"]
        in_step = [f for f in result.findings if f.requirement.step is step]
        for status in ORDER:
            count = sum(1 for f in in_step if f.status is status)
            cells.append(
                f'<td class="n{" zero" if not count else ""}" data-filter="{step.value}|{status.value}" '
                f'style="cursor:pointer">{count}</td>'
            )
        cells.append(f'<td class="n">{len(in_step)}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    totals = (
        ["<td><b>all steps</b></td>"]
        + [
            f'<td class="n"><b>{sum(1 for f in result.findings if f.status is status)}</b></td>'
            for status in ORDER
        ]
        + [f'<td class="n"><b>{len(result.findings)}</b></td>']
    )
    rows.append("<tr>" + "".join(totals) + "</tr>")

    ordered = sorted(
        result.findings,
        key=lambda f: (
            ORDER.index(f.status),
            list(Step).index(f.requirement.step),
            f.requirement.id,
        ),
    )
    notes = [f"baseline: {p} (fails the run)" for p in result.baseline_problems] + [
        f"harness: #{p['exchange']} {p['message']}" for p in result.harness_problems[:10]
    ]
    problems = (
        '<div class="alert">' + "".join(f"<p>{escape(note)}</p>" for note in notes) + "</div>"
        if notes
        else ""
    )
    entries = []
    for finding in ordered:
        requirement = finding.requirement
        message = f"<p><b>Verdict:</b> {escape(finding.message)}</p>" if finding.message else ""
        blame = finding.as_json()["blame"]
        if blame:
            message += f'<p class="muted">blame: {escape(str(blame))}</p>'
        if finding.baseline:
            stale = " — fails the run" if finding.baseline in ("stale", "expired") else ""
            message += f'<p class="muted">baseline: {escape(finding.baseline)}{stale}</p>'
        checks = (
            f'<p class="muted">checked by {escape(", ".join(finding.checks))} '
            f"in {result.timing(finding)[1]:.3f} s</p>"
            if finding.checks
            else ""
        )
        opened = finding.status is Status.FAILED or finding.baseline in ("stale", "expired")
        entries.append(
            f'<details class="req" id="req-{escape(requirement.id)}" data-step="{requirement.step.value}" '
            f'data-level="{requirement.level.value}" data-status="{finding.status.value}"{" open" if opened else ""}>'
            f'<summary>{_pill(finding.status)}<span class="id">{escape(requirement.id)}</span>'
            f'<span class="lvl">{requirement.level.value}</span><span class="txt">{escape(requirement.text)}</span></summary>'
            f'<div class="body"><p><b>Source:</b> {escape(requirement.source)}</p>'
            f'<p class="muted">profiles: {escape(", ".join(requirement.profiles))}; step: {requirement.step.value}</p>'
            f"{message}{checks}{_evidence(finding, items)}</div></details>"
        )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>provspec: {escape(result.role)} {escape(result.profile)} — {escape(verdict)}</title><style>{CSS}</style></head>
<body>
<h1>provspec — {escape(result.role)} conformance, profile {escape(result.profile)}</h1>
<div class="sub">target: <code>{escape(result.target)}</code> · {len(result.recorder.exchanges)} exchanges · {result.duration_s:.2f} s
 · <span class="verdict" id="verdict" style="background:{verdict_colour}">{escape(verdict)}</span>
 {f"· {len(musts_failed)} MUST requirement(s) failed" if musts_failed else ""}</div>
{problems}
{_not_judged(result)}
<table id="matrix"><thead><tr>{"".join(head)}</tr></thead><tbody>{"".join(rows)}</tbody></table>
<div class="filters" id="requirements">
 <label>step <select id="f-step"><option value="">all</option>{_options(s.value for s in steps)}</select></label>
 <label>level <select id="f-level"><option value="">all</option>{_options(["MUST", "SHOULD", "MAY"])}</select></label>
 <label>status <select id="f-status"><option value="">all</option>{_options(s.value for s in ORDER)}</select></label>
 <input id="f-text" placeholder="search id, text, evidence" size="30" aria-label="search">
 <span class="muted"><span id="shown">{len(ordered)}</span> shown</span>
</div>
{"".join(entries)}
{_footer(result, document["provenance"], document["integrity"]["digest"])}
<script>{JS}</script>
</body></html>
"""
