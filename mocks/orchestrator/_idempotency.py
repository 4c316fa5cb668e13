"""Idempotency keys for the redemption and refund endpoints.

Follows draft-ietf-httpapi-idempotency-key-header (§2.6, §2.7) and ACP's delegate-payment
rules (wire-facts §4.1): a key is scoped to the caller; the first request with a key is
recorded `in_flight` with a fingerprint of its body; the same key with another body is
`422`, the same key while the first is still being processed is `409`, and the same key
after completion replays the recorded answer with `Idempotent-Replayed: true`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from mocks._core.store import Store

__all__ = ["Begun", "Conflict", "IdempotencyLedger", "InFlight", "Replay"]

_TABLE = "idempotency"


@dataclass(frozen=True)
class Begun:
    """This request owns the key; call `finish` or `abandon`."""


@dataclass(frozen=True)
class Replay:
    status: int
    body: dict[str, Any]


@dataclass(frozen=True)
class Conflict:
    """Same key, different body."""


@dataclass(frozen=True)
class InFlight:
    """Same key, first request not finished."""


def fingerprint(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


class IdempotencyLedger:
    def __init__(self, store: Store) -> None:
        self._store = store

    @staticmethod
    def _key(caller: str, endpoint: str, key: str) -> str:
        return f"{caller}\x1f{endpoint}\x1f{key}"

    def begin(
        self, caller: str, endpoint: str, key: str, raw: bytes
    ) -> Begun | Replay | Conflict | InFlight:
        record_key = self._key(caller, endpoint, key)
        print_ = fingerprint(raw)
        with self._store.transaction():
            record = self._store.get(_TABLE, record_key)
            if record is None:
                self._store.put(_TABLE, record_key, {"fingerprint": print_, "state": "in_flight"})
                return Begun()
        if record["fingerprint"] != print_:
            return Conflict()
        if record["state"] == "in_flight":
            return InFlight()
        return Replay(int(record["status"]), dict(record["body"]))

    def finish(
        self, caller: str, endpoint: str, key: str, raw: bytes, status: int, body: dict[str, Any]
    ) -> None:
        self._store.put(
            _TABLE,
            self._key(caller, endpoint, key),
            {"fingerprint": fingerprint(raw), "state": "done", "status": status, "body": body},
        )

    def abandon(self, caller: str, endpoint: str, key: str) -> None:
        """Forget a key whose request was refused before any processing, so it can be retried."""
        self._store.delete(_TABLE, self._key(caller, endpoint, key))
