"""Profiles as data: a `Profile`, its typed parameters and the requirement changes of its manifest.

A profile is a directory (`schemas/<profile>/` for the built-ins, any folder for a draft)
holding `profile.toml` and the message schemas it adds or overrides. The manifest
(format: schemas/README.md, "Profile manifest") names:

- `name`, `title`, `base` (a built-in profile name, or a path to another draft's directory,
  relative to this manifest), `api_version` (the wire version string);
- `[parameters]`: every value the mocks and checks would otherwise hard-code (header names,
  lifetimes, algorithms, the default spend cap, the error code map). A profile inherits its
  base's parameters key by key (tables such as `default_cap` and `error_codes` merge too);
- `[requirements]`: `drop = ["ID", …]`, `level = {"ID" = "SHOULD"}` and
  `[[requirements.add]]` tables (id, level, role, step, text, source) that change the base's
  requirement set.

The profile store (`spec.schemas.SchemaStore`) reads the manifests and builds the `Profile`s;
`spec.schemas.resolve_profile("./my-draft")` loads a draft directory into the process's store
and returns its name, and every command that takes `--profile` goes through it. A draft's wire
behaviour (HMAC or JWS signing, payment tokens, …) is its **family**: the nearest built-in
profile it descends from. What a draft can change without code is its schemas, requirements
and parameters.

    >>> from spec.schemas import default_store
    >>> default_store().profile("app-next").params.default_cap.limit
    10000
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from spec.requirement import Level, Requirement, parse_entry
from wire.errors import ProvspecError, UsageError

__all__ = [
    "DEFAULT_PROFILE",
    "MANIFEST_KEYS",
    "PARAMETER_DOCS",
    "ErrorCode",
    "ManifestError",
    "Profile",
    "ProfileParameters",
    "RequirementChanges",
    "SpendCap",
    "build_parameters",
    "ensure_name",
    "line_of",
    "line_of_value",
    "merge_parameters",
    "parse_parameters",
    "parse_requirement_changes",
]

DEFAULT_PROFILE = "app-0.1d"
"""The profile every command uses when none is given: the wire deployed today (the
resource-server role has its own profiles and defaults to rfc9728)."""

_HEADER = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
"""An HTTP field name (RFC 9110 §5.1: a token)."""
_CURRENCY = re.compile(r"[a-z]{3}")
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
SUPPORTED_ALGORITHMS = ("EdDSA", "ES256")
"""What provspec's JOSE code can sign and verify; a draft may allow a subset."""
SUPPORTED_INTERVALS = ("month",)
"""What the mock orchestrator's ledger can count; a draft naming another interval cannot be
run by the mocks (profile check says so)."""

PARAMETER_DOCS: Mapping[str, str] = {
    "version_header": "HTTP header carrying api_version on every orchestrator -> provider call",
    "signature_header": "HTTP header carrying the HMAC signature (HMAC-signing families)",
    "hmac_tolerance": "seconds a signature timestamp may differ from the verifier's clock",
    "attestation_header": "HTTP header carrying the attestation JWS (JWS-signing families)",
    "attestation_lifetime": "maximum seconds between an attestation's iat and exp",
    "payment_token_lifetime": "maximum seconds between a payment token's iat and exp",
    "algorithms": "JWS alg values a verifier accepts (subset of EdDSA, ES256)",
    "provisioning_scope": "the OAuth scope a provider's access token needs for provisioning calls",
    "default_cap": "the spend cap per (user, provider): limit (minor units), currency, interval",
    "error_codes": "condition -> {code, status, envelope}: the wire code, HTTP status and the "
    "message schema that carries it",
}


class ManifestError(ProvspecError):
    """A profile manifest is wrong; the message names the file and the line."""


@dataclass(frozen=True)
class SpendCap:
    limit: int
    """Minor units."""
    currency: str
    interval: str


@dataclass(frozen=True)
class ErrorCode:
    code: str
    status: int
    envelope: str
    """The message (schema name) that carries the code."""


