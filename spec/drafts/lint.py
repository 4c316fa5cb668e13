"""`provspec profile check DIR`: every problem of a draft profile's directory, as `file:line: what`.

The manifest and every schema: strict JSON, the 2020-12 meta-schema, the `$id` convention
(schemas/README.md), every `$ref` resolving; then, when all of that holds, whether the mocks
and checks can satisfy the profile (`spec.drafts.consistency`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

from spec._resources import data_dir
from spec.drafts.consistency import consistency
from spec.drafts.locate import offset_line, pointer_line
from spec.schemas import SCHEMA_SUFFIX, SchemaStore, default_store
from wire import strictjson
from wire.errors import ProvspecError

__all__ = ["DIALECT", "builtin_at", "check_directory"]

DIALECT = "https://json-schema.org/draft/2020-12/schema"


def builtin_at(path: Path, store: SchemaStore | None = None) -> str | None:
    """The built-in profile whose directory `path` is, if any."""
    store = store or default_store()
    where = path.resolve()
    for name in store.profiles():
        if (Path(str(data_dir("schemas"))) / name).resolve() == where:
            return name
    return None


def check_directory(path: Path, store: SchemaStore | None = None) -> list[str]:
    """Every problem of the draft profile in `path`, as `file:line: what` strings."""
    store = store or default_store()
    manifest = path / "profile.toml"
    if not manifest.is_file():
        return [f"{manifest}: missing (a profile directory holds profile.toml)"]
    problems: list[str] = []
    builtin = builtin_at(path, store)
    try:
        spec = store.profile(builtin or str(path))
    except ProvspecError as error:  # the manifest, a schema's $id, the base: first problem
        problems.append(str(error))
        spec = None
    name = spec.name if spec is not None else path.resolve().name
    schemas: dict[str, tuple[Path, str, Any]] = {}
    for file in sorted(path.glob("*" + SCHEMA_SUFFIX)):
        text = file.read_text(encoding="utf-8", errors="replace")
        try:
            schema = strictjson.loads(file.read_bytes())
        except strictjson.StrictJSONError as error:
            problems.append(f"{file}:{offset_line(text, error.offset)}: {error}")
            continue
        schemas[file.name] = (file, text, schema)
        problems += _schema_problems(file, text, schema, name)
    if spec is not None and not [p for p in problems if "$ref" in p or "meta-schema" in p]:
        problems += _ref_problems(store, schemas)
    if spec is not None and not problems:
        problems += consistency(spec.name, store)
    return problems


def _schema_problems(file: Path, text: str, schema: Any, profile: str) -> list[str]:
    if not isinstance(schema, dict):
        return [f"{file}:1: a schema must be a JSON object"]
    problems: list[str] = []
    if schema.get("$schema") != DIALECT:
        problems.append(f"{file}:{pointer_line(text, ['$schema'])}: '$schema' must be {DIALECT!r}")
    expected = f"https://provspec.invalid/schemas/{profile}/{file.name}"
    if schema.get("$id") != expected:
        problems.append(
            f"{file}:{pointer_line(text, ['$id'])}: '$id' must be {expected!r} "
            "(schemas/README.md conventions)"
        )
    meta = Draft202012Validator(Draft202012Validator.META_SCHEMA)
    for error in sorted(meta.iter_errors(schema), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(part) for part in error.absolute_path) or "(root)"
        problems.append(
            f"{file}:{pointer_line(text, list(error.absolute_path))}: not a valid 2020-12 "
            f"schema (meta-schema) at {where}: {error.message}"
        )
    return problems


def _refs(schema: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], str]]:
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == "$ref" and isinstance(value, str):
                yield path, value
            elif key not in ("const", "enum", "examples", "default"):
                yield from _refs(value, (*path, key))
    elif isinstance(schema, list):
        for index, value in enumerate(schema):
            yield from _refs(value, (*path, index))


def _ref_problems(store: SchemaStore, schemas: Mapping[str, tuple[Path, str, Any]]) -> list[str]:
    resources = [
        (schema["$id"], Resource.from_contents(schema, default_specification=DRAFT202012))
        for profile in store.profiles()
        for schema in store.own_messages(profile).values()
    ]
    resources += [
        (schema["$id"], Resource.from_contents(schema, default_specification=DRAFT202012))
        for _, _, schema in schemas.values()
        if isinstance(schema, dict) and isinstance(schema.get("$id"), str)
    ]
    registry: Registry[Any] = Registry().with_resources(resources)
    problems: list[str] = []
    for file, text, schema in schemas.values():
        if not isinstance(schema, dict) or not isinstance(schema.get("$id"), str):
            continue
        resolver = registry.resolver(base_uri=schema["$id"])
        for path, ref in _refs(schema):
            try:
                resolver.lookup(ref)
            except Unresolvable:
                target = urljoin(schema["$id"], ref)
                problems.append(
                    f"{file}:{pointer_line(text, [*path, '$ref'])}: $ref {ref!r} does not "
                    f"resolve (looked for {target})"
                )
    return problems
