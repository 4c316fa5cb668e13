"""Issue 19, findings 4 and 7: what a caller can make the mock orchestrator do.

A redemption's attestation names its signer in `iss`; the orchestrator fetches that
provider's RFC 9728 metadata and JWKS from there. Whatever answers (200 MB, an HTML page, a
server that never finishes, a redirect, nothing at all) costs a bounded amount of memory and
time and gets one 401, whose text says nothing about what is listening where. Payment tokens
the orchestrator signed itself with a malformed `max_amount`, and redemptions without a
Content-Type, are refused in the profile's envelope, never with a 500.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from mocks.orchestrator.app import OrchestratorMock, OrchestratorSettings
from mocks.sandbox import Sandbox
from spec.schemas import default_store
from wire import jose
from wire.attestation import PAYMENT_TOKEN_TYP, mint_attestation
from wire.clock import FrozenClock
from wire.ssrf import FetchLimits, SSRFGuard

HOSTILE = "https://hostile.test/api/app/"
PRM = "https://hostile.test/.well-known/oauth-protected-resource/api/app/"
JWKS = "https://hostile.test/jwks.json"
LIMITS = FetchLimits(max_bytes=64 * 1024, timeout=0.5)
CHUNK = b"x" * 65536

Serve = Callable[[httpx.Request], httpx.Response]


class Pulled:
    """A streamed body that counts how much of it the orchestrator read."""

    def __init__(self, chunks: int, *, stall: bool = False) -> None:
        self.chunks = chunks
        self.stall = stall
        self.read = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self.stall:
            await asyncio.Event().wait()  # a server that never sends its body
        for _ in range(self.chunks):
            self.read += 1
            yield CHUNK


def metadata(**extra: Any) -> httpx.Response:
    document = {"resource": HOSTILE, "jwks_uri": JWKS, **extra}
    return httpx.Response(200, json=document)


def refused(_: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("All connection attempts failed")


def redeem_as(serve: Serve, *, iss: str = HOSTILE) -> tuple[httpx.Response, float]:
    """A redemption whose attestation names `iss`; the orchestrator's fetches go to `serve`."""
    core = OrchestratorMock(
        OrchestratorSettings(
            clock=FrozenClock(),
            http=lambda: httpx.AsyncClient(transport=httpx.MockTransport(serve)),
            ssrf=SSRFGuard(allow_loopback=True, allowed_hosts=("hostile.test",)),
            key_fetch=LIMITS,
        )
    )
    raw = json.dumps({"payment_token": "x.y.z", "amount": 100, "currency": "usd"}).encode()
    attestation = mint_attestation(
        jose.generate_key("EdDSA"),
        issuer=iss,
        audience=core.issuer,
        subject="usr",
        body=raw,
        now=core.clock.timestamp(),
        lifetime=core.params.attestation_lifetime,
    )
    headers = {
        "Content-Type": "application/json",
        "Idempotency-Key": secrets.token_hex(8),
        "APP-Attestation": attestation,
    }

    async def post() -> httpx.Response:
        transport = httpx.ASGITransport(app=core.app)
        async with httpx.AsyncClient(transport=transport, base_url=core.issuer) as client:
            return await client.post("/redemptions", content=raw, headers=headers)

    started = time.monotonic()
    answer = asyncio.run(post())
    return answer, time.monotonic() - started


def by_url(**answers: Callable[[], httpx.Response]) -> Serve:
    routes = {PRM: answers.get("prm", metadata), JWKS: answers.get("jwks", metadata)}

    def serve(request: httpx.Request) -> httpx.Response:
        return routes[str(request.url)]()

    return serve


HTML = lambda: httpx.Response(200, text="<html>keys</html>", headers={"content-type": "text/html"})  # noqa: E731

HOSTILE_ANSWERS: dict[str, Serve] = {
    "the port is closed": refused,
    "metadata is an HTML page": by_url(prm=HTML),
    "the JWKS is an HTML page": by_url(jwks=HTML),
    "the metadata redirects": by_url(
        prm=lambda: httpx.Response(302, headers={"location": "http://127.0.0.1:22/"})
    ),
    "the metadata is 404": by_url(prm=lambda: httpx.Response(404, text="no")),
    "the metadata names another resource": by_url(
        prm=lambda: metadata(resource="https://other.test/")
    ),
    "the JWKS is gzip": by_url(
        jwks=lambda: httpx.Response(
            200,
            content=b"\x1f\x8b",
            headers={"content-encoding": "gzip", "content-type": "application/json"},
        )
    ),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_ANSWERS))
