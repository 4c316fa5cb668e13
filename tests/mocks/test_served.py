"""What only real sockets show: the cap under concurrent load, state across a restart, and
the `provspec mock` command's lifecycle."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx

from mocks._core.store import SQLiteStore
from mocks.hosting import ServedInThread
from mocks.orchestrator.app import OrchestratorMock, OrchestratorSettings
from mocks.provider.app import ProviderMock, ProviderSettings
from wire import jose, stripe_signature
from wire.attestation import PAYMENT_TOKEN_TYP, mint_attestation


def mint(core: OrchestratorMock, *, user: str, audience: str, max_amount: int) -> str:
    now = core.clock.timestamp()
    claims = {
        "iss": core.issuer,
        "aud": audience,
        "sub": user,
        "jti": secrets.token_hex(8),
        "iat": now,
        "exp": now + 600,
        "max_amount": max_amount,
        "currency": "usd",
        "service_id": "gpu",
        "project_id": "proj_1",
    }
    return jose.sign(claims, core.signing_key, typ=PAYMENT_TOKEN_TYP)


async def redeem(
    client: httpx.AsyncClient,
    core: OrchestratorMock,
    provider: ProviderMock,
    token: str,
    amount: int,
) -> int:
    raw = json.dumps({"payment_token": token, "amount": amount, "currency": "usd"}).encode()
    headers = {
        "Content-Type": "application/json",
        "Idempotency-Key": secrets.token_hex(8),
        "APP-Attestation": mint_attestation(
            provider.signing_key,
            issuer=provider.base_url,
            audience=core.issuer,
            subject="usr",
            body=raw,
            now=core.clock.timestamp(),
            lifetime=provider.params.attestation_lifetime,
        ),
    }
    answer = await client.post(core.redemption_endpoint, content=raw, headers=headers)
    return answer.status_code


def test_fifty_concurrent_redemptions_against_the_cap_give_exactly_one_success_twenty_times(
    tmp_path: Path,
) -> None:
    orchestrator_listener, provider_listener = ServedInThread(), ServedInThread()
    core = OrchestratorMock(
        OrchestratorSettings(
            issuer=orchestrator_listener.origin, store=SQLiteStore(tmp_path / "o.db")
        )
    )
    provider = ProviderMock(
        ProviderSettings(
            profile="app-next",
            base_url=provider_listener.origin + "/api/app/",
            orchestrator_issuer=core.issuer,
        )
    )

    async def burst(user: str) -> Counter[int]:
        tokens = [
            mint(core, user=user, audience=provider.base_url, max_amount=6000) for _ in range(50)
        ]
        limits = httpx.Limits(max_connections=50)
        async with httpx.AsyncClient(timeout=30, limits=limits) as client:
            statuses = await asyncio.gather(
                *(redeem(client, core, provider, t, 6000) for t in tokens)
            )
        return Counter(statuses)

    with orchestrator_listener.serving(core.app), provider_listener.serving(provider.app):
        for round_number in range(20):
            user = f"usr_round{round_number}"
            outcome = asyncio.run(burst(user))
            assert outcome == Counter({201: 1, 402: 49}), (round_number, outcome)
            state = core.ledger.state(user, provider.base_url)
            assert (state.spent, state.remaining) == (6000, 4000)


def test_a_restarted_orchestrator_keeps_its_ledger_key_and_user_from_the_state_file(
    tmp_path: Path,
) -> None:
    state_file = tmp_path / "orchestrator.db"
    provider_listener = ServedInThread()
    first = ServedInThread()
    port = first.port
    core = OrchestratorMock(
        OrchestratorSettings(issuer=first.origin, store=SQLiteStore(state_file))
    )
    provider = ProviderMock(
        ProviderSettings(
            profile="app-next",
            base_url=provider_listener.origin + "/api/app/",
            orchestrator_issuer=core.issuer,
        )
    )
    token = mint(core, user="usr_1", audience=provider.base_url, max_amount=6000)
    kid = core.signing_key.kid

    async def once(core: OrchestratorMock, token: str) -> int:
        async with httpx.AsyncClient(timeout=30) as client:
            return await redeem(client, core, provider, token, 6000)

    with provider_listener.serving(provider.app):
        with first.serving(core.app):
            assert asyncio.run(once(core, token)) == 201
        core.store.close()
        again = ServedInThread(port=port)
        restarted = OrchestratorMock(
            OrchestratorSettings(issuer=again.origin, store=SQLiteStore(state_file))
        )
        with again.serving(restarted.app):
            assert restarted.signing_key.kid == kid
            assert restarted.ledger.state("usr_1", provider.base_url).spent == 6000
            # The token redeemed before the restart is still known as used.
            assert asyncio.run(once(restarted, token)) == 402
        restarted.store.close()


def test_provspec_mock_provider_prints_its_trust_material_and_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    command = [
        sys.executable,
        "-m",
        "conformance",
        "mock",
        "provider",
        "--port",
        "0",
        "--state",
        str(tmp_path / "p.db"),
    ]
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment
    ) as process:
        try:
            assert process.stdout is not None
            banner = [process.stdout.readline() for _ in range(4)]
            fields = dict(line.strip().split(":", 1) for line in banner[1:] if ":" in line)
            base_url = fields["base URL"].strip()
            secret = fields["HMAC secret"].split()[0]
            assert base_url.startswith("http://127.0.0.1:")
            signature = stripe_signature.sign(secret, b"", int(time.time()))
            answer = httpx.get(
                base_url + "provisioning/health",
                timeout=10,
                headers={"API-Version": "0.1d", "Stripe-Signature": signature},
            )
            assert answer.json() == {"supported_versions": ["0.1d"], "status": "ok"}
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=15) == 0
            assert "Traceback" not in (process.stderr.read() if process.stderr else "")
        finally:
            if process.poll() is None:
                process.kill()


def test_the_cap_not_atomic_fault_really_overshoots_the_cap_under_load(tmp_path: Path) -> None:
    # The fault exists so the suite can prove it detects a racy ledger; it must really race.
    orchestrator_listener, provider_listener = ServedInThread(), ServedInThread()
    core = OrchestratorMock(
        OrchestratorSettings(issuer=orchestrator_listener.origin, faults=("cap-not-atomic",))
    )
    provider = ProviderMock(
        ProviderSettings(
            profile="app-next",
            base_url=provider_listener.origin + "/api/app/",
            orchestrator_issuer=core.issuer,
        )
    )

    async def burst() -> Counter[int]:
        tokens = [
            mint(core, user="u", audience=provider.base_url, max_amount=6000) for _ in range(50)
        ]
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=50)) as client:
            return Counter(
                await asyncio.gather(*(redeem(client, core, provider, t, 6000) for t in tokens))
            )

    with orchestrator_listener.serving(core.app), provider_listener.serving(provider.app):
        outcome = asyncio.run(burst())
    assert outcome[201] > 1
    assert core.ledger.state("u", provider.base_url).spent > 10000
