"""The requirement registry: every rule provspec checks, as data, and each profile's share of it.

Requirements live in `spec/requirements/<role>.toml` (format: that folder's README).
`load_registry()` reads and validates them all and refuses a bad registry with one message
that lists every problem, file by file, so a spec author fixes them in one pass. A profile's
requirement set is its family's, changed by the `[requirements]` tables of every manifest
from the family down to it (`effective_requirements`; `Registry.select(profile=…)`).

    >>> registry = load_registry()
    >>> registry["PRV-ATT-001"].level
    <Level.MUST: 'MUST'>
"""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
from collections.abc import Iterable, Iterator
from functools import cache
from importlib.resources.abc import Traversable

from spec._resources import requirements_dir
from spec.profiles import line_of, line_of_value
from spec.requirement import Level, Requirement, Role, Step, parse_entry
from spec.schemas import default_store
from wire.errors import ProvspecError, UsageError

__all__ = [
    "Registry",
    "RegistryError",
    "check_profile_has_role",
    "default_registry",
    "effective_requirements",
    "load_registry",
    "unknown_requirement_ids",
]


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
        requirements, dropped ones gone, changed levels; `effective_requirements`)."""
        pool: Iterable[Requirement] = self
        if profile is not None:
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

    `files` defaults to the shipped `spec/requirements/*.toml`; `profiles` to the
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
            requirement = parse_entry(entry, where, known_profiles, problems)
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


def effective_requirements(requirements: Iterable[Requirement], profile: str) -> list[Requirement]:
    """The requirements that apply to `profile`: its family's, changed by every manifest
    from the family down to `profile` (drop, level, add). A requirement whose level a draft
    changes is a copy with the new level; every returned requirement applies to `profile`."""
    store = default_store()
    spec = store.profile(profile)
    chain = store.lineage(spec.name)
    family = spec.family
    names = {spec.name, profile, family}
    current: dict[str, Requirement] = {r.id: r for r in requirements if r.applies_to(family)}
    for member in reversed(chain[: chain.index(family) + 1]):
        changes = store.profile(member).requirements
        for rid in changes.drop:
            current.pop(rid, None)
        for rid, level in changes.level:
            if rid in current:
                current[rid] = dataclasses.replace(current[rid], level=Level(level))
        for requirement in changes.add:
            current[requirement.id] = requirement
    out: list[Requirement] = []
    for requirement in current.values():
        extra = tuple(name for name in sorted(names) if name not in requirement.profiles)
        out.append(
            dataclasses.replace(requirement, profiles=requirement.profiles + extra)
            if extra
            else requirement
        )
    return out


def unknown_requirement_ids(requirements: Iterable[Requirement], profile: str) -> list[str]:
    """Problems: IDs a profile's manifests drop or re-level that its base set lacks."""
    store = default_store()
    spec = store.profile(profile)
    chain = store.lineage(spec.name)
    family = spec.family
    known = {r.id for r in requirements if r.applies_to(family)}
    problems: list[str] = []
    for member in reversed(chain[: chain.index(family) + 1]):
        item = store.profile(member)
        where = item.manifest_path
        known |= {r.id for r in item.requirements.add}
        for rid in [*item.requirements.drop, *(rid for rid, _ in item.requirements.level)]:
            if rid not in known:
                line = line_of_value(item.manifest_text, rid) or line_of(item.manifest_text, rid)
                problems.append(
                    f"{where}:{line}: requirement {rid} is not in the base's requirement set"
                )
    return problems


def check_profile_has_role(role: Role, profile: str) -> None:
    """A profile a role has no requirements in is a usage error naming those it has."""
    if default_registry().select(role=role, profile=profile):
        return
    store = default_store()
    fits = [name for name in store.profiles() if default_registry().select(role=role, profile=name)]
    raise UsageError(
        f"profile {profile!r} has no {role.value} requirements; use one of {', '.join(fits)}"
    )