def test_every_unusable_caller_gets_one_401_that_reveals_nothing(name: str) -> None:
    answer, _ = redeem_as(HOSTILE_ANSWERS[name])
    assert answer.status_code == 401, answer.text
    document = answer.json()
    assert document["code"] == "invalid_signature"
    assert document["detail"] == (
        "cannot verify the caller: no signing keys could be loaded from the RFC 9728 metadata "
        "its iss names"
    )
    assert default_store().validate("app-next", "problem", document) == []


def test_an_iss_at_an_internal_address_gets_the_same_answer_as_a_closed_port() -> None:
    internal, _ = redeem_as(refused, iss="http://10.0.0.1/api/app/")
    closed, _ = redeem_as(refused)
    assert internal.status_code == closed.status_code == 401
    assert internal.json()["detail"] == closed.json()["detail"]


def test_a_200_mb_answer_is_read_no_further_than_the_size_cap() -> None:
    body = Pulled(chunks=3200)  # 200 MiB if read to the end
    answer, _ = redeem_as(
        by_url(
            prm=lambda: httpx.Response(
                200, content=body, headers={"content-type": "application/json"}
            )
        )
    )
    assert answer.status_code == 401
    assert body.read <= 2, f"read {body.read} chunks of 64 KiB"


def test_a_server_that_never_finishes_holds_the_request_no_longer_than_the_deadline() -> None:
    body = Pulled(chunks=1, stall=True)
    answer, elapsed = redeem_as(
        by_url(
            jwks=lambda: httpx.Response(
                200, content=body, headers={"content-type": "application/json"}
            )
        )
    )
    assert answer.status_code == 401
    assert elapsed < LIMITS.timeout + 2.0


# --- malformed payment tokens and media types (finding 7) ------------------------------------


async def _redeem_raw(sandbox: Sandbox, raw: bytes, content_type: str | None) -> httpx.Response:
    core, provider = sandbox.orchestrator_mock, sandbox.provider
    headers = {
        "Idempotency-Key": secrets.token_hex(8),
        "APP-Attestation": mint_attestation(
            provider.signing_key,
            issuer=provider.base_url,
            audience=core.issuer,
            subject="usr",
            body=raw,
            now=core.clock.timestamp(),
            lifetime=provider.params.attestation_lifetime,
        ),
    }
    if content_type is not None:
        headers["Content-Type"] = content_type
    async with sandbox.network.client() as client:
        return await client.post(core.redemption_endpoint, content=raw, headers=headers)


def _token(sandbox: Sandbox, **claims: Any) -> str:
    core = sandbox.orchestrator_mock
    now = core.clock.timestamp()
    base = {
        "iss": core.issuer,
        "aud": sandbox.provider.base_url,
        "sub": "usr_1",
        "jti": secrets.token_hex(8),
        "iat": now,
        "exp": now + 600,
        "max_amount": 1000,
        "currency": "usd",
        "service_id": "gpu",
        "project_id": "proj_1",
    }
    return jose.sign({**base, **claims}, core.signing_key, typ=PAYMENT_TOKEN_TYP)


@pytest.mark.parametrize("max_amount", ["abc", None, True, [1], {"a": 1}, -5])
def test_a_signed_token_with_a_malformed_max_amount_is_402_not_500(max_amount: Any) -> None:
    sandbox = Sandbox(profile="app-next")
    raw = json.dumps(
        {"payment_token": _token(sandbox, max_amount=max_amount), "amount": 100, "currency": "usd"}
    ).encode()
    answer = asyncio.run(_redeem_raw(sandbox, raw, "application/json"))
    assert (answer.status_code, answer.json()["code"]) == (402, "payment_token_invalid")
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert default_store().validate("app-next", "redemption_error", answer.json()) == []
    assert sandbox.orchestrator_mock.ledger.state("usr_1", sandbox.provider.base_url).spent == 0


def test_a_redemption_without_a_content_type_is_415_and_charges_nothing() -> None:
    sandbox = Sandbox(profile="app-next")
    raw = json.dumps({"payment_token": _token(sandbox), "amount": 100, "currency": "usd"}).encode()
    answer = asyncio.run(_redeem_raw(sandbox, raw, None))
    assert (answer.status_code, answer.json()["code"]) == (415, "unsupported_media_type")
    assert sandbox.orchestrator_mock.ledger.state("usr_1", sandbox.provider.base_url).spent == 0
    accepted = asyncio.run(_redeem_raw(sandbox, raw, "application/json; charset=utf-8"))
    assert accepted.status_code == 201
