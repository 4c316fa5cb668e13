"""Redemption throughput of the served mock orchestrator, and the cap invariant under load.

Starts `provspec mock orchestrator` as its own process on loopback (SQLite state), serves a
mock provider (whose keys sign the redemptions) from this process, and fires redemptions
from 64 concurrent clients. Prints requests per second, latency percentiles, and whether
every user's spend stayed within the cap. Not a test: figures vary with the machine.

    python bench/redemption_throughput.py [--clients 64] [--redemptions 3000] [--users 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

from mocks._core.store import SQLiteStore
from mocks.hosting import ServedInThread
from mocks.orchestrator.app import OrchestratorMock, OrchestratorSettings
from mocks.provider.app import ProviderMock, ProviderSettings
from wire import jose
from wire.attestation import PAYMENT_TOKEN_TYP, mint_attestation

AMOUNT = 150


def start_orchestrator(state: Path) -> tuple[subprocess.Popen[str], str]:
    command = [
        sys.executable,
        "-m",
        "conformance",
        "mock",
        "orchestrator",
        "--profile",
        "app-next",
        "--port",
        "0",
        "--state",
        str(state),
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    assert process.stdout is not None
    for _ in range(6):
        line = process.stdout.readline()
        if line.strip().startswith("issuer:"):
            return process, line.split(":", 1)[1].strip()
    process.kill()
    raise SystemExit("the orchestrator did not print its issuer")


async def run(args: argparse.Namespace, issuer: str, state: Path, provider: ProviderMock) -> None:
    core = OrchestratorMock(OrchestratorSettings(issuer=issuer, store=SQLiteStore(state)))
    now = int(time.time())
    jobs = []
    for index in range(args.redemptions):
        user = f"usr_{index % args.users}"
        claims = {
            "iss": issuer,
            "aud": provider.base_url,
            "sub": user,
            "jti": secrets.token_hex(8),
            "iat": now,
            "exp": now + 900,
            "max_amount": AMOUNT,
            "currency": "usd",
            "service_id": "gpu",
        }
        token = jose.sign(claims, core.signing_key, typ=PAYMENT_TOKEN_TYP)
        jobs.append(
            json.dumps({"payment_token": token, "amount": AMOUNT, "currency": "usd"}).encode()
        )
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)
    statuses: Counter[int] = Counter()
    retries = [0]
    latencies: list[float] = []

    async def client_loop(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            raw = queue.get_nowait()
            headers = {
                "Content-Type": "application/json",
                "Idempotency-Key": secrets.token_hex(8),
                "APP-Attestation": mint_attestation(
                    provider.signing_key,
                    issuer=provider.base_url,
                    audience=issuer,
                    subject="bench",
                    body=raw,
                    now=int(time.time()),
                    lifetime=provider.params.attestation_lifetime,
                ),
            }
            started = time.perf_counter()
            for attempt in range(3):
                try:
                    answer = await client.post(
                        core.redemption_endpoint, content=raw, headers=headers
                    )
                    break
                except httpx.TransportError:
                    # Same key, same body: a retry can never charge twice (that is the point).
                    retries[0] += 1
                    if attempt == 2:
                        raise
            latencies.append(time.perf_counter() - started)
            statuses[answer.status_code] += 1

    limits = httpx.Limits(max_connections=args.clients)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        started = time.perf_counter()
        await asyncio.gather(*(client_loop(client) for _ in range(args.clients)))
        elapsed = time.perf_counter() - started
    core.store.close()
    ledger = OrchestratorMock(OrchestratorSettings(issuer=issuer, store=SQLiteStore(state))).ledger
    spent = [ledger.state(f"usr_{user}", provider.base_url).spent for user in range(args.users)]
    held = all(value <= ledger.state("usr_0", provider.base_url).limit for value in spent)
    consistent = sum(spent) == statuses[201] * AMOUNT and statuses[201] > 0
    consistent = consistent and set(statuses) <= {201, 402}
    latencies.sort()
    print(
        f"redemptions        {args.redemptions} from {args.clients} concurrent clients, {args.users} users"
    )
    print(f"throughput         {args.redemptions / elapsed:,.0f} redemptions/s ({elapsed:.2f} s)")
    print(
        f"latency p50 / p95  {statistics.median(latencies) * 1000:.1f} ms / {latencies[int(len(latencies) * 0.95)] * 1000:.1f} ms"
    )
    print(f"answers            {dict(sorted(statuses.items()))}, {retries[0]} transport retries")
    print(
        f"cap invariant      {'held' if held and consistent else 'BROKEN'}: max spent {max(spent)} of 10000 per user; ledger total {sum(spent)} = {statuses[201]} x {AMOUNT}"
    )
    if not (held and consistent):
        raise SystemExit(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--redemptions", type=int, default=3000)
    parser.add_argument("--users", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        state = Path(directory) / "orchestrator.db"
        process, issuer = start_orchestrator(state)
        try:
            listener = ServedInThread()
            provider = ProviderMock(
                ProviderSettings(
                    profile="app-next",
                    base_url=listener.origin + "/api/app/",
                    orchestrator_issuer=issuer,
                )
            )
            with listener.serving(provider.app):
                asyncio.run(run(args, issuer, state, provider))
        finally:
            process.terminate()
            process.wait(timeout=15)


if __name__ == "__main__":
    main()
