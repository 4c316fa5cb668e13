"""JUnit XML: one test suite per protocol step, one test case per requirement."""

from __future__ import annotations

from xml.etree import ElementTree as ET

from conformance.results import RunResult, Status


def render_junit(result: RunResult) -> str:
    exchanges = {exchange.id: exchange for exchange in result.recorder.exchanges}
    root = ET.Element("testsuites", name=f"provspec {result.role} {result.profile}")
    suites: dict[str, ET.Element] = {}
    for finding in result.findings:
        step = finding.requirement.step.value
        suite = suites.get(step)
        if suite is None:
            suite = suites[step] = ET.SubElement(root, "testsuite", name=f"{result.role}.{step}")
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"{result.role}.{step}",
            name=f"{finding.requirement.id} [{finding.requirement.level.value}]",
        )
        evidence = "\n\n".join(exchanges[i].describe() for i in finding.evidence if i in exchanges)
        body = f"{finding.requirement.text}\nsource: {finding.requirement.source}\n\n{evidence}".strip()
        blame = finding.as_json()["blame"]
        if blame:
            properties = ET.SubElement(case, "properties")
            ET.SubElement(properties, "property", name="blame", value=str(blame))
        failing = (Status.WARNING, Status.FLAKY) if result.strict else ()
        if finding.status is Status.ERROR:
            ET.SubElement(
                case, "error", message=f"{blame} error: {finding.message}"[:500]
            ).text = body
        elif finding.status is Status.FAILED or finding.status in failing:
            ET.SubElement(case, "failure", message=finding.message[:500]).text = body
        elif finding.status is Status.KNOWN:
            ET.SubElement(case, "skipped", message=f"known failure: {finding.message}"[:500])
        elif finding.status is Status.FLAKY:
            ET.SubElement(case, "system-out").text = f"flaky: {finding.message}\n\n{body}"
        elif finding.status in (Status.SKIPPED, Status.NOT_APPLICABLE, Status.UNTESTED):
            ET.SubElement(
                case, "skipped", message=f"{finding.status.value}: {finding.message}"[:500]
            )
        elif finding.status is Status.WARNING:
            ET.SubElement(
                case, "system-out"
            ).text = f"warning (SHOULD): {finding.message}\n\n{body}"
    for suite in suites.values():
        cases = list(suite)
        suite.set("tests", str(len(cases)))
        suite.set("failures", str(sum(1 for c in cases if c.find("failure") is not None)))
        suite.set("skipped", str(sum(1 for c in cases if c.find("skipped") is not None)))
        suite.set("errors", str(sum(1 for c in cases if c.find("error") is not None)))
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
