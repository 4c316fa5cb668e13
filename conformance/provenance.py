"""Where a results file came from, and whether it is still what the run wrote.

Provenance (results.json `provenance`, the HTML footer, JUnit `<properties>`, Allure's
`environment.properties`): the provspec version, digests of the requirement set and of the
profile, the time the run started (UTC), the command line and the configuration with
secrets masked, the target, the role and the profile. Two runs with the same digests judged
the same rules against the same schemas.

Integrity (results.json `integrity`): a SHA-256 digest of the whole document (canonical
JSON, the `integrity` member left out), plus one per top-level member and per requirement,
exchange and CLI call, so that `provspec report --verify` can say *what* changed, not only
that something did. A plain digest proves a file was not edited by mistake or by someone who
did not recompute it; with `$PROVSPEC_RESULTS_KEY` set when the run writes and when it is
verified, the digests are HMAC-SHA256 under that key, which a forger without it cannot redo.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import hmac
import json
import os
import re
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import PurePath
from typing import Any

from conformance.recorder import mask_text, mask_values
from spec.registry import default_registry
from spec.requirement import Role
from spec.schemas import default_store

__all__ = [
    "KEY_VARIABLE",
    "MASK",
    "canonical",
    "mask_command",
    "mask_settings",
    "profile_digest",
    "registry_digest",
    "seal",
    "secret_values",
    "verify",
]

KEY_VARIABLE = "PROVSPEC_RESULTS_KEY"
"""An environment variable holding a key: the integrity digests become HMAC-SHA256 under it."""
MASK = "«masked»"
_SECRET_NAME = re.compile(
    r"(?i)(secret|token|password|passwd|api_?key|private|credential|signature|cookie"
    r"|authorization|hmac)(?!_env)"
)
"""Setting and option names whose values are secrets (`hmac_secret`, `client_secret`, …);
`client_secret_env` names a variable, not a secret, and stays readable."""
_SHORT_DIGEST = 16


def canonical(value: Any) -> bytes:
    """The bytes a digest is taken over: sorted keys, no whitespace, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _sha256(value: Any) -> str:
    return "sha256:" + hashlib.sha256(canonical(value)).hexdigest()


@cache
def registry_digest(role: str, profile: str) -> str:
    """A digest of the requirement set the run judged: every requirement of the role in the
    profile (as the profile's manifests change it), by ID, with its level, text and source."""
    selected = default_registry().select(role=Role(role), profile=profile)
    return _sha256(sorted((r.as_dict() for r in selected), key=lambda item: item["id"]))


@cache
def profile_digest(profile: str) -> str:
    """A digest of the profile as the run used it: the manifest and own schemas of the
    profile and of every profile it extends, base last."""
    store = default_store()
    chain = [
        {
            "name": member,
            "manifest": store.profile(member).manifest_text,
            "schemas": dict(store.own_messages(member)),
        }
        for member in store.lineage(store.profile(profile).spec)
    ]
    return _sha256(chain)


def _mac(value: Any, key: bytes | None) -> str:
    if key is None:
        return _sha256(value)
    return "hmac-sha256:" + hmac.new(key, canonical(value), hashlib.sha256).hexdigest()


def _short(value: Any, key: bytes | None) -> str:
    return _mac(value, key).split(":", 1)[1][:_SHORT_DIGEST]


def _key() -> bytes | None:
    value = os.environ.get(KEY_VARIABLE)
    return value.encode() if value else None


def _items(document: Mapping[str, Any], member: str) -> dict[str, Any]:
    items = document.get(member)
    if not isinstance(items, list):
        return {}
    keyed: dict[str, Any] = {}
    for index, item in enumerate(items):
        name = item.get("id") if isinstance(item, dict) else None
        keyed[str(name if name is not None else f"[{index}]")] = item
    return keyed


_ITEMISED = {"requirements": "requirement", "exchanges": "exchange", "cli_calls": "CLI call"}


def seal(document: Mapping[str, Any]) -> dict[str, Any]:
    """The `integrity` member for a results document (which it must not already carry)."""
    key = _key()
    # As a reader will see it: JSON round-tripped (tuples are lists, keys are strings).
    body = json.loads(json.dumps({k: v for k, v in document.items() if k != "integrity"}))
    return {
        "algorithm": "sha256" if key is None else "hmac-sha256",
        "digest": _mac(body, key),
        "members": {name: _short(value, key) for name, value in sorted(body.items())},
        "items": {
            member: {name: _short(item, key) for name, item in _items(body, member).items()}
            for member in _ITEMISED
            if member in body
        },
    }


