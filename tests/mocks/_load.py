"""Load on a served mock orchestrator that runs as a child process, for what only a real
process shows: a `kill -9` in the middle of redemptions, two processes on one state file.

Used by tests/mocks/test_crash_safety.py (a few rounds) and by bench/crash_restart.py and
bench/cap_race.py (the long figures). Every wait has a deadline; nothing sleeps to
synchronise: a kill happens when a given number of answers has arrived.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from mocks._core.store import SQLiteStore
from mocks.hosting import ServedInThread
from mocks.orchestrator.app import OrchestratorMock, OrchestratorSettings
from mocks.provider.app import ProviderMock, ProviderSettings
from wire import jose
from wire.attestation import PAYMENT_TOKEN_TYP, mint_attestation

STARTUP_SECONDS = 20.0
REQUEST_SECONDS = 30.0


class ChildOrchestrator:
    """`provspec mock orchestrator` in its own process, on a state file."""

    def __init__(
        self, state: Path, *, port: int = 0, issuer: str | None = None, log: Path | None = None
    ) -> None:
        command = [
            sys.executable,
            "-m",
            "conformance",
            "mock",
            "orchestrator",
            "--profile",
            "app-next",
            "--port",
            str(port),
            "--state",
            str(state),
        ]
        if issuer is not None:
            command += ["--issuer", issuer]
        self._log = open(log or os.devnull, "a")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.fields = self._banner()
        self.issuer = self.fields["issuer"]
        self.origin = self.fields.get("origin", self.issuer)
        """Where it listens (its issuer too, unless one was given)."""
        self.port = int(self.origin.rsplit(":", 1)[1])
        self.redemption_endpoint = self.origin + "/redemptions"

    def _banner(self) -> dict[str, str]:
        assert self.process.stdout is not None
        deadline = time.monotonic() + STARTUP_SECONDS
        fields: dict[str, str] = {}
        while "faults" not in fields:
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.kill()
                raise RuntimeError("the orchestrator did not print its banner")
            line = self.process.stdout.readline().strip()
            if " listening on " in line:
                fields["origin"] = line.rsplit(" ", 1)[1]
                continue
            name, colon, value = line.partition(":")
            if colon:
                fields[name.strip()] = value.strip()
        return fields

    def kill(self) -> None:
        """`kill -9`: no shutdown, no flush, transactions cut wherever they are."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=STARTUP_SECONDS)
        self._close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STARTUP_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STARTUP_SECONDS)
        self._close()

    def _close(self) -> None:
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._log.close()


@dataclass
class Job:
    """One redemption request: its key and body never change, whatever is resent."""

    key: str
    user: str
    amount: int
    raw: bytes
    first: tuple[int, dict[str, Any]] | None = None
    """The first answer that arrived under load (kills included)."""
    final: tuple[int, dict[str, Any], bool] | None = None
    """The answer to the resend after the last restart: status, body, Idempotent-Replayed."""


@dataclass
class Sandbox:
    """The provider (in this process, serving its keys) and a minting view of the state."""

    state: Path
    issuer: str
    provider: ProviderMock
    core: OrchestratorMock
    jobs: list[Job] = field(default_factory=list)

    def job(self, user: str, amount: int, *, max_amount: int | None = None) -> Job:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": self.provider.base_url,
            "sub": user,
            "jti": secrets.token_hex(8),
            "iat": now,
            "exp": now + 900,
            "max_amount": max_amount or amount,
            "currency": "usd",
            "service_id": "gpu",
            "project_id": "proj_load",
        }
        token = jose.sign(claims, self.core.signing_key, typ=PAYMENT_TOKEN_TYP)
        raw = json.dumps({"payment_token": token, "amount": amount, "currency": "usd"}).encode()
        made = Job(secrets.token_hex(12), user, amount, raw)
        self.jobs.append(made)
        return made

    def headers(self, job: Job) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "Idempotency-Key": job.key,
            "APP-Attestation": mint_attestation(
                self.provider.signing_key,
                issuer=self.provider.base_url,
                audience=self.issuer,
                subject="load",
                body=job.raw,
                now=int(time.time()),
                lifetime=self.provider.params.attestation_lifetime,
            ),
        }

    def spent(self, user: str) -> int:
        store = SQLiteStore(self.state)
        try:
            ledger = OrchestratorMock(OrchestratorSettings(issuer=self.issuer, store=store)).ledger
            return ledger.state(user, self.provider.base_url).spent
        finally:
            store.close()


