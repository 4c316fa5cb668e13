"""Every exchange the suite makes or receives, kept with secrets masked (`masking`).

A failing check shows the bytes that broke the rule, so the recorder keeps method, URL,
status, headers and body of each HTTP exchange and argv, exit code and output of each CLI
call, every secret masked on the way in. It tells its listeners (the engine's events) of
each one once it is complete, and a recorded response carries its exchange in
`response.extensions` (`exchange_of`).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conformance.masking import (
    ATTESTATION_HEADERS,
    CREDENTIAL_HEADERS,
    MAX_BODY,
    SECRET_HEADERS,
    SECRET_MEMBERS,
    SIGNING_HEADERS,
    fingerprint,
    mask_body,
    mask_headers,
    mask_text,
    mask_values,
    shows,
)
from spec.profiles import ProfileParameters

__all__ = [
    "ATTESTATION_HEADERS",
    "CREDENTIAL_HEADERS",
    "EXCHANGE",
    "MAX_BODY",
    "MAX_RESPONSE",
    "SECRET_HEADERS",
    "SECRET_MEMBERS",
    "SIGNING_HEADERS",
    "CliCall",
    "Exchange",
    "Recorder",
    "RecordingASGI",
    "RecordingTransport",
    "exchange_of",
    "fingerprint",
    "mask_body",
    "mask_headers",
    "mask_text",
    "mask_values",
    "shows",
]

MAX_RESPONSE = 5 * 1024 * 1024


@dataclass
class Exchange:
    id: int
    method: str
    url: str
    request_headers: dict[str, str]
    request_body: str
    status: int | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: str = ""
    error: str | None = None
    elapsed_ms: float = 0.0
    direction: str = "sent"
    """sent: the suite called the target; received: the target called a suite mock."""

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def describe(self) -> str:
        lines = [f"#{self.id} {self.method} {self.url}"]
        lines += [f"  > {name}: {value}" for name, value in self.request_headers.items()]
        if self.request_body:
            lines.append(f"  > {self.request_body[:2000]}")
        if self.error:
            lines.append(f"  ! {self.error}")
        else:
            lines.append(f"  < {self.status}")
            lines += [f"  < {name}: {value}" for name, value in self.response_headers.items()]
            if self.response_body:
                lines.append(f"  < {self.response_body[:2000]}")
        return "\n".join(lines)


@dataclass
class CliCall:
    id: int
    argv: list[str]
    exit_code: int | None
    stdout: str
    stderr: str
    elapsed_ms: float

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def describe(self) -> str:
        lines = [f"#{self.id} $ {' '.join(self.argv)}", f"  exit {self.exit_code}"]
        lines += [f"  | {line}" for line in self.stdout[:2000].splitlines()]
        lines += [f"  ! {line}" for line in self.stderr[:2000].splitlines()]
        return "\n".join(lines)


class Recorder:
    """Numbered exchanges and CLI calls of one run.

    `signature_headers` and `attestation_headers` are the run's profile's signing headers
    (`Recorder.for_profile`): a draft may rename them, and a renamed header must not carry
    its signature into a report in the clear. The built-in names are always masked."""

    def __init__(
        self,
        *,
        signature_headers: Iterable[str] = (),
        attestation_headers: Iterable[str] = (),
    ) -> None:
        attestation = {name.lower() for name in attestation_headers}
        self.attestation_headers = ATTESTATION_HEADERS | attestation
        self.signing_headers = (
            SIGNING_HEADERS | attestation | {name.lower() for name in signature_headers}
        )
        """The run's signature and attestation headers, lower-case."""
        self.secret_headers = CREDENTIAL_HEADERS | self.signing_headers
        """Every header name whose value is masked in what this recorder keeps."""
        self.exchanges: list[Exchange] = []
        self.cli_calls: list[CliCall] = []
        self.harness_problems: list[dict[str, Any]] = []
        """Invalid messages the suite's own mocks sent: {exchange, message} (see harness.py)."""
        self._ids = itertools.count(1)
        self.last_id = 0
        """The last id handed out, exchange or CLI call."""
        self.listeners: list[Callable[[Exchange | CliCall], None]] = []
        """Told of each exchange and CLI call once it is complete (the engine's events)."""

    @classmethod
    def for_profile(cls, params: ProfileParameters | None) -> Recorder:
        """A recorder that masks the signing headers `params` name (none: the built-ins)."""
        if params is None:
            return cls()
        return cls(
            signature_headers=(params.signature_header,),
            attestation_headers=(params.attestation_header,),
        )

    def mask_headers(self, headers: httpx.Headers) -> dict[str, str]:
        """`headers` as this run's reports may show them (`mask_headers`)."""
        return mask_headers(headers, self.secret_headers, self.attestation_headers)

    def next_id(self) -> int:
        self.last_id = next(self._ids)
        return self.last_id

    def completed(self, item: Exchange | CliCall) -> None:
        """`item` is whole (answered, or failed): tell the listeners."""
        for listener in self.listeners:
            listener(item)

    def since(self, mark: int) -> list[Exchange]:
        return [exchange for exchange in self.exchanges if exchange.id > mark]

    @property
    def mark(self) -> int:
        return self.exchanges[-1].id if self.exchanges else 0

    def record_cli(
        self, argv: list[str], exit_code: int | None, stdout: str, stderr: str, elapsed_ms: float
    ) -> CliCall:
        call = CliCall(
            self.next_id(),
            [mask_text(arg) for arg in argv],
            exit_code,
            mask_text(stdout[:MAX_BODY]),
            mask_text(stderr[:MAX_BODY]),
            elapsed_ms,
        )
        self.cli_calls.append(call)
        self.completed(call)
        return call

    def __iter__(self) -> Iterator[Exchange]:
        return iter(self.exchanges)


