"""Allure results (the allure-results directory format): one result per requirement, with
requirement ID, step and level as labels and the evidence exchanges as attachments.

Statuses agree with the exit code (conformance/report/_outcome.py): `failed` exactly when the
run exits 1 (a stale or expired baseline entry is a failed result naming the entry), `broken`
(and nothing failed) when it exits 3 or 4 (INCOMPLETE: one result lists the unjudged MUSTs). A SHOULD warning is `unknown` (neither passed nor failed) with severity
`minor` and a category of its own; a flake passes with Allure's flaky mark. Start and stop
are the real times of the checks that judged the requirement. `environment.properties`
carries the run's provenance, `categories.json` names the kinds of result. A previous run's
results in the same directory are removed first, so the report shows this run only.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from conformance.recorder import CliCall, Exchange
from conformance.report._junit import provenance_properties
from conformance.report._outcome import CaseStatus, Outcome, extra_outcomes, outcome
from conformance.results import Finding, RunResult, Status
from spec.requirement import Level

__all__ = ["CATEGORIES", "write_allure"]

_STATUS = {
    CaseStatus.PASSED: "passed",
    CaseStatus.FAILED: "failed",
    CaseStatus.ERROR: "broken",
    CaseStatus.SKIPPED: "skipped",
    CaseStatus.WARNING: "unknown",
    CaseStatus.FLAKY: "passed",
}
_SEVERITY = {Level.MUST: "critical", Level.SHOULD: "minor", Level.MAY: "trivial"}
CATEGORIES = [
    {
        "name": "Stale or expired baseline entries (fail the run)",
        "messageRegex": "(?s).*(stale|expired) baseline entry.*",
        "matchedStatuses": ["failed"],
    },
    {"name": "Conformance failures", "matchedStatuses": ["failed"]},
    {
        "name": "Not judged: the run is INCOMPLETE (MUSTs left unjudged)",
        "messageRegex": "(?s)incomplete:.*",
        "matchedStatuses": ["broken"],
    },
    {"name": "Not judged: harness or environment errors", "matchedStatuses": ["broken"]},
    {"name": "SHOULD warnings (do not fail the run)", "matchedStatuses": ["unknown"]},
    {
        "name": "Known failures (baseline)",
        "messageRegex": "(?s)known failure.*",
        "matchedStatuses": ["skipped"],
    },
]
"""Allure's categories, first match wins: what kind of result each non-pass is."""
_OURS = ("*-result.json", "*-attachment.txt", "environment.properties", "categories.json")


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _escape(text: str, *, key: bool = False) -> str:
    """A .properties key or value: backslash escapes, non-ASCII as \\uXXXX (ISO-8859-1 file)."""
    shown = []
    for char in text:
        if char == "\\":
            shown.append("\\\\")
        elif char == "\n":
            shown.append("\\n")
        elif char in "=: #!" and key:
            shown.append("\\" + char)
        elif ord(char) > 126 or ord(char) < 32:
            units = char.encode("utf-16-be")  # two units (a surrogate pair) beyond the BMP
            shown += [f"\\u{units[i]:02x}{units[i + 1]:02x}" for i in range(0, len(units), 2)]
        else:
            shown.append(char)
    return "".join(shown)


def _result(
    judged: Outcome,
    *,
    name: str,
    full_name: str,
    history: str,
    labels: list[dict[str, str]],
    times: tuple[float, float],
    trace: str,
    attachments: list[dict[str, str]],
    flaky: bool = False,
    known: bool = False,
) -> dict[str, Any]:
    start, seconds = times
    return {
        "uuid": str(uuid.uuid4()),
        "historyId": history,
        "name": name,
        "fullName": full_name,
        "status": _STATUS[judged.status],
        "statusDetails": {
            "message": judged.message,
            "trace": trace,
            "flaky": flaky,
            "known": known,
        },
        "stage": "finished",
        "start": _ms(start),
        "stop": _ms(start + seconds),
        "labels": labels,
        "attachments": attachments,
    }


def _labels(result: RunResult, finding: Finding, judged: Outcome) -> list[dict[str, str]]:
    requirement = finding.requirement
    blame = finding.as_json()["blame"]
    labels = [
        {"name": "parentSuite", "value": f"{result.role} ({result.profile})"},
        {"name": "suite", "value": requirement.step.value},
        {"name": "tag", "value": requirement.level.value},
        {"name": "requirement", "value": requirement.id},
        {"name": "severity", "value": _SEVERITY[requirement.level]},
    ]
    if judged.status is CaseStatus.WARNING:
        labels.append({"name": "tag", "value": "warning"})
    if blame:
        labels.append({"name": "blame", "value": str(blame)})
    if finding.baseline:
        labels.append({"name": "tag", "value": f"baseline-{finding.baseline}"})
    return labels


def _clear(directory: Path) -> None:
    for pattern in _OURS:
        for path in directory.glob(pattern):
            path.unlink()


def write_allure(result: RunResult, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    _clear(directory)
    document = result.as_json()
    environment = provenance_properties(result, document)
    (directory / "environment.properties").write_text(
        "".join(f"{_escape(k, key=True)}={_escape(v)}\n" for k, v in environment.items()),
        encoding="latin-1",
    )
    (directory / "categories.json").write_text(json.dumps(CATEGORIES, indent=2), encoding="utf-8")
    items: dict[int, Exchange | CliCall] = {e.id: e for e in result.recorder.exchanges}
    items.update({call.id: call for call in result.recorder.cli_calls})
    documents: list[dict[str, Any]] = []
    for name, extra in extra_outcomes(result):
        documents.append(
            _result(
                extra,
                name=name,
                full_name=f"provspec.{result.role}.run.{name.split(':', 1)[0]}",
                history=f"{result.role}:{result.profile}:run:{name}",
                labels=[
                    {"name": "parentSuite", "value": f"{result.role} ({result.profile})"},
                    {"name": "suite", "value": "run"},
                    {"name": "severity", "value": "blocker"},
                ],
                times=(result.started_at or 0.0, 0.0),
                trace=extra.message,
                attachments=[],
            )
        )
    for finding in result.findings:
        requirement = finding.requirement
        judged = outcome(result, finding)
        attachments = []
        for item_id in dict.fromkeys(finding.evidence):
            item = items.get(item_id)
            if item is None:
                continue
            source = f"{uuid.uuid4()}-attachment.txt"
            (directory / source).write_text(item.describe(), encoding="utf-8")
            attachments.append(
                {"name": f"evidence #{item_id}", "source": source, "type": "text/plain"}
            )
        documents.append(
            _result(
                judged,
                name=f"{requirement.id} {requirement.text}",
                full_name=f"provspec.{result.role}.{requirement.step.value}.{requirement.id}",
                history=f"{result.role}:{result.profile}:{requirement.id}",
                labels=_labels(result, finding, judged),
                times=result.timing(finding),
                trace=f"source: {requirement.source}",
                attachments=attachments,
                flaky=finding.status is Status.FLAKY,
                known=finding.status is Status.KNOWN,
            )
        )
    for written in documents:
        (directory / f"{written['uuid']}-result.json").write_text(
            json.dumps(written, ensure_ascii=False), encoding="utf-8"
        )
