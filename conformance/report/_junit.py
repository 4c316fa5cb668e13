"""JUnit XML: one test suite per protocol step, one test case per requirement.

It agrees with the exit code (conformance/report/_outcome.py): a `<failure>` exactly when the
run exits 1 (a stale or expired baseline entry included), an `<error>` when it exits 3. A
SHOULD warning or a flake passes, but says so: a `status` property on the test case and its
reason in `<system-out>`. Every test case has its real duration; `<testsuites>` and each
`<testsuite>` carry the totals (tests, failures, errors, skipped, time), and each
`<testsuite>` the run's provenance as `<properties>`.
"""

from __future__ import annotations

import json
from typing import Any
from xml.etree import ElementTree as ET

from conformance.report._outcome import CaseStatus, Outcome, extra_outcomes, outcome, verdict_word
from conformance.results import RunResult

__all__ = ["provenance_properties", "render_junit"]

_MESSAGE_CHARS = 500


def provenance_properties(result: RunResult, document: dict[str, Any]) -> dict[str, str]:
    """The provenance as flat name=value pairs (JUnit properties, Allure environment)."""
    provenance: dict[str, Any] = document["provenance"]
    shown = {
        "provspec.version": provenance["provspec_version"],
        "provspec.verdict": verdict_word(result).lower(),
        "provspec.exit_code": str(result.exit_code),
        "provspec.role": provenance["role"],
        "provspec.profile": provenance["profile"],
        "provspec.target": provenance["target"],
        "provspec.timestamp": provenance["timestamp"],
        "provspec.registry_digest": provenance["registry_digest"] or "unknown",
        "provspec.profile_digest": provenance["profile_digest"] or "unknown",
        "provspec.command": provenance["command_line"] or "(not run from the command line)",
        "provspec.config": json.dumps(provenance["config"], sort_keys=True, ensure_ascii=False),
        "provspec.strict": str(provenance["strict"]).lower(),
        "provspec.results_digest": document["integrity"]["digest"],
    }
    return {name: str(value) for name, value in shown.items()}


def _seconds(value: float) -> str:
    return f"{value:.6f}"


def _case(suite: ET.Element, classname: str, name: str, seconds: float) -> ET.Element:
    return ET.SubElement(suite, "testcase", classname=classname, name=name, time=_seconds(seconds))


def _judge(case: ET.Element, judged: Outcome, body: str, properties: dict[str, str]) -> None:
    if properties:
        element = ET.SubElement(case, "properties")
        for name, value in properties.items():
            ET.SubElement(element, "property", name=name, value=value)
    message = judged.message[:_MESSAGE_CHARS]
    if judged.status is CaseStatus.FAILED:
        ET.SubElement(case, "failure", message=message, type="conformance").text = body
    elif judged.status is CaseStatus.ERROR:
        ET.SubElement(case, "error", message=message, type="not judged").text = body
    elif judged.status is CaseStatus.SKIPPED:
        ET.SubElement(case, "skipped", message=message)
    elif judged.status in (CaseStatus.WARNING, CaseStatus.FLAKY):
        ET.SubElement(
            case, "system-out"
        ).text = f"{judged.status.value.upper()}: {judged.message}\n\n{body}"


def _totals(element: ET.Element, cases: list[ET.Element], seconds: float) -> None:
    element.set("tests", str(len(cases)))
    for total, tag in (("failures", "failure"), ("errors", "error"), ("skipped", "skipped")):
        element.set(total, str(sum(1 for case in cases if case.find(tag) is not None)))
    element.set("time", _seconds(seconds))


def render_junit(result: RunResult) -> str:
    document = result.as_json()
    provenance = provenance_properties(result, document)
    exchanges = {exchange.id: exchange for exchange in result.recorder.exchanges}
    calls = {call.id: call for call in result.recorder.cli_calls}
    timestamp = result.started.strftime("%Y-%m-%dT%H:%M:%S")
    root = ET.Element("testsuites", name=f"provspec {result.role} {result.profile}")
    suites: dict[str, ET.Element] = {}
    times: dict[str, float] = {}

    def suite_for(name: str) -> ET.Element:
        if name not in suites:
            suite = suites[name] = ET.SubElement(
                root, "testsuite", name=f"{result.role}.{name}", timestamp=timestamp
            )
            properties = ET.SubElement(suite, "properties")
            for key, value in provenance.items():
                ET.SubElement(properties, "property", name=key, value=value)
            times[name] = 0.0
        return suites[name]

    for name, extra in extra_outcomes(result):
        case = _case(suite_for("run"), f"{result.role}.run", name, 0.0)
        _judge(case, extra, extra.message, {"status": extra.status.value})
    for finding in result.findings:
        requirement = finding.requirement
        step = requirement.step.value
        seconds = result.timing(finding)[1]
        suite = suite_for(step)
        times[step] += seconds
        case = _case(
            suite, f"{result.role}.{step}", f"{requirement.id} [{requirement.level.value}]", seconds
        )
        shown = [
            item.describe()
            for i in dict.fromkeys(finding.evidence)
            if (item := exchanges.get(i) or calls.get(i)) is not None
        ]
        body = (
            f"{requirement.text}\nsource: {requirement.source}\n\n" + "\n\n".join(shown)
        ).strip()
        blame = finding.as_json()["blame"]
        properties = {
            "requirement": requirement.id,
            "level": requirement.level.value,
            "status": finding.status.value,
            **({"blame": str(blame)} if blame else {}),
            **({"baseline": finding.baseline} if finding.baseline else {}),
        }
        _judge(case, outcome(result, finding), body, properties)
    every: list[ET.Element] = []
    for name, suite in suites.items():
        cases = suite.findall("testcase")
        every += cases
        _totals(suite, cases, times[name])
    _totals(root, every, result.duration_s)
    root.set("timestamp", timestamp)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
