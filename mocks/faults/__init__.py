"""Named faults: each makes one mock break exactly the requirement(s) it names.

The catalogue is data (the `*.toml` files beside this module, one per mock or area): name,
mock, profiles, the requirement IDs it breaks, and one line saying what the mock does wrong. Mock code asks `faults.active(name)`
at the one place the fault changes behaviour. Faults are how the suite tests a real
counterpart's negative paths and how it tests itself (`provspec selftest`).
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

from spec.schemas import profile_family
from wire.errors import UsageError

__all__ = ["Fault", "FaultSet", "catalogue"]

MOCKS = ("orchestrator", "provider", "agent", "resource-server")


@dataclass(frozen=True)
class Fault:
    name: str
    mock: str
    profiles: tuple[str, ...]
    breaks: tuple[str, ...]
    summary: str


@cache
def catalogue() -> dict[str, Fault]:
    """Every named fault, by name (read once from mocks/faults/*.toml)."""
    faults: dict[str, Fault] = {}
    folder = files(__name__)
    sources = sorted(
        (item for item in folder.iterdir() if item.name.endswith(".toml")), key=lambda i: i.name
    )
    for source in sources:
        faults.update(_read(f"mocks/faults/{source.name}", source.read_text("utf-8"), faults))
    return faults


def _read(where: str, text: str, known: dict[str, Fault]) -> dict[str, Fault]:
    raw = tomllib.loads(text)
    faults: dict[str, Fault] = {}
    for entry in raw.get("fault", []):
        fault = Fault(
            name=entry["name"],
            mock=entry["mock"],
            profiles=tuple(entry["profiles"]),
            breaks=tuple(entry["breaks"]),
            summary=entry["summary"],
        )
        if fault.name in faults or fault.name in known:
            raise ValueError(f"{where}: fault {fault.name!r} is defined twice")
        if fault.mock not in MOCKS:
            raise ValueError(f"{where}: fault {fault.name!r} has unknown mock")
        faults[fault.name] = fault
    return faults


class FaultSet:
    """The faults one mock instance runs with; unknown or misplaced names are refused."""

    def __init__(self, mock: str, profile: str, names: Iterable[str] = ()) -> None:
        known = catalogue()
        self.mock = mock
        self._names: frozenset[str] = frozenset(names)
        if self._names:
            profile = profile_family(profile)  # a draft takes its base family's faults
        for name in sorted(self._names):
            fault = known.get(name)
            if fault is None:
                close = difflib.get_close_matches(name, list(known), n=3)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise UsageError(
                    f"unknown fault {name!r}{hint} (`provspec mock --list-faults` lists them)"
                )
            if fault.mock != mock:
                raise UsageError(f"fault {name!r} belongs to the {fault.mock} mock, not {mock}")
            if profile not in fault.profiles:
                raise UsageError(
                    f"fault {name!r} applies to {', '.join(fault.profiles)}, not {profile}"
                )

    def active(self, name: str) -> bool:
        if name not in catalogue():
            raise KeyError(f"mock code asks for undeclared fault {name!r}")
        return name in self._names

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._names))

    def __bool__(self) -> bool:
        return bool(self._names)