@dataclass(frozen=True)
class ProfileParameters:
    """Every value of a profile that code would otherwise hard-code."""

    api_version: str
    version_header: str
    signature_header: str
    hmac_tolerance: int
    attestation_header: str
    attestation_lifetime: int
    payment_token_lifetime: int
    algorithms: tuple[str, ...]
    provisioning_scope: str
    default_cap: SpendCap
    error_codes: Mapping[str, ErrorCode]

    def error(self, condition: str) -> ErrorCode:
        """The wire code for `condition` (e.g. 'spend_cap_exceeded')."""
        try:
            return self.error_codes[condition]
        except KeyError:
            raise ProvspecError(
                f"the profile's [parameters.error_codes] has no {condition!r} entry"
            ) from None

    def as_dict(self) -> dict[str, Any]:
        """Plain data (for diffs and JSON)."""
        data = {
            item.name: getattr(self, item.name)
            for item in dataclasses.fields(self)
            if item.name not in ("default_cap", "error_codes")
        }
        data["default_cap"] = dataclasses.asdict(self.default_cap)
        data["algorithms"] = list(self.algorithms)
        data["error_codes"] = {
            name: dataclasses.asdict(code) for name, code in sorted(self.error_codes.items())
        }
        return data


@dataclass(frozen=True)
class RequirementChanges:
    """What a profile changes in its base's requirement set."""

    add: tuple[Requirement, ...] = ()
    drop: tuple[str, ...] = ()
    level: tuple[tuple[str, str], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.add or self.drop or self.level)


@dataclass(frozen=True)
class Profile:
    """A protocol profile: its wire version string, the profile it extends, its parameters
    and requirement changes, and where it was loaded from."""

    name: str
    title: str
    api_version: str
    base: str | None
    family: str = ""
    """The built-in profile whose wire behaviour this one keeps (itself for a built-in)."""
    directory: Path | None = None
    """A draft's directory; None for a profile shipped with provspec."""
    parameters: ProfileParameters | None = None
    parameter_gap: str = ""
    """Why `parameters` is None (a manifest that defines too little)."""
    requirements: RequirementChanges = field(default_factory=RequirementChanges)
    manifest_path: str = ""
    manifest_text: str = field(default="", repr=False, compare=False)

    @property
    def builtin(self) -> bool:
        return self.directory is None

    @property
    def spec(self) -> str:
        """What names this profile in another process: the name, or a draft's directory."""
        return self.name if self.directory is None else str(self.directory)

    @property
    def params(self) -> ProfileParameters:
        """The typed parameters; a `ProvspecError` naming what is missing when incomplete."""
        if self.parameters is None:
            raise ProvspecError(f"{self.manifest_path}: {self.parameter_gap}")
        return self.parameters


def line_of(text: str, key: str, table: str | None = None) -> int:
    """The 1-based line where `key = …` (or `[table]`) first appears in a TOML text; inside
    `[table]` when given. 0 when not found: messages then name the file alone."""
    lines = text.splitlines()
    start = 0
    if table is not None:
        header = re.compile(r"\s*\[{1,2}\s*" + re.escape(table) + r"\s*\]{1,2}")
        for index, line in enumerate(lines):
            if header.match(line):
                start = index
                break
    pattern = re.compile(r"\s*\"?" + re.escape(key) + r"\"?\s*=")
    for index in range(start, len(lines)):
        if pattern.match(lines[index]) or re.search(
            r"[{,]\s*\"?" + re.escape(key) + r"\"?\s*=", lines[index]
        ):
            return index + 1
    return start + 1 if table is not None and start else 0


def _where(file: str, text: str, key: str, table: str | None = None) -> str:
    line = line_of(text, key, table)
    return f"{file}:{line}" if line else file


