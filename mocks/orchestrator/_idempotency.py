"""Idempotency keys for the redemption and refund endpoints, safe across crashes.

Follows draft-ietf-httpapi-idempotency-key-header (§2.6, §2.7) and ACP's delegate-payment
rules (wire-facts §4.1): a key is scoped to the caller; the first request with a key is
recorded `in_flight` with a fingerprint of its body; the same key with another body is
`422`, the same key while the first is still being processed is `409`, and the same key
after completion replays the recorded answer with `Idempotent-Replayed: true`.

Crash safety rests on two rules:

- `settle` runs the work (charge, redemption record) and records its answer in **one** store
  transaction, after checking that this request still owns the key. A crash before it commits
  leaves no charge and no answer; a crash after leaves both. There is no moment at which a
  charge exists without its recorded answer.
- An `in_flight` record therefore never stands for money moved, only for a request being
  worked on, and it is taken over by the next request with the same key once its owner is
  gone: a process on this host that no longer runs (a mock killed and restarted), or a lease
  of `LEASE_SECONDS` that ran out (another host, or a reused pid). After any crash every key
  either replays its recorded answer or can be retried safely, at once.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from mocks._core.store import Store
from wire.clock import Clock

__all__ = [
    "LEASE_SECONDS",
    "Begun",
    "Conflict",
    "IdempotencyLedger",
    "InFlight",
    "Replay",
    "Settled",
]

_TABLE = "idempotency"
LEASE_SECONDS = 120
"""How long an in-flight record is honoured when its owner cannot be seen to have died. Longer
than any redemption takes: the caller's key fetch is bounded to a few seconds."""


@dataclass(frozen=True)
class Begun:
    """This request owns the key; call `settle` (or `abandon` if it gives up)."""


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


@dataclass(frozen=True)
class Settled:
    """What `settle` ended with: this request's answer, or one recorded by another request
    that took the key over meanwhile (`replayed`)."""

    status: int
    body: dict[str, Any]
    replayed: bool = False


def fingerprint(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # someone else's process, or a platform that cannot tell: assume alive
    return True


class IdempotencyLedger:
    def __init__(self, store: Store, clock: Clock, *, lease_seconds: int = LEASE_SECONDS) -> None:
        self._store = store
        self._clock = clock
        self._lease = lease_seconds
        self._host = socket.gethostname()
        self._instance = secrets.token_hex(8)
        self.alive: Callable[[int], bool] = _process_alive
        """Whether a pid on this host still runs (a seam for tests)."""

    @staticmethod
    def _key(caller: str, endpoint: str, key: str) -> str:
        return f"{caller}\x1f{endpoint}\x1f{key}"

    def _owner(self) -> dict[str, Any]:
        return {"host": self._host, "pid": os.getpid(), "instance": self._instance}

    def _mine(self, record: dict[str, Any]) -> bool:
        return record.get("owner") == self._owner()

    def _abandoned(self, record: dict[str, Any]) -> bool:
        """An in-flight record whose owner is gone: nothing was charged under it (the charge
        and the answer commit together), so the key may be worked on again."""
        if int(record.get("expires", 0)) <= self._clock.timestamp():
            return True
        owner = record.get("owner")
        if not isinstance(owner, dict):
            return True  # written by an older mock that recorded no owner
        pid = owner.get("pid")
        return (
            owner.get("host") == self._host
            and isinstance(pid, int)
            and pid != os.getpid()
            and not self.alive(pid)
        )

    def begin(
        self, caller: str, endpoint: str, key: str, raw: bytes
    ) -> Begun | Replay | Conflict | InFlight:
        record_key = self._key(caller, endpoint, key)
        print_ = fingerprint(raw)
        with self._store.transaction():
            record = self._store.get(_TABLE, record_key)
            if record is None or (record["state"] == "in_flight" and self._abandoned(record)):
                self._store.put(
                    _TABLE,
                    record_key,
                    {
                        "fingerprint": print_,
                        "state": "in_flight",
                        "owner": self._owner(),
                        "expires": self._clock.timestamp() + self._lease,
                    },
                )
                return Begun()
        if record["fingerprint"] != print_:
            return Conflict()
        if record["state"] == "in_flight":
            return InFlight()
        return Replay(int(record["status"]), dict(record["body"]))

    def settle(
        self,
        caller: str,
        endpoint: str,
        key: str,
        raw: bytes,
        work: Callable[[], tuple[int, dict[str, Any]]],
        *,
        transaction: Callable[[], AbstractContextManager[Any]] | None = None,
    ) -> Settled | InFlight:
        """Run `work` and record its answer in one transaction, if this request still owns
        the key. `work` raising rolls everything back (the caller then `abandon`s the key).
        `transaction` replaces the store's (only the cap-not-atomic fault passes one)."""
        record_key = self._key(caller, endpoint, key)
        with (transaction or self._store.transaction)():
            record = self._store.get(_TABLE, record_key)
            if record is not None and record["state"] == "done":
                return Settled(int(record["status"]), dict(record["body"]), replayed=True)
            if record is not None and not self._mine(record):
                return InFlight()  # our lease ran out and another request took the key
            status, body = work()
            self._store.put(
                _TABLE,
                record_key,
                {"fingerprint": fingerprint(raw), "state": "done", "status": status, "body": body},
            )
        return Settled(status, body)

    def abandon(self, caller: str, endpoint: str, key: str) -> None:
        """Forget a key whose request was refused before anything was recorded, so it can be
        retried; a key another request has taken over or finished is left alone."""
        record_key = self._key(caller, endpoint, key)
        with self._store.transaction():
            record = self._store.get(_TABLE, record_key)
            if record is not None and record["state"] == "in_flight" and self._mine(record):
                self._store.delete(_TABLE, record_key)
