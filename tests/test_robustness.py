"""A misbehaving target gives failed checks with clear evidence, never a hung or crashed run."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from conformance.adapters.provider import ProviderTargetConfig
from conformance.engine import RunPlan, run_sync
from conformance.results import Status
from mocks.hosting import ServedInThread
from spec.requirement import Role, Step


async def hang(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await asyncio.sleep(3600)


async def huge(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    chunk = b"[" + b"0," * 512 * 1024
    for _ in range(20):  # about 20 MiB
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b"0]"})


@contextmanager
def raw_server(reply: bytes | None) -> Iterator[int]:
    """A TCP server that answers every connection with `reply` (None: closes at once)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            with connection:
                if reply is not None:
                    connection.settimeout(1)
                    try:
                        connection.recv(65536)
                        connection.sendall(reply)
                    except OSError:
                        pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(2)
        server.close()


def run_against(base_url: str) -> tuple[list[Any], float]:
    plan = RunPlan(
        Role.PROVIDER,
        "app-0.1d",
        ProviderTargetConfig(
            profile="app-0.1d", base_url=base_url, hmac_secret="whsec_x", timeout=0.3
        ),
        steps=(Step.DISCOVERY, Step.ATTESTATION),
        check_timeout=5,
        preflight=False,  # what the checks make of it; the preflight is tested below
    )
    started = time.perf_counter()
    result = run_sync(plan)
    return result.findings, time.perf_counter() - started


def judged(findings: list[Any]) -> list[Any]:
    return [f for f in findings if f.status is not Status.UNTESTED]


@pytest.mark.parametrize("app", [hang, huge], ids=["hangs", "answers-20-MiB"])
def test_a_hanging_or_flooding_target_fails_its_checks_quickly(app: Any) -> None:
    listener = ServedInThread()
    with listener.serving(app):
        findings, elapsed = run_against(listener.origin + "/api/app/")
    checked = judged(findings)
    assert checked
    assert all(f.status in (Status.FAILED, Status.WARNING) for f in checked)
    assert any("was reached, then hung" in f.message or "exceeds" in f.message for f in checked)
    assert all(f.blame is None or f.blame.value == "implementation" for f in checked)
    assert elapsed < 60


@pytest.mark.parametrize(
    "reply",
    [None, b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nnot json!", b"\x00\xff garbage \r\n\r\n"],
    ids=["resets", "answers-non-json", "answers-garbage"],
)
def test_resets_and_garbage_are_failures_with_evidence_not_crashes(reply: bytes | None) -> None:
    with raw_server(reply) as port:
        findings, elapsed = run_against(f"http://127.0.0.1:{port}/api/app/")
    checked = judged(findings)
    assert any(f.status is Status.FAILED for f in checked)
    assert not [f.requirement.id for f in checked if f.status is Status.PASSED]
    assert all(f.message for f in checked)
    assert elapsed < 60


@pytest.mark.parametrize("app", [hang, huge], ids=["hangs", "answers-20-MiB"])
def test_a_hanging_or_flooding_target_stops_at_preflight_quickly(
    app: Any, capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    from conformance.cli import main

    listener = ServedInThread()
    with listener.serving(app):
        started = time.perf_counter()
        config = tmp_path / "provspec.toml"
        config.write_text("[timeouts]\nrequest = 0.3\n")
        code = main(
            [
                "run",
                "--config",
                str(config),
                "--target",
                listener.origin + "/api/app/",
                "--hmac-secret",
                "whsec_x",
                "--report-dir",
                str(tmp_path / "reports"),
            ]
        )
    assert code == 3
    err = capsys.readouterr().err
    assert err.count("preflight failed") == 1
    assert "was reached, then gave no answer" in err
    assert time.perf_counter() - started < 30
