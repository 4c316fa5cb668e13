"""What the engine tells the front ends while it runs: typed, immutable events.

One run emits, in order: `RunStarted`; `Activity` whenever it starts something long
(setting up the target, the preflight, a check); `ExchangeRecorded` for every HTTP exchange
and CLI call once it is complete (from whichever thread recorded it); `CheckFinished` after
each check (a re-run too); `RunFinished` with the result, its baseline applied. `provspec
run` prints progress from them and writes its reports on `RunFinished`; the pytest plugin
and `provspec selftest` listen the same way.

A listener is any callable taking an `Event`; one that raises stops the run (it is the
front end's own bug, not the target's).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from conformance.recorder import CliCall, Exchange
from conformance.results import RunResult
from conformance.verdict import CheckOutcome
from spec.requirement import Role

__all__ = [
    "Activity",
    "CheckFinished",
    "Event",
    "Events",
    "ExchangeRecorded",
    "Listener",
    "RunFinished",
    "RunStarted",
]


@dataclass(frozen=True)
class RunStarted:
    role: Role
    profile: str
    target: str
    """What the run is judging, in words (the embedded mock, a URL, a command)."""
    checks: tuple[str, ...]
    """The names of the checks it will run, in order."""


@dataclass(frozen=True)
class Activity:
    """What the run is doing now (setting up, the preflight, a check's name)."""

    doing: str


@dataclass(frozen=True)
class ExchangeRecorded:
    item: Exchange | CliCall
    """Complete: the answer (or the error) is in it."""


@dataclass(frozen=True)
class CheckFinished:
    outcome: CheckOutcome
    rerun: int = 0
    """0 for the check's run in order; n for its n-th re-run alone (`--rerun-failures`),
    then `outcome` is the merged one."""


@dataclass(frozen=True)
class RunFinished:
    result: RunResult


Event = RunStarted | Activity | ExchangeRecorded | CheckFinished | RunFinished
Listener = Callable[[Event], None]


class Events:
    """The listeners of one run, told each event in the order it happened."""

    def __init__(self, listeners: Iterable[Listener] = ()) -> None:
        self._listeners = list(listeners)
        self._lock = threading.RLock()  # exchanges are recorded by the mocks' threads too

    def listen(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def emit(self, event: Event) -> None:
        with self._lock:
            for listener in self._listeners:
                listener(event)

    def exchange(self, item: Exchange | CliCall) -> None:
        """The recorder's hook: an exchange or CLI call is complete."""
        self.emit(ExchangeRecorded(item))
