"""The profile store: every profile and its message schemas, with validators compiled once.

`SchemaStore` reads `schemas/<profile>/` (see schemas/README.md): each profile's
`profile.toml` and `<message>.schema.json` files. A profile inherits the messages of its
`base`. Validation asserts formats (`date-time`, `uri`, and `email` as RFC 5321 reads it:
`wire.formats`, shared with the mocks) and comes in two modes:

- default: members a schema does not model are tolerated where the schema allows them, as
  real systems drift (`"x-unknown-members": "allowed"`);
- strict (drift detection): every object schema that lists `properties` and says nothing
  about extra members is closed, so each unmodelled member is reported.

    >>> store = default_store()
    >>> health = {"supported_versions": ["0.1d"], "status": "ok"}
    >>> store.validate("app-0.1d", "health_response", health)
    []
"""

from __future__ import annotations

import copy
import difflib
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from spec._quickcheck import QuickCheck
from spec._resources import data_dir
from spec.profiles import (
    MANIFEST_KEYS,
    ManifestError,
    Profile,
    ProfileParameters,
    RequirementChanges,
    build_parameters,
    ensure_name,
    line_of,
    merge_parameters,
    parse_parameters,
    parse_requirement_changes,
)
from wire import strictjson
from wire.errors import ProvspecError, UsageError
from wire.formats import FORMAT_CHECKER

__all__ = [
    "SCHEMA_SUFFIX",
    "SchemaIssue",
    "SchemaStore",
    "close_open_objects",
    "default_store",
    "profile_family",
    "profile_parameters",
    "resolve_profile",
]

SCHEMA_SUFFIX = ".schema.json"

# Keywords whose value is a subschema, a map of subschemas, or a list of subschemas
# (JSON Schema 2020-12 core and applicator vocabularies). Only these are walked when closing
# objects, so a property that happens to be *named* "properties" is left alone.
# Subschemas that describe the instance's own shape get closed in strict mode. Conditions
# (`if`, `not`, `contains`, `propertyNames`) are tests, not shapes: closing them would flip
# their outcome for any instance with extra members, so strict mode leaves them alone.
_SUBSCHEMA = (
    "additionalProperties",
    "unevaluatedProperties",
    "items",
    "then",
    "else",
    "unevaluatedItems",
)
_SUBSCHEMA_MAP = ("properties", "patternProperties", "$defs", "dependentSchemas")
_SUBSCHEMA_LIST = ("allOf", "anyOf", "oneOf", "prefixItems")


def _is_wire_integer(checker: Any, instance: Any) -> bool:
    # JSON Schema counts 60.0 as an integer; on the wire `60.0` is a float, and money in
    # APP is integer minor units (DESIGN.md §5), so only a JSON number without fraction or
    # exponent (a Python int from the strict parser) is an integer here.
    return isinstance(instance, int) and not isinstance(instance, bool)


WireValidator: Any = validators.extend(  # type: ignore[no-untyped-call]
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_wire_integer),
)


@dataclass(frozen=True)
class SchemaIssue:
    """One reason an instance does not match its schema."""

    keyword: str
    path: str
    """JSON Pointer of the offending location in the instance ("" is the root)."""
    message: str
    hint: str | None = None
    """For a failed `oneOf`/`anyOf`: why the closest alternative did not match."""

    def __str__(self) -> str:
        where = self.path or "(root)"
        text = f"{where}: {self.message} [{self.keyword}]"
        return f"{text}; closest alternative: {self.hint}" if self.hint else text


def close_open_objects(schema: Any) -> Any:
    """A copy of `schema` in which object schemas silent about extra members reject them.

    This is strict mode: a schema object with `properties` and neither
    `additionalProperties` nor `unevaluatedProperties` gets `unevaluatedProperties: false`.
    Objects that are open by design say so explicitly and stay open.
    """
    closed = copy.deepcopy(schema)
    _close_in_place(closed)
    return closed


def _close_in_place(schema: Any) -> None:
    if not isinstance(schema, dict):
        return
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and "unevaluatedProperties" not in schema
    ):
        schema["unevaluatedProperties"] = False
    for keyword in _SUBSCHEMA:
        if keyword in schema:
            _close_in_place(schema[keyword])
    for keyword in _SUBSCHEMA_MAP:
        if isinstance(schema.get(keyword), dict):
            for subschema in schema[keyword].values():
                _close_in_place(subschema)
    for keyword in _SUBSCHEMA_LIST:
        if isinstance(schema.get(keyword), list):
            for subschema in schema[keyword]:
                _close_in_place(subschema)


