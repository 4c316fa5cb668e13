"""Injectable clocks, so tests move time instead of sleeping.

Every mock and check that asks "what time is it" takes a `Clock`. Production code uses
`SystemClock`; tests use `FrozenClock` and `advance()` it past a token's `exp` or a
calendar-month boundary in microseconds of wall time.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = ["Clock", "FrozenClock", "SystemClock", "iso_utc"]


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        ...

    def timestamp(self) -> int:
        """The current time as whole seconds since the epoch (a JWT NumericDate)."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def timestamp(self) -> int:
        return int(time.time())


class OffsetClock:
    """The system clock shifted by an offset a test harness moves: how the suite lets a
    served mock see a token expire without anyone waiting for it."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.offset)

    def timestamp(self) -> int:
        return int(time.time() + self.offset)

    def advance(self, seconds: float) -> None:
        self.offset += seconds


class FrozenClock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        start = start or datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
        if start.tzinfo is None:
            raise ValueError("FrozenClock needs a timezone-aware start time")
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def timestamp(self) -> int:
        return int(self._now.timestamp())

    def advance(self, seconds: float = 0, **delta: float) -> None:
        self._now += timedelta(seconds=seconds, **delta)

    def set(self, moment: datetime) -> None:
        if moment.tzinfo is None:
            raise ValueError("set() needs a timezone-aware time")
        self._now = moment.astimezone(UTC)


def iso_utc(timestamp: int) -> str:
    """A NumericDate as the RFC 3339 UTC timestamp the wire uses, e.g. 2026-11-23T12:00:00Z."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
