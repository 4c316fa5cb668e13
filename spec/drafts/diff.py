"""`provspec profile diff A B`: what changes between two profiles, per role and per message.

Parameters (flattened), each role's requirement set (added, removed, level changed) and each
message schema (members added or removed, newly or no longer required, type changes, and
changes the member lists do not show), as text or as Markdown for a draft's changelog.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from spec.registry import default_registry
from spec.requirement import Role
from spec.schemas import SchemaStore, default_store

__all__ = ["MessageDiff", "ProfileDiff", "diff"]


@dataclass
class MessageDiff:
    message: str
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    newly_required: list[str] = field(default_factory=list)
    no_longer_required: list[str] = field(default_factory=list)
    type_changes: list[str] = field(default_factory=list)
    other: bool = False
    """The schema changed in a way the member lists do not show (a pattern, a bound, …)."""

    def __bool__(self) -> bool:
        return bool(
            self.added
            or self.removed
            or self.newly_required
            or self.no_longer_required
            or self.type_changes
            or self.other
        )

    def sections(self) -> list[tuple[str, list[str]]]:
        """Each kind of member change with its members, in the order both formats show."""
        return [
            ("added", self.added),
            ("removed", self.removed),
            ("newly_required", self.newly_required),
            ("no_longer_required", self.no_longer_required),
            ("type", self.type_changes),
        ]

    @property
    def only_constraints(self) -> bool:
        """Changed, but not in any member list (a pattern, a bound, …)."""
        return self.other and not any(members for _, members in self.sections())


_TEXT_LABELS = {
    "added": "+ member",
    "removed": "- member",
    "newly_required": "! newly required",
    "no_longer_required": "? no longer required",
    "type": "~ type",
}
_MARKDOWN_LABELS = {
    "added": "member added",
    "removed": "member removed",
    "newly_required": "newly required",
    "no_longer_required": "no longer required",
    "type": "type changed",
}


@dataclass
class ProfileDiff:
    a: str
    b: str
    parameters: list[tuple[str, Any, Any]]
    requirements: dict[str, dict[str, list[str]]]
    """role -> {"added": […], "removed": […], "level": […]} as display lines."""
    messages_added: list[str]
    messages_removed: list[str]
    messages: list[MessageDiff]

    def text(self) -> str:
        lines = [f"profile diff {self.a} -> {self.b}", ""]
        lines.append("parameters:")
        lines += [f"  {k}: {_show(x)} -> {_show(y)}" for k, x, y in self.parameters] or [
            "  (no change)"
        ]
        for role, changes in self.requirements.items():
            lines += ["", f"requirements, {role}:"]
            lines += [f"  + {line}" for line in changes["added"]]
            lines += [f"  - {line}" for line in changes["removed"]]
            lines += [f"  ~ {line}" for line in changes["level"]]
            if not any(changes.values()):
                lines.append("  (no change)")
        lines += ["", "schemas:"]
        lines += [f"  + message {name}" for name in self.messages_added]
        lines += [f"  - message {name}" for name in self.messages_removed]
        for change in self.messages:
            lines.append(f"  ~ message {change.message}")
            lines += [
                f"      {_TEXT_LABELS[kind]} {m}"
                for kind, members in change.sections()
                for m in members
            ]
            if change.only_constraints:
                lines.append("      ~ constraints changed (same members and types)")
        if not (self.messages_added or self.messages_removed or self.messages):
            lines.append("  (no change)")
        return "\n".join(lines) + "\n"

    def markdown(self) -> str:
        lines = [f"## Changes from `{self.a}` to `{self.b}`", "", "### Parameters", ""]
        lines += [f"- `{k}`: {_show(x)} → {_show(y)}" for k, x, y in self.parameters] or [
            "- no change"
        ]
        for role, changes in self.requirements.items():
            lines += ["", f"### Requirements: {role}", ""]
            lines += [f"- **added** {line}" for line in changes["added"]]
            lines += [f"- **removed** {line}" for line in changes["removed"]]
            lines += [f"- **level** {line}" for line in changes["level"]]
            if not any(changes.values()):
                lines.append("- no change")
        lines += ["", "### Messages", ""]
        lines += [f"- **new message** `{name}`" for name in self.messages_added]
        lines += [f"- **removed message** `{name}`" for name in self.messages_removed]
        for change in self.messages:
            lines.append(f"- `{change.message}`")
            lines += [
                f"  - {_MARKDOWN_LABELS[kind]}: `{m}`"
                for kind, members in change.sections()
                for m in members
            ]
            if change.only_constraints:
                lines.append("  - constraints changed (same members and types)")
        if not (self.messages_added or self.messages_removed or self.messages):
            lines.append("- no change")
        return "\n".join(lines) + "\n"


def _show(value: Any) -> str:
    return "(unset)" if value is _UNSET else json.dumps(value, sort_keys=True)


_UNSET: Any = object()


def _flat(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _members(schema: Any, prefix: str = "") -> dict[str, tuple[str, bool]]:
    """path -> (type, required) for every object member the schema names, through
    `properties`, `items` and the `allOf`/`anyOf`/`oneOf` alternatives (merged)."""
    out: dict[str, tuple[str, bool]] = {}
    if not isinstance(schema, dict):
        return out
    required = set(schema.get("required") or ())
    for name, sub in (schema.get("properties") or {}).items():
        path = f"{prefix}{name}"
        kind = _kind(sub)
        previous = out.get(path)
        out[path] = (
            kind if previous is None or previous[0] == kind else f"{previous[0]}|{kind}",
            name in required or (previous is not None and previous[1]),
        )
        out.update(_members(sub, path + "."))
    if isinstance(schema.get("items"), dict):
        out.update(_members(schema["items"], prefix + "[]."))
    for keyword in ("allOf", "anyOf", "oneOf"):
        for alternative in schema.get(keyword) or ():
            for path, (kind, needed) in _members(alternative, prefix).items():
                previous = out.get(path)
                if previous is None:
                    out[path] = (kind, needed and keyword == "allOf")
                elif previous[0] != kind and kind not in previous[0].split("|"):
                    out[path] = (f"{previous[0]}|{kind}", previous[1])
    return out


def _kind(schema: Any) -> str:
    if not isinstance(schema, dict):
        return "any"
    if "$ref" in schema:
        # By message name: `../app-0.1d/x.schema.json` from a draft and `x.schema.json` from
        # its base name the same message, so moving a schema file is not a type change.
        ref = str(schema["$ref"])
        path, _, fragment = ref.partition("#")
        name = path.rsplit("/", 1)[-1].removesuffix(".schema.json") if path else ""
        return f"$ref {name}{'#' + fragment if fragment else ''}"
    if "const" in schema:
        return f"const {json.dumps(schema['const'])}"
    kind = schema.get("type")
    if isinstance(kind, list):
        return "|".join(map(str, kind))
    if kind is None and "enum" in schema:
        return "enum"
    return str(kind) if kind is not None else "any"


def _without_text(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {
            key: _without_text(value)
            for key, value in schema.items()
            if key not in ("$id", "title", "description", "$comment", "examples")
        }
    if isinstance(schema, list):
        return [_without_text(value) for value in schema]
    return schema


def diff(a: str, b: str, store: SchemaStore | None = None) -> ProfileDiff:
    store = store or default_store()
    first, second = store.profile(a), store.profile(b)
    params_a = _flat({"api_version": first.api_version, **_params(first)})
    params_b = _flat({"api_version": second.api_version, **_params(second)})
    parameters = [
        (key, params_a.get(key, _UNSET), params_b.get(key, _UNSET))
        for key in sorted(set(params_a) | set(params_b))
        if params_a.get(key, _UNSET) != params_b.get(key, _UNSET)
    ]
    registry = default_registry()
    requirements: dict[str, dict[str, list[str]]] = {}
    for role in Role:
        old = {r.id: r for r in registry.select(role=role, profile=first.name)}
        new = {r.id: r for r in registry.select(role=role, profile=second.name)}
        if not old and not new:
            continue
        requirements[role.value] = {
            "added": [f"{r.id} {r.level.value}: {r.text}" for i, r in new.items() if i not in old],
            "removed": [
                f"{r.id} {r.level.value}: {r.text}" for i, r in old.items() if i not in new
            ],
            "level": [
                f"{i} {old[i].level.value} -> {r.level.value}: {r.text}"
                for i, r in new.items()
                if i in old and old[i].level is not r.level
            ],
        }
    messages_a, messages_b = set(store.messages(first.name)), set(store.messages(second.name))
    changes: list[MessageDiff] = []
    for message in sorted(messages_a & messages_b):
        schema_a = store.schema(first.name, message)
        schema_b = store.schema(second.name, message)
        if _without_text(schema_a) == _without_text(schema_b):
            continue
        members_a, members_b = _members(schema_a), _members(schema_b)
        change = MessageDiff(message, other=True)
        for path in sorted(set(members_a) | set(members_b)):
            if path not in members_a:
                change.added.append(f"{path} ({members_b[path][0]})")
                if members_b[path][1]:
                    change.newly_required.append(path)
            elif path not in members_b:
                change.removed.append(f"{path} ({members_a[path][0]})")
            else:
                (kind_a, needed_a), (kind_b, needed_b) = members_a[path], members_b[path]
                if kind_a != kind_b:
                    change.type_changes.append(f"{path}: {kind_a} -> {kind_b}")
                if needed_b and not needed_a:
                    change.newly_required.append(path)
                if needed_a and not needed_b:
                    change.no_longer_required.append(path)
        changes.append(change)
    return ProfileDiff(
        a=first.name,
        b=second.name,
        parameters=parameters,
        requirements=requirements,
        messages_added=sorted(messages_b - messages_a),
        messages_removed=sorted(messages_a - messages_b),
        messages=changes,
    )


def _params(spec: Any) -> dict[str, Any]:
    data: dict[str, Any] = spec.params.as_dict() if spec.parameters is not None else {}
    data.pop("api_version", None)
    return data
