"""What selftest cannot show about the consent, payment, spend and revocation checks: that a
requirement another one blocks is skipped with the reason rather than failed twice, and that
the readers of CLI answers and tokens cope with shapes the mock orchestrator never prints."""

from __future__ import annotations

import pytest

from conformance.adapters.orchestrator import OrchestratorTargetConfig
from conformance.engine import RunPlan, run_sync
from conformance.packs.orchestrator._consent import with_query
from conformance.packs.orchestrator.payment import card_members, luhn_card_numbers, outcome_of
from conformance.packs.orchestrator.revocation import says_revoked
from conformance.packs.orchestrator.spend import cap_for
from conformance.results import RunResult, Status
from spec.requirement import Role, Step
from wire.urls import well_known_url


def run(*faults: str, steps: tuple[Step, ...]) -> RunResult:
    config = OrchestratorTargetConfig(profile="app-next", faults=faults)
    return run_sync(RunPlan(Role.ORCHESTRATOR, "app-next", orchestrator=config, steps=steps))


def statuses(result: RunResult) -> dict[str, tuple[Status, str]]:
    return {f.requirement.id: (f.status, f.message) for f in result.findings}


def test_an_unvalidated_resource_blocks_the_finer_comparison_checks() -> None:
    found = statuses(run("prm-resource-not-validated", steps=(Step.CONSENT,)))
    assert found["ORC-CNS-002"][0] is Status.FAILED
    for blocked in ("ORC-CNS-011", "ORC-CNS-013"):
        status, why = found[blocked]
        assert status is Status.SKIPPED
        assert "blocked by ORC-CNS-002" in why


def test_a_looping_orchestrator_is_stopped_and_counted() -> None:
    status, why = statuses(run("auth-retry-unbounded", steps=(Step.CONSENT,)))["ORC-CNS-014"]
    assert status is Status.FAILED
    assert "7 creation requests (at most 3)" in why


@pytest.mark.parametrize(
    ("value", "cards"),
    [
        ({"card": {"number": "4242 4242 4242 4242"}}, []),
        ({"card": {"number": "4242424242424242"}}, ["4242424242424242"]),
        ({"note": "ref 4000056655665556 ok", "iat": 1767225600}, ["4000056655665556"]),
        ({"jti": "1234567890123", "flag": True}, []),
        ({"card": "4242424242424242"}, ["4242424242424242"]),
        ({"pan": "pan=4242424242424242;"}, ["4242424242424242"]),
        # An identifier's digits are not a card number (a hex id holds Luhn-valid runs).
        (
            {
                "sub": "usr_4242424242424242",
                "jti": "a4242424242424242b",
                "id": "x-4242424242424242",
            },
            [],
        ),
        ({"sub": "usr_7a4242424242424242"}, []),
    ],
)
def test_card_numbers_are_those_passing_luhn(value: object, cards: list[str]) -> None:
    assert luhn_card_numbers(value) == cards


def test_card_members_spare_the_standard_exp_claim() -> None:
    claims = {"exp": 1, "max_amount": 5, "pm": {"exp_month": 12, "cvc": "1"}}
    assert card_members(claims) == ["pm.exp_month", "pm.cvc"]
    assert card_members({"type": "app_payment_token", "stripe_payment_token": "spt_1"}) == [
        "stripe_payment_token"
    ]


@pytest.mark.parametrize(
    "data",
    [
        {"caps": {"acme": {"limit": 10000, "spent": 0, "currency": "usd"}}},
        {"providers": [{"provider": "acme", "usage": {"limit": 10000, "spent": 0}}]},
        {"providers": [{"name": "acme", "limit": 10000, "spent": 0, "currency": "usd"}]},
    ],
)
def test_a_providers_cap_is_found_keyed_or_named(data: dict[str, object]) -> None:
    cap = cap_for({"ok": True, "data": data}, "acme")
    assert cap is not None
    assert cap["limit"] == 10000
    assert cap_for({"ok": True, "data": data}, "other") is None


def test_outcomes_and_revocation_reports_are_read_from_either_member() -> None:
    assert outcome_of({"ok": False, "error": {"code": "SPEND_CAP_EXCEEDED"}}) == (
        "spend_cap_exceeded"
    )
    assert outcome_of({"ok": True, "data": {"status": "provisioned"}}) == "provisioned"
    assert says_revoked({"revoked": [{"provider": "acme", "revoked": True}]})
    assert not says_revoked({"provider": "acme", "revoked": False})


def test_query_and_well_known_urls_are_built_without_normalising() -> None:
    url = "https://o.example/cb?code=c&state=s&iss=https%3A%2F%2Fa.example"
    assert with_query(url, state=None) == "https://o.example/cb?code=c&iss=https%3A%2F%2Fa.example"
    assert with_query(url, state="t").endswith("&state=t")
    assert well_known_url("https://a.example/api/app/", "oauth-protected-resource") == (
        "https://a.example/.well-known/oauth-protected-resource/api/app/"
    )
    assert well_known_url("https://a.example/", "oauth-authorization-server") == (
        "https://a.example/.well-known/oauth-authorization-server"
    )
