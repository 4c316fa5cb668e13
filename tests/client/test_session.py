"""What the suite's orchestrator client sends, read off the wire by a transport stub."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from urllib.parse import parse_qs

import httpx
import pytest

from conformance.client import (
    ClientSettings,
    ConnectFailed,
    ConsentNeeded,
    IdentityFactory,
    OrchestratorClient,
    OrchestratorIdentity,
)
from conformance.client._identity import MAX_EMAIL
from spec.schemas import default_store
from wire.formats import is_email
from wire.pkce import s256

BASE = "https://provider.example/api/partners/stripe/"
SECRET = "whsec_test"
NOW = 1_800_000_000


def synchronous(test: Callable[[], Coroutine[None, None, None]]) -> Callable[[], None]:
    """Run an async test body on its own event loop (the project has no async test plugin)."""

    @functools.wraps(test)
    def run() -> None:
        asyncio.run(test())

    return run


def client(
    answer: Callable[[httpx.Request], httpx.Response],
    seen: list[httpx.Request],
    settings: ClientSettings | None = None,
) -> OrchestratorClient:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer(request)

    params = default_store().profile("app-0.1d").params
    return OrchestratorClient(
        httpx.AsyncClient(transport=httpx.MockTransport(handler)),
        base_url=BASE,
        family="app-0.1d",
        params=params,
        hmac_secret=SECRET,
        settings=settings,
        identities=IdentityFactory(seed=7),
        clock=lambda: NOW,
    )


def oauth_then_tokens(request: httpx.Request) -> httpx.Response:
    if request.url.path.endswith("account_requests"):
        body = json.loads(request.content)
        return httpx.Response(
            200, json={"id": body["id"], "type": "oauth", "oauth": {"code": "c1"}}
        )
    return httpx.Response(
        200, json={"token_type": "bearer", "access_token": "pha_1", "refresh_token": "phr_1"}
    )


@synchronous
async def test_an_account_request_carries_what_a_real_orchestrator_sends() -> None:
    seen: list[httpx.Request] = []
    orchestrator = client(oauth_then_tokens, seen)
    answer = await orchestrator.request_account()
    request = seen[0]
    body = json.loads(request.content)
    user = orchestrator.user
    assert body["object"] == "account_request"
    assert body["id"].startswith("acctreq_")
    assert (body["email"], body["name"]) == (user.email, user.name)
    assert body["orchestrator"] == {"type": "stripe", "stripe": {"account": user.account}}
    assert user.account.startswith("acct_1")
    assert len(user.account) == 21
    assert body["client_capabilities"] == ["browser"]
    assert "scopes" not in body  # none configured: the provider's default set
    assert datetime.fromisoformat(body["expires_at"]) == datetime.fromtimestamp(NOW + 600, UTC)
    assert body["code_challenge_method"] == "S256"
    assert answer.verifier is not None
    assert s256(answer.verifier) == body["code_challenge"]
    assert not default_store().validate("app-0.1d", "account_request", body)
    # Signed like Stripe signs, over the exact bytes sent, with the profile's version.
    mac = hmac.new(SECRET.encode(), f"{NOW}.".encode() + request.content, hashlib.sha256)
    assert request.headers["stripe-signature"] == f"t={NOW},v1={mac.hexdigest()}"
    assert request.headers["api-version"] == "0.1d"
    assert request.headers["accept"] == "application/json"


@synchronous
async def test_configured_identity_and_members_are_sent() -> None:
    seen: list[httpx.Request] = []
    settings = ClientSettings(
        orchestrator=OrchestratorIdentity(account="acct_1Pinned000000000", organisation="org_1"),
        scopes=("query:read",),
        account_configuration={"region": "EU"},
    )
    await client(oauth_then_tokens, seen, settings).request_account()
    body = json.loads(seen[0].content)
    assert body["orchestrator"] == {
        "type": "stripe",
        "stripe": {"account": "acct_1Pinned000000000", "organisation": "org_1"},
    }
    assert (body["scopes"], body["configuration"]) == (["query:read"], {"region": "EU"})


def test_another_orchestrator_type_uses_the_generic_account_member() -> None:
    user = IdentityFactory().user()
    block = OrchestratorIdentity(type="acme", account="a-1").block(user)
    assert block == {"type": "acme", "account": "a-1"}
    with pytest.raises(ValueError, match="short identifier"):
        OrchestratorIdentity(account="acct with spaces")


@synchronous
async def test_connect_exchanges_the_code_with_its_verifier() -> None:
    seen: list[httpx.Request] = []
    connection = await client(oauth_then_tokens, seen).connect()
    assert (connection.access_token, connection.refresh_token) == ("pha_1", "phr_1")
    form = parse_qs(seen[1].content.decode())
    assert form["grant_type"] == ["authorization_code"]
    assert form["code"] == ["c1"]
    challenge = json.loads(seen[0].content)["code_challenge"]
    assert s256(form["code_verifier"][0]) == challenge
    assert seen[1].headers["content-type"] == "application/x-www-form-urlencoded"
    assert "stripe-signature" in seen[1].headers


@synchronous
async def test_requires_auth_is_consent_unless_it_can_be_scripted() -> None:
    def consent(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("account_requests"):
            url = "https://provider.example/consent?r=1"
            return httpx.Response(
                200, json={"type": "requires_auth", "requires_auth": {"url": url}}
            )
        if request.url.path.endswith("consent"):
            return httpx.Response(200, json={"code": "c2"})
        return httpx.Response(200, json={"token_type": "bearer", "access_token": "pha_2"})

    seen: list[httpx.Request] = []
    with pytest.raises(ConsentNeeded, match="type requires_auth") as needed:
        await client(consent, seen).connect()
    assert needed.value.answer.consent_url == "https://provider.example/consent?r=1"
    connection = await client(consent, seen).connect(scripted_consent=True)
    assert connection.access_token == "pha_2"
    assert str(seen[-2].url) == "https://provider.example/consent?r=1&approve=1"


@synchronous
async def test_a_refusal_says_where_the_chain_stopped_and_why() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        message = "orchestrator.stripe.account is required"
        return httpx.Response(
            400, json={"type": "error", "error": {"code": "invalid_request", "message": message}}
        )

    with pytest.raises(ConnectFailed) as failed:
        await client(refuse, []).connect()
    assert str(failed.value) == (
        "the account request was answered 400 invalid_request "
        "'orchestrator.stripe.account is required'"
    )


@synchronous
async def test_headers_can_be_replaced_or_removed_after_signing() -> None:
    seen: list[httpx.Request] = []
    orchestrator = client(lambda request: httpx.Response(200, json={}), seen)
    await orchestrator.send(
        "GET", "provisioning/health", headers={"stripe-signature": "", "API-Version": "x"}
    )
    assert "stripe-signature" not in seen[0].headers
    assert seen[0].headers["api-version"] == "x"


def test_identities_are_fresh_within_a_run_and_the_same_for_a_seed() -> None:
    first, second = IdentityFactory(seed=3), IdentityFactory(seed=3)
    users = [first.user() for _ in range(50)]
    assert [second.user() for _ in range(50)] == users  # a seed reproduces the run's users
    assert len({user.email for user in users}) == 50  # each new user is new to the provider
    assert len({user.id for user in users}) == len({user.account for user in users}) == 50
    assert IdentityFactory(seed=4).user() != users[0]
    for user in users:
        assert is_email(user.email), user.email
        assert user.email.endswith("@example.com")  # RFC 2606: never a real mailbox
        assert len(user.email) <= MAX_EMAIL
        first_name, _, last_name = user.name.partition(" ")
        assert first_name
        assert last_name
        assert re.fullmatch(r"[a-z0-9.]+\+[0-9a-f]+", user.email.partition("@")[0])
    assert IdentityFactory().user("existing@example.com").email == "existing@example.com"


def test_an_email_stays_within_its_length_for_any_name() -> None:
    factory = IdentityFactory(seed=1)
    long = factory.email("Bartholomew-Maximilian", "Vanderwaal-Oppenheimer-Smythe")
    accents = factory.email("Zoë", "O'Brien")
    assert len(long) <= MAX_EMAIL
    assert is_email(long)
    assert long.startswith("bartholomewmaximilian.")
    assert accents.startswith("zoe.obrien+")
    assert is_email(accents)
    assert is_email(factory.email("'", "-"))  # nothing left of the name: still an address
