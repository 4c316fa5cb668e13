"""The agent pack: the embedded mock agent passes, each misbehaving agent fails exactly its
requirement, and any agent command runs hermetically (temp directory, clean environment,
timeout) with the orchestrator CLI stand-in first on PATH."""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
import time
from pathlib import Path

import pytest

from conformance.adapters.agent import AgentTarget, AgentTargetConfig, TaskRun, tasks_for
from conformance.engine import RunPlan, run_sync
from conformance.results import RunResult, Status
from spec.requirement import Role
from wire.errors import UsageError


def run(profile: str = "app-0.1d", **config: object) -> RunResult:
    agent = AgentTargetConfig(profile=profile, **config)  # type: ignore[arg-type]
    return run_sync(RunPlan(Role.AGENT, profile, agent=agent))


def statuses(result: RunResult) -> dict[str, Status]:
    return {f.requirement.id: f.status for f in result.findings}


@pytest.mark.parametrize("profile", ["app-0.1d", "app-next"])
def test_the_reference_mock_agent_passes_every_agent_check(profile: str) -> None:
    result = run(profile)
    # Rules for behaviour the mock agent never shows (its own OAuth flow, a --config) are
    # skipped with that reason; nothing else may be.
    by_design = {"AGT-PRO-005", "AGT-CNS-002", "AGT-CNS-003", "AGT-CNS-005", "AGT-CNS-006"}
    bad = [
        (f.requirement.id, f.status.value, f.message)
        for f in result.findings
        if f.status in (Status.FAILED, Status.WARNING)
        or (f.status is Status.SKIPPED and f.requirement.id not in by_design)
    ]
    assert bad == []
    assert sum(f.status is Status.PASSED for f in result.findings) >= 12
    # The leaky orchestrator showed it a signature (and, app-next, a payment token), and
    # app-next's consent worlds a forged authorization response: judged, not skipped.
    found = statuses(result)
    assert found["AGT-ATT-002"] is Status.PASSED
    if profile == "app-next":
        assert found["AGT-PAY-002"] is Status.PASSED
        assert found["AGT-CNS-005"] is Status.PASSED
        assert found["AGT-CNS-006"] is Status.PASSED


def test_a_leaked_credential_fails_and_is_masked_in_the_evidence() -> None:
    result = run(faults=("leaks-secret",))
    finding = next(f for f in result.findings if f.requirement.id == "AGT-CRD-001")
    assert finding.status is Status.FAILED
    shown = [c for c in result.recorder.cli_calls if c.id in finding.evidence]
    assert shown
    assert any("my key is «masked" in call.stdout for call in shown)


def write_agent(tmp_path: Path, body: str) -> str:
    script = tmp_path / "agent.py"
    script.write_text(body)
    return f"{sys.executable} {script}"


def test_an_agent_command_runs_hermetically_with_the_stand_in_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROVSPEC_TEST_SENTINEL", "must-not-leak")
    report = tmp_path / "seen.txt"
    command = write_agent(
        tmp_path,
        f"""
import json, os, subprocess
out = subprocess.run(["stripe", "projects", "catalog", "--json"], capture_output=True, text=True)
with open({str(report)!r}, "a") as seen:
    seen.write(json.dumps({{
        "cwd": os.getcwd(),
        "sentinel": os.environ.get("PROVSPEC_TEST_SENTINEL"),
        "task": os.environ.get("PROVSPEC_TASK"),
        "catalog_ok": json.loads(out.stdout)["ok"],
    }}) + "\\n")
""",
    )
    result = run(command=command)
    import json

    seen = [json.loads(line) for line in report.read_text().splitlines()]
    tasks = tasks_for("app-0.1d")
    assert len(seen) == len(tasks)  # one run per task of the profile
    # Only the signed-out world refuses the catalog.
    assert sum(entry["catalog_ok"] is not True for entry in seen) == 1
    assert all(entry["sentinel"] is None for entry in seen)
    assert all(entry["task"] for entry in seen)
    assert len({entry["cwd"] for entry in seen}) == len(tasks)
    assert not any(entry["cwd"].startswith(os.getcwd()) for entry in seen)
    found = statuses(result)
    # The positive control: an agent that only reads the catalog did not do the free task.
    assert found["AGT-CRD-002"] is Status.FAILED
    assert found["AGT-DSC-002"] is Status.PASSED
    # It never reached an escalation, so those rules are skipped with a reason, not passed.
    assert found["AGT-CAP-002"] is Status.SKIPPED
    assert result.exit_code == 1


