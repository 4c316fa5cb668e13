"""How long the cap-under-concurrency check (ORC-CAP-002) takes against the embedded mock
orchestrator, and what it sent: rounds of N concurrent redemptions over loopback, the winner
refunded between rounds. Prints figures; not a test (they vary with the machine and its load).

    python bench/cap_concurrency.py [--width 50] [--rounds 20] [--repeat 1]

The provider's keys are fetched once before (as in a whole run, where earlier checks have
redeemed), so the figures are the check's own.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections import Counter

from conformance.adapters.orchestrator import (
    OrchestratorContext,
    OrchestratorTarget,
    OrchestratorTargetConfig,
)
from conformance.checks import all_checks
from conformance.engine import run_check


def _check(name: str) -> object:
    return next(c for c in all_checks() if c.name == name)


async def measure(width: int, rounds: int) -> None:
    config = OrchestratorTargetConfig(
        profile="app-next", concurrent_redemptions=width, concurrency_rounds=rounds
    )
    target = OrchestratorTarget(config)
    async with target.running():
        warm = _check("redemption.redemption_needs_a_key_and_a_signature")
        await run_check(warm, OrchestratorContext(target, warm), 60)  # type: ignore[arg-type]
        check = _check("cap.concurrent_redemptions_never_cross_the_cap")
        first_exchange = target.recorder.mark
        first_call = len(target.recorder.cli_calls)
        started = time.perf_counter()
        outcome = await run_check(check, OrchestratorContext(target, check), 120)  # type: ignore[arg-type]
        elapsed = time.perf_counter() - started
        exchanges = [e for e in target.recorder.since(first_exchange) if e.direction == "sent"]
        redemptions = [e for e in exchanges if e.url.endswith("/redemptions")]
        refunds = [e for e in exchanges if e.url.endswith("/refunds")]
        mints = [c for c in target.recorder.cli_calls[first_call:] if "add" in c.argv]
        minting = sum(c.elapsed_ms for c in mints) / 1000
        statuses = Counter(e.status for e in redemptions)
        latency = sorted(e.elapsed_ms for e in redemptions)
    status, message, _ = outcome.statuses["ORC-CAP-002"]
    print(f"ORC-CAP-002, embedded mock (app-next): {width} concurrent x {rounds} rounds")
    print(f"  verdict       {status.value}{': ' + message if message else ''}")
    print(f"  check         {elapsed:.2f} s in all")
    print(f"  minting       {len(mints)} paid adds through the CLI, {minting:.2f} s")
    print(
        f"  rounds        {len(redemptions)} redemptions + {len(refunds)} refunds in "
        f"{elapsed - minting:.2f} s ({len(redemptions) / max(elapsed - minting, 1e-9):.0f}/s)"
    )
    print(f"  answers       {dict(sorted(statuses.items()))}")
    if latency:
        p95 = latency[int(len(latency) * 0.95) - 1]
        print(
            f"  latency ms    p50 {statistics.median(latency):.1f}  p95 {p95:.1f}  "
            f"max {latency[-1]:.1f}"
        )
    print(f"  machine       {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    for _ in range(args.repeat):
        asyncio.run(measure(args.width, args.rounds))


if __name__ == "__main__":
    main()
