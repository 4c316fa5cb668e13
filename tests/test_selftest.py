"""The self-test runner: every run reported as it finishes with the time left, longest runs
first, the same verdicts in a pool as in-process, and the matrix printed whole at the end."""

from __future__ import annotations

import argparse

import pytest

from conformance._cli_selftest import clock, progress_line, selftest_command
from conformance.recorder import Exchange
from conformance.selftest import (
    RunStats,
    SelftestProgress,
    _Estimate,
    count_signatures,
    run_selftest,
    startable,
)
from spec.requirement import Role

# Resource-server runs take a fraction of a second: the cheapest full runs there are.
PROFILE = "rfc9728"
FAULTS = ("prm-not-json", "prm-no-resource", "unknown-token-403")


def test_every_run_is_reported_as_it_finishes_with_the_time_left() -> None:
    steps: list[SelftestProgress] = []
    result = run_selftest((PROFILE,), roles=(Role.RESOURCE_SERVER,), only=FAULTS, tick=steps.append)
    assert [step.done for step in steps] == list(range(1, len(FAULTS) + 2))
    assert {step.total for step in steps} == {len(FAULTS) + 1}
    assert [step.row for step in steps if step.row is None] == [None]  # the reference
    assert steps[-1].left_s == 0.0
    assert all(step.left_s > 0 for step in steps[:-1])
    assert {step.row.fault.name for step in steps if step.row} == set(FAULTS)
    assert sorted(row.fault.name for row in result.rows) == sorted(FAULTS)
    assert all(row.status == "exact" for row in result.rows)
    assert result.references == {("resource-server", PROFILE): []}
    assert len(result.runs) == len(FAULTS) + 1
    assert all(stats.exchanges > 0 and stats.wall_s > 0 for *_, stats in result.runs)


def test_a_pool_judges_like_one_process() -> None:
    alone = run_selftest((PROFILE,), roles=(Role.RESOURCE_SERVER,), only=FAULTS)
    pooled = run_selftest((PROFILE,), roles=(Role.RESOURCE_SERVER,), only=FAULTS, jobs=2)
    assert pooled.references == alone.references
    assert [(r.fault.name, r.failed, r.status) for r in pooled.rows] == [
        (r.fault.name, r.failed, r.status) for r in alone.rows
    ]


def test_the_time_left_follows_what_each_kind_of_run_cost() -> None:
    slow, fast = ("orchestrator", "app-next"), ("provider", "app-next")
    estimate = _Estimate([slow, fast], [10.0, 1.0])
    assert estimate.cost(slow) == 10.0  # nothing seen: the hints
    estimate.record(fast, 2.0)
    assert estimate.cost(fast) == 2.0
    assert estimate.cost(slow) == 20.0  # unseen: its hint, as far off as the seen kinds are
    # The first run (2 s) ended 5 s in: the workers took 3 s to start, which is not a rate.
    # Then 2 s of runs went by in 2 s of wall time: the rest goes as fast.
    assert estimate.left([slow, fast], elapsed_s=5.0, done=1) == pytest.approx(22.0)
    estimate.record(fast, 2.0)
    # 4 s of runs in 3 s since the start (two workers): 22 s of runs left take 16.5 s.
    assert estimate.left([slow, fast], elapsed_s=6.0, done=2) == pytest.approx(16.5)
    assert estimate.left([], elapsed_s=6.0, done=2) == 0.0


def test_signatures_are_counted_from_headers_and_tokens_on_the_wire() -> None:
    token = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ1c3JfMSJ9." + "s" * 43
    signed = Exchange(1, "POST", "http://p/x", {"stripe-signature": "t=1,v1=ab"}, "{}")
    bearing = Exchange(2, "GET", "http://p/y", {"authorization": f"Bearer {token}"}, "")
    bearing.response_body = f'{{"token": "{token}"}}'
    shown = 'header {"alg":"EdDSA","typ":"app-attestation+jwt"} claims {"sub":"u"} signature «x»'
    attested = Exchange(3, "POST", "http://p/v", {"app-attestation": shown}, "")
    plain = Exchange(4, "GET", "http://p/z", {"accept": "application/json"}, "eyJ.not.a-token")
    assert count_signatures([signed, bearing, attested, plain]) == 4


def test_progress_lines_say_how_far_and_how_long() -> None:
    assert clock(0) == "0:00"
    assert clock(75.4) == "1:15"
    assert clock(3725) == "1:02:05"
    stats = RunStats(frozenset({"RS-PRM-001"}), 2.04, 1.0, 10, 0, 0)
    step = SelftestProgress("resource-server", PROFILE, None, stats, 3, 120, 61.0, 125.0)
    assert progress_line(step) == (
        "[  3/120 1:01, ~2:05 left] reference mock resource-server (rfc9728): FAILED RS-PRM-001"
        " (2.0 s)"
    )


def test_the_command_prints_progress_then_the_whole_matrix_in_order(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = argparse.Namespace(
        profile=[PROFILE], role=["resource-server"], fault=list(FAULTS), jobs=1
    )
    assert selftest_command(args) == 0
    out = capsys.readouterr().out
    assert f"{len(FAULTS) + 1} runs (each reference, then each fault)" in out
    progress = [line for line in out.splitlines() if line.startswith("[")]
    assert len(progress) == len(FAULTS) + 1
    assert all("left]" in line for line in progress)
    matrix = out[out.index("  mock ") :]
    names = [name for name in sorted(FAULTS) if name in matrix]
    assert sorted(names, key=matrix.index) == names  # catalogue order, whatever finished first
    assert all("caught exactly" in line for line in matrix.splitlines() if "prm-" in line)
    assert f"reference mock resource-server ({PROFILE}): clean" in out
    assert "detection rate 100%" in out
    assert "false positives 0" in out


def test_runs_start_while_their_shares_of_the_cores_fit() -> None:
    shares = [0.9, 0.9, 0.6, 0.6, 0.6]
    # Two cores: the two long runs first; no third fits beside them.
    assert startable(range(5), shares, busy=0.0, going=0, jobs=2) == [0, 1]
    # One long run going: the next long one and nothing more (0.9 + 0.9 + 0.6 > 2).
    assert startable([1, 2, 3, 4], shares, busy=0.9, going=1, jobs=2) == [1]
    # Runs that mostly wait overlap: three at 0.6 share two cores.
    assert startable([2, 3, 4], shares, busy=0.0, going=0, jobs=2) == [2, 3, 4]
    # A long run that does not fit lets a smaller one behind it go.
    assert startable([0, 2], shares, busy=1.2, going=2, jobs=2) == [2]
    # Never more than twice the cores at once; one at least when nothing is going.
    assert startable(range(6), [0.1] * 6, busy=0.0, going=0, jobs=2) == [0, 1, 2, 3]
    assert startable([0], [1.5], busy=0.0, going=0, jobs=1) == [0]


def test_a_kinds_share_of_a_core_follows_its_runs() -> None:
    agent = ("agent", "app-next")
    estimate = _Estimate([agent], [3.0], [0.6])
    assert estimate.share(agent) == 0.6  # the hint, before any run
    estimate.record(agent, wall_s=4.0, cpu_s=1.0)
    estimate.record(agent, wall_s=4.0, cpu_s=2.0)
    assert estimate.share(agent) == pytest.approx(3.0 / 8.0)
    estimate.record(agent, wall_s=100.0, cpu_s=0.0)
    assert estimate.share(agent) == 0.25  # a run never counts as free
    estimate.record(agent, wall_s=0.1, cpu_s=500.0)
    assert estimate.share(agent) == 1.0  # nor as more than one interpreter
