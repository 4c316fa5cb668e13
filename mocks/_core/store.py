"""The mocks' state: a tiny table/key -> JSON store, in memory or in SQLite.

Mocks keep accounts, tokens, idempotency records and the spend ledger here. `transaction()`
is the unit of atomicity: a read-check-write of the ledger inside it cannot interleave with
another one, so a cap can be enforced under concurrent redemptions. `MemoryStore` is the
default; `SQLiteStore` (`--state FILE`) lets a served sandbox survive a restart.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from conformance import strictjson

__all__ = ["MemoryStore", "SQLiteStore", "Store"]


class Store(Protocol):
    def get(self, table: str, key: str) -> Any | None: ...
    def put(self, table: str, key: str, value: Any) -> None: ...
    def delete(self, table: str, key: str) -> bool: ...
    def items(self, table: str) -> list[tuple[str, Any]]: ...
    def transaction(self) -> Any:
        """A context manager: everything inside it is atomic with respect to other callers,
        and rolled back if it raises."""
        ...

    def close(self) -> None: ...


def _encode(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, allow_nan=False)


class MemoryStore:
    """Process-local state; values are stored encoded, so callers never share mutable objects."""

    def __init__(self) -> None:
        self._tables: dict[str, dict[str, str]] = {}
        self._lock = threading.RLock()

    def get(self, table: str, key: str) -> Any | None:
        with self._lock:
            raw = self._tables.get(table, {}).get(key)
        return None if raw is None else strictjson.loads(raw)

    def put(self, table: str, key: str, value: Any) -> None:
        encoded = _encode(value)
        with self._lock:
            self._tables.setdefault(table, {})[key] = encoded

    def delete(self, table: str, key: str) -> bool:
        with self._lock:
            return self._tables.get(table, {}).pop(key, None) is not None

    def items(self, table: str) -> list[tuple[str, Any]]:
        with self._lock:
            rows = sorted(self._tables.get(table, {}).items())
        return [(key, strictjson.loads(raw)) for key, raw in rows]

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock:
            snapshot = {name: dict(rows) for name, rows in self._tables.items()}
            try:
                yield
            except BaseException:
                self._tables = snapshot
                raise

    def close(self) -> None:
        pass


class SQLiteStore:
    """State in one SQLite file; one connection guarded by a re-entrant lock."""

    def __init__(self, path: str | Path) -> None:
        self._connection = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._connection.execute("PRAGMA journal_mode=WAL")
        # WAL with synchronous=NORMAL survives a process crash (what a sandbox restart is);
        # only an OS crash may lose the last commits. FULL would fsync every write.
        self._connection.execute("PRAGMA synchronous=NORMAL")
        self._connection.execute("PRAGMA busy_timeout=10000")
        self._connection.execute(
            "CREATE TABLE IF NOT EXISTS state (tbl TEXT NOT NULL, key TEXT NOT NULL, "
            "value TEXT NOT NULL, PRIMARY KEY (tbl, key))"
        )
        self._lock = threading.RLock()
        self._depth = 0

    def get(self, table: str, key: str) -> Any | None:
        with self._lock:
            row = self._connection.execute(
                "SELECT value FROM state WHERE tbl = ? AND key = ?", (table, key)
            ).fetchone()
        return None if row is None else strictjson.loads(row[0])

    def put(self, table: str, key: str, value: Any) -> None:
        encoded = _encode(value)
        with self._lock:
            self._connection.execute(
                "INSERT INTO state (tbl, key, value) VALUES (?, ?, ?) "
                "ON CONFLICT (tbl, key) DO UPDATE SET value = excluded.value",
                (table, key, encoded),
            )

    def delete(self, table: str, key: str) -> bool:
        with self._lock:
            cursor = self._connection.execute(
                "DELETE FROM state WHERE tbl = ? AND key = ?", (table, key)
            )
        return cursor.rowcount > 0

    def items(self, table: str) -> list[tuple[str, Any]]:
        with self._lock:
            rows = self._connection.execute(
                "SELECT key, value FROM state WHERE tbl = ? ORDER BY key", (table,)
            ).fetchall()
        return [(key, strictjson.loads(raw)) for key, raw in rows]

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock:
            outermost = self._depth == 0
            if outermost:
                self._connection.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield
            except BaseException:
                self._depth -= 1
                if outermost:
                    self._connection.execute("ROLLBACK")
                raise
            self._depth -= 1
            if outermost:
                self._connection.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._connection.close()
