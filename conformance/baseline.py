"""The baseline file: failures a team knows about, which do not fail the run.

`provspec-baseline.toml` lists requirement IDs the team knows its target fails, each with a
reason and optionally a profile, a scenario (a check name, as in results.json `checks`) and
an expiry date:

    [[known]]
    id = "PRV-PRO-014"
    profile = "app-0.1d"                      # optional: only in this profile
    scenario = "provisioning.deep_links_expire_within_ten_minutes"   # optional
    reason = "deep links live 1 h until PROJ-123 ships"
    expires = 2026-12-31                      # optional: after this day the entry fails the run

A listed failure is reported as `known` and does not fail the run. A listed requirement that
now passes fails the run as a stale entry (delete it: the file shrinks as bugs are fixed). An
entry past its expiry date fails the run whatever the requirement does. This module reads
and writes the file; `conformance.verdict` applies it (the same rule for every front end),
on the day `verdict.today()` gives.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spec.registry import default_registry
from wire.errors import UsageError

__all__ = ["Baseline", "BaselineEntry", "load_baseline", "parse_baseline", "render_baseline"]

DEFAULT_FILE = Path("provspec-baseline.toml")
_FIELDS = {"id", "profile", "scenario", "reason", "expires"}


@dataclass(frozen=True)
class BaselineEntry:
    id: str
    reason: str
    profile: str | None = None
    scenario: str | None = None
    expires: dt.date | None = None

    def describe(self) -> str:
        scope = [f"profile {self.profile}"] if self.profile else []
        scope += [f"scenario {self.scenario}"] if self.scenario else []
        return self.id + (f" ({', '.join(scope)})" if scope else "")


@dataclass(frozen=True)
class Baseline:
    entries: tuple[BaselineEntry, ...]
    path: Path | None = None


def load_baseline(path: Path) -> Baseline:
    """Read and check a baseline file; every problem is reported at once."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(
            f"baseline {path} does not exist (`provspec baseline write` records today's failures)"
        ) from None
    except tomllib.TOMLDecodeError as error:
        raise UsageError(f"baseline {path} is not valid TOML: {error}") from None
    return parse_baseline(raw, str(path), path)


def parse_baseline(raw: dict[str, Any], where: str, path: Path | None = None) -> Baseline:
    registry = default_registry()
    problems: list[str] = []
    unknown_tables = sorted(set(raw) - {"known"})
    if unknown_tables:
        problems.append(f"unknown table(s) {', '.join(unknown_tables)} (entries are [[known]])")
    items = raw.get("known", [])
    if not isinstance(items, list):
        problems.append("[[known]] must be an array of tables")
        items = []
    entries: list[BaselineEntry] = []
    for number, item in enumerate(items, 1):
        here = f"entry {number}"
        if not isinstance(item, dict):
            problems.append(f"{here} is not a table")
            continue
        for key in sorted(set(item) - _FIELDS):
            problems.append(f"{here}: unknown key {key!r} (known: {', '.join(sorted(_FIELDS))})")
        requirement_id = item.get("id")
        if not isinstance(requirement_id, str) or requirement_id not in registry:
            problems.append(f"{here}: id {requirement_id!r} is not a requirement of the registry")
            continue
        reason = item.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            problems.append(f"{here} ({requirement_id}): a reason is required")
            continue
        expires = item.get("expires")
        if expires is not None and (
            not isinstance(expires, dt.date) or isinstance(expires, dt.datetime)
        ):
            problems.append(
                f"{here} ({requirement_id}): expires must be a TOML date (expires = 2026-12-31)"
            )
            continue
        optional: dict[str, str | None] = {}
        for key in ("profile", "scenario"):
            value = item.get(key)
            if value is not None and not isinstance(value, str):
                problems.append(f"{here} ({requirement_id}): {key} must be a string")
            optional[key] = value if isinstance(value, str) else None
        entries.append(
            BaselineEntry(
                requirement_id, reason.strip(), optional["profile"], optional["scenario"], expires
            )
        )
    if problems:
        raise UsageError(f"baseline {where}: " + "; ".join(problems))
    return Baseline(tuple(entries), path)


def failing(findings: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The results.json requirements a baseline would list: failed, warned, flaky or known."""
    wanted = {"failed", "warning", "flaky", "known"}
    return [item for item in findings if item.get("status") in wanted]


def render_baseline(
    results: dict[str, Any], reason: str, expires: dt.date | None, today: dt.date
) -> str:
    """A baseline file listing every failure of one results.json document."""
    profile = str(results.get("profile", ""))
    lines = [
        "# provspec-baseline.toml: failures this team knows about; they do not fail the run.",
        f"# Written by `provspec baseline write` on {today.isoformat()} from a "
        f"{results.get('role')} run ({profile}) against {results.get('target')}.",
        "# A listed requirement that passes again fails the run as stale: delete its entry.",
        "",
    ]
    for item in failing(results.get("requirements", [])):
        message = str(item.get("message", "")).replace("\n", " ")[:160]
        lines += [
            "[[known]]",
            f"id = {_toml_string(str(item['id']))}",
            f"profile = {_toml_string(profile)}",
            f"reason = {_toml_string(reason)}",
        ]
        if expires is not None:
            lines.append(f"expires = {expires.isoformat()}")
        lines += [f"# {item.get('level')} {item.get('status')}: {message}", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def _toml_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    escaped = "".join(ch if ch >= " " else f"\\u{ord(ch):04x}" for ch in escaped)
    return f'"{escaped}"'
