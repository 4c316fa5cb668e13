from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mocks._core.store import MemoryStore, SQLiteStore, Store


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    made: Store = MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "s.db")
    yield made
    made.close()


def test_put_get_delete_items(store: Store) -> None:
    assert store.get("accounts", "a") is None
    store.put("accounts", "b", {"email": "b@example.com"})
    store.put("accounts", "a", {"email": "a@example.com", "n": 1})
    store.put("accounts", "a", {"email": "a@example.com", "n": 2})
    assert store.get("accounts", "a") == {"email": "a@example.com", "n": 2}
    assert [key for key, _ in store.items("accounts")] == ["a", "b"]
    assert store.delete("accounts", "a") is True
    assert store.delete("accounts", "a") is False
    assert store.items("other") == []


def test_values_are_copies(store: Store) -> None:
    value = {"spent": 1}
    store.put("ledger", "k", value)
    value["spent"] = 999
    assert store.get("ledger", "k") == {"spent": 1}


def test_a_failed_transaction_leaves_no_trace(store: Store) -> None:
    store.put("ledger", "k", {"spent": 1})

    def refused_update() -> None:
        with store.transaction():
            store.put("ledger", "k", {"spent": 2})
            store.put("ledger", "new", {"spent": 3})
            raise RuntimeError("refused")

    with pytest.raises(RuntimeError):
        refused_update()
    assert store.get("ledger", "k") == {"spent": 1}
    assert store.get("ledger", "new") is None


def test_read_check_write_is_atomic_under_threads(store: Store) -> None:
    store.put("ledger", "cap", {"spent": 0})
    barrier = threading.Barrier(16)
    wins: list[int] = []

    def spend(amount: int) -> None:
        barrier.wait()
        with store.transaction():
            row = store.get("ledger", "cap")
            assert row is not None
            spent = row["spent"]
            if spent + amount <= 10_000:
                store.put("ledger", "cap", {"spent": spent + amount})
                wins.append(amount)

    threads = [threading.Thread(target=spend, args=(6000,)) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wins == [6000]
    assert store.get("ledger", "cap") == {"spent": 6000}


def test_sqlite_state_survives_a_restart(tmp_path: Path) -> None:
    first = SQLiteStore(tmp_path / "state.db")
    with first.transaction():
        first.put("ledger", "u1:p1", {"spent": 4200})
    first.close()
    second = SQLiteStore(tmp_path / "state.db")
    assert second.get("ledger", "u1:p1") == {"spent": 4200}
    second.close()
