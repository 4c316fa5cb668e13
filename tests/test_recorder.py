"""The recorder: what a served suite mock received is recorded before its caller has the
answer, and the suite's provider client carries no cookie from one call to the next."""

from __future__ import annotations

import asyncio
import dataclasses
import threading

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from conformance.adapters.provider import stateless_client
from conformance.recorder import Recorder, RecordingASGI, RecordingTransport, exchange_of
from mocks.hosting import ServedInThread
from spec.schemas import default_store


async def _redeem(request: Request) -> JSONResponse:
    body = await request.json()
    return JSONResponse({"id": "red_1", "amount": body["amount"]}, status_code=201)


def test_a_received_exchange_is_whole_before_its_caller_has_the_answer() -> None:
    """A provider answers the suite as soon as the redemption answer reaches it; the check
    then reads what the suite's side recorded, which must already hold the answer — even
    while the app is still busy after answering (middleware, background tasks)."""
    recorder = Recorder()
    inner = Starlette(routes=[Route("/redemptions", _redeem, methods=["POST"])])
    read = threading.Event()

    async def busy_after_answering(scope: Scope, receive: Receive, send: Send) -> None:
        await inner(scope, receive, send)
        # Still running until the caller has looked at the record.
        await asyncio.get_running_loop().run_in_executor(None, read.wait, 5)
        read.clear()

    async def call(origin: str) -> tuple[int | None, str]:
        async with httpx.AsyncClient(timeout=5) as client:
            answer = await client.post(f"{origin}/redemptions", json={"amount": 7})
            assert answer.status_code == 201
            last = recorder.exchanges[-1]
            seen = (last.status, last.response_body)
            read.set()
            return seen

    with ServedInThread().serving(RecordingASGI(busy_after_answering, recorder)) as origin:
        status, body = asyncio.run(call(origin))
    assert status == 201
    assert '"red_1"' in body


def test_the_provider_client_keeps_no_cookie() -> None:
    sent: list[str | None] = []

    def provider(request: httpx.Request) -> httpx.Response:
        sent.append(request.headers.get("cookie"))
        return httpx.Response(302, headers={"set-cookie": "sessionid=abc; Path=/"})

    async def two_calls() -> None:
        async with stateless_client(transport=httpx.MockTransport(provider)) as client:
            await client.get("https://provider.example/login?token=t")
            await client.get("https://provider.example/provisioning/resources/1")

    asyncio.run(two_calls())
    assert sent == [None, None]


def test_each_recorder_masks_its_own_profiles_signing_headers() -> None:
    """A draft may rename the signing headers: its run's recorder masks the new names, and
    loading the draft changes no other recorder (nothing global is rewritten)."""
    draft = dataclasses.replace(
        default_store().profile("app-next").params,
        signature_header="X-Draft-Signature",
        attestation_header="X-Draft-Attestation",
    )
    headers = httpx.Headers(
        {"X-Draft-Signature": "t=1,v1=abc", "X-Draft-Attestation": "a.b.c", "Accept": "*/*"}
    )
    shown = Recorder.for_profile(draft).mask_headers(headers)
    assert shown["x-draft-signature"].startswith("«masked")
    assert shown["x-draft-attestation"].startswith("header ")
    assert shown["accept"] == "*/*"
    plain = Recorder().mask_headers(headers)
    assert plain["x-draft-signature"] == "t=1,v1=abc"
    assert Recorder.for_profile(None).secret_headers == Recorder().secret_headers


def test_a_recorded_response_carries_its_exchange_and_the_listeners_hear_it_whole() -> None:
    """Issue 16: a check cites the exchange its response came with (`exchange_of`), never
    one found again by method and URL; the engine's listeners hear each exchange once it is
    complete, a failed one too."""
    recorder = Recorder()
    heard: list[tuple[int, int | None, str | None]] = []
    recorder.listeners.append(
        lambda item: heard.append((item.id, getattr(item, "status", None), item.error))  # type: ignore[union-attr]
    )

    class Answering(httpx.AsyncBaseTransport):
        inner = httpx.ASGITransport(app=JSONResponse({"ok": True}))

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.path == "/down":
                raise httpx.ConnectError("refused", request=request)
            return await self.inner.handle_async_request(request)

    async def calls() -> tuple[list[httpx.Response], str]:
        transport = RecordingTransport(Answering(), recorder)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            # The same method and URL twice: only the response knows which exchange is its own.
            first, second = await client.get("/same"), await client.get("/same")
            try:
                await client.get("/down")
            except httpx.ConnectError as error:
                return [first, second], str(error)
        raise AssertionError("the failing call did not fail")

    (first, second), _ = asyncio.run(calls())
    assert exchange_of(first) is recorder.exchanges[0]
    assert exchange_of(second) is recorder.exchanges[1]
    assert exchange_of(httpx.Response(200)) is None  # not recorded: nothing to cite
    assert heard == [(1, 200, None), (2, 200, None), (3, None, "ConnectError: refused")]