@dataclass
class _Manifest:
    name: str
    title: str
    api_version: str
    base: str | None
    parameters: dict[str, Any]
    requirements: RequirementChanges
    path: str
    text: str
    directory: Path | None


class SchemaStore:
    """Every profile's schemas, loaded once; validators compiled on first use and cached.

    The profiles under `root` are the built-ins; `profile("./my-draft")` loads a draft
    directory on first use (its base: a built-in name or another draft's path)."""

    def __init__(self, root: Traversable | None = None) -> None:
        self._root = root if root is not None else data_dir("schemas")
        self._manifests: dict[str, _Manifest] = {}
        self._profiles: dict[str, Profile] = {}
        self._aliases: dict[str, str] = {}
        self._own: dict[str, dict[str, dict[str, Any]]] = {}
        self._registries: dict[bool, Registry[Any]] = {}
        self._validators: dict[tuple[str, str, bool], Draft202012Validator] = {}
        self._quick: dict[bool, QuickCheck] = {}
        for directory in sorted(self._root.iterdir(), key=lambda item: item.name):
            if directory.is_dir() and (directory / "profile.toml").is_file():
                self._load_profile(directory)
        for name in list(self._manifests):
            self._lineage(name)  # refuses unknown bases and cycles up front
        for name in list(self._manifests):
            self._finish(name)

    def _read_manifest(self, directory: Traversable, draft: Path | None) -> _Manifest:
        manifest_file = directory / "profile.toml"
        where = str(manifest_file)
        try:
            text = manifest_file.read_text(encoding="utf-8")
            manifest = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ManifestError(f"{where}: not valid TOML: {exc}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ManifestError(f"{where}: cannot read: {exc}") from None
        name = manifest.get("name")
        if name != directory.name:
            raise ManifestError(
                f"{where}:{line_of(text, 'name')}: 'name' is {name!r} but the directory is "
                f"{directory.name!r}"
            )
        name = ensure_name(name, where, text)
        api_version = manifest.get("api_version")
        if not isinstance(api_version, str) or not api_version:
            raise ManifestError(
                f"{where}:{line_of(text, 'api_version')}: 'api_version' must be a non-empty string"
            )
        unknown = sorted(set(manifest) - set(MANIFEST_KEYS))
        if unknown:
            raise ManifestError(
                f"{where}:{line_of(text, unknown[0])}: unknown manifest keys {unknown} "
                f"(known: {', '.join(MANIFEST_KEYS)})"
            )
        base = manifest.get("base")
        if base is not None and (not isinstance(base, str) or not base):
            raise ManifestError(f"{where}:{line_of(text, 'base')}: 'base' must be a string")
        problems: list[str] = []
        parameters = parse_parameters(manifest.get("parameters"), where, text, problems)
        changes = parse_requirement_changes(
            manifest.get("requirements"), name, where, text, problems
        )
        if problems:
            listing = "\n".join(f"  - {problem}" for problem in problems)
            raise ManifestError(f"{where}: {len(problems)} problem(s):\n{listing}")
        return _Manifest(
            name=name,
            title=str(manifest.get("title", name)),
            api_version=api_version,
            base=base,
            parameters=parameters,
            requirements=changes,
            path=where,
            text=text,
            directory=draft,
        )

    def _load_profile(self, directory: Traversable, draft: Path | None = None) -> _Manifest:
        manifest = self._read_manifest(directory, draft)
        name = manifest.name
        schemas: dict[str, dict[str, Any]] = {}
        for file in sorted(directory.iterdir(), key=lambda item: item.name):
            if not file.name.endswith(SCHEMA_SUFFIX):
                continue
            schema = strictjson.load_path(file)
            message = file.name.removesuffix(SCHEMA_SUFFIX)
            expected_id = f"https://provspec.invalid/schemas/{name}/{file.name}"
            if not isinstance(schema, dict) or schema.get("$id") != expected_id:
                raise ProvspecError(f"{file}: '$id' must be {expected_id!r}")
            schemas[message] = schema
        self._manifests[name] = manifest
        self._own[name] = schemas
        return manifest

    def _finish(self, name: str) -> Profile:
        manifest = self._manifests[name]
        chain = self._lineage(name)
        merged: dict[str, Any] = {}
        for member in reversed(chain):
            merged = merge_parameters(merged, self._manifests[member].parameters)
        parameters, gap = build_parameters(manifest.api_version, merged)
        family = next(
            (member for member in chain if self._manifests[member].directory is None), name
        )
        profile = Profile(
            name=name,
            title=manifest.title,
            api_version=manifest.api_version,
            base=manifest.base,
            family=family,
            directory=manifest.directory,
            parameters=parameters,
            parameter_gap=gap,
            requirements=manifest.requirements,
            manifest_path=manifest.path,
            manifest_text=manifest.text,
        )
        self._profiles[name] = profile
        return profile

    def load_draft(self, spec: str, _loading: tuple[Path, ...] = ()) -> str:
        """Load the draft profile in directory `spec` (and a draft base, recursively); its
        canonical name. Loading the same directory twice is a no-op."""
        path = Path(spec).expanduser().resolve()
        if not (path / "profile.toml").is_file():
            raise UsageError(
                f"{spec!r} is neither a known profile ({', '.join(self.profiles())}) nor a "
                "profile directory (no profile.toml in it)"
            )
        for name, manifest in self._manifests.items():
            if manifest.directory == path:
                self._aliases[spec] = name
                return name
        if path in _loading:
            raise ManifestError(f"{path / 'profile.toml'}: base profiles form a cycle")
        manifest = self._read_manifest(path, path)
        if manifest.name in self._manifests:
            raise ManifestError(
                f"{manifest.path}:{line_of(manifest.text, 'name')}: a profile named "
                f"{manifest.name!r} is already loaded (from "
                f"{self._manifests[manifest.name].path}); give the draft a name of its own"
            )
        if manifest.base is None:
            raise ManifestError(
                f"{manifest.path}: a draft needs a 'base' (a built-in profile such as "
                "app-next, or a path to another draft): its family decides the wire behaviour"
            )
        if _is_path(manifest.base):
            base_dir = (path / manifest.base).resolve()
            manifest.base = self.load_draft(str(base_dir), (*_loading, path))
        elif manifest.base not in self._manifests:
            raise ManifestError(
                f"{manifest.path}:{line_of(manifest.text, 'base')}: "
                + _unknown("base profile", manifest.base, self._manifests)
            )
        loaded = self._load_profile(path, path)
        loaded.base = manifest.base
        self._registries = {}  # the new schemas join the $ref registry
        self._quick = {}
        self._finish(loaded.name)
        self._aliases[spec] = loaded.name
        return loaded.name

    def lineage(self, name: str) -> list[str]:
        """`name`, its base, its base's base, … (canonical names)."""
        return self._lineage(self.profile(name).name)

    def _lineage(self, name: str) -> list[str]:
        chain: list[str] = []
        current: str | None = name
        while current is not None:
            if current in chain:
                raise ProvspecError(f"profile {name!r}: base profiles form a cycle {chain}")
            if current not in self._manifests:
                raise ProvspecError(f"profile {chain[-1]!r} names unknown base {current!r}")
            chain.append(current)
            current = self._manifests[current].base
        return chain

    def profiles(self) -> list[str]:
        """The built-in profiles (drafts loaded by path are not listed)."""
        return sorted(name for name, item in self._profiles.items() if item.builtin)

    def profile(self, name: str) -> Profile:
        """A profile by name, or a draft by directory path (loaded on first use)."""
        found = self._profiles.get(name) or self._profiles.get(self._aliases.get(name, ""))
        if found is not None:
            return found
        if _is_path(name) or Path(name, "profile.toml").is_file():
            return self._profiles[self.load_draft(name)]
        raise UsageError(_unknown("profile", name, self.profiles())) from None

    def own_messages(self, profile: str) -> dict[str, Mapping[str, Any]]:
        """The schemas `profile`'s own directory defines (not the inherited ones)."""
        return dict(self._own[self.profile(profile).name])

    def messages(self, profile: str) -> list[str]:
        """Every message the profile defines or inherits."""
        names: set[str] = set()
        for member in self.lineage(profile):
            names.update(self._own[member])
        return sorted(names)

    def defining_profile(self, profile: str, message: str) -> str:
        """The profile whose file defines `message` as seen from `profile`."""
        for member in self.lineage(profile):
            if message in self._own[member]:
                return member
        raise UsageError(
            _unknown(f"message in profile {profile!r}", message, self.messages(profile))
        )

    def schema(self, profile: str, message: str) -> Mapping[str, Any]:
        return self._own[self.defining_profile(profile, message)][message]

    def unknown_members(self, profile: str, message: str) -> str:
        """'allowed' or 'rejected': the schema's declared policy for unmodelled members."""
        return str(self.schema(profile, message).get("x-unknown-members", "allowed"))

    def validator(
        self, profile: str, message: str, *, strict: bool = False
    ) -> Draft202012Validator:
        owner = self.defining_profile(profile, message)
        key = (owner, message, strict)
        validator = self._validators.get(key)
        if validator is None:
            validator = WireValidator(
                self._compiled_schema(owner, message, strict),
                registry=self._registry(strict),
                format_checker=FORMAT_CHECKER,
            )
            self._validators[key] = validator
        return validator

    def validate(
        self, profile: str, message: str, instance: Any, *, strict: bool = False
    ) -> list[SchemaIssue]:
        """Every way `instance` breaks the message schema; empty when it is valid."""
        owner = self.defining_profile(profile, message)
        quick = self._quick.get(strict)
        if quick is None:
            quick = self._quick[strict] = QuickCheck(self._resources(strict))
        if quick.passes(
            (owner, message), lambda: self._compiled_schema(owner, message, strict), instance
        ):
            return []
        errors = self.validator(profile, message, strict=strict).iter_errors(instance)
        return sorted((_issue(error) for error in errors), key=lambda issue: issue.path)

    def _compiled_schema(self, owner: str, message: str, strict: bool) -> Any:
        schema: Any = _wire_dialect(self._own[owner][message])
        return close_open_objects(schema) if strict else schema

    def _resources(self, strict: bool) -> list[tuple[str, Any]]:
        """Every schema by its `$id`, as `$ref`s see it in this mode."""
        return [
            (
                schema["$id"],
                close_open_objects(_wire_dialect(schema)) if strict else _wire_dialect(schema),
            )
            for schemas in self._own.values()
            for schema in schemas.values()
        ]

    def _registry(self, strict: bool) -> Registry[Any]:
        registry = self._registries.get(strict)
        if registry is None:
            resources = [
                (uri, Resource.from_contents(contents, default_specification=DRAFT202012))
                for uri, contents in self._resources(strict)
            ]
            registry = Registry().with_resources(resources)
            self._registries[strict] = registry
        return registry


def _is_path(spec: str) -> bool:
    return spec.startswith((".", "~")) or "/" in spec or os.sep in spec


def _wire_dialect(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` without its `$schema`: jsonschema picks the validator class of a `$ref`'s
    target from its `$schema`, which would swap in the stock 2020-12 validator and count 60.0
    as an integer behind every `$ref`. Every shipped schema is 2020-12 (tests hold them to it),
    and the registry's default specification says so."""
    return {key: value for key, value in schema.items() if key != "$schema"}


@cache
def default_store() -> SchemaStore:
    """The shipped schemas, loaded once per process."""
    return SchemaStore()


def resolve_profile(spec: str) -> str:
    """The canonical name of a profile given by name or by directory path (loaded into the
    process's schema store on first use). Unknown names get suggestions."""
    return default_store().profile(spec).name


def profile_parameters(profile: str) -> ProfileParameters:
    return default_store().profile(profile).params


def profile_family(profile: str) -> str:
    """The built-in profile whose wire behaviour `profile` keeps (itself for a built-in)."""
    return default_store().profile(profile).family


def _pointer(error: ValidationError) -> str:
    return "".join(
        "/" + str(part).replace("~", "~0").replace("/", "~1") for part in error.absolute_path
    )


def _issue(error: ValidationError) -> SchemaIssue:
    hint = None
    if error.context:
        closest = best_match(error.context)
        hint = f"{_pointer(closest) or '(root)'}: {closest.message}"
    return SchemaIssue(
        keyword=str(error.validator), path=_pointer(error), message=error.message, hint=hint
    )


def _unknown(kind: str, name: str, known: Any) -> str:
    choices = sorted(known)
    close = difflib.get_close_matches(name, choices, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(choices)}"
    return f"unknown {kind} {name!r}{hint}"
