"""Issue 19, finding 5: what a peer's connections can make a served mock hold, and log.

Idle, partial-header and slow-body connections are closed at their deadline; past the
connection cap a new connection gets 503 and is closed; a client that aborts an upload is one
log line, not a traceback; and a mock that runs out of file descriptors says so in a few
lines, not tens of thousands. The deadlines are made short here (`ServeLimits`); each wait on
a socket has its own timeout, and nothing sleeps to synchronise.
"""

from __future__ import annotations

import logging
import os
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager

import httpx
import pytest

from mocks.hosting import ServedInThread, ServeLimits
from mocks.orchestrator.app import OrchestratorMock, OrchestratorSettings

SHORT = ServeLimits(header_timeout=0.5, body_timeout=0.5, keep_alive=1.0, max_connections=4)
WAIT = 10.0
"""The most any socket read below may wait: far above every deadline under test."""


@contextmanager
def served(limits: ServeLimits = SHORT) -> Iterator[tuple[str, int]]:
    listener = ServedInThread(limits=limits)
    core = OrchestratorMock(OrchestratorSettings(issuer=listener.origin))
    with listener.serving(core.app):
        yield "127.0.0.1", listener.port


def closed_by_server(sock: socket.socket) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took."""
    sock.settimeout(WAIT)
    started, received = time.monotonic(), b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            return received, time.monotonic() - started
        received += chunk


@pytest.mark.parametrize(
    "sent",
    [
        b"",
        b"POST /redemptions HTTP/1.1\r\nHost: mock\r\n",
        b'POST /redemptions HTTP/1.1\r\nHost: mock\r\nContent-Length: 100\r\n\r\n{"a":',
    ],
    ids=["idle", "partial-header", "slow-body"],
)
def test_a_connection_that_does_not_deliver_its_request_is_closed(sent: bytes) -> None:
    with served() as address, closing(socket.create_connection(address, timeout=WAIT)) as sock:
        sock.sendall(sent)
        _, elapsed = closed_by_server(sock)
    assert elapsed < 0.5 + 3.0


def test_a_partial_header_trickled_byte_by_byte_does_not_reset_the_deadline() -> None:
    head = b"GET /jwks.json HTTP/1.1\r\nHost: mock\r\nX-Slow: " + b"a" * 40
    with served() as address, closing(socket.create_connection(address, timeout=WAIT)) as sock:
        started = time.monotonic()
        sock.settimeout(0.1)
        try:
            for byte in head:
                sock.sendall(bytes([byte]))
                try:
                    if sock.recv(1) == b"":
                        break  # closed while trickling: the deadline held
                except TimeoutError:
                    continue
        except (BrokenPipeError, ConnectionResetError):
            pass
        elapsed = time.monotonic() - started
    assert elapsed < 0.5 + 3.0


def test_an_idle_keep_alive_connection_is_closed_after_an_answer() -> None:
    with served() as address, closing(socket.create_connection(address, timeout=WAIT)) as sock:
        sock.sendall(b"GET /jwks.json HTTP/1.1\r\nHost: mock\r\n\r\n")
        received, elapsed = closed_by_server(sock)
    assert received.startswith(b"HTTP/1.1 200")
    assert elapsed < 1.0 + 3.0


def test_past_the_connection_cap_a_new_connection_gets_503_and_is_closed() -> None:
    with served() as address:
        held = [socket.create_connection(address, timeout=WAIT) for _ in range(4)]
        try:
            # The held ones are accepted (a request on each would be answered) …
            held[0].sendall(b"GET /jwks.json HTTP/1.1\r\nHost: mock\r\nConnection: close\r\n\r\n")
            assert closed_by_server(held[0])[0].startswith(b"HTTP/1.1 200")
            extra = [socket.create_connection(address, timeout=WAIT) for _ in range(2)]
            # … one slot is free again; the second extra is the fifth open connection.
            answers = [closed_by_server(sock)[0] for sock in extra[1:]]
        finally:
            for sock in held + extra:
                sock.close()
    assert all(answer.startswith(b"HTTP/1.1 503") for answer in answers), answers


def test_a_client_that_aborts_its_upload_is_one_log_line_and_no_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="provspec")
    with served(ServeLimits()) as address:
        with closing(socket.create_connection(address, timeout=WAIT)) as sock:
            sock.sendall(
                b"POST /redemptions HTTP/1.1\r\nHost: mock\r\nContent-Type: application/json\r\n"
                b'Idempotency-Key: k\r\nContent-Length: 1000\r\n\r\n{"payment_token": '
            )
        # The connection is gone; the next request is answered once the abort was handled.
        deadline = time.monotonic() + WAIT
        while "before its body arrived" not in caplog.text and time.monotonic() < deadline:
            httpx.get(f"http://{address[0]}:{address[1]}/jwks.json", timeout=WAIT)
    aborts = [r for r in caplog.records if "before its body arrived" in r.getMessage()]
    assert len(aborts) == 1
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


def _low_file_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))


def test_running_out_of_file_descriptors_is_a_few_lines_not_a_flood() -> None:
    command = [sys.executable, "-m", "conformance", "mock", "provider", "--port", "0"]
    with subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_low_file_limit,  # sets only the child's open-file limit
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    ) as process:
        try:
            assert process.stdout is not None
            process.stdout.readline()
            base_url = process.stdout.readline().split(":", 1)[1].strip()
            port = int(base_url.split(":")[2].split("/")[0])
            sockets = [
                socket.create_connection(("127.0.0.1", port), timeout=WAIT) for _ in range(300)
            ]
            refused = 0
            for sock in sockets[-40:]:  # the last ones are past the cap: 503 at once
                refused += closed_by_server(sock)[0].startswith(b"HTTP/1.1 503")
            for sock in sockets:
                sock.close()
            health = httpx.get(base_url + "provisioning/health", timeout=WAIT)
        finally:
            process.terminate()
            _, stderr = process.communicate(timeout=WAIT)
    assert refused == 40
    assert health.status_code in (200, 400, 401)  # answered (it wants a signature)
    assert "Too many open files" not in stderr
    assert len(stderr.splitlines()) <= 10, stderr[:2000]
