"""Every exchange the suite makes or receives, kept with secrets masked.

A failing check shows the bytes that broke the rule, so the recorder keeps method, URL,
status, headers and body of each HTTP exchange and argv, exit code and output of each CLI
call. Secrets never reach a report: credential headers keep their scheme and a short
fingerprint, JSON members that carry secrets (tokens, keys, `access_configuration` values,
payment tokens, PKCE verifiers) are replaced, and so are form fields of the same names.
Credentials also travel inside URLs: a dashboard deep link's login token
(`…/dashboard?login=…`, `…/login?token=…`), an OAuth authorization code in a redirect's
`Location` and in the callback the browser follows (`?code=…`). Every query or fragment
parameter with a credential-like name (`_SECRET_PARAM`) is masked wherever a URL appears: the
exchange's own URL, every header value, JSON strings, form fields, free text and the verdicts
the checks write.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from spec.profiles import ProfileParameters

__all__ = [
    "CliCall",
    "Exchange",
    "Recorder",
    "RecordingASGI",
    "RecordingTransport",
    "mask_text",
    "mask_values",
    "shows",
]

MAX_BODY = 16 * 1024
MAX_RESPONSE = 5 * 1024 * 1024
CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "set-cookie"})
SIGNING_HEADERS = frozenset({"stripe-signature", "app-attestation"})
"""The built-in profiles' signature and attestation headers."""
SECRET_HEADERS = CREDENTIAL_HEADERS | SIGNING_HEADERS
"""Masked in every run."""
ATTESTATION_HEADERS = frozenset({"app-attestation"})
"""Shown as their decoded header and claims (never their signature)."""


