"""`ServedInThread.transport()`: the served app's answers without the socket, on the
server's own loop, bounded by the request's timeout, refused once the server stops."""

from __future__ import annotations

import asyncio
import threading

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mocks.hosting import ServedInThread


def _app(seen: list[int], release: threading.Event) -> Starlette:
    async def echo(request: Request) -> Response:
        seen.append(threading.get_ident())
        body = await request.body()
        return JSONResponse(
            {"method": request.method, "body": body.decode(), "query": request.url.query},
            status_code=201,
            headers={"X-Echo": request.headers.get("x-token", "")},
        )

    async def hang(request: Request) -> Response:
        while not release.is_set():  # until the test lets go (no sleep in the test itself)
            await asyncio.sleep(0.01)
        return Response("late")

    async def fail(request: Request) -> Response:
        raise RuntimeError("the app broke")

    return Starlette(
        routes=[
            Route("/echo", echo, methods=["GET", "POST"]),
            Route("/hang", hang),
            Route("/fail", fail),
        ]
    )


async def _both(listener: ServedInThread, url: str, body: bytes) -> list[httpx.Response]:
    """The same request over the socket, then in process."""
    answers = []
    async with (
        httpx.AsyncClient(timeout=5) as network,
        httpx.AsyncClient(timeout=5, mounts={listener.origin: listener.transport()}) as inside,
    ):
        for client in (network, inside):
            answers.append(await client.post(url, content=body, headers={"X-Token": "t0k"}))
    return answers


def test_the_in_process_answer_is_the_socket_answer_and_runs_on_the_servers_thread() -> None:
    seen: list[int] = []
    listener = ServedInThread()
    with listener.serving(_app(seen, threading.Event())):
        url = listener.origin + "/echo?a=1&b=%20"
        network, inside = asyncio.run(_both(listener, url, '{"x": "é"}'.encode()))
    assert (inside.status_code, inside.json(), inside.headers["x-echo"]) == (
        network.status_code,
        network.json(),
        network.headers["x-echo"],
    )
    assert inside.json() == {"method": "POST", "body": '{"x": "é"}', "query": "a=1&b=%20"}
    # Both ran where the server runs, not on the caller's thread.
    assert len(set(seen)) == 1
    assert seen[0] != threading.get_ident()


def test_a_hanging_app_is_a_read_timeout_and_a_failing_one_a_500() -> None:
    release = threading.Event()
    listener = ServedInThread()

    async def ask() -> tuple[type[BaseException] | None, int]:
        async with httpx.AsyncClient(
            timeout=httpx.Timeout(5, read=0.2), mounts={listener.origin: listener.transport()}
        ) as client:
            hung: type[BaseException] | None = None
            try:
                await client.get(listener.origin + "/hang")
            except httpx.HTTPError as error:
                hung = type(error)
            failed = await client.get(listener.origin + "/fail")
            return hung, failed.status_code

    with listener.serving(_app([], release)):
        try:
            hung, failed = asyncio.run(ask())
        finally:
            release.set()
    assert hung is httpx.ReadTimeout
    assert failed == 500


def test_a_stopped_server_refuses_like_a_closed_port() -> None:
    listener = ServedInThread()
    transport = listener.transport()

    async def ask() -> None:
        async with httpx.AsyncClient(mounts={listener.origin: transport}) as client:
            await client.get(listener.origin + "/echo")

    with pytest.raises(httpx.ConnectError, match="not serving"):
        asyncio.run(ask())  # not yet serving
    with listener.serving(_app([], threading.Event())):
        asyncio.run(ask())
        listener.stop_soon()
        with pytest.raises(httpx.ConnectError, match="not serving"):
            asyncio.run(ask())
