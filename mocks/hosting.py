"""Serve a mock on loopback (`provspec mock provider|orchestrator`).

A real role under test must be able to call the mocks: a real provider redeems at the mock
orchestrator, a real orchestrator provisions at the mock provider. The served app is the
same ASGI object the in-process tests use, behind uvicorn, with the store from `--state`
so a restart keeps accounts, tokens and the ledger. uvicorn handles Ctrl-C and SIGTERM with
a graceful shutdown.

A served mock runs unattended in someone's CI, so what a peer can make it hold is bounded
(`ServeLimits`): a connection must deliver its request head within `header_timeout` and its
body within `body_timeout` of the head, an idle keep-alive connection is closed after
`keep_alive`, and past `max_connections` (by default well under the process's open-file limit)
a new connection gets `503` and is closed at once. What it logs is bounded too: one line per
kind of event, repeats within ten seconds counted instead of printed, and running out of file
descriptors is one such line, not a traceback per accept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import h11
import httpx
import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol

from wire.errors import UsageError

__all__ = ["InLoopTransport", "Listener", "ServeLimits", "ServedInThread", "bind", "serve"]

log = logging.getLogger("provspec.mock.serve")

_OPEN_FILES_HEADROOM = 64
"""Descriptors kept free for the state file, outgoing fetches and logs."""


def _open_file_limit() -> int:
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):
        return 1024
    return 1 << 20 if soft == resource.RLIM_INFINITY else int(soft)


@dataclass(frozen=True)
class ServeLimits:
    """What one peer can make a served mock hold."""

    header_timeout: float = 10.0
    """Seconds from a connection's start (or its previous answer) to a complete request head."""
    body_timeout: float = 30.0
    """Seconds from the request head to the last byte of its body."""
    keep_alive: float = 5.0
    """Seconds an idle keep-alive connection is kept."""
    max_connections: int | None = None
    """Open connections at most; None: 1000, or fewer where the open-file limit is lower."""
    backlog: int = 128

    def accept_batch(self) -> int:
        """Connections accepted in one go (asyncio accepts up to the backlog per wake-up,
        before any of them can be refused): small where descriptors are few."""
        return max(8, min(self.backlog, _open_file_limit() // 8))

    def connection_cap(self) -> int:
        if self.max_connections is not None:
            return self.max_connections
        # One accept batch beyond the cap must still fit under the open-file limit.
        spare = _open_file_limit() - _OPEN_FILES_HEADROOM - self.accept_batch()
        return max(8, min(1000, spare))


class RateLimitedLog(logging.Filter):
    """Lets a few records of each message template through per window and counts the rest:
    the next line that passes says how many like it were left out."""

    def __init__(self, *, window: float = 10.0, burst: int = 3) -> None:
        super().__init__()
        self._window = window
        self._burst = burst
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[float, int, int]] = {}
        """template -> (window start, passed in window, suppressed since the last pass)"""

    def filter(self, record: logging.LogRecord) -> bool:
        key = f"{record.name}:{record.msg}"
        now = time.monotonic()
        with self._lock:
            start, passed, suppressed = self._seen.get(key, (now, 0, 0))
            if now - start >= self._window:
                start, passed = now, 0
            if passed >= self._burst:
                self._seen[key] = (start, passed, suppressed + 1)
                return False
            self._seen[key] = (start, passed + 1, 0)
        if suppressed:
            record.msg = f"{record.msg} ({suppressed} more like this not shown)"
        return True


_SERVICE_UNAVAILABLE = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\nconnection: close\r\n"
    b"content-length: 20\r\n\r\ntoo many connections"
)


class _GuardedH11(H11Protocol):
    """uvicorn's h11 protocol with a connection cap and deadlines for the request head and
    body (uvicorn only times out idle keep-alive connections between requests)."""

    limits: ClassVar[ServeLimits] = ServeLimits()
    cap: ClassVar[int] = 1000

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._waiting_for = ""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.cap:
            log.warning(
                "connection cap (%d) reached: new connections get 503 and are closed", self.cap
            )
            transport.write(_SERVICE_UNAVAILABLE)
            transport.close()
            return
        self._arm("head")

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self._arm("head")  # the next request's head, on a kept-alive connection
        self._follow()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _follow(self) -> None:
        state = self.conn.their_state
        if state is h11.SEND_BODY and self._waiting_for != "body":
            self._arm("body")
        elif state is not h11.IDLE and state is not h11.SEND_BODY:
            self._disarm()  # the whole request is in (or the connection is ending)

    def _arm(self, what: str) -> None:
        self._disarm()
        self._waiting_for = what
        timeout = self.limits.header_timeout if what == "head" else self.limits.body_timeout
        self._deadline = self.loop.call_later(timeout, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._waiting_for = ""

    def _expired(self) -> None:
        what, self._deadline = self._waiting_for, None
        if self.transport.is_closing():
            return
        timeout = self.limits.header_timeout if what == "head" else self.limits.body_timeout
        log.warning(
            "closed a connection whose request %s did not arrive within %s s", what, timeout
        )
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.scope["provspec.closed"] = "timeout"  # type: ignore[typeddict-unknown-key]
        self.transport.close()


def _protocol(limits: ServeLimits) -> type[H11Protocol]:
    return type("GuardedH11", (_GuardedH11,), {"limits": limits, "cap": limits.connection_cap()})


def _config(app: ASGIApp, limits: ServeLimits, **options: Any) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        http=_protocol(limits),
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_keep_alive=max(1, round(limits.keep_alive)),
        backlog=limits.accept_batch(),
        **options,
    )