def parse_parameters(raw: Any, file: str, text: str, problems: list[str]) -> dict[str, Any]:
    """The `[parameters]` table of one manifest, type-checked; problems appended with
    file:line. Only the keys given are checked: missing ones come from the base."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.append(f"{_where(file, text, 'parameters')}: 'parameters' must be a table")
        return {}
    out: dict[str, Any] = {}
    for key, value in raw.items():
        where = _where(file, text, key, "parameters")
        if key not in PARAMETER_DOCS:
            problems.append(
                f"{where}: unknown parameter {key!r} (known: {', '.join(PARAMETER_DOCS)})"
            )
            continue
        before = len(problems)
        if key.endswith("_header"):
            if not isinstance(value, str) or not _HEADER.fullmatch(value):
                problems.append(f"{where}: {key} must be an HTTP header name, not {value!r}")
        elif key in ("hmac_tolerance", "attestation_lifetime", "payment_token_lifetime"):
            if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= 86400:
                problems.append(f"{where}: {key} must be whole seconds in 1..86400, not {value!r}")
        elif key == "algorithms":
            if (
                not isinstance(value, list)
                or not value
                or any(item not in SUPPORTED_ALGORITHMS for item in value)
            ):
                problems.append(
                    f"{where}: algorithms must be a non-empty list drawn from "
                    f"{list(SUPPORTED_ALGORITHMS)} (what provspec can sign), not {value!r}"
                )
        elif key == "provisioning_scope":
            # RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
            if not isinstance(value, str) or not _SCOPE_TOKEN.fullmatch(value):
                problems.append(f"{where}: provisioning_scope must be one RFC 6749 scope token")
        elif key == "default_cap":
            _check_cap(value, file, text, problems)
        elif key == "error_codes":
            _check_error_codes(value, file, text, problems)
        if len(problems) == before:
            out[key] = value
    return out


def _check_cap(value: Any, file: str, text: str, problems: list[str]) -> None:
    table = "parameters.default_cap"
    if not isinstance(value, dict):
        problems.append(f"{_where(file, text, 'default_cap')}: default_cap must be a table")
        return
    for key in sorted(set(value) - {"limit", "currency", "interval"}):
        problems.append(
            f"{_where(file, text, key, table)}: unknown default_cap member {key!r} "
            "(known: limit, currency, interval)"
        )
    limit = value.get("limit")
    if "limit" in value and (
        not isinstance(limit, int) or isinstance(limit, bool) or not 0 <= limit <= 99999999
    ):
        problems.append(
            f"{_where(file, text, 'limit', table)}: default_cap.limit must be an integer "
            f"number of minor units in 0..99999999, not {limit!r}"
        )
    currency = value.get("currency")
    if "currency" in value and (not isinstance(currency, str) or not _CURRENCY.fullmatch(currency)):
        problems.append(
            f"{_where(file, text, 'currency', table)}: default_cap.currency must be three "
            f"lowercase letters, not {currency!r}"
        )
    interval = value.get("interval")
    if "interval" in value and interval not in SUPPORTED_INTERVALS:
        problems.append(
            f"{_where(file, text, 'interval', table)}: default_cap.interval must be one of "
            f"{list(SUPPORTED_INTERVALS)} (what the mock ledger counts), not {interval!r}"
        )


def _check_error_codes(value: Any, file: str, text: str, problems: list[str]) -> None:
    if not isinstance(value, dict):
        problems.append(f"{_where(file, text, 'error_codes')}: error_codes must be a table")
        return
    for condition, entry in value.items():
        where = _where(file, text, condition, "parameters.error_codes")
        if not isinstance(entry, dict) or set(entry) != {"code", "status", "envelope"}:
            problems.append(
                f"{where}: error_codes.{condition} must be a table with exactly code, status "
                "and envelope"
            )
            continue
        status = entry["status"]
        if not isinstance(entry["code"], str) or not entry["code"]:
            problems.append(f"{where}: error_codes.{condition}.code must be a non-empty string")
        if not isinstance(status, int) or isinstance(status, bool) or not 400 <= status <= 599:
            problems.append(f"{where}: error_codes.{condition}.status must be 400..599")
        if not isinstance(entry["envelope"], str) or not entry["envelope"]:
            problems.append(f"{where}: error_codes.{condition}.envelope must name a message schema")


def merge_parameters(base: Mapping[str, Any], own: Mapping[str, Any]) -> dict[str, Any]:
    """`own` over `base`, key by key; tables (default_cap, error_codes) merge one level deep."""
    merged = dict(base)
    for key, value in own.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def build_parameters(
    api_version: str, merged: Mapping[str, Any]
) -> tuple[ProfileParameters | None, str]:
    """The typed parameters, or None and what is missing."""
    missing = [key for key in PARAMETER_DOCS if key not in merged]
    cap = merged.get("default_cap", {})
    missing += [f"default_cap.{key}" for key in ("limit", "currency", "interval") if key not in cap]
    if missing:
        return None, f"[parameters] lacks {', '.join(missing)} (and no base defines them)"
    return (
        ProfileParameters(
            api_version=api_version,
            version_header=merged["version_header"],
            signature_header=merged["signature_header"],
            hmac_tolerance=merged["hmac_tolerance"],
            attestation_header=merged["attestation_header"],
            attestation_lifetime=merged["attestation_lifetime"],
            payment_token_lifetime=merged["payment_token_lifetime"],
            algorithms=tuple(merged["algorithms"]),
            provisioning_scope=merged["provisioning_scope"],
            default_cap=SpendCap(cap["limit"], cap["currency"], cap["interval"]),
            error_codes=MappingProxyType(
                {
                    name: ErrorCode(entry["code"], entry["status"], entry["envelope"])
                    for name, entry in sorted(merged["error_codes"].items())
                }
            ),
        ),
        "",
    )


_CHANGE_KEYS = ("add", "drop", "level")


def parse_requirement_changes(
    raw: Any, profile: str, file: str, text: str, problems: list[str]
) -> RequirementChanges:
    """The `[requirements]` table of one manifest; added entries validated like registry
    entries (their `profiles` is this profile)."""
    if raw is None:
        return RequirementChanges()
    if not isinstance(raw, dict):
        problems.append(f"{_where(file, text, 'requirements')}: 'requirements' must be a table")
        return RequirementChanges()
    for key in sorted(set(raw) - set(_CHANGE_KEYS)):
        problems.append(
            f"{_where(file, text, key, 'requirements')}: unknown key requirements.{key} "
            f"(known: {', '.join(_CHANGE_KEYS)})"
        )
    added: list[Requirement] = []
    entries = raw.get("add", [])
    if not isinstance(entries, list):
        problems.append(f"{_where(file, text, 'add', 'requirements')}: add must be a list")
        entries = []
    for index, entry in enumerate(entries, start=1):
        rid = entry.get("id") if isinstance(entry, dict) else None
        line = line_of(text, "id", None) if rid is None else line_of_value(text, str(rid))
        where = f"{file}:{line} requirements.add #{index}" if line else f"{file} add #{index}"
        if isinstance(entry, dict):
            entry = {"profiles": [profile], **entry}
        requirement = parse_entry(entry, where, frozenset([profile]), problems)
        if requirement is not None:
            added.append(requirement)
    drop = raw.get("drop", [])
    if not isinstance(drop, list) or any(not isinstance(item, str) for item in drop):
        problems.append(f"{_where(file, text, 'drop', 'requirements')}: drop must be a list of IDs")
        drop = []
    levels = raw.get("level", {})
    changed: list[tuple[str, str]] = []
    if not isinstance(levels, dict):
        problems.append(
            f"{_where(file, text, 'level', 'requirements')}: level must be a table of ID = LEVEL"
        )
        levels = {}
    for rid, level in levels.items():
        if level not in {member.value for member in Level}:
            problems.append(
                f"{_where(file, text, rid, 'requirements')}: level of {rid} must be MUST, "
                f"SHOULD or MAY, not {level!r}"
            )
            continue
        changed.append((rid, level))
    return RequirementChanges(tuple(added), tuple(drop), tuple(changed))


def line_of_value(text: str, value: str) -> int:
    for index, line in enumerate(text.splitlines(), start=1):
        if f'"{value}"' in line:
            return index
    return 0


def ensure_name(name: Any, file: str, text: str) -> str:
    if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", name):
        raise UsageError(
            f"{_where(file, text, 'name')}: 'name' must be lowercase letters, digits, '.', '_' "
            f"or '-', not {name!r}"
        )
    return name


MANIFEST_KEYS = ("name", "title", "base", "api_version", "parameters", "requirements")
"""The top-level keys a `profile.toml` may have."""