SECRET_MEMBERS = {
    "access_token",
    "refresh_token",
    "api_key",
    "code",
    "code_verifier",
    "client_secret",
    "confirmation_secret",
    "payment_token",
    "app_payment_token",
    "stripe_payment_token",
    "token",
    "password",
    "secret",
    "hmac_secret",
    "d",
}
SECRET_PARAM_NAMES = (
    r"(?:[a-z0-9.\-]*_)?"
    r"(?:token|secret|password|passwd|pwd|code|key|apikey|signature|sig|session|sessionid|sid"
    r"|ticket|otp|login|verifier|auth|jwt|assertion|credential|credentials)"
)
"""Parameter names whose values are credentials: `code`, `login`, `token`, `access_token`,
`api_key`, `code_verifier`, … (`code_challenge`, `state` and `login_hint` are not)."""
_SECRET_PARAM = re.compile(rf"(?i)(?<=[?&;#])({SECRET_PARAM_NAMES}=)(?!«)([^&#\s\"'<>\\]+)")
_SECRET_PARAM_NAME = re.compile(rf"(?i){SECRET_PARAM_NAMES}")
_TOKENISH = re.compile(r"\b(?:pm[akr]_|pha_|phr_|phc_|phx_|spt_|whsec_|sk_)[A-Za-z0-9_\-]{6,}")
_JWS = re.compile(r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*")


def fingerprint(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:8]


def _masked(value: str) -> str:
    return f"«masked {fingerprint(value)}»"


def shows(recorded: object, secret: str) -> bool:
    """Whether a value read from a recorded exchange is `secret`, in the clear or masked."""
    return recorded == secret or recorded == _masked(secret)


def mask_text(text: str) -> str:
    """Mask token-shaped substrings in free text (error messages, CLI output, URLs): JWSs,
    known credential prefixes, and the values of credential-named URL parameters."""
    text = _JWS.sub(lambda match: _masked(match.group(0)), text)
    text = _TOKENISH.sub(lambda match: _masked(match.group(0)), text)
    return _SECRET_PARAM.sub(lambda match: match.group(1) + _masked(match.group(2)), text)


def _secret_field(name: str) -> bool:
    return name in SECRET_MEMBERS or _SECRET_PARAM_NAME.fullmatch(name) is not None


def mask_values(text: str, values: Iterable[str]) -> str:
    """Mask known secret values (e.g. credentials the suite handed out) wherever they occur."""
    for value in sorted({v for v in values if len(v) >= 6}, key=len, reverse=True):
        text = text.replace(value, _masked(value))
    return mask_text(text)


_ERROR_CODE = re.compile(r"[a-z]+(?:_[a-z]+)*")


def _error_code(key: str, item: str, siblings: dict[str, Any]) -> bool:
    """An error envelope's code (`{"code": "invalid_signature", "message": …}`) is not an
    OAuth authorization code: kept, so evidence and replays show which error it was."""
    return (
        key == "code"
        and len(item) <= 64
        and _ERROR_CODE.fullmatch(item) is not None
        and bool({"message", "type", "error", "status"} & set(siblings))
    )


def _mask_json(value: Any, *, inside_credentials: bool = False) -> Any:
    if isinstance(value, dict):
        masked: dict[str, Any] = {}
        for key, item in value.items():
            if isinstance(item, str) and _error_code(key, item, value) and not inside_credentials:
                masked[key] = item
            elif isinstance(item, str) and (inside_credentials or key in SECRET_MEMBERS):
                masked[key] = _masked(item)
            else:
                masked[key] = _mask_json(
                    item,
                    inside_credentials=inside_credentials
                    or key in ("access_configuration", "variables"),
                )
        return masked
    if isinstance(value, list):
        return [_mask_json(item, inside_credentials=inside_credentials) for item in value]
    if isinstance(value, str):
        return mask_text(value)
    return value


def mask_body(raw: bytes, content_type: str) -> str:
    if not raw:
        return ""
    clipped = raw[:MAX_BODY]
    note = f"\n«{len(raw) - MAX_BODY} more bytes not kept»" if len(raw) > MAX_BODY else ""
    text = clipped.decode("utf-8", errors="replace")
    if "json" in content_type or text.lstrip()[:1] in ("{", "["):
        try:
            return json.dumps(_mask_json(json.loads(text)), ensure_ascii=False) + note
        except (ValueError, RecursionError):  # RecursionError: a hostile, deeply nested body
            return mask_text(text) + note
    if "x-www-form-urlencoded" in content_type:
        pairs = [
            (k, _masked(v) if _secret_field(k) else mask_text(v))
            for k, v in parse_qsl(text, keep_blank_values=True)
        ]
        return urlencode(pairs) + note
    return mask_text(text) + note


def _decoded_jws(token: str) -> str:
    """A JWS shown as its header and claims (signed, not secret) with the signature masked,
    so evidence shows which claim broke a rule while the token cannot be replayed."""
    parts = token.split(".")
    if len(parts) != 3:
        return _masked(token)
    shown = []
    for part in parts[:2]:
        try:
            shown.append(
                base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)).decode("utf-8", "replace")
            )
        except (ValueError, UnicodeError):
            shown.append("«not base64url»")
    signature = "«empty signature»" if not parts[2] else _masked(parts[2])
    return f"header {shown[0]} claims {shown[1]} signature {signature}"


def mask_headers(
    headers: httpx.Headers,
    secret: frozenset[str] = SECRET_HEADERS,
    attestation: frozenset[str] = ATTESTATION_HEADERS,
) -> dict[str, str]:
    """Header values as a report may show them: `secret` ones masked (an Authorization keeps
    its scheme), `attestation` ones decoded without their signature, credentials in any other
    value (a Location carrying ?code=…) masked by name."""
    shown: dict[str, str] = {}
    for name, value in headers.multi_items():
        lower = name.lower()
        if lower in attestation:
            value = _decoded_jws(value)
        elif lower in secret:
            scheme = value.split(" ", 1)[0] if lower == "authorization" and " " in value else ""
            value = f"{scheme} {_masked(value)}".strip()
        else:
            value = mask_text(value)  # a Location carrying ?code=…, a Link, a Refresh
        shown[lower] = value if lower not in shown else f"{shown[lower]}, {value}"
    return shown


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
        return call

    def __iter__(self) -> Iterator[Exchange]:
        return iter(self.exchanges)


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
            raise
        exchange.elapsed_ms = (time.perf_counter() - started) * 1000
        exchange.status = response.status_code
        exchange.response_headers = self._recorder.mask_headers(response.headers)
        exchange.response_body = mask_body(content, response.headers.get("content-type", ""))
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            content=content,
            request=request,
            extensions=response.extensions,
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
