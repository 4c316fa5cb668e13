from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mocks._core.store import MemoryStore, SQLiteStore, Store
from mocks.orchestrator.ledger import CapExceeded, SpendLedger, month_of
from wire.clock import FrozenClock


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    return MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "state.db")


def test_default_cap_is_10000_usd_per_month(store: Store) -> None:
    clock = FrozenClock(datetime(2026, 11, 23, 12, tzinfo=UTC))
    state = SpendLedger(store, clock).state("usr_1", "prv_a")
    assert state.as_json() == {
        "limit": 10000,
        "spent": 0,
        "remaining": 10000,
        "currency": "usd",
        "interval": "month",
        "resets_at": "2026-12-01T00:00:00Z",
    }


def test_a_charge_up_to_the_cap_succeeds_and_one_unit_more_is_refused(store: Store) -> None:
    ledger = SpendLedger(store, FrozenClock())
    assert ledger.charge("u", "p", 9999).remaining == 1
    assert ledger.charge("u", "p", 1).remaining == 0
    with pytest.raises(CapExceeded) as refused:
        ledger.charge("u", "p", 1)
    assert refused.value.state.spent == 10000
    assert ledger.state("u", "p").spent == 10000


def test_caps_are_per_user_and_per_provider(store: Store) -> None:
    ledger = SpendLedger(store, FrozenClock())
    ledger.charge("u", "p", 10000)
    assert ledger.charge("u", "q", 10000).spent == 10000
    assert ledger.charge("v", "p", 10000).spent == 10000


def test_the_cap_resets_at_the_start_of_the_calendar_month_utc(store: Store) -> None:
    clock = FrozenClock(datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC))
    ledger = SpendLedger(store, clock)
    ledger.charge("u", "p", 10000)
    assert ledger.state("u", "p").resets_at == datetime(2027, 1, 1, tzinfo=UTC)
    clock.advance(1)
    assert ledger.state("u", "p").spent == 0
    assert month_of(clock.now()) == "2027-01"


def test_a_refund_restores_the_month_it_was_charged_in(store: Store) -> None:
    clock = FrozenClock(datetime(2026, 11, 30, 12, tzinfo=UTC))
    ledger = SpendLedger(store, clock)
    charged = ledger.charge("u", "p", 6000)
    clock.advance(days=2)
    ledger.charge("u", "p", 10000)
    ledger.credit("u", "p", 6000, charged.period)
    assert ledger.state("u", "p").remaining == 0
    assert ledger.state("u", "p", "2026-11").spent == 0


@pytest.mark.parametrize("amount", [0, -1, True, 1.5, "10"])
def test_a_charge_must_be_a_positive_integer(store: Store, amount: object) -> None:
    with pytest.raises(ValueError, match="positive integer"):
        SpendLedger(store, FrozenClock()).charge("u", "p", amount)  # type: ignore[arg-type]


def test_a_raised_limit_applies_at_once(store: Store) -> None:
    ledger = SpendLedger(store, FrozenClock())
    ledger.charge("u", "p", 10000)
    assert ledger.set_limit("u", "p", 25000).remaining == 15000


def test_concurrent_charges_never_exceed_the_cap(store: Store) -> None:
    ledger = SpendLedger(store, FrozenClock())

    def attempt(_: int) -> bool:
        try:
            ledger.charge("u", "p", 6000)
        except CapExceeded:
            return False
        return True

    with ThreadPoolExecutor(max_workers=16) as pool:
        outcomes = list(pool.map(attempt, range(50)))
    assert outcomes.count(True) == 1
    assert ledger.state("u", "p").spent == 6000
