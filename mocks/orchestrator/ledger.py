"""The spend cap: an atomic per-(user, provider) monthly ledger in integer minor units.

DESIGN.md §2.5: the default cap is 10000 minor units USD per (user, provider) per calendar
month, UTC; it counts succeeded redemptions minus refunds. A charge is one read-check-write
inside `Store.transaction()`, so concurrent redemptions can never take `spent` past `limit`.
A refund goes back to the month its redemption was charged in, never to the current one,
so refunding last month's charge cannot raise this month's headroom.

The keyword arguments after `atomic` exist only for the mock orchestrator's named faults
(mocks/faults/orchestrator-redemption.toml); each loosens exactly one rule.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from mocks._core.store import Store
from spec.schemas import default_store
from wire.clock import Clock

__all__ = ["CapExceeded", "CapState", "SpendLedger", "month_of"]

_SPENT = "cap_spent"
_LIMITS = "cap_limits"
# How long the cap-not-atomic fault keeps a checked charge waiting for a concurrent one.
_RACE_WINDOW_SECONDS = 0.5
# How long it waits for a second redemption to arrive when its charge is the only one under way.
_ARRIVAL_GRACE_SECONDS = 0.1

Holds = Callable[[str, str, str], int]
"""(user, provider, period) -> minor units counted against the cap besides the charges."""


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
    """The period the spend is filed under (refunds go back to it)."""
    interval: str = "month"
    reported_period: str | None = None
    """The period the figures are reported for, when it is not `period` (a fault only)."""
    resets_early_by: int = 0
    """Seconds `resets_at` is reported before the real reset (a fault only)."""

    @property
    def remaining(self) -> int:
        return max(self.limit - self.spent, 0)

    @property
    def resets_at(self) -> datetime:
        return _next_month(self.reported_period or self.period) - timedelta(
            seconds=self.resets_early_by
        )

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
        default_limit: int | None = None,
        currency: str | None = None,
        atomic: bool = True,
        shared_across_providers: bool = False,
        month_offset_seconds: int = 0,
        exact_limit_refused: bool = False,
        resets_early_by: int = 0,
        report_summed: bool = False,
    ) -> None:
        self._store = store
        self._clock = clock
        # The cap is a profile parameter ([parameters.default_cap]); the mock orchestrator
        # passes its profile's; a ledger built without one uses the built-in app-next's.
        cap = default_store().profile("app-next").params.default_cap
        self._default_limit = cap.limit if default_limit is None else default_limit
        self._currency = cap.currency if currency is None else currency
        self._atomic = atomic
        self._shared = shared_across_providers
        self._month_offset = month_offset_seconds
        self._exact_refused = exact_limit_refused
        self._resets_early_by = resets_early_by
        self._report_summed = report_summed
        self.holds: Holds | None = None
        """Counted against the cap besides the charges (only the cap-charges-expired-tokens
        fault sets it)."""
        self._race = threading.Condition()
        self._in_window = 0
        self._arriving = 0

    @property
    def currency(self) -> str:
        return self._currency

    @staticmethod
    def _key(user: str, provider: str, period: str | None = None) -> str:
        # "\x1f" cannot occur in the ids the mocks mint, so keys cannot collide.
        return "\x1f".join((user, provider) + ((period,) if period else ()))

    def current_period(self) -> str:
        """The calendar month (UTC) spend is filed under now."""
        if self._month_offset:
            return month_of(self._clock.now() + timedelta(seconds=self._month_offset))
        return month_of(self._clock.now())

    def limit(self, user: str, provider: str) -> int:
        stored = self._store.get(_LIMITS, self._key(user, provider))
        return self._default_limit if stored is None else int(stored)

    def set_limit(self, user: str, provider: str, limit: int) -> CapState:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise ValueError("a spend limit is a non-negative integer in minor units")
        self._store.put(_LIMITS, self._key(user, provider), limit)
        return self.state(user, provider)

    def _charged(self, user: str, provider: str, period: str) -> int:
        return int(self._store.get(_SPENT, self._key(user, provider, period)) or 0)

    def _charged_everywhere(self, user: str, period: str) -> int:
        """The user's spend in `period` summed over every provider (faults only)."""
        total = 0
        for key, value in self._store.items(_SPENT):
            parts = key.split("\x1f")
            if len(parts) == 3 and parts[0] == user and parts[2] == period:
                total += int(value or 0)
        return total

    def _cap(self, limit: int, spent: int, period: str) -> CapState:
        reported = month_of(self._clock.now()) if self._month_offset else None
        return CapState(
            limit,
            spent,
            self._currency,
            period,
            reported_period=reported,
            resets_early_by=self._resets_early_by,
        )

    def state(self, user: str, provider: str, period: str | None = None) -> CapState:
        period = period or self.current_period()
        spent = self._charged(user, provider, period)
        if self.holds is not None:
            spent += self.holds(user, provider, period)
        return self._cap(self.limit(user, provider), spent, period)

    def report(self, user: str, provider: str) -> CapState:
        """The figures the agent-facing CLI shows for one provider this month."""
        state = self.state(user, provider)
        if not self._report_summed:
            return state
        return self._cap(state.limit, self._charged_everywhere(user, state.period), state.period)

    def charge(self, user: str, provider: str, amount: int) -> CapState:
        """Record `amount` against this month's cap, or raise `CapExceeded` and record nothing."""
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise ValueError("a charge is a positive integer in minor units")
        if not self._atomic:
            return self._racy_charge(user, provider, amount)
        with self._store.transaction():
            state = self.state(user, provider)
            counted = self._charged_everywhere(user, state.period) if self._shared else state.spent
            headroom = max(state.limit - counted, 0)
            if amount > headroom or (self._exact_refused and amount == headroom):
                raise CapExceeded(state, amount)
            charged = self._charged(user, provider, state.period) + amount
            self._store.put(_SPENT, self._key(user, provider, state.period), charged)
        return self._cap(state.limit, state.spent + amount, state.period)

    def _racy_charge(self, user: str, provider: str, amount: int) -> CapState:
        state = self.state(user, provider)
        if amount > state.remaining:
            raise CapExceeded(state, amount)
        # Hold the check-then-write window open until a second charge has also passed its
        # check (bounded), so the race the fault is about happens on any machine, fast or
        # slow, whenever two redemptions overlap; a fixed sleep missed it on a slow CI host.
        # A redemption that is the only one under way (`arriving`) gives others a moment to
        # arrive, and goes on alone if none does: a run's many one-at-a-time charges each
        # waited the whole window.
        with self._race:
            self._in_window += 1
            self._race.notify_all()
            if self._arriving == 1:
                self._race.wait_for(lambda: self._arriving >= 2, timeout=_ARRIVAL_GRACE_SECONDS)
            if self._arriving != 1:
                self._race.wait_for(lambda: self._in_window >= 2, timeout=_RACE_WINDOW_SECONDS)
        with self._race:
            self._in_window -= 1
        spent = self._charged(user, provider, state.period) + amount
        self._store.put(_SPENT, self._key(user, provider, state.period), spent)
        return self._cap(state.limit, spent, state.period)

    @contextmanager
    def arriving(self) -> Iterator[None]:
        """Around a money request from its start (before anything is awaited): how many
        may charge at once, for the cap-not-atomic fault's window. Without it (a direct
        caller) a racy charge always holds its window open."""
        with self._race:
            self._arriving += 1
            self._race.notify_all()
        try:
            yield
        finally:
            with self._race:
                self._arriving -= 1

    def credit(self, user: str, provider: str, amount: int, period: str) -> CapState:
        """Give `amount` back to `period` (a refund of a charge made then)."""
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise ValueError("a refund is a positive integer in minor units")
        with self._store.transaction():
            spent = max(self._charged(user, provider, period) - amount, 0)
            self._store.put(_SPENT, self._key(user, provider, period), spent)
        return self._cap(self.limit(user, provider), spent, period)
