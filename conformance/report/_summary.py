"""`provspec report RESULTS.json`: a results file summed up for a human or a PR comment.

The matrix (level x status), the verdict, then the top failures — implementation failures
first, then harness and environment errors, then stale or expired baseline entries — each
with its message and the exchanges that show it (already masked in results.json).
"""

from __future__ import annotations

from typing import Any

__all__ = ["STATUS_ORDER", "render_summary"]

STATUS_ORDER = (
    "passed",
    "failed",
    "warning",
    "error",
    "known",
    "flaky",
    "skipped",
    "not_applicable",
    "untested",
)
_VERDICTS = {0: "PASS", 1: "FAIL", 3: "ERROR (harness or environment)", 4: "INCOMPLETE"}
_WORDS = {
    "pass": "PASS",
    "fail": "FAIL",
    "error": _VERDICTS[3],
    "incomplete": "INCOMPLETE (some MUST not judged)",
}
_EVIDENCE_CHARS = 600


def _top(results: dict[str, Any], limit: int) -> list[dict[str, Any]]:
    rank = {"failed": 0, "error": 1, "flaky": 2, "warning": 3}
    chosen = [r for r in results.get("requirements", []) if r.get("status") in rank]
    chosen.sort(key=lambda r: (rank[str(r["status"])], r.get("level") != "MUST", str(r["id"])))
    return chosen[:limit]


def _evidence(results: dict[str, Any], ids: list[int], limit: int = 2) -> list[str]:
    by_id: dict[int, dict[str, Any]] = {}
    for item in [*results.get("exchanges", []), *results.get("cli_calls", [])]:
        if isinstance(item, dict) and isinstance(item.get("id"), int):
            by_id[item["id"]] = item
    shown: list[str] = []
    for identifier in list(dict.fromkeys(ids))[:limit]:
        item = by_id.get(identifier)
        if item is None:
            continue
        if "argv" in item:
            text = (
                f"#{identifier} $ {' '.join(item.get('argv', []))}\n  exit {item.get('exit_code')}"
            )
            out = str(item.get("stdout", ""))
            if out:
                text += f"\n  | {out[:_EVIDENCE_CHARS]}"
        else:
            text = f"#{identifier} {item.get('method')} {item.get('url')}"
            if item.get("request_body"):
                text += f"\n  > {str(item['request_body'])[:_EVIDENCE_CHARS]}"
            if item.get("error"):
                text += f"\n  ! {item['error']}"
            else:
                text += f"\n  < {item.get('status')}"
                if item.get("response_body"):
                    text += f" {str(item['response_body'])[:_EVIDENCE_CHARS]}"
        shown.append(text)
    return shown


def _matrix(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    counts: dict[str, dict[str, int]] = results.get("counts", {})
    present = [s for s in STATUS_ORDER if any(row.get(s) for row in counts.values())]
    statuses = present or ["passed"]
    rows = [
        [level, *(str(counts[level].get(status, 0)) for status in statuses)]
        for level in ("MUST", "SHOULD", "MAY")
        if level in counts
    ]
    return ["level", *(s.replace("_", " ") for s in statuses)], rows


def render_summary(results: dict[str, Any], output_format: str = "text", top: int = 10) -> str:
    verdict = _WORDS.get(str(results.get("verdict")), "") or _VERDICTS.get(
        int(results.get("exit_code", 0)), "FAIL"
    )
    head = (
        f"provspec {results.get('role')} · {results.get('profile')} · {results.get('target')}: "
        f"{verdict}"
    )
    header, rows = _matrix(results)
    failures = _top(results, top)
    problems = [
        *(f"harness: {p.get('message')}" for p in results.get("harness_problems", [])),
        *(f"baseline: {p}" for p in results.get("baseline_problems", [])),
    ]
    if output_format == "markdown":
        return _markdown(results, head, header, rows, failures, problems)
    return _text(results, head, header, rows, failures, problems)


def _text(
    results: dict[str, Any],
    head: str,
    header: list[str],
    rows: list[list[str]],
    failures: list[dict[str, Any]],
    problems: list[str],
) -> str:
    widths = [max(8, len(h) + 2) for h in header]
    lines = [head, ""]
    lines.append(
        "".join(
            h.ljust(w) if i == 0 else h.rjust(w)
            for i, (h, w) in enumerate(zip(header, widths, strict=True))
        )
    )
    for row in rows:
        lines.append(
            "".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    for problem in problems:
        lines.append(f"\n! {problem}")
    if failures:
        lines += ["", f"top {len(failures)} failure(s):"]
    for item in failures:
        blame = f", {item['blame']}" if item.get("blame") else ""
        lines.append(f"\n{item['id']} [{item['level']}] {item['status']}{blame}")
        lines.append(f"  {item.get('text', '')}")
        lines.append(f"  why: {item.get('message', '')}")
        for shown in _evidence(results, list(item.get("evidence", []))):
            lines += [f"    {line}" for line in shown.splitlines()]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _markdown(
    results: dict[str, Any],
    head: str,
    header: list[str],
    rows: list[list[str]],
    failures: list[dict[str, Any]],
    problems: list[str],
) -> str:
    lines = [f"### {_cell(head)}", ""]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join(["---"] + ["--:"] * (len(header) - 1)) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    if problems:
        lines.append("")
        lines += [f"- :warning: {_cell(problem)}" for problem in problems]
    if failures:
        lines += ["", "| requirement | level | status | blame | why |", "|---|---|---|---|---|"]
        for item in failures:
            lines.append(
                f"| `{item['id']}` | {item['level']} | {item['status']} | "
                f"{item.get('blame') or ''} | {_cell(str(item.get('message', ''))[:300])} |"
            )
        for item in failures:
            shown = _evidence(results, list(item.get("evidence", [])))
            if not shown:
                continue
            lines += [
                "",
                f"<details><summary>{item['id']}: evidence</summary>",
                "",
                "```",
                *[text.replace("```", "` ` `") for text in shown],
                "```",
                "</details>",
            ]
    return "\n".join(lines) + "\n"