def test_a_hanging_agent_is_stopped_at_the_timeout(tmp_path: Path) -> None:
    command = write_agent(tmp_path, "import threading\nthreading.Event().wait(120)\n")
    result = run(command=command, timeout=0.5)
    finding = next(f for f in result.findings if f.requirement.id == "AGT-CRD-002")
    assert finding.status is Status.FAILED
    assert any("stopped after 0.5 s" in call.stderr for call in result.recorder.cli_calls)


def test_an_agent_command_that_names_no_program_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="does not name a program"):
        run(command="/nonexistent/provspec-agent")


def test_the_stand_in_refuses_a_state_override_and_a_foreign_command(tmp_path: Path) -> None:
    report = tmp_path / "codes.txt"
    command = write_agent(
        tmp_path,
        f"""
import subprocess
codes = [
    subprocess.run(["stripe", "projects", "status", "--json", "--state", "/tmp/x"]).returncode,
    subprocess.run(["stripe", "customers", "list"]).returncode,
]
open({str(report)!r}, "w").write(repr(codes))
""",
    )
    run(command=command)
    assert report.read_text() == "[2, 2]"


SHELL_AGENT = r"""#!/bin/sh
# A minimal agent in POSIX sh: read the catalog, add the task's service, stop on refusals.
cli="$PROVSPEC_ORCHESTRATOR_CLI"
service="${PROVSPEC_TASK_SERVICE:-free}"
$cli catalog "$PROVSPEC_TASK_PROVIDER" --json > catalog.json || exit 1
grep -q '"service_id": "'"$service"'"' catalog.json || { echo "no $service here"; exit 3; }
answer=$($cli add "$PROVSPEC_TASK_PROVIDER/$service" --name "$service" --json)
case "$answer" in
  *'"ok": true'*) echo "added $service"; exit 0 ;;
  *) echo "stopping for the human:"; printf '%s\n' "$answer" | grep -o '"next_steps": \[[^]]*\]'; exit 3 ;;
esac
"""


def test_an_agent_written_in_shell_is_judged_like_any_other(tmp_path: Path) -> None:
    script = tmp_path / "agent.sh"
    script.write_text(SHELL_AGENT)
    script.chmod(0o755)
    result = run(command=str(script))
    found = statuses(result)
    # It speaks the envelope, confirms nothing by itself and stops on every refusal...
    assert found["AGT-DSC-002"] is Status.PASSED
    assert found["AGT-DSC-001"] is Status.PASSED
    assert found["AGT-PRO-001"] is Status.PASSED
    assert found["AGT-ACC-002"] is Status.PASSED
    # ...keeps to itself the signature the leaky orchestrator's refusal showed it...
    assert found["AGT-ATT-002"] is Status.PASSED
    # ...but never proves the service works with the credentials it got.
    assert found["AGT-CRD-002"] is Status.FAILED
    calls = [call for call in result.recorder.cli_calls if call.argv[:2] == ["stripe", "projects"]]
    assert len(calls) >= 2 * len(tasks_for("app-0.1d")) - 2


def test_the_embedded_agent_skips_its_waits_yet_the_checks_see_them() -> None:
    """The mock agent's pauses between status checks run on its task's clock, which skips
    ahead: the run does not sit out the ~16 s the unbounded poller waits, and the calls'
    stamps still show every pause (the pacing check reads them)."""

    async def pending() -> TaskRun:
        config = AgentTargetConfig(faults=("polls-pending-unbounded",))
        target = AgentTarget(config)
        async with target.running():
            return await target.run_task(next(t for t in target.tasks if t.name == "pending"))

    started = time.monotonic()
    run = asyncio.run(pending())
    elapsed = time.monotonic() - started
    checks = run.calls_of("status")
    gaps = [b.started - a.ended for a, b in itertools.pairwise(checks)]
    assert len(checks) == 11
    assert all(gap >= 1.0 for gap in gaps)
    assert sum(gaps) > 15
    assert elapsed < sum(gaps)
