"""The mock provider reads the currency from the profile (`default_cap.currency`), as every
other parameter: a draft of app-next that only changes the currency to "eur" is followed by
the catalog, the payment-token checks and the redemption, and passes its provider selftest
(issue 16: the mock used to hard-code "usd" and failed PRV-PAY-009 and PRV-RED-001)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from conformance.cli import main
from conformance.selftest import run_selftest
from mocks.provider import ProviderMock, ProviderSettings
from spec.requirement import Role
from spec.schemas import default_store

# The faults whose requirements read the price's currency (catalog, token, redemption),
# and one that breaks nothing about money, next to the reference run.
FAULTS = (
    "payment-token-currency-unchecked",
    "redeem-over-max-amount",
    "redeems-less-than-price",
    "skip-redemption",
    "catalog-bad-pricing",
)


@pytest.fixture(scope="module")
def eur_draft(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A draft made the way a spec author makes one: `profile new`, then one line changed."""
    target = tmp_path_factory.mktemp("drafts") / "eur"
    assert main(["profile", "new", str(target), "--from", "app-next"]) == 0
    manifest = target / "profile.toml"
    text = manifest.read_text()
    assert '# currency = "usd"' in text
    manifest.write_text(text.replace('# currency = "usd"', 'currency = "eur"', 1))
    assert main(["profile", "check", str(target)]) == 0
    return str(target)


def test_the_draft_changes_the_currency_and_nothing_else(eur_draft: str) -> None:
    draft = default_store().profile(eur_draft).params
    base = default_store().profile("app-next").params
    assert draft.default_cap.currency == "eur"
    assert (draft.default_cap.limit, draft.default_cap.interval) == (
        base.default_cap.limit,
        base.default_cap.interval,
    )


def test_the_catalog_prices_in_the_profiles_currency(eur_draft: str) -> None:
    # the suite's instrument (no attestation needed): the catalog is what is under test
    mock = ProviderMock(ProviderSettings(profile=eur_draft, verify_requests=False))
    assert mock.currency == "eur"

    async def catalog() -> httpx.Response:
        transport = httpx.ASGITransport(app=mock.app)
        async with httpx.AsyncClient(transport=transport) as client:
            return await client.get(mock.base_url + "provisioning/services")

    answer = asyncio.run(catalog())
    assert answer.status_code == 200, answer.text
    prices = [
        entry["pricing"]["paid"]
        for entry in answer.json()["data"]
        if isinstance(entry["pricing"].get("paid"), dict) and "amount" in entry["pricing"]["paid"]
    ]
    assert prices, "app-next's catalog gives paid prices an amount and a currency"
    assert {price["currency"] for price in prices} == {"eur"}


def test_the_eur_draft_passes_its_provider_selftest(eur_draft: str) -> None:
    result = run_selftest((eur_draft,), roles=(Role.PROVIDER,), only=FAULTS)
    assert result.references == {("provider", eur_draft): []}
    assert sorted(row.fault.name for row in result.rows) == sorted(FAULTS)
    assert {row.fault.name: row.status for row in result.rows} == dict.fromkeys(FAULTS, "exact")
