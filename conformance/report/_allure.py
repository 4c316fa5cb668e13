"""Allure results (the allure-results directory format): one result per requirement, with
requirement ID, step and level as labels and the evidence exchanges as attachments."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from conformance.results import RunResult, Status

_STATUS = {
    Status.PASSED: "passed",
    Status.FAILED: "failed",
    Status.WARNING: "passed",
    Status.SKIPPED: "skipped",
    Status.NOT_APPLICABLE: "skipped",
    Status.UNTESTED: "skipped",
    Status.ERROR: "broken",
    Status.KNOWN: "skipped",
    Status.FLAKY: "passed",
}


def write_allure(result: RunResult, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    exchanges = {exchange.id: exchange for exchange in result.recorder.exchanges}
    now = 0
    for finding in result.findings:
        requirement = finding.requirement
        status = _STATUS[finding.status]
        if result.strict and finding.status in (Status.WARNING, Status.FLAKY):
            status = "failed"
        attachments = []
        for exchange_id in dict.fromkeys(finding.evidence):
            exchange = exchanges.get(exchange_id)
            if exchange is None:
                continue
            source = f"{uuid.uuid4()}-attachment.txt"
            (directory / source).write_text(exchange.describe(), encoding="utf-8")
            attachments.append(
                {"name": f"exchange #{exchange_id}", "source": source, "type": "text/plain"}
            )
        document = {
            "uuid": str(uuid.uuid4()),
            "historyId": f"{result.role}:{result.profile}:{requirement.id}",
            "name": f"{requirement.id} {requirement.text}",
            "fullName": f"provspec.{result.role}.{requirement.step.value}.{requirement.id}",
            "status": status,
            "statusDetails": {
                "message": finding.message,
                "trace": f"source: {requirement.source}",
                "flaky": finding.status is Status.FLAKY,
            },
            "stage": "finished",
            "start": now,
            "stop": now,
            "labels": [
                {"name": "parentSuite", "value": f"{result.role} ({result.profile})"},
                {"name": "suite", "value": requirement.step.value},
                {"name": "tag", "value": requirement.level.value},
                {"name": "requirement", "value": requirement.id},
                *(
                    [{"name": "blame", "value": str(finding.as_json()["blame"])}]
                    if finding.as_json()["blame"]
                    else []
                ),
                {
                    "name": "severity",
                    "value": "critical" if requirement.level.value == "MUST" else "normal",
                },
            ],
            "attachments": attachments,
        }
        (directory / f"{document['uuid']}-result.json").write_text(
            json.dumps(document), encoding="utf-8"
        )
