"""The spend cap: an atomic per-(user, provider) monthly ledger in integer minor units.

DESIGN.md §2.5: the default cap is 10000 minor units USD per (user, provider) per calendar
month, UTC; it counts succeeded redemptions minus refunds. A charge is one read-check-write
inside `Store.transaction()`, so concurrent redemptions can never take `spent` past `limit`.
A refund goes back to the month its redemption was charged in, never to the current one,
so refunding last month's charge cannot raise this month's headroom.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mocks._core.clock import Clock
from mocks._core.store import Store

__all__ = ["DEFAULT_LIMIT", "CapExceeded", "CapState", "SpendLedger", "month_of"]

DEFAULT_LIMIT = 10_000
DEFAULT_CURRENCY = "usd"
_SPENT = "cap_spent"
_LIMITS = "cap_limits"
# How long the cap-not-atomic fault keeps a checked charge waiting for a concurrent one.
_RACE_WINDOW_SECONDS = 0.5


def month_of(moment: datetime) -> str:
    """The ledger period a moment falls in: the calendar month in UTC, as `YYYY-MM`."""
    return moment.astimezone(UTC).strftime("%Y-%m")


def _next_month(period: str) -> datetime:
    year, month = (int(part) for part in period.split("-"))
    return datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class CapState:
    """The figures the orchestrator reports with a redemption, refund or refusal."""

    limit: int
    spent: int
    currency: str
    period: str
    interval: str = "month"

    @property
    def remaining(self) -> int:
        return max(self.limit - self.spent, 0)

    @property
    def resets_at(self) -> datetime:
        return _next_month(self.period)

    def as_json(self) -> dict[str, Any]:
        """The `cap_state` message (schemas/app-next/cap_state.schema.json)."""
        return {
            "limit": self.limit,
            "spent": self.spent,
            "remaining": self.remaining,
            "currency": self.currency,
            "interval": self.interval,
            "resets_at": self.resets_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }


class CapExceeded(Exception):
    """A charge that would take the period's spend past the limit; nothing was recorded."""

    def __init__(self, state: CapState, requested: int) -> None:
        super().__init__(
            f"spend cap exceeded: {requested} requested, {state.remaining} of {state.limit} "
            f"{state.currency} remaining this month"
        )
        self.state = state
        self.requested = requested


class SpendLedger:
    """Per-(user, provider) monthly spend, kept in a `Store`.

    `atomic=False` exists only for the `cap-not-atomic` fault: it checks the cap outside the
    transaction and yields the thread between check and write, so concurrent redemptions
    can overshoot the cap, which is exactly what the suite must detect.
    """

    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        default_limit: int = DEFAULT_LIMIT,
        currency: str = DEFAULT_CURRENCY,
        atomic: bool = True,
    ) -> None:
        self._store = store
        self._clock = clock
        self._default_limit = default_limit
        self._currency = currency
        self._atomic = atomic
        self._race = threading.Condition()
        self._in_window = 0

    @property
    def currency(self) -> str:
        return self._currency

    @staticmethod
    def _key(user: str, provider: str, period: str | None = None) -> str:
        # "\x1f" cannot occur in the ids the mocks mint, so keys cannot collide.
        return "\x1f".join((user, provider) + ((period,) if period else ()))

    def current_period(self) -> str:
        return month_of(self._clock.now())

    def limit(self, user: str, provider: str) -> int:
        stored = self._store.get(_LIMITS, self._key(user, provider))
        return self._default_limit if stored is None else int(stored)

    def set_limit(self, user: str, provider: str, limit: int) -> CapState:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise ValueError("a spend limit is a non-negative integer in minor units")
        self._store.put(_LIMITS, self._key(user, provider), limit)
        return self.state(user, provider)

    def state(self, user: str, provider: str, period: str | None = None) -> CapState:
        period = period or self.current_period()
        spent = self._store.get(_SPENT, self._key(user, provider, period)) or 0
        return CapState(self.limit(user, provider), int(spent), self._currency, period)

    def charge(self, user: str, provider: str, amount: int) -> CapState:
        """Record `amount` against this month's cap, or raise `CapExceeded` and record nothing."""
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise ValueError("a charge is a positive integer in minor units")
        if not self._atomic:
            return self._racy_charge(user, provider, amount)
        with self._store.transaction():
            state = self.state(user, provider)
            if amount > state.remaining:
                raise CapExceeded(state, amount)
            spent = state.spent + amount
            self._store.put(_SPENT, self._key(user, provider, state.period), spent)
        return CapState(state.limit, spent, state.currency, state.period)

    def _racy_charge(self, user: str, provider: str, amount: int) -> CapState:
        state = self.state(user, provider)
        if amount > state.remaining:
            raise CapExceeded(state, amount)
        # Hold the check-then-write window open until a second charge has also passed its
        # check (bounded), so the race the fault is about happens on any machine, fast or
        # slow, whenever two redemptions overlap; a fixed sleep missed it on a slow CI host.
        with self._race:
            self._in_window += 1
            self._race.notify_all()
            self._race.wait_for(lambda: self._in_window >= 2, timeout=_RACE_WINDOW_SECONDS)
        with self._race:
            self._in_window -= 1
        current = self.state(user, provider, state.period)
        spent = current.spent + amount
        self._store.put(_SPENT, self._key(user, provider, state.period), spent)
        return CapState(state.limit, spent, state.currency, state.period)

    def credit(self, user: str, provider: str, amount: int, period: str) -> CapState:
        """Give `amount` back to `period` (a refund of a charge made then)."""
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise ValueError("a refund is a positive integer in minor units")
        with self._store.transaction():
            state = self.state(user, provider, period)
            spent = max(state.spent - amount, 0)
            self._store.put(_SPENT, self._key(user, provider, period), spent)
        return CapState(state.limit, spent, state.currency, period)
