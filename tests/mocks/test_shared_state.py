"""Issue 19, findings 2, 3 and the state-file half of 6: several served mocks on one
`--state` file agree on their keys and share one ledger; a restart on `--port 0` advertises
the port it bound; the file holding the private key is readable by its owner only."""

from __future__ import annotations

import asyncio
import stat
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import httpx

from mocks._core.store import SQLiteStore
from tests.mocks._load import ChildOrchestrator, sandbox, send

STARTS = 6


def _kids(child: ChildOrchestrator) -> list[str]:
    document = httpx.get(child.origin + "/jwks.json", timeout=10).json()
    return [key["kid"] for key in document["keys"]]


def test_two_orchestrators_started_at_once_on_a_new_file_share_one_signing_key(
    tmp_path: Path,
) -> None:
    for start in range(STARTS):
        state = tmp_path / f"shared-{start}.db"
        issuer = "http://127.0.0.1:1"  # one issuer for both, as behind one load balancer
        with ThreadPoolExecutor(2) as pool:
            starters = [partial(ChildOrchestrator, state, issuer=issuer)] * 2
            started = list(pool.map(lambda start: start(), starters))
        try:
            first, second = (_kids(child) for child in started)
            assert first == second, f"start {start}: the processes sign with different keys"
        finally:
            for child in started:
                child.stop()


def test_two_orchestrators_on_one_file_keep_one_cap_between_them(tmp_path: Path) -> None:
    state = tmp_path / "shared.db"
    one = ChildOrchestrator(state)
    # The second serves the same issuer (the first's origin) from another port.
    two = ChildOrchestrator(state, issuer=one.issuer)
    try:
        with sandbox(state, one.issuer) as box:
            # 4000 each against 10000: two fit, whichever process takes them.
            jobs = [box.job("usr_shared", 4000) for _ in range(16)]

            async def burst() -> Counter[int]:
                async with httpx.AsyncClient(timeout=30) as client:
                    answers = await asyncio.gather(
                        *(
                            send(client, box, (one, two)[i % 2].redemption_endpoint, job)
                            for i, job in enumerate(jobs)
                        )
                    )
                return Counter(answer[0] for answer in answers if answer is not None)

            assert asyncio.run(burst()) == Counter({201: 2, 402: 14})
            assert box.spent("usr_shared") == 8000
            # A key answered by one process is replayed by the other.
            index = next(i for i, job in enumerate(jobs) if job.first and job.first[0] == 201)
            other = (two, one)[index % 2]

            async def replay() -> tuple[int, bool]:
                async with httpx.AsyncClient(timeout=30) as client:
                    answer = await send(
                        client, box, other.redemption_endpoint, jobs[index], final=True
                    )
                assert answer is not None
                return answer[0], answer[2]

            assert asyncio.run(replay()) == (201, True)
    finally:
        one.stop()
        two.stop()


def test_a_restart_on_port_0_advertises_the_port_it_bound(tmp_path: Path) -> None:
    state = tmp_path / "orchestrator.db"
    first = ChildOrchestrator(state)
    first.stop()
    second = ChildOrchestrator(state)
    try:
        origin = f"http://127.0.0.1:{second.port}"
        assert second.issuer == origin
        document = httpx.get(origin + "/.well-known/app-orchestrator", timeout=10).json()
        assert document["issuer"] == origin
        assert document["redemption_endpoint"] == origin + "/redemptions"
        assert document["jwks_uri"] == origin + "/jwks.json"
    finally:
        second.stop()


def test_a_new_state_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = SQLiteStore(path)
    store.put("orchestrator_keys", "current", {"pem": "-----BEGIN PRIVATE KEY-----"})
    try:
        for made in [path, *tmp_path.glob("state.db-*")]:
            mode = stat.S_IMODE(made.stat().st_mode)
            assert mode & 0o077 == 0, f"{made.name} is {oct(mode)}"
    finally:
        store.close()
