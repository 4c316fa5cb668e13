"""One requirement of the registry: who must do what, how strongly, in which profiles, and why.

The model (`Requirement`, its `Level`, `Role` and `Step`) and the rules one registry entry must
follow (`parse_entry`), shared by the registry files (`spec.registry`) and the requirements a
draft profile adds in its manifest (`spec.profiles`).

    >>> Level("MUST") is Level.MUST, ROLE_CODES[Role.PROVIDER]
    (True, 'PRV')
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

__all__ = [
    "FIELDS",
    "ROLE_CODES",
    "STEP_CODES",
    "Level",
    "Requirement",
    "Role",
    "Step",
    "parse_entry",
]


class Level(StrEnum):
    """RFC 2119 level; decides whether a failure fails the run (MUST) or warns (SHOULD)."""

    MUST = "MUST"
    SHOULD = "SHOULD"
    MAY = "MAY"


class Role(StrEnum):
    """The protocol role whose behaviour a requirement constrains."""

    PROVIDER = "provider"
    ORCHESTRATOR = "orchestrator"
    AGENT = "agent"
    RESOURCE_SERVER = "resource-server"
    """Any OAuth-protected HTTP resource, judged on RFC 9728 / RFC 8414 / RFC 6750 alone."""


class Step(StrEnum):
    """The protocol step a requirement belongs to, in protocol order."""

    DISCOVERY = "discovery"
    ATTESTATION = "attestation"
    ACCOUNTS = "accounts"
    CONSENT = "consent"
    PROVISIONING = "provisioning"
    PAYMENT = "payment"
    REDEMPTION = "redemption"
    CAP = "cap"
    REVOCATION = "revocation"
    CREDENTIALS = "credentials"


ROLE_CODES: Mapping[Role, str] = {
    Role.PROVIDER: "PRV",
    Role.ORCHESTRATOR: "ORC",
    Role.AGENT: "AGT",
    Role.RESOURCE_SERVER: "RSV",
}
STEP_CODES: Mapping[Step, str] = {
    Step.DISCOVERY: "DSC",
    Step.ATTESTATION: "ATT",
    Step.ACCOUNTS: "ACC",
    Step.CONSENT: "CNS",
    Step.PROVISIONING: "PRO",
    Step.PAYMENT: "PAY",
    Step.REDEMPTION: "RED",
    Step.CAP: "CAP",
    Step.REVOCATION: "REV",
    Step.CREDENTIALS: "CRD",
}

_E = TypeVar("_E", bound=StrEnum)
_ID = re.compile(r"(?P<role>[A-Z]{3})-(?P<step>[A-Z]{3})-(?P<number>\d{3})")
FIELDS = ("id", "level", "role", "profiles", "step", "text", "source")


@dataclass(frozen=True)
class Requirement:
    """One testable rule: who must do what, how strongly, in which profiles, and why."""

    id: str
    level: Level
    role: Role
    profiles: tuple[str, ...]
    step: Step
    text: str
    source: str

    def applies_to(self, profile: str) -> bool:
        return profile in self.profiles

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "level": self.level.value,
            "role": self.role.value,
            "profiles": list(self.profiles),
            "step": self.step.value,
            "text": self.text,
            "source": self.source,
        }


def parse_entry(
    entry: Any, where: str, known_profiles: frozenset[str], problems: list[str]
) -> Requirement | None:
    if not isinstance(entry, dict):
        problems.append(f"{where}: must be a table")
        return None
    before = len(problems)
    missing = [name for name in FIELDS if name not in entry]
    unknown = sorted(set(entry) - set(FIELDS))
    if missing:
        problems.append(f"{where}: missing fields {missing}")
    if unknown:
        problems.append(f"{where}: unknown fields {unknown} (allowed: {list(FIELDS)})")
    for name in ("id", "level", "role", "step", "text", "source"):
        if name in entry and (not isinstance(entry[name], str) or not entry[name].strip()):
            problems.append(f"{where}: {name!r} must be a non-empty string")
    if len(problems) > before:
        return None
    level = _enum(Level, entry["level"], "level", where, problems)
    role = _enum(Role, entry["role"], "role", where, problems)
    step = _enum(Step, entry["step"], "step", where, problems)
    profiles = entry["profiles"]
    if not isinstance(profiles, list) or not profiles:
        problems.append(f"{where}: 'profiles' must be a non-empty list")
    else:
        for profile in profiles:
            if profile not in known_profiles:
                problems.append(
                    f"{where}: unknown profile {profile!r} (known: {sorted(known_profiles)})"
                )
        if len(set(map(str, profiles))) != len(profiles):
            problems.append(f"{where}: 'profiles' lists a profile twice")
    if "\n" in entry["text"]:
        problems.append(f"{where}: 'text' must be one line")
    match = _ID.fullmatch(entry["id"])
    if match is None:
        problems.append(f"{where}: ID must look like PRV-ATT-007 (<role>-<step>-<3 digits>)")
    elif role is not None and step is not None:
        if match["role"] != ROLE_CODES[role]:
            problems.append(
                f"{where}: ID prefix {match['role']} disagrees with role {role.value!r} "
                f"(expected {ROLE_CODES[role]})"
            )
        if match["step"] != STEP_CODES[step]:
            problems.append(
                f"{where}: ID step code {match['step']} disagrees with step {step.value!r} "
                f"(expected {STEP_CODES[step]})"
            )
    if len(problems) > before or level is None or role is None or step is None:
        return None
    return Requirement(
        id=entry["id"],
        level=level,
        role=role,
        profiles=tuple(profiles),
        step=step,
        text=entry["text"].strip(),
        source=entry["source"].strip(),
    )


def _enum(kind: type[_E], value: str, field: str, where: str, problems: list[str]) -> _E | None:
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        problems.append(f"{where}: unknown {field} {value!r} (allowed: {allowed})")
        return None
