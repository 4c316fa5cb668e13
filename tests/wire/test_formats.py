"""Issue 19, finding 7: the `email` format is RFC 5321's Mailbox, for the schemas (`provspec
validate`) and the mock provider alike, so neither takes `"@"` or a header injection."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest

from conformance.cli import main
from mocks.provider.app import ProviderMock, ProviderSettings
from wire import stripe_signature
from wire.formats import is_email

VALID = [
    "dev@example.com",
    "a.b+tag@sub.example.co",
    "x@y",
    "o'hara!#$%&*=?^_`{|}~-@example.com",
    '"quoted local"@example.com',
    '"a\\"b"@example.com',
    "u@[192.0.2.1]",
    "u@[IPv6:2001:db8::1]",
    "l" * 64 + "@example.com",
]
INVALID = [
    "@",
    "x@",
    "@y",
    "not-an-email",
    "x@y\r\nBcc: z@w",
    "x@y\nBcc: z@w",
    "a..b@example.com",
    ".a@example.com",
    "a.@example.com",
    "a b@example.com",
    "a@-example.com",
    "a@example-.com",
    "a@exa_mple.com",
    "a@example..com",
    "a@[300.1.1.1]",
    "a@[IPv6:nope]",
    "dév@example.com",
    "l" * 65 + "@example.com",
    "a@" + ".".join(["b" * 63] * 5),
    '"unterminated@example.com',
]


@pytest.mark.parametrize("value", VALID)
def test_rfc_5321_mailboxes_are_emails(value: str) -> None:
    assert is_email(value)


@pytest.mark.parametrize("value", INVALID)
def test_what_rfc_5321_refuses_is_not_an_email(value: str) -> None:
    assert not is_email(value)


@pytest.mark.parametrize("value", ["@", "x@y\r\nBcc: z@w"])
def test_provspec_validate_refuses_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    message = tmp_path / "account_request.json"
    message.write_text(json.dumps({"id": "acctreq_1", "email": value}))
    assert main(["validate", str(message), "--message", "account_request"]) == 1
    assert "/email" in capsys.readouterr().out


@pytest.mark.parametrize("verify_requests", [True, False])
def test_the_mock_provider_creates_no_account_for_a_header_injection(verify_requests: bool) -> None:
    """Refused by the schema when the provider verifies requests, and by the shared validator
    when it does not (the suite's instrument provider in orchestrator runs)."""
    provider = ProviderMock(ProviderSettings(verify_requests=verify_requests))
    raw = json.dumps({"id": "acctreq_1", "email": "x@y\r\nBcc: z@w"}).encode()
    headers = {
        "Content-Type": "application/json",
        "API-Version": "0.1d",
        "Stripe-Signature": stripe_signature.sign(
            provider.settings.hmac_secret, raw, int(time.time())
        ),
    }

    async def post() -> httpx.Response:
        transport = httpx.ASGITransport(app=provider.app)
        async with httpx.AsyncClient(transport=transport) as client:
            return await client.post(
                provider.base_url + "provisioning/account_requests", content=raw, headers=headers
            )

    before = provider.state.store.items("accounts")
    answer = asyncio.run(post())
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "invalid_request"
    assert provider.state.store.items("accounts") == before
