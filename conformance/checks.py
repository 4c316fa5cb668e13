"""Checks: small functions, each enforcing the requirement(s) it names.

As in the OpenID conformance suite, a check is a single-purpose condition tied to the clause
it enforces; here, to requirement IDs of the registry. A check drives the target through its
context (`ctx`), then calls `ctx.require(ID, condition, message, *evidence)` for every rule it
judges. Registration validates the IDs against the registry at import time, so a check can
never name a requirement that does not exist. The packs register their checks when imported;
`conformance.suite` imports them all (this module knows none: the packs import it).

A requirement passes only when its check judged it: called `ctx.require` on it (or
`ctx.judged`, for a prohibition nothing in the run broke). One the check ended without
judging is skipped, saying so, never passed: a check with nothing to judge proves nothing.
When the target answers something a check cannot go on from (an HTML page, a 401, a body
without the member the next step needs), the check raises `Unexpected`, naming the
requirement whose rule the answer broke: that requirement fails (when the check judges it)
and the check's other requirements are skipped as *blocked by* it. Any other exception in
a check is the suite's own bug (blame `harness`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from conformance.recorder import CliCall, Exchange, Recorder
from spec.registry import default_registry
from spec.requirement import Role, Step
from spec.schemas import profile_family

__all__ = [
    "Check",
    "CheckContext",
    "NotApplicable",
    "Skipped",
    "Unexpected",
    "all_checks",
    "check",
    "checks_for",
]

CheckFunc = Callable[[Any], Awaitable[None]]


class NotApplicable(Exception):
    """The requirement does not apply to this target (e.g. it has no such feature)."""


class Skipped(Exception):
    """The check could not run here (e.g. the config lacks what it needs); says why."""


class Unexpected(Exception):
    """The target answered something the check cannot go on from: the target's failure of
    `requirement` (the rule the answer broke), never a suite crash.

    When the check judges `requirement`, that requirement fails with `message` and
    `evidence`; every other requirement of the check it had not judged yet is skipped as
    "blocked by" it. `blocked=True` only blocks (the rule is judged elsewhere and would
    otherwise fail twice)::

        raise Unexpected("PRV-DSC-002", "the catalog is an HTML page, not JSON", exchange)
    """

    def __init__(
        self,
        requirement: str,
        message: str,
        *evidence: Exchange | CliCall | None,
        blocked: bool = False,
    ) -> None:
        super().__init__(f"{requirement}: {message}")
        self.requirement = requirement
        self.message = message
        self.evidence = evidence
        self.blocked = blocked


@dataclass(frozen=True)
class Check:
    name: str
    requirements: tuple[str, ...]
    role: Role
    step: Step
    profiles: tuple[str, ...]
    func: CheckFunc = field(repr=False, compare=False)
    summary: str = ""


_CHECKS: dict[str, Check] = {}


def check(
    *requirement_ids: str, profiles: Sequence[str] | None = None
) -> Callable[[CheckFunc], CheckFunc]:
    """Register `func` as the check of `requirement_ids` (all of one role)."""
    if not requirement_ids:
        raise ValueError("a check names at least one requirement")
    registry = default_registry()
    requirements = [registry[requirement_id] for requirement_id in requirement_ids]
    roles = {requirement.role for requirement in requirements}
    if len(roles) != 1:
        raise ValueError(f"a check judges one role; {requirement_ids} span {sorted(roles)}")
    applicable = set(requirements[0].profiles)
    for requirement in requirements[1:]:
        applicable &= set(requirement.profiles)
    if profiles is not None:
        if not set(profiles) <= applicable:
            raise ValueError(f"{requirement_ids} do not all apply to {list(profiles)}")
        applicable = set(profiles)
    if not applicable:
        raise ValueError(f"{requirement_ids} share no profile")

    def register(func: CheckFunc) -> CheckFunc:
        name = f"{func.__module__.rsplit('.', 1)[-1]}.{func.__name__}"
        existing = _CHECKS.get(name)
        # A re-import of the same module (pytester, reloads) replaces its checks; two
        # different modules claiming one name is a mistake.
        if existing is not None and existing.func.__module__ != func.__module__:
            raise ValueError(f"check {name} is registered twice")
        _CHECKS[name] = Check(
            name=name,
            requirements=tuple(requirement_ids),
            role=requirements[0].role,
            step=requirements[0].step,
            profiles=tuple(sorted(applicable)),
            func=func,
            summary=(func.__doc__ or "").strip().splitlines()[0] if func.__doc__ else "",
        )
        return func

    return register


def all_checks() -> list[Check]:
    """The checks registered so far: those of the packs imported (`conformance.suite`
    imports them all)."""
    if not _CHECKS:
        raise RuntimeError(
            "no check is registered: import conformance.suite (it loads every pack) first"
        )
    return list(_CHECKS.values())


def checks_for(role: Role, profile: str, steps: Iterable[Step] | None = None) -> list[Check]:
    """The checks of `role` for `profile`'s family (a draft runs its base's checks)."""
    family = profile_family(profile)
    wanted = set(steps) if steps is not None else None
    return [
        item
        for item in all_checks()
        if item.role is role and family in item.profiles and (wanted is None or item.step in wanted)
    ]


@dataclass
class Verdict:
    message: str
    evidence: list[int]


class CheckContext:
    """What every check gets: the recorder and a place to put verdicts."""

    def __init__(self, recorder: Recorder, check: Check) -> None:
        self.recorder = recorder
        self.check = check
        self.failures: dict[str, list[Verdict]] = {}
        self.skips: dict[str, str] = {}
        self.judged_ids: set[str] = set()
        """The requirements this check judged (a `require` or `judged` call)."""

    def require(
        self,
        requirement_id: str,
        condition: bool,
        message: str,
        *evidence: Exchange | CliCall | None,
    ) -> bool:
        """Record a failure of `requirement_id` unless `condition` holds; returns `condition`."""
        if requirement_id not in self.check.requirements:
            raise ValueError(f"{self.check.name} does not declare {requirement_id}")
        self.judged_ids.add(requirement_id)
        if not condition:
            ids = [item.id for item in evidence if item is not None]
            self.failures.setdefault(requirement_id, []).append(Verdict(message, ids))
        return condition

    def judged(self, requirement_id: str) -> None:
        """Mark a prohibition judged: the check looked at everything the rule covers (every
        task ran, every request arrived), so no failure recorded means the rule holds. Only
        for rules a run can keep by doing nothing; anything else judges with `require`."""
        if requirement_id not in self.check.requirements:
            raise ValueError(f"{self.check.name} does not declare {requirement_id}")
        self.judged_ids.add(requirement_id)

    def cannot_judge(self, requirement_id: str, why: str) -> None:
        """Mark one requirement as skipped (with why) when this run gives nothing to judge it on."""
        if requirement_id not in self.check.requirements:
            raise ValueError(f"{self.check.name} does not declare {requirement_id}")
        self.skips[requirement_id] = why
