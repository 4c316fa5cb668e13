"""The mocks' replay cache: each attestation `jti` is accepted once (DESIGN.md §2 item 1).

`wire.attestation.verify_attestation` asks a `ReplayGuard`; this one keeps what it has seen
in the mock's store, so a served mock with `--state` still refuses a replay after a restart.
"""

from __future__ import annotations

from mocks._core.store import Store

__all__ = ["ReplayCache"]


class ReplayCache:
    """Seen `jti` values, kept until their token expires."""

    def __init__(self, store: Store, table: str = "seen_jti") -> None:
        self._store = store
        self._table = table

    def first_use(self, issuer: str, jti: str, exp: int, now: int) -> bool:
        """Record (issuer, jti); False when it was already recorded and is not yet expired."""
        key = f"{issuer}\x1f{jti}"
        with self._store.transaction():
            seen = self._store.get(self._table, key)
            if seen is not None and int(seen) > now:
                return False
            self._store.put(self._table, key, max(exp, now + 1))
        return True
