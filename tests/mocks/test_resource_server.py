"""The mock resource server itself: hostile input never crashes it or changes its state, and
what the checks rely on (single-use codes, rotation, grant-wide revocation) holds."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from urllib.parse import parse_qsl, urlsplit

import pytest
from starlette.testclient import TestClient

from mocks.resource_server import ResourceServerMock, ResourceServerSettings

REDIRECT = "http://127.0.0.1:8976/provspec/callback"
VERIFIER = "v" * 43
CHALLENGE = (
    base64.urlsafe_b64encode(hashlib.sha256(VERIFIER.encode()).digest()).rstrip(b"=").decode()
)


@pytest.fixture
def mock() -> ResourceServerMock:
    return ResourceServerMock(ResourceServerSettings(origin="http://testserver"))


@pytest.fixture
def http(mock: ResourceServerMock) -> Iterator[TestClient]:
    with TestClient(mock.app, follow_redirects=False) as client:
        yield client


def register(http: TestClient, **extra: object) -> str:
    body = {"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"], **extra}  # fmt: skip
    answer = http.post("/as/register", json=body)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["client_id"])


def code_for(http: TestClient, client_id: str) -> str:
    answer = http.get(
        "/as/authorize",
        params={"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT,
                "code_challenge": CHALLENGE, "code_challenge_method": "S256", "state": "s",
                "resource": "http://testserver/mcp"},
    )  # fmt: skip
    assert answer.status_code == 302
    params = dict(parse_qsl(urlsplit(answer.headers["location"]).query))
    assert (params["state"], params["iss"]) == ("s", "http://testserver/as")
    return params["code"]


def tokens(http: TestClient, client_id: str, code: str) -> dict[str, str]:
    answer = http.post(
        "/as/token",
        data={"grant_type": "authorization_code", "code": code, "client_id": client_id,
              "redirect_uri": REDIRECT, "code_verifier": VERIFIER},
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    return dict(answer.json())


@pytest.mark.parametrize(
    ("method", "path", "content"),
    [
        ("POST", "/as/token", b"\xff\xfe not a form"),
        ("POST", "/as/token", b"grant_type=a&grant_type=b"),
        ("POST", "/as/register", b'{"redirect_uris": [NaN]}'),
        ("POST", "/as/register", b"[]"),
        ("POST", "/as/revoke", b"token="),
        ("GET", "/as/authorize?client_id=x&client_id=y", b""),
        ("POST", "/as/register", b"{" * 5000),
    ],
)
def test_hostile_input_gets_an_oauth_error_never_a_500(
    http: TestClient, mock: ResourceServerMock, method: str, path: str, content: bytes
) -> None:
    answer = http.request(method, path, content=content, headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert 400 <= answer.status_code < 500
    assert isinstance(answer.json()["error"], str)
    assert mock.clients == {}
    assert mock.access_tokens == {}


def test_unknown_paths_and_methods_are_refused(http: TestClient) -> None:
    assert http.get("/as/nothing").status_code == 404
    assert http.get("/as/token").status_code == 405


def test_a_code_is_single_use_and_its_reuse_revokes_the_grant(http: TestClient) -> None:
    client_id = register(http)
    code = code_for(http, client_id)
    first = tokens(http, client_id, code)
    again = http.post(
        "/as/token",
        data={"grant_type": "authorization_code", "code": code, "client_id": client_id,
              "redirect_uri": REDIRECT, "code_verifier": VERIFIER},
    )  # fmt: skip
    assert again.json()["error"] == "invalid_grant"
    use = http.get("/mcp", headers={"Authorization": f"Bearer {first['access_token']}"})
    assert use.status_code == 401  # RFC 6749 §4.1.2: tokens of a replayed code are revoked


def test_refresh_rotates_and_a_replayed_refresh_token_revokes_the_grant(http: TestClient) -> None:
    client_id = register(http)
    first = tokens(http, client_id, code_for(http, client_id))
    form = {"grant_type": "refresh_token", "client_id": client_id}
    second = http.post("/as/token", data={**form, "refresh_token": first["refresh_token"]}).json()
    assert second["refresh_token"] != first["refresh_token"]
    replay = http.post("/as/token", data={**form, "refresh_token": first["refresh_token"]})
    assert replay.json()["error"] == "invalid_grant"
    still = http.post("/as/token", data={**form, "refresh_token": second["refresh_token"]})
    assert still.json()["error"] == "invalid_grant"  # RFC 9700 §4.14.2: the grant is gone


def test_the_resource_answers_each_kind_of_token_as_the_rfcs_say(http: TestClient) -> None:
    client_id = register(http, scope="mcp:read")
    limited = tokens(http, client_id, code_for(http, client_id))
    bare = http.get("/mcp")
    assert bare.status_code == 401
    assert bare.headers["www-authenticate"] == (
        'Bearer scope="mcp:tools", '
        'resource_metadata="http://testserver/.well-known/oauth-protected-resource/mcp"'
    )
    short = http.get("/mcp", headers={"Authorization": f"Bearer {limited['access_token']}"})
    assert short.status_code == 403
    assert 'error="insufficient_scope"' in short.headers["www-authenticate"]
    assert 'scope="mcp:tools"' in short.headers["www-authenticate"]
    unknown = http.get("/mcp", headers={"Authorization": "Bearer nope"})
    assert unknown.status_code == 401
    assert 'error="invalid_token"' in unknown.headers["www-authenticate"]
