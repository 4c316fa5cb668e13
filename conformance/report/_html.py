"""A self-contained HTML report: the requirement matrix first, then every requirement,
filterable, each opening to its text, source, verdict and evidence. No external assets."""

from __future__ import annotations

from collections.abc import Iterable
from html import escape

from conformance.registry import Step
from conformance.results import RunResult, Status

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
    Status.KNOWN: "#8d6e63",
    Status.WARNING: "#ef6c00",
    Status.PASSED: "#2e7d32",
    Status.SKIPPED: "#6d6d6d",
    Status.NOT_APPLICABLE: "#6d6d6d",
    Status.UNTESTED: "#9e9e9e",
}

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1d1d1d;background:#fafafa}
h1{font-size:20px;margin:0 0 4px} .sub{color:#555;margin-bottom:16px}
.verdict{display:inline-block;padding:4px 10px;border-radius:4px;color:#fff;font-weight:600}
table{border-collapse:collapse;background:#fff;box-shadow:0 1px 2px #0002}
th,td{padding:6px 10px;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
th{background:#f0f0f0;font-weight:600} td.n{text-align:right;font-variant-numeric:tabular-nums}
td.zero{color:#bbb} .pill{display:inline-block;min-width:86px;text-align:center;padding:1px 6px;border-radius:10px;color:#fff;font-size:12px}
.filters{margin:18px 0 10px;display:flex;gap:10px;flex-wrap:wrap;align-items:center}
select,input{font:inherit;padding:3px 6px}
details{background:#fff;border-bottom:1px solid #eee} summary{cursor:pointer;padding:6px 10px;display:flex;gap:10px;align-items:baseline}
summary .id{font-family:ui-monospace,monospace;min-width:96px} summary .lvl{min-width:64px;color:#555}
summary .txt{flex:1} .body{padding:4px 12px 12px 116px} .body p{margin:4px 0}
pre{background:#f6f6f6;border:1px solid #e4e4e4;padding:8px;overflow:auto;max-height:360px;font-size:12px;white-space:pre-wrap;word-break:break-all}
.muted{color:#666}
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
document.querySelectorAll('.filters select,.filters input').forEach(e=>e.addEventListener('input',applyFilters));
document.querySelectorAll('td[data-filter]').forEach(td=>td.addEventListener('click',()=>{
  const [step,status]=td.dataset.filter.split('|');
  document.getElementById('f-step').value=step; document.getElementById('f-status').value=status; applyFilters();
  document.getElementById('requirements').scrollIntoView();
}));
"""


def _options(values: Iterable[str]) -> str:
    return "".join(f'<option value="{escape(v)}">{escape(v)}</option>' for v in values)


def _pill(status: Status) -> str:
    return f'<span class="pill" style="background:{COLOURS[status]}">{escape(status.value.replace("_", " "))}</span>'


def render_html(result: RunResult) -> str:
    exchanges = {exchange.id: exchange for exchange in result.recorder.exchanges}
    steps = [step for step in Step if any(f.requirement.step is step for f in result.findings)]
    musts_failed = [f for f in result.findings if f.status is Status.FAILED]
    verdict = (
        ("ERROR", COLOURS[Status.ERROR])
        if result.exit_code == 3
        else ("FAIL", COLOURS[Status.FAILED])
        if result.exit_code
        else ("PASS", COLOURS[Status.PASSED])
    )
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
    notes = [f"baseline: {p}" for p in result.baseline_problems] + [
        f"harness: #{p['exchange']} {p['message']}" for p in result.harness_problems[:10]
    ]
    problems = "".join(f'<p class="muted">{escape(note)}</p>' for note in notes)
    items = []
    for finding in ordered:
        requirement = finding.requirement
        evidence = "".join(
            f"<pre>{escape(exchanges[i].describe())}</pre>"
            for i in dict.fromkeys(finding.evidence)
            if i in exchanges
        )
        message = f"<p><b>Verdict:</b> {escape(finding.message)}</p>" if finding.message else ""
        blame = finding.as_json()["blame"]
        if blame:
            message += f'<p class="muted">blame: {escape(str(blame))}</p>'
        if finding.baseline:
            message += f'<p class="muted">baseline: {escape(finding.baseline)}</p>'
        checks = (
            f'<p class="muted">checked by {escape(", ".join(finding.checks))}</p>'
            if finding.checks
            else ""
        )
        items.append(
            f'<details class="req" data-step="{requirement.step.value}" data-level="{requirement.level.value}" '
            f'data-status="{finding.status.value}"{" open" if finding.status is Status.FAILED else ""}>'
            f'<summary>{_pill(finding.status)}<span class="id">{escape(requirement.id)}</span>'
            f'<span class="lvl">{requirement.level.value}</span><span class="txt">{escape(requirement.text)}</span></summary>'
            f'<div class="body"><p><b>Source:</b> {escape(requirement.source)}</p>'
            f'<p class="muted">profiles: {escape(", ".join(requirement.profiles))}; step: {requirement.step.value}</p>'
            f"{message}{checks}{evidence}</div></details>"
        )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>provspec: {escape(result.role)} {escape(result.profile)} — {verdict[0]}</title><style>{CSS}</style></head>
<body>
<h1>provspec — {escape(result.role)} conformance, profile {escape(result.profile)}</h1>
<div class="sub">target: <code>{escape(result.target)}</code> · {len(result.recorder.exchanges)} exchanges · {result.duration_s:.2f} s
 · <span class="verdict" style="background:{verdict[1]}">{verdict[0]}</span>
 {f"· {len(musts_failed)} MUST requirement(s) failed" if musts_failed else ""}</div>
{problems}
<table id="matrix"><thead><tr>{"".join(head)}</tr></thead><tbody>{"".join(rows)}</tbody></table>
<div class="filters" id="requirements">
 <label>step <select id="f-step"><option value="">all</option>{_options(s.value for s in steps)}</select></label>
 <label>level <select id="f-level"><option value="">all</option>{_options(["MUST", "SHOULD", "MAY"])}</select></label>
 <label>status <select id="f-status"><option value="">all</option>{_options(s.value for s in ORDER)}</select></label>
 <input id="f-text" placeholder="search id, text, evidence" size="30">
 <span class="muted"><span id="shown">{len(ordered)}</span> shown</span>
</div>
{"".join(items)}
<script>{JS}</script>
</body></html>
"""
