"""The suite's providers as the orchestrator under test meets them: every request they
receive kept raw for the checks (`RawCapture`), and their answers rewritten adversarially
for one probe (`Tampering`)."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conformance.recorder import Recorder, RecordingASGI
from spec.profiles import ProfileParameters
from wire import strictjson

__all__ = [
    "RawCapture",
    "RawRequest",
    "Tamper",
    "Tampering",
    "secrets_handed_out",
    "secrets_sent",
]


@dataclass
class RawRequest:
    """What the suite's mock provider received, unmasked, and what it answered (after any
    tampering): only checks see it, never reports."""

    exchange_id: int
    provider: str
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    query: str = ""
    status: int | None = None
    response: bytes = b""
    at: float = field(default_factory=time.monotonic)
    """When the request arrived (time.monotonic): how far apart two requests came."""


class RawCapture:
    def __init__(
        self, app: ASGIApp, recorder: Recorder, store: list[RawRequest], provider: str
    ) -> None:
        self._app = RecordingASGI(app, recorder)
        self._recorder = recorder
        self._store = store
        self._provider = provider

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        chunks: list[bytes] = []

        async def keep() -> Any:
            message = await receive()
            if message.get("type") == "http.request":
                chunks.append(message.get("body", b""))
                # Kept as it arrives: the client can have its answer (and a check read this)
                # before the `finally` below runs in the server's thread.
                request.body = b"".join(chunks)
            return message

        headers = {
            k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])
        }
        request = RawRequest(
            self._recorder.mark + 1,
            self._provider,
            scope["method"],
            scope["path"],
            headers,
            b"",
            query=scope.get("query_string", b"").decode("latin-1"),
        )
        self._store.append(request)
        answer: list[bytes] = []

        async def answer_and_keep(message: Message) -> None:
            if message["type"] == "http.response.start":
                request.status = int(message["status"])
            elif message["type"] == "http.response.body":
                answer.append(message.get("body", b""))
                request.response = b"".join(answer)
            recorded = scope.get("provspec.exchange_id")
            if isinstance(recorded, int):
                request.exchange_id = recorded
            await send(message)

        try:
            await self._app(scope, keep, answer_and_keep)
        finally:
            request.body = b"".join(chunks)
            request.response = b"".join(answer)
            # RecordingASGI numbers the exchange when it starts; cite that exact one.
            recorded = scope.get("provspec.exchange_id")
            if isinstance(recorded, int):
                request.exchange_id = recorded


Tamper = Callable[[int, dict[str, str], bytes], tuple[int, dict[str, str], bytes]]
"""Rewrites one answer of the suite's provider: (status, headers, body) in and out."""


class Tampering:
    """Lets a check make the suite's provider answer adversarially on some paths, for the
    length of a `with ctx.tampered(...)` block (the provider itself stays correct)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self.rules: dict[str, Tamper] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        rule = next(
            (fn for suffix, fn in self.rules.items() if scope.get("path", "").endswith(suffix)),
            None,
        )
        if scope["type"] != "http" or rule is None:
            await self._app(scope, receive, send)
            return
        started: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def keep(message: Message) -> None:
            if message["type"] == "http.response.start":
                started.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self._app(scope, receive, keep)
        headers = {
            k.decode("latin-1").lower(): v.decode("latin-1") for k, v in started.get("headers", [])
        }
        status, headers, body = rule(int(started.get("status", 500)), headers, b"".join(chunks))
        headers["content-length"] = str(len(body))
        raw_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": body})


def secrets_handed_out(received: list[RawRequest]) -> dict[str, str]:
    """Every secret the suite's providers handed the orchestrator in `received` (authorization
    codes, access and refresh tokens, credential values), by value, naming its kind."""
    found: dict[str, str] = {}
    for raw in received:
        document = _loads(raw.response)
        if not isinstance(document, dict):
            continue
        for member in ("access_token", "refresh_token"):
            if isinstance(document.get(member), str):
                found[document[member]] = f"{raw.provider} {member}"
        oauth = document.get("oauth")
        if isinstance(oauth, dict) and isinstance(oauth.get("code"), str):
            found[oauth["code"]] = f"{raw.provider} authorization code"
        complete = document.get("complete")
        access = complete.get("access_configuration") if isinstance(complete, dict) else None
        if isinstance(access, dict):
            for name, value in access.items():
                if isinstance(value, str) and len(value) >= 12 and "://" not in value:
                    found[value] = f"{raw.provider} credential {name}"
    return found


def secrets_sent(received: list[RawRequest], params: ProfileParameters) -> dict[str, str]:
    """Every secret the orchestrator sent the suite's providers in `received`: Authorization
    values, signatures, attestations and payment tokens, by value, naming its kind."""
    found: dict[str, str] = {}
    for raw in received:
        for header in (
            "authorization",
            params.signature_header.lower(),
            params.attestation_header.lower(),
        ):
            value = raw.headers.get(header, "")
            if header == "authorization":
                value = value.partition(" ")[2].strip()
            if len(value) >= 12:
                found[value] = f"{header} sent to {raw.provider}"
        body = _loads(raw.body)
        credentials = body.get("payment_credentials") if isinstance(body, dict) else None
        if isinstance(credentials, dict):
            for member in ("app_payment_token", "stripe_payment_token"):
                if isinstance(credentials.get(member), str):
                    found[credentials[member]] = f"payment token sent to {raw.provider}"
    return found


def _loads(raw: bytes) -> Any:
    # Every scan of a run's requests reads the same bodies again (only ever read): small
    # ones are parsed once; a large one (a hostile catalog) is not kept in memory.
    return _loads_small(raw) if len(raw) <= _CACHED_BODY_BYTES else _parse(raw)


_CACHED_BODY_BYTES = 64 * 1024


@functools.lru_cache(maxsize=2048)
def _loads_small(raw: bytes) -> Any:
    return _parse(raw)


def _parse(raw: bytes) -> Any:
    if not raw or len(raw) > strictjson.DEFAULT_MAX_BYTES:
        return None
    try:
        return strictjson.loads(raw)
    except strictjson.StrictJSONError:
        return None
