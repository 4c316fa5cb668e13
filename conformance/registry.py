"""The requirement registry: every rule provspec checks, as data.

Requirements live in `conformance/requirements/<role>.toml` (format: that folder's README).
`load_registry()` reads and validates them all and refuses a bad registry with one message
that lists every problem, file by file, so a spec author fixes them in one pass.

    >>> registry = load_registry()
    >>> registry["PRV-ATT-001"].level
    <Level.MUST: 'MUST'>
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from importlib.resources.abc import Traversable
from typing import Any, TypeVar

from conformance._resources import requirements_dir
from wire.errors import ProvspecError, UsageError

__all__ = [
    "ROLE_CODES",
    "STEP_CODES",
    "Level",
    "Registry",
    "RegistryError",
    "Requirement",
    "Role",
    "Step",
    "default_registry",
    "load_registry",
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
_FIELDS = ("id", "level", "role", "profiles", "step", "text", "source")


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


class RegistryError(ProvspecError):
    """The registry files are inconsistent; `problems` lists each one with its location."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        listing = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(
            f"the requirement registry is invalid ({len(problems)} problems):\n{listing}"
        )


class Registry:
    """The loaded requirements, in file order (role, then step, then number)."""

    def __init__(self, requirements: Iterable[Requirement]) -> None:
        self._by_id = {requirement.id: requirement for requirement in requirements}

    def __iter__(self) -> Iterator[Requirement]:
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, requirement_id: object) -> bool:
        return requirement_id in self._by_id

    def __getitem__(self, requirement_id: str) -> Requirement:
        try:
            return self._by_id[requirement_id]
        except KeyError:
            raise UsageError(self.explain_unknown(requirement_id)) from None

    def explain_unknown(self, requirement_id: str) -> str:
        """A message for an ID the registry lacks, with the closest known IDs."""
        close = difflib.get_close_matches(requirement_id, list(self._by_id), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        return f"unknown requirement ID {requirement_id!r}{hint}"

    def select(
        self,
        *,
        role: Role | None = None,
        profile: str | None = None,
        step: Step | None = None,
        level: Level | None = None,
    ) -> list[Requirement]:
        """The requirements matching every filter given, in registry order. With `profile`:
        that profile's requirement set, as its manifests change it (a draft's added
        requirements, dropped ones gone, changed levels; conformance/profiles.py)."""
        pool: Iterable[Requirement] = self
        if profile is not None:
            from conformance.profiles import effective_requirements

            pool = effective_requirements(self, profile)
        return [
            requirement
            for requirement in pool
            if (role is None or requirement.role is role)
            and (profile is None or requirement.applies_to(profile))
            and (step is None or requirement.step is step)
            and (level is None or requirement.level is level)
        ]


def load_registry(
    files: Iterable[Traversable] | None = None,
    *,
    profiles: Iterable[str] | None = None,
) -> Registry:
    """Read and validate the registry; raise `RegistryError` listing every problem.

    `files` defaults to the shipped `conformance/requirements/*.toml`; `profiles` to the
    profiles that have schemas. Checked: required fields present and no unknown ones, known
    level / role / step, ID format and its agreement with role and step, IDs unique across
    files, profiles known and non-empty, one-sentence text and a source that is not empty.
    """
    if files is None:
        files = sorted(
            (item for item in requirements_dir().iterdir() if item.name.endswith(".toml")),
            key=lambda item: item.name,
        )
    if profiles is None:
        from conformance.schemas import default_store

        profiles = default_store().profiles()
    known_profiles = frozenset(profiles)
    problems: list[str] = []
    requirements: list[Requirement] = []
    seen: dict[str, str] = {}
    for file in files:
        try:
            document = tomllib.loads(file.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            problems.append(f"{file.name}: not valid TOML: {exc}")
            continue
        extra_tables = set(document) - {"requirement"}
        if extra_tables:
            problems.append(f"{file.name}: unknown top-level keys {sorted(extra_tables)}")
        entries = document.get("requirement", [])
        if not isinstance(entries, list) or not entries:
            problems.append(f"{file.name}: no [[requirement]] entries")
            continue
        for index, entry in enumerate(entries, start=1):
            where = f"{file.name} requirement #{index}"
            if isinstance(entry, dict) and isinstance(entry.get("id"), str):
                where += f" ({entry['id']})"
            requirement = _parse_entry(entry, where, known_profiles, problems)
            if requirement is None:
                continue
            if requirement.id in seen:
                problems.append(f"{where}: duplicate ID, first defined in {seen[requirement.id]}")
                continue
            seen[requirement.id] = where
            requirements.append(requirement)
    if problems:
        raise RegistryError(problems)
    return Registry(requirements)


@cache
def default_registry() -> Registry:
    """The shipped registry, loaded and validated once per process."""
    return load_registry()


def _parse_entry(
    entry: Any, where: str, known_profiles: frozenset[str], problems: list[str]
) -> Requirement | None:
    if not isinstance(entry, dict):
        problems.append(f"{where}: must be a table")
        return None
    before = len(problems)
    missing = [name for name in _FIELDS if name not in entry]
    unknown = sorted(set(entry) - set(_FIELDS))
    if missing:
        problems.append(f"{where}: missing fields {missing}")
    if unknown:
        problems.append(f"{where}: unknown fields {unknown} (allowed: {list(_FIELDS)})")
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
