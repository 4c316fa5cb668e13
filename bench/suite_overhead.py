"""The suite's own overhead per HTTP exchange, against a bare httpx loop.

Serves `provspec mock provider` (app-0.1d) in its own process, then makes the same N signed
GET provisioning/health exchanges twice: with a bare httpx client, and through the suite's
path (the orchestrator-side signer, the recording transport, masking of secrets). Prints
both rates and the ratio. Not a test: figures vary with the machine.

    python bench/suite_overhead.py [--exchanges 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time

import httpx

from conformance.recorder import Recorder, RecordingTransport
from mocks._core.store import MemoryStore
from mocks.hosting import bind
from mocks.orchestrator.app import OrchestratorMock, OrchestratorSettings
from mocks.orchestrator.engine import Orchestrator, ProviderRecord
from wire import stripe_signature

SECRET = "whsec_bench"


async def bare(base: str, count: int) -> float:
    async with httpx.AsyncClient() as client:
        started = time.perf_counter()
        for _ in range(count):
            signature = stripe_signature.sign(SECRET, b"", int(time.time()))
            response = await client.get(
                base + "provisioning/health",
                headers={"API-Version": "0.1d", "Stripe-Signature": signature},
            )
            assert response.status_code == 200
        return time.perf_counter() - started


async def suite(base: str, count: int) -> tuple[float, int]:
    recorder = Recorder()
    core = OrchestratorMock(
        OrchestratorSettings(profile="app-0.1d", issuer="http://127.0.0.1:1", store=MemoryStore())
    )
    async with httpx.AsyncClient(
        transport=RecordingTransport(httpx.AsyncHTTPTransport(), recorder)
    ) as client:
        orchestrator = Orchestrator(core, client)
        record = ProviderRecord(name="bench", base_url=base, hmac_secret=SECRET)
        orchestrator.add_provider(record)
        started = time.perf_counter()
        for _ in range(count):
            response = await orchestrator.call(record, "GET", "provisioning/health")
            assert response.status_code == 200
        return time.perf_counter() - started, len(recorder.exchanges)


def main() -> None:
    parser = argparse.ArgumentParser(description="suite overhead per exchange vs bare httpx")
    parser.add_argument("--exchanges", type=int, default=2000)
    args = parser.parse_args()
    probe = bind("127.0.0.1", 0)
    port = probe.port
    probe.sock.close()
    command = [
        sys.executable,
        "-m",
        "conformance",
        "mock",
        "provider",
        "--port",
        str(port),
        "--hmac-secret",
        SECRET,
    ]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    ) as mock:
        try:
            assert mock.stdout is not None
            mock.stdout.readline()
            base = f"http://127.0.0.1:{port}/api/app/"
            asyncio.run(bare(base, 50))  # warm up both sides
            bare_s = asyncio.run(bare(base, args.exchanges))
            suite_s, recorded = asyncio.run(suite(base, args.exchanges))
        finally:
            mock.terminate()
            mock.wait(timeout=15)
    per_bare = bare_s / args.exchanges * 1e6
    per_suite = suite_s / args.exchanges * 1e6
    print(f"exchanges          {args.exchanges} signed GET provisioning/health on loopback")
    print(f"bare httpx         {per_bare:8.0f} µs per exchange ({args.exchanges / bare_s:,.0f}/s)")
    print(
        f"through the suite  {per_suite:8.0f} µs per exchange ({args.exchanges / suite_s:,.0f}/s), {recorded} recorded"
    )
    print(
        f"ratio              {suite_s / bare_s:.2f}x  (suite overhead {per_suite - per_bare:.0f} µs per exchange)"
    )


if __name__ == "__main__":
    main()