@contextmanager
def sandbox(state: Path, issuer: str) -> Iterator[Sandbox]:
    """A provider served in a thread, trusting `issuer`, and a view of the state file."""
    listener = ServedInThread()
    provider = ProviderMock(
        ProviderSettings(
            profile="app-next",
            base_url=listener.origin + "/api/app/",
            orchestrator_issuer=issuer,
        )
    )
    store = SQLiteStore(state)
    core = OrchestratorMock(OrchestratorSettings(issuer=issuer, store=store))
    try:
        with listener.serving(provider.app):
            yield Sandbox(state, issuer, provider, core)
    finally:
        store.close()


async def send(
    client: httpx.AsyncClient, box: Sandbox, endpoint: str, job: Job, *, final: bool = False
) -> tuple[int, dict[str, Any], bool] | None:
    """One attempt; None when the connection broke (the process died under it). `final`: the
    resend after the last restart, kept apart from the answers given under load."""
    try:
        answer = await client.post(endpoint, content=job.raw, headers=box.headers(job))
        body = answer.json()
    except (httpx.TransportError, ValueError):
        return None
    outcome = (answer.status_code, body, answer.headers.get("idempotent-replayed") == "true")
    if final:
        job.final = outcome
    elif job.first is None:
        job.first = outcome[:2]
    return outcome


async def burst_then_kill(
    box: Sandbox, child: ChildOrchestrator, jobs: list[Job], *, kill_after: int
) -> int:
    """Send every job at once; `kill -9` the child the moment the `kill_after`-th answer
    arrives (the signal is sent from that answer's own callback, not after a hand-off).
    Returns how many requests were still unanswered when it died."""
    arrived = 0
    still_open = -1
    done = asyncio.Event()

    def kill_now() -> None:
        nonlocal still_open
        if still_open < 0:
            child.process.send_signal(signal.SIGKILL)
            still_open = len(jobs) - arrived
            done.set()

    async def one(client: httpx.AsyncClient, job: Job) -> None:
        nonlocal arrived
        if await send(client, box, child.redemption_endpoint, job) is not None:
            arrived += 1
            if arrived >= kill_after:
                kill_now()

    limits = httpx.Limits(max_connections=len(jobs))
    async with httpx.AsyncClient(timeout=REQUEST_SECONDS, limits=limits) as client:
        tasks = [asyncio.create_task(one(client, job)) for job in jobs]
        waiter = asyncio.create_task(done.wait())
        await asyncio.wait([waiter], timeout=REQUEST_SECONDS)
        kill_now()  # fewer answers than kill_after within the deadline: kill anyway
        await asyncio.gather(*tasks)
    await asyncio.to_thread(child.kill)  # reap it
    return still_open


async def resend_all(
    box: Sandbox, endpoint: str, jobs: list[Job], *, concurrency: int = 16
) -> None:
    """Every job once more, with its own key and body (what a provider does after a crash)."""
    gate = asyncio.Semaphore(concurrency)

    async def one(client: httpx.AsyncClient, job: Job) -> None:
        async with gate:
            if await send(client, box, endpoint, job, final=True) is None:
                raise RuntimeError(f"the restarted orchestrator did not answer key {job.key}")

    async with httpx.AsyncClient(timeout=REQUEST_SECONDS) as client:
        await asyncio.gather(*(one(client, job) for job in jobs))


@dataclass
class Verdict:
    keys: int
    stuck: list[str]
    """Keys still answered 409 idempotency_in_flight after the restart."""
    changed: list[str]
    """Keys whose replay differs from the answer given before the kill."""
    ledger_errors: list[str]
    """Users whose month's spend is not the sum of their successful redemptions."""

    @property
    def ok(self) -> bool:
        return not (self.stuck or self.changed or self.ledger_errors)


def recorded(status: int, body: dict[str, Any]) -> bool:
    """An answer the orchestrator keeps under its key: a redemption, or a cap refusal."""
    return status == 201 or body.get("code") == "spend_cap_exceeded"


def judge(box: Sandbox) -> Verdict:
    """After `resend_all`: every key answered for good, replays unchanged, money exact."""
    stuck: list[str] = []
    changed: list[str] = []
    charged: dict[str, int] = {}
    for job in box.jobs:
        assert job.final is not None
        status, body, replayed = job.final
        if status == 409:
            stuck.append(job.key)
            continue
        if (
            job.first is not None
            and recorded(*job.first)
            and (not replayed or (status, body) != job.first)
        ):
            changed.append(job.key)
        if status == 201:
            charged[job.user] = charged.get(job.user, 0) + job.amount
    users = {job.user for job in box.jobs}
    ledger_errors = [
        f"{user}: spent {box.spent(user)}, redeemed {charged.get(user, 0)}"
        for user in sorted(users)
        if box.spent(user) != charged.get(user, 0)
    ]
    return Verdict(len(box.jobs), stuck, changed, ledger_errors)