def _loop_exception(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    if str(context.get("message", "")).startswith("socket.accept() out of system resource"):
        log.warning(
            "out of file descriptors: not accepting connections for a second "
            "(raise `ulimit -n`, or lower the load)"
        )
        return
    loop.default_exception_handler(context)


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
        raise UsageError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return Listener(sock, host, sock.getsockname()[1])


class _QuietServer(uvicorn.Server):
    """uvicorn re-raises SIGINT/SIGTERM after its graceful shutdown, which ends a Ctrl-C in a
    KeyboardInterrupt traceback and a SIGTERM in exit status -15. A mock that was asked to
    stop and stopped cleanly exits 0."""

    loop: asyncio.AbstractEventLoop | None = None
    """The loop it serves on, once it runs (`InLoopTransport` sends requests there)."""
    _tick: asyncio.Future[None] | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        self.loop.set_exception_handler(_loop_exception)
        await super().serve(sockets)

    async def main_loop(self) -> None:
        # uvicorn's, but a stop asked from another thread (`stop`) ends the wait for the
        # next tick at once instead of up to 0.1 s later. As cheap as its asyncio.sleep:
        # one future and one timer per tick (a run may hold some forty idle servers).
        loop = asyncio.get_running_loop()
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 1) % 864000
            self._tick = tick = loop.create_future()
            timer = loop.call_later(0.1, _end_tick, tick)
            await tick
            timer.cancel()
            should_exit = await self.on_tick(counter)

    def stop(self) -> None:
        """Ask it to stop (from any thread); it shuts down gracefully on its own thread."""
        self.should_exit = True
        loop = self.loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed in between
                loop.call_soon_threadsafe(self._end_current_tick)

    def _end_current_tick(self) -> None:
        if self._tick is not None:
            _end_tick(self._tick)

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


def _end_tick(tick: asyncio.Future[None]) -> None:
    if not tick.done():
        tick.set_result(None)


def _log_to_stderr() -> None:
    """The mocks' own lines (`provspec.mock.*`: a refused caller's keys, a closed connection,
    a client that went away) go to stderr, one line each, floods counted, not printed."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s", "%H:%M:%S"))
    handler.addFilter(RateLimitedLog())
    mocks = logging.getLogger("provspec.mock")
    mocks.addHandler(handler)
    mocks.setLevel(logging.INFO)
    mocks.propagate = False
    for name in ("uvicorn.error", "asyncio"):
        logging.getLogger(name).addFilter(RateLimitedLog())


def serve(
    app: ASGIApp, listener: Listener, *, banner: str, limits: ServeLimits | None = None
) -> None:
    print(banner, flush=True)
    _log_to_stderr()
    config = _config(app, limits or ServeLimits(), timeout_graceful_shutdown=5)
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

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        timeout: float = 10.0,
        limits: ServeLimits | None = None,
    ) -> None:
        self._listener = bind(host, port)
        self._timeout = timeout
        self._limits = limits or ServeLimits()
        self._server: _QuietServer | None = None
        self._app: ASGIApp | None = None

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
        config = _config(app, self._limits, log_config=None)
        server = _QuietServer(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [self._listener.sock]}, daemon=True
        )
        thread.start()
        try:
            if not _wait_until(lambda: server.started, self._timeout):
                raise RuntimeError(f"the mock did not start within {self._timeout} s")
            self._server, self._app = server, app
            yield self.origin
        finally:
            self._server = self._app = None
            server.stop()
            thread.join(self._timeout)
            self._listener.sock.close()

    def stop_soon(self) -> None:
        """Ask the server to stop without waiting for it: listeners that each get this
        first, then leave their `serving` blocks, shut down side by side, not one by one."""
        if self._server is not None:
            self._server.stop()

    def transport(self) -> InLoopTransport:
        """A transport to the app this listener serves that skips the socket: each request
        runs on the server's own loop, as uvicorn would run it, without the HTTP/1.1 framing
        (about a third of the CPU of a loopback round trip). For callers in this process
        that only need the app's answers; what must cross a real socket (a real role, a
        test of the framing) uses `origin`. Valid while `serving`."""
        return InLoopTransport(self._serving)

    def _serving(self) -> tuple[ASGIApp, asyncio.AbstractEventLoop]:
        server, app = self._server, self._app
        if server is None or app is None or server.loop is None or server.should_exit:
            raise httpx.ConnectError(f"{self.origin} is not serving")
        return app, server.loop


class InLoopTransport(httpx.AsyncBaseTransport):
    """httpx to a served app without the socket (`ServedInThread.transport`).

    The request is read whole where it was made, then handed to the server's loop, so the
    app runs where it always runs (one loop, whatever thread the caller is on) and the
    caller's loop is free while it waits. The answer comes back whole. The request's read
    timeout bounds the wait, as it bounds a socket's. An app that fails answers 500, as
    uvicorn answers it.
    """

    def __init__(self, serving: Callable[[], tuple[ASGIApp, asyncio.AbstractEventLoop]]) -> None:
        self._serving = serving

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        app, loop = self._serving()
        asgi = httpx.ASGITransport(app, raise_app_exceptions=False)
        await request.aread()
        work = asgi.handle_async_request(request)
        if asyncio.get_running_loop() is loop:
            return await work
        future = asyncio.run_coroutine_threadsafe(work, loop)
        timeouts = request.extensions.get("timeout") or {}
        limit = timeouts.get("read") if isinstance(timeouts, dict) else None
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), limit)
        except TimeoutError:
            future.cancel()
            raise httpx.ReadTimeout(f"no answer within {limit} s", request=request) from None


def _quiet_uvicorn_logs() -> None:
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
