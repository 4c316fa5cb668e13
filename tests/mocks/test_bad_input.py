"""Bad input to every mock endpoint: the profile's envelope and status, never a 500 or a
traceback, and no state change (DESIGN.md §6). Table-driven, per endpoint, both profiles."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from mocks._core.store import MemoryStore
from mocks.sandbox import Sandbox
from spec.schemas import default_store
from wire.attestation import mint_attestation

STORE = default_store()
OVERSIZED = b'{"pad": "' + b"x" * 70_000 + b'"}'
# name -> (raw body, accepted statuses)
BODIES: dict[str, tuple[bytes, set[int]]] = {
    "malformed-json": (b'{"service_id": ', {400}),
    "duplicate-keys": (b'{"service_id": "free", "service_id": "pro"}', {400}),
    "nan": (b'{"service_id": NaN}', {400}),
    "not-an-object": (b'["free"]', {400}),
    "wrong-types": (
        b'{"service_id": 5, "email": 5, "purpose": 5, "label_prefix": 5, "reason": 5}',
        {400},
    ),
    "not-utf8": (b'{"service_id": "\xff"}', {400}),
    "oversized": (OVERSIZED, {413}),
}
# path template -> (envelope schema, needs a bearer token)
PROVIDER_ENDPOINTS = {
    "provisioning/account_requests": ("error_typed", False),
    "provisioning/resources": ("error_status", True),
    "provisioning/resources/{id}/update_service": ("error_status", True),
    "provisioning/resources/{id}/rotate_credentials": ("error_status", True),
    "provisioning/resources/{id}/remove": ("error_status", True),
    "provisioning/deep_links": ("error_flat", True),
}


def snapshot(store: Any) -> dict[str, Any]:
    assert isinstance(store, MemoryStore)
    # The replay cache records every verified attestation: that is the rule working, not state.
    return {
        name: dict(rows)
        for name, rows in store._tables.items()
        if rows and not name.startswith("seen_")
    }


def assert_envelope(profile: str, message: str, answer: Any, statuses: set[int]) -> None:
    assert answer.status_code in statuses, (answer.status_code, answer.text[:300])
    assert "Traceback" not in answer.text
    document = json.loads(answer.content)
    assert STORE.validate(profile, message, document) == [], document


async def provisioned(sandbox: Sandbox) -> tuple[str, str]:
    assert (await sandbox.orchestrator.add("mockbase", "free")).status == "provisioned"
    provider = sandbox.orchestrator.provider("mockbase")
    connection = sandbox.orchestrator.connection(provider)
    assert connection is not None
    return connection["access_token"], sandbox.orchestrator.resources()[0]["id"]


@pytest.mark.parametrize("profile", ["app-0.1d", "app-next"])
@pytest.mark.parametrize("endpoint", sorted(PROVIDER_ENDPOINTS))
def test_provider_answers_bad_bodies_in_its_envelope_and_changes_nothing(
    profile: str, endpoint: str
) -> None:
    async def scenario() -> None:
        sandbox = Sandbox(profile=profile)
        token, resource_id = await provisioned(sandbox)
        envelope, needs_bearer = PROVIDER_ENDPOINTS[endpoint]
        provider = sandbox.orchestrator.provider("mockbase")
        path = endpoint.format(id=resource_id)
        before = snapshot(sandbox.provider.state.store)
        for name, (raw, statuses) in BODIES.items():
            answer = await sandbox.orchestrator.call(
                provider, "POST", path, content=raw, bearer=token if needs_bearer else None
            )
            try:
                assert_envelope(profile, envelope, answer, statuses)
            except AssertionError as error:
                raise AssertionError(f"{name}: {error}") from None
        assert snapshot(sandbox.provider.state.store) == before
        await sandbox.aclose()

    asyncio.run(scenario())


@pytest.mark.parametrize("profile", ["app-0.1d", "app-next"])
@pytest.mark.parametrize(
    ("case", "override", "status", "code"),
    [
        ("no-api-version", {"API-Version": ""}, 400, "invalid_api_version"),
        ("wrong-api-version", {"API-Version": "0.2"}, 400, "invalid_api_version"),
        ("no-signature", {"Stripe-Signature": "", "APP-Attestation": ""}, 401, "invalid_signature"),
        (
            "garbage-signature",
            {"Stripe-Signature": "t=x,v1", "APP-Attestation": "a.b"},
            401,
            "invalid_signature",
        ),
    ],
)
def test_provider_refuses_bad_headers_with_the_flat_envelope(
    profile: str, case: str, override: dict[str, str], status: int, code: str
) -> None:
    async def scenario() -> None:
        sandbox = Sandbox(profile=profile)
        provider = sandbox.orchestrator.provider("mockbase")
        before = snapshot(sandbox.provider.state.store)
        body = {
            "id": "acctreq_1",
            "email": "new@example.com",
            "orchestrator": {"type": "stripe", "stripe": {"account": "acct_1PrvspecTest0001"}},
            "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "code_challenge_method": "S256",
        }
        answer = await sandbox.orchestrator.call(
            provider, "POST", "provisioning/account_requests", body=body, headers_override=override
        )
        assert_envelope(profile, "error_flat", answer, {status})
        assert "type" not in answer.json(), "signature and version failures are flat"
        assert answer.json()["error"]["code"] == code
        assert snapshot(sandbox.provider.state.store) == before
        await sandbox.aclose()

    asyncio.run(scenario())


@pytest.mark.parametrize("profile", ["app-0.1d", "app-next"])
@pytest.mark.parametrize(
    "form",
    [b"grant_type=password", b"grant_type=authorization_code&code=nope", b"%%%", b"code=a&code=b"],
)
def test_token_endpoint_answers_bad_forms_in_the_oauth_envelope(profile: str, form: bytes) -> None:
    async def scenario() -> None:
        sandbox = Sandbox(profile=profile)
        answer = await sandbox.http.post(
            sandbox.provider.base_url + "oauth/token",
            content=form,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert answer.status_code in (400, 401)
        assert STORE.validate(profile, "error_oauth", answer.json()) == []
        await sandbox.aclose()

    asyncio.run(scenario())


REDEMPTION_BODIES: dict[str, tuple[bytes, int]] = {
    "malformed-json": (b'{"amount": ', 400),
    "duplicate-amount": (
        b'{"payment_token": "a.b.c", "amount": 1, "amount": 9999, "currency": "usd"}',
        400,
    ),
    "string-amount": (b'{"payment_token": "a.b.c", "amount": "6000", "currency": "usd"}', 400),
    "float-amount": (b'{"payment_token": "a.b.c", "amount": 60.0, "currency": "usd"}', 400),
    "nan-amount": (b'{"payment_token": "a.b.c", "amount": NaN, "currency": "usd"}', 400),
    "unknown-member": (
        b'{"payment_token": "a.b.c", "amount": 1, "currency": "usd", "tip": 5}',
        400,
    ),
    "garbage-token": (b'{"payment_token": "a.b.c", "amount": 1, "currency": "usd"}', 402),
    "oversized": (OVERSIZED, 413),
}


@pytest.mark.parametrize("endpoint", ["redemption_endpoint", "refund_endpoint"])
def test_orchestrator_answers_bad_redemptions_with_problem_json_and_charges_nothing(
    endpoint: str,
) -> None:
    async def scenario() -> None:
        sandbox = Sandbox(profile="app-next")
        provider = sandbox.provider
        url = getattr(sandbox.orchestrator_mock, endpoint)
        before = snapshot(sandbox.orchestrator_mock.store)
        cases = dict(REDEMPTION_BODIES)
        if endpoint == "refund_endpoint":
            cases["garbage-token"] = (b'{"redemption_id": "rdm_nope", "amount": 1}', 404)
        for index, (name, (raw, status)) in enumerate(cases.items()):
            headers = {"Content-Type": "application/json", "Idempotency-Key": f"k{index}"}
            headers["APP-Attestation"] = mint_attestation(
                provider.signing_key,
                issuer=provider.base_url,
                audience=sandbox.orchestrator_mock.issuer,
                subject="usr",
                body=raw,
                now=sandbox.clock.timestamp(),
                lifetime=provider.params.attestation_lifetime,
            )
            answer = await sandbox.http.post(url, content=raw, headers=headers)
            expected = 413 if name == "oversized" else status
            assert answer.status_code == expected, (name, answer.text[:300])
            assert answer.headers["content-type"].startswith("application/problem+json"), name
            assert STORE.validate("app-next", "problem", answer.json()) == [], name
        assert snapshot(sandbox.orchestrator_mock.store) == before
        await sandbox.aclose()

    asyncio.run(scenario())


def test_orchestrator_refuses_missing_key_and_unsigned_redemptions() -> None:
    async def scenario() -> None:
        sandbox = Sandbox(profile="app-next")
        raw = b'{"payment_token": "a.b.c", "amount": 1, "currency": "usd"}'
        url = sandbox.orchestrator_mock.redemption_endpoint
        answer = await sandbox.http.post(
            url, content=raw, headers={"Content-Type": "application/json"}
        )
        assert (answer.status_code, answer.json()["code"]) == (400, "idempotency_key_required")
        answer = await sandbox.http.post(url, content=raw, headers={"Idempotency-Key": "k"})
        assert (answer.status_code, answer.json()["code"]) == (401, "invalid_signature")
        await sandbox.aclose()

    asyncio.run(scenario())
