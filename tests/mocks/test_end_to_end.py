"""Whole protocol runs, in-process, both profiles: the mocks against each other."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from mocks.sandbox import Sandbox
from wire.attestation import mint_attestation

T = TypeVar("T")
PROFILES = ["app-0.1d", "app-next"]


def run(scenario: Callable[[Sandbox], Awaitable[T]], sandbox: Sandbox) -> T:
    async def main() -> T:
        try:
            return await scenario(sandbox)
        finally:
            await sandbox.aclose()

    return asyncio.run(main())


async def use_credentials(sandbox: Sandbox) -> int:
    resource = sandbox.orchestrator.resources()[-1]
    key = resource["credentials"]["api_key"]
    answer = await sandbox.http.get(
        resource["credentials"]["base_url"] + "whoami", headers={"Authorization": f"Bearer {key}"}
    )
    return answer.status_code


@pytest.mark.parametrize("profile", PROFILES)
def test_new_user_gets_an_account_and_a_free_service_whose_credentials_work(profile: str) -> None:
    async def scenario(sandbox: Sandbox) -> None:
        outcome = await sandbox.orchestrator.add("mockbase", "free")
        assert outcome.status == "provisioned", outcome
        assert await use_credentials(sandbox) == 200
        account = sandbox.provider.state.account_by_email("dev@example.com")
        assert account is not None
        assert account["origin"] == "orchestrator"

    run(scenario, Sandbox(profile=profile))


@pytest.mark.parametrize("profile", PROFILES)
def test_existing_user_goes_through_consent_then_is_provisioned(profile: str) -> None:
    async def scenario(sandbox: Sandbox) -> None:
        sandbox.orchestrator.set_user("existing@example.com")
        outcome = await sandbox.orchestrator.add("mockbase", "free")
        assert outcome.status == "provisioned", outcome
        assert await use_credentials(sandbox) == 200
        account = sandbox.provider.state.account_by_email("existing@example.com")
        assert account is not None
        assert account["origin"] == "signup"  # linked, not duplicated

    run(scenario, Sandbox(profile=profile))


@pytest.mark.parametrize("profile", PROFILES)
def test_existing_user_without_auto_consent_gets_a_consent_outcome(profile: str) -> None:
    async def scenario(sandbox: Sandbox) -> None:
        sandbox.orchestrator.set_user("existing@example.com")
        outcome = await sandbox.orchestrator.add("mockbase", "free")
        assert outcome.status == "consent_required"
        assert outcome.data["url"].startswith("https://mockbase.mock/")

    run(scenario, Sandbox(profile=profile, auto_consent=False))


def test_app_next_unlinked_existing_account_gets_401_with_resource_metadata() -> None:
    async def scenario(sandbox: Sandbox) -> None:
        sandbox.orchestrator.set_user("existing@example.com")
        provider = sandbox.orchestrator.provider("mockbase")
        answer = await sandbox.orchestrator.call(
            provider,
            "POST",
            "provisioning/account_requests",
            body={
                "id": "acctreq_1",
                "object": "account_request",
                "email": "existing@example.com",
                "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                "code_challenge_method": "S256",
            },
        )
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"].startswith(
            'Bearer resource_metadata="https://mockbase.mock/.well-known/oauth-protected-resource/api/app/"'
        )
        assert answer.json()["error"]["code"] == "consent_required"

    run(scenario, Sandbox(profile="app-next"))


def test_paid_service_is_paid_by_token_and_redemption_and_the_ledger_shows_it() -> None:
    async def scenario(sandbox: Sandbox) -> None:
        outcome = await sandbox.orchestrator.add("mockbase", "pro", confirm_paid=True)
        assert outcome.status == "provisioned", outcome
        user = sandbox.orchestrator.user()
        state = sandbox.orchestrator_mock.ledger.state(user.id, sandbox.provider.base_url)
        assert (state.spent, state.remaining) == (5000, 5000)

    run(scenario, Sandbox(profile="app-next"))


def test_paid_service_needs_confirmation_before_anything_is_charged() -> None:
    async def scenario(sandbox: Sandbox) -> None:
        outcome = await sandbox.orchestrator.add("mockbase", "pro")
        assert outcome.status == "confirmation_required"
        user = sandbox.orchestrator.user()
        assert sandbox.orchestrator_mock.ledger.state(user.id, sandbox.provider.base_url).spent == 0

    run(scenario, Sandbox(profile="app-next"))


def test_cap_refusal_at_mint_a_token_above_the_remaining_cap_is_not_minted() -> None:
    from mocks.orchestrator.ledger import CapExceeded

    async def scenario(sandbox: Sandbox) -> None:
        provider = sandbox.orchestrator.provider("mockbase")
        sandbox.orchestrator.mint_payment_token(provider, "gpu", "proj_1", 10000)
        with pytest.raises(CapExceeded):
            sandbox.orchestrator.mint_payment_token(provider, "gpu", "proj_1", 10001)

    run(scenario, Sandbox(profile="app-next"))


def test_second_gpu_in_a_month_is_refused_as_spend_cap_exceeded_and_nothing_is_provisioned() -> (
    None
):
    async def scenario(sandbox: Sandbox) -> None:
        first = await sandbox.orchestrator.add("mockbase", "gpu", confirm_paid=True, name="gpu-1")
        assert first.status == "provisioned"
        second = await sandbox.orchestrator.add("mockbase", "gpu", confirm_paid=True, name="gpu-2")
        assert second.status == "spend_cap_exceeded", second
        assert second.data["cap"]["remaining"] == 4000
        assert "raise the limit" in second.next_steps[0]
        assert len(sandbox.orchestrator.resources()) == 1

    run(scenario, Sandbox(profile="app-next"))


# --- the redemption endpoint, called directly as a provider would -----------------------------


async def redeem(
    sandbox: Sandbox, body: dict[str, Any], *, key: str | None = "idem-1"
) -> tuple[int, dict[str, Any], dict[str, str]]:
    provider = sandbox.provider
    raw = json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Idempotency-Key"] = key
    headers["APP-Attestation"] = mint_attestation(
        provider.signing_key,
        issuer=provider.base_url,
        audience=sandbox.orchestrator_mock.issuer,
        subject="usr",
        body=raw,
        now=sandbox.clock.timestamp(),
        lifetime=provider.params.attestation_lifetime,
    )
    answer = await sandbox.http.post(
        sandbox.orchestrator_mock.redemption_endpoint, content=raw, headers=headers
    )
    return answer.status_code, answer.json(), dict(answer.headers)


def token_body(sandbox: Sandbox, amount: int, max_amount: int = 6000) -> dict[str, Any]:
    provider = sandbox.orchestrator.provider("mockbase")
    token = sandbox.orchestrator.mint_payment_token(provider, "gpu", "proj_1", max_amount)
    return {
        "payment_token": token,
        "amount": amount,
        "currency": "usd",
        "description": "gpu",
        "resource_id": "res_1",
    }


def test_redemption_replay_returns_the_first_answer_and_charges_once() -> None:
    async def scenario(sandbox: Sandbox) -> None:
        body = token_body(sandbox, 6000)
        first = await redeem(sandbox, body)
        again = await redeem(sandbox, body)
        assert first[0] == again[0] == 201
        assert again[1] == first[1]
        assert again[2].get("idempotent-replayed") == "true"
        user = sandbox.orchestrator.user()
        assert (
            sandbox.orchestrator_mock.ledger.state(user.id, sandbox.provider.base_url).spent == 6000
        )

    run(scenario, Sandbox(profile="app-next"))


def test_redemption_idempotency_errors() -> None:
    async def scenario(sandbox: Sandbox) -> None:
        body = token_body(sandbox, 1000)
        status, problem, _ = await redeem(sandbox, body, key=None)
        assert (status, problem["code"]) == (400, "idempotency_key_required")
        assert (await redeem(sandbox, body))[0] == 201
        status, problem, _ = await redeem(sandbox, {**body, "amount": 999})
        assert (status, problem["code"]) == (422, "idempotency_conflict")
        status, problem, _ = await redeem(sandbox, body, key="idem-2")
        assert (status, problem["code"]) == (402, "payment_token_used")

    run(scenario, Sandbox(profile="app-next"))


def test_redemption_in_flight_answers_409() -> None:
    sandbox = Sandbox(profile="app-next")

    async def scenario(sandbox: Sandbox) -> None:
        release = asyncio.Event()
        entered = asyncio.Event()

        async def hold() -> None:
            entered.set()
            await release.wait()

        sandbox.orchestrator_mock.settings.before_charge = hold
        body = token_body(sandbox, 1000)
        first = asyncio.create_task(redeem(sandbox, body))
        await entered.wait()
        sandbox.orchestrator_mock.settings.before_charge = None
        status, problem, _ = await redeem(sandbox, body)
        release.set()
        assert (status, problem["code"]) == (409, "idempotency_in_flight")
        assert (await first)[0] == 201

    run(scenario, sandbox)


def test_redemption_over_the_cap_is_402_with_the_cap_figures() -> None:
    async def scenario(sandbox: Sandbox) -> None:
        first, second = token_body(sandbox, 6000), token_body(sandbox, 6000)
        assert (await redeem(sandbox, first, key="a"))[0] == 201
        status, problem, headers = await redeem(sandbox, second, key="b")
        assert status == 402
        assert headers["content-type"].startswith("application/problem+json")
        assert problem["code"] == "spend_cap_exceeded"
        assert problem["cap"]["remaining"] == 4000
        assert problem["cap"]["limit"] == 10000

    run(scenario, Sandbox(profile="app-next"))


def test_redemption_checks_amount_and_currency_against_the_token() -> None:
    async def scenario(sandbox: Sandbox) -> None:
        status, problem, _ = await redeem(sandbox, token_body(sandbox, 6001), key="x")
        assert (status, problem["code"]) == (402, "amount_exceeds_token")
        body = {**token_body(sandbox, 100), "currency": "eur"}
        status, problem, _ = await redeem(sandbox, body, key="y")
        assert (status, problem["code"]) == (402, "currency_mismatch")

    run(scenario, Sandbox(profile="app-next"))


def test_a_refund_gives_the_amount_back_to_the_cap() -> None:
    async def scenario(sandbox: Sandbox) -> None:
        status, redemption, _ = await redeem(sandbox, token_body(sandbox, 6000), key="r")
        assert status == 201
        provider = sandbox.provider
        raw = json.dumps({"redemption_id": redemption["id"], "amount": 2500}).encode()
        answer = await sandbox.http.post(
            sandbox.orchestrator_mock.refund_endpoint,
            content=raw,
            headers={
                "Idempotency-Key": "rf-1",
                "Content-Type": "application/json",
                "APP-Attestation": mint_attestation(
                    provider.signing_key,
                    issuer=provider.base_url,
                    audience=sandbox.orchestrator_mock.issuer,
                    subject="usr",
                    body=raw,
                    now=sandbox.clock.timestamp(),
                    lifetime=provider.params.attestation_lifetime,
                ),
            },
        )
        assert answer.status_code == 201, answer.text
        assert answer.json()["cap"]["spent"] == 3500

    run(scenario, Sandbox(profile="app-next"))


@pytest.mark.parametrize("profile", PROFILES)
def test_after_revocation_the_provider_answers_401_at_once(profile: str) -> None:
    async def scenario(sandbox: Sandbox) -> None:
        assert (await sandbox.orchestrator.add("mockbase", "free")).status == "provisioned"
        provider = sandbox.orchestrator.provider("mockbase")
        connection = sandbox.orchestrator.connection(provider)
        assert connection is not None
        resource_id = sandbox.orchestrator.resources()[0]["id"]
        before = await sandbox.orchestrator.call(
            provider,
            "GET",
            f"provisioning/resources/{resource_id}",
            bearer=connection["access_token"],
        )
        assert before.status_code == 200
        await sandbox.orchestrator.revoke("mockbase")
        after = await sandbox.orchestrator.call(
            provider,
            "GET",
            f"provisioning/resources/{resource_id}",
            bearer=connection["access_token"],
        )
        assert after.status_code == 401

    run(scenario, Sandbox(profile=profile))


def test_env_redacts_secrets_unless_revealed() -> None:
    async def scenario(sandbox: Sandbox) -> None:
        await sandbox.orchestrator.add("mockbase", "free", name="analytics")
        redacted = sandbox.orchestrator.env()
        revealed = sandbox.orchestrator.env(reveal=True)
        assert set(redacted) == {"ANALYTICS_API_KEY", "ANALYTICS_BASE_URL"}
        assert redacted["ANALYTICS_API_KEY"] == "••••••••"
        assert revealed["ANALYTICS_API_KEY"].startswith("pmk_")

    run(scenario, Sandbox(profile="app-0.1d"))


def test_catalog_aggregates_every_provider_and_revoke_fans_out() -> None:
    from mocks.orchestrator.catalog import aggregate
    from spec.schemas import default_store

    async def scenario(sandbox: Sandbox) -> None:
        orchestrator = sandbox.orchestrator
        catalogs = {
            record.name: await orchestrator.services(record) for record in orchestrator.providers()
        }
        document: dict[str, Any] = {
            "ok": True,
            "command": "projects catalog",
            "version": "0.1",
            "warnings": [],
            "next_steps": [],
            "meta": {"authenticated": True, "project_initialized": True},
            "data": aggregate(catalogs, last_updated="2026-11-23T12:00:00.000Z"),
        }
        assert default_store().validate("app-0.1d", "cli_catalog", document) == []
        names = {entry["provider_name"] for entry in document["data"]["services"]}
        assert names == {"Alpha", "Beta"}
        for name in ("alpha", "beta"):
            assert (await orchestrator.add(name, "free")).status == "provisioned"
        revoked = await orchestrator.revoke_all()
        assert sorted(item["provider"] for item in revoked) == ["alpha", "beta"]
        assert all(orchestrator.connection(record) is None for record in orchestrator.providers())

    run(scenario, Sandbox(profile="app-next", providers=("alpha", "beta")))
