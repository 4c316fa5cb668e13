"""A run result made by hand, for the report tests: every status, baselines, harness problems,
evidence with long bodies and requests to compare, without running a check."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

from conformance.baseline import Baseline, BaselineEntry
from conformance.recorder import Exchange, Recorder
from conformance.results import Blame, Finding, RunResult, Status
from conformance.verdict import apply_baseline
from spec.registry import default_registry
from spec.requirement import Role

T0 = 1_796_000_000.0
"""When the hand-made run started (Unix time)."""
SECRET = "whsec_report_world_SECRET_2f9c1d"
"""A secret the hand-made configuration holds: no report may show it."""
MUST_IDS = ("PRV-ATT-001", "PRV-ATT-002", "PRV-ATT-003", "PRV-ATT-004", "PRV-ATT-005")
SHOULD_ID = "PRV-DSC-005"
LONG_BODY = json.dumps({"items": [{"n": n, "text": "x" * 40} for n in range(60)]})


@dataclass
class World:
    statuses: dict[str, Status] = field(default_factory=dict)
    strict: bool = False
    stale: tuple[str, ...] = ()
    """Baseline entries whose requirement passes (stale)."""
    expired: tuple[str, ...] = ()
    harness: bool = False


def exchange(recorder: Recorder, body: str, *, url: str = "https://p.test/api/app/x") -> Exchange:
    item = Exchange(
        recorder.next_id(),
        "POST",
        url,
        {"content-type": "application/json", "stripe-signature": "«masked 0123abcd»"},
        body,
        200,
        {"content-type": "application/json"},
        LONG_BODY,
        elapsed_ms=12.5,
    )
    recorder.exchanges.append(item)
    return item


def make_result(world: World) -> RunResult:
    registry = default_registry()
    recorder = Recorder()
    statuses = dict.fromkeys((*MUST_IDS, SHOULD_ID), Status.PASSED)
    statuses.update(world.statuses)
    findings: list[Finding] = []
    times: dict[str, tuple[float, float]] = {}
    for number, (identifier, status) in enumerate(statuses.items()):
        name = f"world.check_{identifier.lower().replace('-', '_')}"
        times[name] = (T0 + number, 0.25 + number / 100)
        finding = Finding(registry[identifier], status, checks=[name])
        if status is not Status.PASSED:
            finding.message = f"{status.value} because of the world ({identifier})"
        if status in (Status.FAILED, Status.WARNING, Status.ERROR, Status.FLAKY):
            first = exchange(recorder, '{"id": "acctreq_1", "email": "a@example.com"}')
            second = exchange(recorder, '{"id": "acctreQ_1", "email": "a@example.com"}')
            finding.evidence = [first.id, second.id]
            finding.blame = Blame.HARNESS if status is Status.ERROR else Blame.IMPLEMENTATION
        findings.append(finding)
    result = RunResult(
        Role.PROVIDER.value,
        "app-0.1d",
        "https://p.test/api/app/",
        findings,
        recorder,
        duration_s=9.5,
        strict=world.strict,
        check_times=times,
        started_at=T0 - 0.5,
        command=["provspec", "run", "--hmac-secret", "«masked»"],
        config={"options": {"hmac_secret": "«masked»"}, "values": {}, "file": None},
    )
    if world.harness:
        result.harness_problems.append({"exchange": 1, "message": "the mock's answer is invalid"})
    entries = [BaselineEntry(identifier, "fixed since") for identifier in world.stale]
    entries += [
        BaselineEntry(identifier, "until PROJ-9", expires=dt.date(2020, 1, 1))
        for identifier in world.expired
    ]
    if entries:
        apply_baseline(result, Baseline(tuple(entries)), dt.date(2026, 6, 1))
    return result
