"""Serve a mock on loopback (`provspec mock provider|orchestrator`).

A real role under test must be able to call the mocks: a real provider redeems at the mock
orchestrator, a real orchestrator provisions at the mock provider. The served app is the
same ASGI object the in-process tests use, behind uvicorn, with the store from `--state`
so a restart keeps accounts, tokens and the ledger. uvicorn handles Ctrl-C and SIGTERM with
a graceful shutdown.
"""

from __future__ import annotations

import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import uvicorn
from starlette.types import ASGIApp

__all__ = ["Listener", "ServedInThread", "bind", "serve"]


@dataclass(frozen=True)
class Listener:
    sock: socket.socket
    host: str
    port: int

    @property
    def origin(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def bind(host: str, port: int) -> Listener:
    """Bind before starting, so `--port 0` can report the port the kernel chose."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this: without it, a response written in two parts waits
    # for the client's delayed ACK, about 40 ms per request on loopback.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        from conformance.errors import UsageError

        raise UsageError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return Listener(sock, host, sock.getsockname()[1])


class _QuietServer(uvicorn.Server):
    """uvicorn re-raises SIGINT/SIGTERM after its graceful shutdown, which ends a Ctrl-C in a
    KeyboardInterrupt traceback and a SIGTERM in exit status -15. A mock that was asked to
    stop and stopped cleanly exits 0."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {
            sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def serve(app: ASGIApp, listener: Listener, *, banner: str) -> None:
    print(banner, flush=True)
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=5,
        timeout_keep_alive=30,
    )
    _QuietServer(config).run(sockets=[listener.sock])
    print("stopped", file=sys.stderr, flush=True)


class ServedInThread:
    """A loopback listener that serves one ASGI app from a background thread.

    Bind first (so the origin is known before the app that must name it is built), then
    `with listener.serving(app): …`. The suite uses it when a real role under test must
    reach a mock over a real socket; tests use it for what only a real socket shows
    (concurrency, restarts). Startup and shutdown wait on uvicorn's flags with a deadline,
    never on a fixed sleep.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, timeout: float = 10.0) -> None:
        self._listener = bind(host, port)
        self._timeout = timeout

    @property
    def origin(self) -> str:
        return self._listener.origin

    @property
    def port(self) -> int:
        return self._listener.port

    @contextmanager
    def serving(self, app: ASGIApp) -> Iterator[str]:
        # log_config=None: uvicorn would otherwise re-run dictConfig for every server, and
        # servers started from several threads at once briefly log at INFO in between.
        _quiet_uvicorn_logs()
        config = uvicorn.Config(
            app, log_level="warning", access_log=False, lifespan="off", log_config=None
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [self._listener.sock]}, daemon=True
        )
        thread.start()
        try:
            if not _wait_until(lambda: server.started, self._timeout):
                raise RuntimeError(f"the mock did not start within {self._timeout} s")
            yield self.origin
        finally:
            server.should_exit = True
            thread.join(self._timeout)
            self._listener.sock.close()


def _quiet_uvicorn_logs() -> None:
    import logging

    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    event = threading.Event()
    while not condition():
        if time.monotonic() > deadline:
            return False
        event.wait(0.005)
    return True
