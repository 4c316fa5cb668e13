"""`wire.ssrf.fetch_document`: the limits on a document fetched from a URL a peer
named, hop by hop (issue 19, finding 4). The orchestrator's use of it is tested in
tests/mocks/test_hostile_callers.py."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from wire.ssrf import FetchError, FetchLimits, SSRFGuard, fetch_document

GUARD = SSRFGuard(allowed_hosts=("peer.test", "next.test"))
JSON = {"content-type": "application/json"}


def fetch(routes: dict[str, httpx.Response], url: str, limits: FetchLimits | None = None) -> bytes:
    def serve(request: httpx.Request) -> httpx.Response:
        return routes[str(request.url)]

    async def go() -> bytes:
        async with httpx.AsyncClient(transport=httpx.MockTransport(serve)) as client:
            return await fetch_document(client, url, GUARD, limits)

    return asyncio.run(go())


def test_a_json_document_is_returned_as_sent() -> None:
    body = b'{"keys": []}'
    routes = {"https://peer.test/jwks": httpx.Response(200, content=body, headers=JSON)}
    assert fetch(routes, "https://peer.test/jwks") == body


def test_a_jwk_set_media_type_is_json_too() -> None:
    headers = {"content-type": "application/jwk-set+json"}
    routes = {"https://peer.test/jwks": httpx.Response(200, content=b"{}", headers=headers)}
    assert fetch(routes, "https://peer.test/jwks") == b"{}"


def test_each_redirect_hop_passes_the_guard() -> None:
    routes = {
        "https://peer.test/a": httpx.Response(302, headers={"location": "https://next.test/b"}),
        "https://next.test/b": httpx.Response(302, headers={"location": "http://169.254.169.254/"}),
    }
    with pytest.raises(FetchError) as refused:
        fetch(routes, "https://peer.test/a", FetchLimits(max_redirects=3))
    assert refused.value.reason.startswith("refused_")


def test_the_redirect_budget_is_kept() -> None:
    routes = {
        "https://peer.test/a": httpx.Response(302, headers={"location": "/b"}),
        "https://peer.test/b": httpx.Response(200, content=b"{}", headers=JSON),
    }
    assert fetch(routes, "https://peer.test/a", FetchLimits(max_redirects=1)) == b"{}"
    with pytest.raises(FetchError) as refused:
        fetch(routes, "https://peer.test/a", FetchLimits(max_redirects=0))
    assert refused.value.reason == "redirects"


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (httpx.Response(200, content=b"{}", headers={"content-type": "text/html"}), "media_type"),
        (httpx.Response(200, content=b"{}"), "media_type"),
        (httpx.Response(500, content=b"{}", headers=JSON), "status"),
        (
            httpx.Response(200, content=b"x" * 70_000, headers=JSON),
            "too_large",
        ),
        (
            httpx.Response(200, content=b"{}", headers={**JSON, "content-length": "99999999"}),
            "too_large",
        ),
    ],
)
def test_what_exceeds_the_limits_is_refused(answer: httpx.Response, reason: str) -> None:
    with pytest.raises(FetchError) as refused:
        fetch({"https://peer.test/doc": answer}, "https://peer.test/doc")
    assert refused.value.reason == reason
    assert str(refused.value) == "the document could not be fetched"
