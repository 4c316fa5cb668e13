"""The provider checks take each answer's exchange from the answer itself: requests sent at
once are never mixed up, and an answer that did not pass the recorder fails loudly."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from conformance.adapters.provider import recorded
from conformance.recorder import Recorder, RecordingTransport


def echo(request: httpx.Request) -> httpx.Response:
    # a stream, as from a socket: the recorder reads it raw
    return httpx.Response(200, stream=httpx.ByteStream(request.url.path.encode()))


async def answers(paths: list[str]) -> list[tuple[httpx.Response, str]]:
    transport = RecordingTransport(httpx.MockTransport(echo), Recorder())
    async with httpx.AsyncClient(transport=transport, base_url="https://provider.test") as http:
        responses = await asyncio.gather(*(http.get(path) for path in paths))
    return [(response, recorded(response).url) for response in responses]


def test_each_answer_carries_its_own_exchange_when_sent_at_once() -> None:
    paths = [f"/resource/{n}" for n in range(8)]
    for response, url in asyncio.run(answers(paths)):
        assert url == f"https://provider.test{response.text}"


def test_an_answer_that_did_not_pass_the_recorder_fails_loudly() -> None:
    response = httpx.Response(200, request=httpx.Request("GET", "https://provider.test/x"))
    with pytest.raises(RuntimeError, match="did not pass the recorder"):
        recorded(response)