def verify(document: Mapping[str, Any]) -> list[str]:
    """What changed since the document was sealed; empty when it is intact.

    Raises ValueError when it cannot be checked at all (no integrity member, or a keyed
    digest without the key)."""
    stored = document.get("integrity")
    if not isinstance(stored, dict) or not isinstance(stored.get("digest"), str):
        raise ValueError("it carries no integrity digest (written by a provspec before 0.2?)")
    algorithm = stored.get("algorithm")
    key = _key()
    if algorithm == "hmac-sha256" and key is None:
        raise ValueError(f"its digests are keyed: set ${KEY_VARIABLE} to the key the run used")
    if algorithm == "sha256":
        key = None
    elif algorithm != "hmac-sha256":
        raise ValueError(f"unknown integrity algorithm {algorithm!r}")
    body = {name: value for name, value in document.items() if name != "integrity"}
    if hmac.compare_digest(_mac(body, key), str(stored["digest"])):
        return []
    members: dict[str, str] = dict(stored.get("members") or {})
    items: dict[str, dict[str, str]] = dict(stored.get("items") or {})
    changes: list[str] = []
    for name in sorted(set(members) | set(body)):
        if name not in body:
            changes.append(f"member {name!r} removed")
        elif name not in members:
            changes.append(f"member {name!r} added")
        elif _short(body[name], key) != members[name]:
            changes.append(f"member {name!r} changed")
            changes += _item_changes(name, body, items.get(name, {}), key)
    if not changes:
        changes.append(
            "the document digest does not match, though every member does: "
            "the integrity member itself was edited"
        )
    return changes


def _item_changes(
    member: str, body: Mapping[str, Any], stored: Mapping[str, str], key: bytes | None
) -> list[str]:
    if member not in _ITEMISED:
        return []
    what = _ITEMISED[member]
    now = {name: _short(item, key) for name, item in _items(body, member).items()}
    found = []
    for name in sorted(set(now) | set(stored), key=_natural):
        label = f"#{name}" if member != "requirements" else name
        if name not in now:
            found.append(f"  {what} {label} removed")
        elif name not in stored:
            found.append(f"  {what} {label} added")
        elif now[name] != stored[name]:
            found.append(f"  {what} {label} changed")
    return found


def _natural(name: str) -> tuple[int, str]:
    return (int(name), "") if name.isdigit() else (1 << 62, name)


# --- masking what the run was given -----------------------------------------------------------


def _secret_name(name: str) -> bool:
    return _SECRET_NAME.search(name.replace("-", "_")) is not None


def mask_command(argv: Iterable[str], secrets: Iterable[str] = ()) -> list[str]:
    """A command line with the values of secret options masked (`--hmac-secret X`,
    `--hmac-secret=X`), and any known secret value or token-shaped text anywhere else."""
    known = [value for value in secrets if value]
    shown: list[str] = []
    hide_next = False
    for token in argv:
        if hide_next:
            shown.append(MASK)
            hide_next = False
            continue
        if token.startswith("--") and _secret_name(token.split("=", 1)[0]):
            if "=" in token:
                shown.append(token.split("=", 1)[0] + "=" + MASK)
            else:
                shown.append(token)
                hide_next = True
            continue
        shown.append(mask_values(token, known))
    return shown


def mask_settings(value: Any, secrets: Iterable[str] = (), *, name: str = "") -> Any:
    """A configuration as JSON, secret-named members masked (`hmac_secret = "…"` shows as
    «masked», unset ones as null), known secret values masked wherever they occur."""
    known = [item for item in secrets if item]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {
            item.name: getattr(value, item.name)
            for item in dataclasses.fields(value)
            if item.repr and not item.name.startswith("_")
        }
    if isinstance(value, Mapping):
        return {str(key): mask_settings(item, known, name=str(key)) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [mask_settings(item, known, name=name) for item in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    if name and _secret_name(name):
        return MASK
    if isinstance(value, enum.Enum):
        return mask_settings(value.value, known, name=name)
    if isinstance(value, str | PurePath):
        return mask_values(str(value), known)
    return mask_text(mask_values(type(value).__name__, known))


def secret_values(value: Any, *, name: str = "") -> list[str]:
    """The values of secret-named settings in a configuration (dataclasses, mappings and
    lists walked), to be masked wherever else they occur (a command line, a URL)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [
            found
            for item in dataclasses.fields(value)
            for found in secret_values(getattr(value, item.name), name=item.name)
        ]
    if isinstance(value, Mapping):
        return [
            found for key, item in value.items() for found in secret_values(item, name=str(key))
        ]
    if isinstance(value, list | tuple | set | frozenset):
        return [found for item in value for found in secret_values(item, name=name)]
    if isinstance(value, str) and value and name and _secret_name(name):
        return [value]
    return []
