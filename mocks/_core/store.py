"""The mocks' state: a tiny table/key -> JSON store, in memory or in SQLite.

Mocks keep accounts, tokens, idempotency records and the spend ledger here. `transaction()`
is the unit of atomicity: a read-check-write of the ledger inside it cannot interleave with
another one, so a cap can be enforced under concurrent redemptions. `MemoryStore` is the
default; `SQLiteStore` (`--state FILE`) lets a served sandbox survive a restart.

Several processes may share one SQLite file (two served `mock orchestrator` processes behind
one issuer, or one served and the `provspec orchestrator` CLI): `transaction()` takes SQLite's
write lock (`BEGIN IMMEDIATE`), so it is atomic across processes too, and `setdefault()` is how
state that must be created once (signing keys, secrets) is initialised without a race. A new
state file is created `0600`: it holds private keys and provider tokens.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from wire import strictjson

__all__ = ["MemoryStore", "SQLiteStore", "Store"]


class Store(Protocol):
    def get(self, table: str, key: str) -> Any | None: ...
    def put(self, table: str, key: str, value: Any) -> None: ...
    def delete(self, table: str, key: str) -> bool: ...
    def items(self, table: str) -> list[tuple[str, Any]]: ...
    def setdefault(self, table: str, key: str, value: Any) -> Any:
        """The stored value of `key`; `value` is stored first if there is none. Atomic, also
        across processes sharing the store, so two that start at once agree on one value."""
        ...

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

    def setdefault(self, table: str, key: str, value: Any) -> Any:
        encoded = _encode(value)
        with self._lock:
            raw = self._tables.setdefault(table, {}).setdefault(key, encoded)
        return strictjson.loads(raw)

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


_BUSY_TIMEOUT_SECONDS = 10.0


def _create_private(path: str) -> None:
    """Create the state file readable by its owner only (it holds private keys and tokens).
    An existing file is left as it is; SQLite gives its -wal and -shm files the same mode."""
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(descriptor)


class SQLiteStore:
    """State in one SQLite file; one connection guarded by a re-entrant lock."""

    def __init__(self, path: str | Path) -> None:
        name = str(path)
        if name != ":memory:" and not name.startswith("file:"):
            _create_private(name)
        # The busy timeout is set on connecting, before anything below can meet another
        # process's lock (two mocks starting at once on a new file both switch it to WAL).
        self._connection = sqlite3.connect(
            name, check_same_thread=False, isolation_level=None, timeout=_BUSY_TIMEOUT_SECONDS
        )
        self._connection.execute(f"PRAGMA busy_timeout={int(_BUSY_TIMEOUT_SECONDS * 1000)}")
        self._connection.execute("PRAGMA journal_mode=WAL")
        # WAL with synchronous=NORMAL survives a process crash (what a sandbox restart is);
        # only an OS crash may lose the last commits. FULL would fsync every write.
        self._connection.execute("PRAGMA synchronous=NORMAL")
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

    def setdefault(self, table: str, key: str, value: Any) -> Any:
        encoded = _encode(value)
        with self.transaction():
            self._connection.execute(
                "INSERT INTO state (tbl, key, value) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                (table, key, encoded),
            )
            stored = self.get(table, key)
        return stored

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
