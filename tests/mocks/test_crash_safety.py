"""Issue 19, finding 1: after any crash every Idempotency-Key either replays its recorded
answer or can be retried safely, and the ledger is exactly the sum of the redemptions.

The served mock orchestrator runs as a child process and is really `kill -9`ed in the middle
of concurrent redemptions, round after round (bench/crash_restart.py runs 40 and more). The
in-process tests pin the two mechanisms: the charge and the recorded answer commit together,
and an in-flight record whose owner is gone is taken over.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from mocks._core.store import MemoryStore, SQLiteStore, Store
from mocks.orchestrator._idempotency import (
    LEASE_SECONDS,
    Begun,
    IdempotencyLedger,
    InFlight,
    Replay,
    Settled,
)
from tests.mocks._load import (
    ChildOrchestrator,
    Job,
    burst_then_kill,
    judge,
    resend_all,
    sandbox,
)
from wire.clock import FrozenClock

ROUNDS = 4
PER_ROUND = 24
AMOUNT = 1500
"""Six redemptions fit a user's 10000 a month: each round has successes and cap refusals."""


def test_kill_9_under_load_leaves_no_key_stuck_and_the_ledger_exact(tmp_path: Path) -> None:
    state, log = tmp_path / "orchestrator.db", tmp_path / "orchestrator.log"
    child = ChildOrchestrator(state, log=log)
    port = child.port
    killed_with_requests_open = 0
    try:
        with sandbox(state, child.issuer) as box:
            unanswered: list[Job] = []
            for round_number in range(ROUNDS):
                fresh = [box.job(f"usr_{round_number}", AMOUNT) for _ in range(PER_ROUND)]
                jobs = unanswered + fresh
                still_open = asyncio.run(
                    burst_then_kill(box, child, jobs, kill_after=PER_ROUND // 3)
                )
                killed_with_requests_open += still_open > 0
                unanswered = [job for job in jobs if job.first is None]
                # The same port, so the issuer (its own origin) and the tokens stay valid.
                child = ChildOrchestrator(state, port=port, log=log)
            asyncio.run(resend_all(box, child.redemption_endpoint, box.jobs))
            verdict = judge(box)
    finally:
        child.stop()
    assert killed_with_requests_open >= ROUNDS // 2, "the kills must land under load"
    assert verdict.stuck == [], f"{len(verdict.stuck)} keys still in flight after a restart"
    assert verdict.changed == [], "a key's replay differs from its answer before the kill"
    assert verdict.ledger_errors == []
    assert "Traceback" not in log.read_text()


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    return MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "s.db")


RAW = json.dumps({"amount": 100}).encode()


def test_the_work_and_its_recorded_answer_commit_together_or_not_at_all(store: Store) -> None:
    ledger = IdempotencyLedger(store, FrozenClock())
    assert isinstance(ledger.begin("prv", "redemptions", "k", RAW), Begun)

    def charge_then_crash() -> tuple[int, dict[str, object]]:
        store.put("cap_spent", "usr", 100)
        raise RuntimeError("the process dies here")

    with pytest.raises(RuntimeError):
        ledger.settle("prv", "redemptions", "k", RAW, charge_then_crash)
    assert store.get("cap_spent", "usr") is None  # no charge without its answer

    def charge() -> tuple[int, dict[str, object]]:
        store.put("cap_spent", "usr", 100)
        return 201, {"id": "rdm_1"}

    assert ledger.settle("prv", "redemptions", "k", RAW, charge) == Settled(201, {"id": "rdm_1"})
    assert store.get("cap_spent", "usr") == 100
    assert ledger.begin("prv", "redemptions", "k", RAW) == Replay(201, {"id": "rdm_1"})


def test_an_in_flight_key_of_a_process_that_died_is_taken_over_at_once(store: Store) -> None:
    clock = FrozenClock()
    crashed = IdempotencyLedger(store, clock)
    assert isinstance(crashed.begin("prv", "redemptions", "k", RAW), Begun)
    # The record names this host and pid; the restarted mock sees another pid that is gone.
    record = store.get("idempotency", "prv\x1fredemptions\x1fk")
    assert record is not None
    record["owner"]["pid"] = 2**22 + 1
    store.put("idempotency", "prv\x1fredemptions\x1fk", record)
    restarted = IdempotencyLedger(store, clock)
    restarted.alive = lambda pid: False
    assert isinstance(restarted.begin("prv", "redemptions", "k", RAW), Begun)
    # A live owner keeps its key: the same request meanwhile is 409.
    assert isinstance(
        IdempotencyLedger(store, clock).begin("prv", "redemptions", "k", RAW), InFlight
    )


def test_an_in_flight_key_whose_lease_ran_out_is_taken_over(store: Store) -> None:
    clock = FrozenClock()
    first, second = IdempotencyLedger(store, clock), IdempotencyLedger(store, clock)
    assert isinstance(first.begin("prv", "redemptions", "k", RAW), Begun)
    assert isinstance(second.begin("prv", "redemptions", "k", RAW), InFlight)
    clock.advance(LEASE_SECONDS)
    assert isinstance(second.begin("prv", "redemptions", "k", RAW), Begun)
    # The first request, back from a long pause, finds its key taken and charges nothing.
    assert isinstance(first.settle("prv", "redemptions", "k", RAW, _never), InFlight)
    assert second.settle("prv", "redemptions", "k", RAW, lambda: (201, {"id": "rdm_2"})) == Settled(
        201, {"id": "rdm_2"}
    )


def _never() -> tuple[int, dict[str, object]]:
    raise AssertionError("a request that lost its key must not charge")
