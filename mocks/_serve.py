"""Serve a mock on loopback (`provspec mock provider|orchestrator`).

A real role under test must be able to call the mocks: a real provider redeems at the mock
orchestrator, a real orchestrator provisions at the mock provider. The served app is the
same ASGI object the in-process tests use, behind uvicorn, with the store from `--state`
so a restart keeps accounts, tokens and the ledger. uvicorn handles Ctrl-C and SIGTERM with
a graceful shutdown.
"""

from __future__ import annotations

import socket
import sys
from dataclasses import dataclass

import uvicorn
from starlette.types import ASGIApp

__all__ = ["Listener", "bind", "serve"]


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
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        from conformance.errors import UsageError

        raise UsageError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return Listener(sock, host, sock.getsockname()[1])


def serve(app: ASGIApp, listener: Listener, *, banner: str) -> None:
    print(banner, flush=True)
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=5
    )
    server = uvicorn.Server(config)
    server.run(sockets=[listener.sock])
    print("stopped", file=sys.stderr, flush=True)
