"""The spend cap under a long race: hundreds of rounds of concurrent redemptions that cross it.

Starts `provspec mock orchestrator` as its own process on an SQLite state file (or two
processes on one file, `--processes 2`, requests alternating between them) and serves a mock
provider from this process. Each round takes a fresh user and fires 8 to 50 concurrent
redemptions of one random amount chosen so that their sum crosses the 10000 cap. A round
violates the cap when the number of successes differs from how many fit, the month's spend
is not successes x amount, the spend exceeds the limit, or any answer is other than 201 or
402 spend_cap_exceeded.

    python bench/cap_race.py [--rounds 500] [--processes 1] [--seed 19]

Exit status 1 on any violation. Not a test: figures vary with the machine
(tests/mocks/test_served.py and test_shared_state.py hold shorter versions).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the harness lives in tests/

from tests.mocks._load import ChildOrchestrator, Job, Sandbox, sandbox, send

LIMIT = 10000


async def race(box: Sandbox, endpoints: list[str], args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    violations: list[str] = []
    latencies: list[float] = []
    requests = 0
    statuses: Counter[int] = Counter()
    limits = httpx.Limits(max_connections=64)
    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def timed(endpoint: str, job: Job) -> tuple[int, dict[str, Any], bool] | None:
            began = time.perf_counter()
            answer = await send(client, box, endpoint, job)
            latencies.append(time.perf_counter() - began)
            return answer

        for number in range(args.rounds):
            concurrent = rng.randint(8, 50)
            amount = rng.randint(LIMIT // concurrent + 1, LIMIT)
            fit = LIMIT // amount
            user = f"usr_race_{number}"
            jobs = [box.job(user, amount) for _ in range(concurrent)]
            answers = await asyncio.gather(
                *(timed(endpoints[i % len(endpoints)], job) for i, job in enumerate(jobs))
            )
            requests += concurrent
            won = sum(1 for answer in answers if answer is not None and answer[0] == 201)
            odd = [
                answer
                for answer in answers
                if answer is None
                or not (
                    answer[0] == 201
                    or (answer[0] == 402 and answer[1].get("code") == "spend_cap_exceeded")
                )
            ]
            statuses.update(answer[0] if answer else 0 for answer in answers)
            spent = box.spent(user)
            if won != fit or spent != won * amount or spent > LIMIT or odd:
                violations.append(
                    f"round {number}: {concurrent} x {amount}: {won} succeeded, {fit} fit, "
                    f"spent {spent}, {len(odd)} unexpected answers"
                )
    elapsed = time.perf_counter() - started
    latencies.sort()
    where = "one process" if len(endpoints) == 1 else f"{len(endpoints)} processes on one file"
    print(f"rounds             {args.rounds} of 8-50 concurrent redemptions ({where}, SQLite)")
    print(f"requests           {requests}; answers {dict(sorted(statuses.items()))}")
    print(f"violations         {len(violations)}")
    for violation in violations[:10]:
        print(f"  {violation}")
    print(f"throughput         {requests / elapsed:,.0f} redemptions/s ({elapsed:.1f} s)")
    print(
        f"latency p50 / p95  {statistics.median(latencies) * 1000:.1f} ms / "
        f"{latencies[int(len(latencies) * 0.95)] * 1000:.1f} ms"
    )
    if violations:
        raise SystemExit(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=500)
    parser.add_argument("--processes", type=int, choices=(1, 2), default=1)
    parser.add_argument("--seed", type=int, default=19)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        state = Path(directory) / "orchestrator.db"
        children = [ChildOrchestrator(state)]
        if args.processes == 2:
            children.append(ChildOrchestrator(state, issuer=children[0].issuer))
        try:
            with sandbox(state, children[0].issuer) as box:
                endpoints = [child.redemption_endpoint for child in children]
                asyncio.run(race(box, endpoints, args))
        finally:
            for child in children:
                child.stop()


if __name__ == "__main__":
    main()