EXCHANGE = "provspec.exchange"
"""The key of a recorded response's `extensions` that holds its `Exchange`."""


def exchange_of(response: httpx.Response) -> Exchange | None:
    """The recorded exchange of `response` (None: it did not pass a `RecordingTransport`).
    Redirects followed by the client each have their own response and exchange."""
    exchange = response.extensions.get(EXCHANGE)
    return exchange if isinstance(exchange, Exchange) else None


class ResponseTooLarge(httpx.ReadError):
    """The target sent more than the suite accepts for one answer."""


async def _read_capped(response: httpx.Response, limit: int) -> bytes:
    # A target that answers with gigabytes must fail its check, not exhaust the suite's memory.
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in response.aiter_raw():
            size += len(chunk)
            if size > limit:
                raise ResponseTooLarge(
                    f"the answer exceeds {limit} bytes; the suite stopped reading"
                )
            chunks.append(chunk)
    finally:
        await response.aclose()
    return b"".join(chunks)


class RecordingTransport(httpx.AsyncBaseTransport):
    """Wraps any transport (a socket or an ASGI app) and records what passes through."""

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        recorder: Recorder,
        *,
        direction: str = "sent",
        max_response: int = MAX_RESPONSE,
    ) -> None:
        self._inner = inner
        self._recorder = recorder
        self._direction = direction
        self._max_response = max_response

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        exchange = Exchange(
            id=self._recorder.next_id(),
            method=request.method,
            url=mask_text(str(request.url)),
            request_headers=self._recorder.mask_headers(request.headers),
            request_body=mask_body(body, request.headers.get("content-type", "")),
            direction=self._direction,
        )
        self._recorder.exchanges.append(exchange)
        started = time.perf_counter()
        try:
            response = await self._inner.handle_async_request(request)
            content = await _read_capped(response, self._max_response)
        except httpx.HTTPError as error:
            exchange.error = mask_text(f"{type(error).__name__}: {error}")
            exchange.elapsed_ms = (time.perf_counter() - started) * 1000
            self._recorder.completed(exchange)
            raise
        exchange.elapsed_ms = (time.perf_counter() - started) * 1000
        exchange.status = response.status_code
        exchange.response_headers = self._recorder.mask_headers(response.headers)
        exchange.response_body = mask_body(content, response.headers.get("content-type", ""))
        self._recorder.completed(exchange)
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            content=content,
            request=request,
            # The exchange travels with its response: a check cites it without looking it
            # up again by method and URL (`exchange_of`).
            extensions={**response.extensions, EXCHANGE: exchange},
        )

    async def aclose(self) -> None:
        await self._inner.aclose()


class RecordingASGI:
    """ASGI middleware that records what a suite mock receives (e.g. a provider's redemption)."""

    def __init__(self, app: ASGIApp, recorder: Recorder) -> None:
        self._app = app
        self._recorder = recorder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":
            await self._app(scope, receive, send)
            return
        chunks: list[bytes] = []

        async def receive_and_keep() -> Message:
            message = await receive()
            if message.get("type") == "http.request":
                chunks.append(message.get("body", b""))
            return message

        headers = httpx.Headers(
            [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope.get("headers", [])]
        )
        query = scope.get("query_string", b"").decode("latin-1")
        host = headers.get("host", "")
        url = f"{scope.get('scheme', 'http')}://{host}{scope.get('path', '')}" + (
            f"?{query}" if query else ""
        )
        exchange = Exchange(
            self._recorder.next_id(),
            scope.get("method", "GET"),
            mask_text(url),
            self._recorder.mask_headers(headers),
            "",
            direction="received",
        )
        self._recorder.exchanges.append(exchange)
        # Lets inner middleware cite this exchange as evidence, even with servers in several
        # threads recording at once.
        scope["provspec.exchange_id"] = exchange.id
        started = time.perf_counter()
        response_body: list[bytes] = []
        response_headers = httpx.Headers()
        finished = False

        def finish() -> None:
            nonlocal finished
            if finished:
                return
            finished = True
            exchange.request_body = mask_body(b"".join(chunks), headers.get("content-type", ""))
            exchange.response_headers = self._recorder.mask_headers(response_headers)
            exchange.response_body = mask_body(
                b"".join(response_body), response_headers.get("content-type", "")
            )
            exchange.elapsed_ms = (time.perf_counter() - started) * 1000
            self._recorder.completed(exchange)

        async def send_and_keep(message: Message) -> None:
            nonlocal response_headers
            if message["type"] == "http.response.start":
                exchange.status = message["status"]
                response_headers = httpx.Headers(
                    [
                        (k.decode("latin-1"), v.decode("latin-1"))
                        for k, v in message.get("headers", [])
                    ]
                )
            elif message["type"] == "http.response.body":
                response_body.append(message.get("body", b""))
                if not message.get("more_body", False):
                    # Recorded before the last byte leaves: the caller (a provider redeeming)
                    # may answer the suite as soon as it has the answer, and the check that
                    # then reads this exchange must find it whole.
                    finish()
            await send(message)

        try:
            await self._app(scope, receive_and_keep, send_and_keep)
        finally:
            finish()
