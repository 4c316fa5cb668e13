"""Crash safety of the served mock orchestrator: `kill -9` under load, round after round.

Starts `provspec mock orchestrator` as a child process on an SQLite state file and serves a
mock provider (whose keys sign the redemptions) from this process. Each round fires a burst of
concurrent redemptions, each with its own Idempotency-Key (keys left unanswered by the
previous kill are sent again with them), `kill -9`s the child as soon as a third of the burst
has been answered, and restarts it on the same port and file. At the end every key is sent
once more and judged: a key answered before a kill must replay that answer
(`Idempotent-Replayed: true`), no key may still be `409 idempotency_in_flight` (stuck), and
each user's month's spend must equal the sum of its successful redemptions.

    python bench/crash_restart.py [--rounds 40] [--per-round 24] [--amount 1500]

Exit status 1 when a key is stuck, a replay changed, or the ledger is off. Not a test:
tests/mocks/test_crash_safety.py runs the same harness for a few rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the harness lives in tests/

from tests.mocks._load import (
    ChildOrchestrator,
    Job,
    burst_then_kill,
    judge,
    resend_all,
    sandbox,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=40, help="kills (default 40)")
    parser.add_argument("--per-round", type=int, default=24, help="new keys per burst")
    parser.add_argument("--amount", type=int, default=1500, help="minor units per redemption")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        state, log = Path(directory) / "orchestrator.db", Path(directory) / "orchestrator.log"
        started = time.perf_counter()
        child = ChildOrchestrator(state, log=log)
        port = child.port
        restarts: list[float] = []
        open_at_kill: list[int] = []
        try:
            with sandbox(state, child.issuer) as box:
                unanswered: list[Job] = []
                for round_number in range(args.rounds):
                    fresh = [
                        box.job(f"usr_{round_number}", args.amount) for _ in range(args.per_round)
                    ]
                    jobs = unanswered + fresh
                    open_at_kill.append(
                        asyncio.run(
                            burst_then_kill(
                                box, child, jobs, kill_after=max(1, args.per_round // 3)
                            )
                        )
                    )
                    unanswered = [job for job in jobs if job.first is None]
                    restart = time.perf_counter()
                    child = ChildOrchestrator(state, port=port, log=log)
                    restarts.append(time.perf_counter() - restart)
                asyncio.run(resend_all(box, child.redemption_endpoint, box.jobs))
                verdict = judge(box)
                answered_before = sum(job.first is not None for job in box.jobs)
                succeeded = sum(
                    1 for job in box.jobs if job.final is not None and job.final[0] == 201
                )
        finally:
            child.stop()
        elapsed = time.perf_counter() - started
        tracebacks = log.read_text().count("Traceback")
    print(f"kill -9 rounds      {args.rounds} (a burst of {args.per_round} new keys each)")
    print(
        f"keys                {verdict.keys}: {answered_before} answered before a kill, "
        f"{verdict.keys - answered_before} only after a restart"
    )
    under_load = sum(count > 0 for count in open_at_kill)
    print(
        f"open at each kill   {under_load} of {args.rounds} kills cut requests in flight "
        f"(median {statistics.median(open_at_kill):.0f} open)"
    )
    print(f"redemptions         {succeeded} succeeded, {verdict.keys - succeeded} refused (cap)")
    print(f"stuck keys          {len(verdict.stuck)} (409 idempotency_in_flight after restart)")
    print(f"changed replays     {len(verdict.changed)}")
    print(f"ledger              {'exact' if not verdict.ledger_errors else verdict.ledger_errors}")
    print(f"restart             median {statistics.median(restarts) * 1000:.0f} ms to serving")
    print(f"tracebacks logged   {tracebacks}")
    print(f"elapsed             {elapsed:.1f} s")
    if not verdict.ok or tracebacks:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
