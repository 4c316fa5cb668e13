"""What a spec author runs on a draft profile: static checks, diffs, and Markdown examples.

- `check_directory(path)`: the manifest and every schema of a draft directory, each problem
  as `file:line: what`. Schemas: strict JSON, 2020-12 meta-schema, the `$id` convention,
  every `$ref` resolving; then `consistency(profile)`.
- `consistency(profile)`: where the profile cannot be satisfied by provspec's mocks and
  checks: incomplete parameters, an error code whose envelope is missing or refuses it, a
  default cap or an algorithm the draft's own schemas refuse, claims the mocks send that the
  draft's schema refuses (or a required claim they never send), base examples of an
  overridden message the new schema refuses, requirement changes naming unknown IDs.
- `diff(a, b)`: what changes between two profiles, per role and per message.
- `find_examples(text)`: the ```` ```json app:<message> ```` blocks of a Markdown draft.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

from conformance._resources import data_dir
from conformance.profiles import unknown_requirement_ids
from conformance.registry import Role, default_registry
from conformance.schemas import SCHEMA_SUFFIX, SchemaStore, default_store
from wire import strictjson
from wire.attestation import attestation_claims, payment_token_claims
from wire.errors import ProvspecError

__all__ = [
    "Example",
    "ProfileDiff",
    "check_directory",
    "consistency",
    "diff",
    "find_examples",
    "pointer_line",
]

DIALECT = "https://json-schema.org/draft/2020-12/schema"


# --- locating things in files ------------------------------------------------------------


def offset_line(text: str, offset: int | None) -> int:
    return text.count("\n", 0, offset or 0) + 1


def pointer_line(text: str, path: Iterator[Any] | list[Any] | tuple[Any, ...]) -> int:
    """The line of a JSON document where the member at `path` (keys and indexes) is, found
    by searching each key in turn after the previous one: line-ish, never wrong by a file."""
    position = 0
    for part in path:
        if isinstance(part, int):
            continue
        found = text.find(json.dumps(str(part)) + ":", position)
        if found < 0:
            found = text.find(json.dumps(str(part)), position)
        if found < 0:
            break
        position = found
    return offset_line(text, position)


# --- static checks of a directory --------------------------------------------------------


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


# --- consistency: can the mocks and checks satisfy the profile? ---------------------------


_CODE_MEMBERS = ("code", "error")


def consistency(profile: str, store: SchemaStore | None = None) -> list[str]:
    """Where `profile` contradicts itself or asks what the mocks cannot do."""
    store = store or default_store()
    spec = store.profile(profile)
    where = spec.manifest_path
    text = spec.manifest_text
    problems: list[str] = []
    if spec.parameters is None:
        return [f"{where}: {spec.parameter_gap}"]
    params = spec.parameters
    messages = set(store.messages(profile))
    for condition, error in params.error_codes.items():
        line = _toml_line(text, condition)
        if error.envelope not in messages:
            problems.append(
                f"{where}:{line}: error code {condition} = {error.code!r} has no envelope: "
                f"the profile has no message {error.envelope!r}"
            )
            continue
        allowed = _pinned(store.schema(profile, error.envelope), _CODE_MEMBERS)
        if allowed is not None and error.code not in allowed:
            problems.append(
                f"{where}:{line}: error code {condition} = {error.code!r}: its envelope "
                f"{error.envelope} allows only {sorted(map(str, allowed))}"
            )
        # A pinned integer `status` is the HTTP status (RFC 9457); the status envelope's
        # `status` member is the string "error", which says nothing about it.
        pinned = _pinned(store.schema(profile, error.envelope), ("status",))
        statuses = {value for value in pinned or () if isinstance(value, int)} or None
        if statuses is not None and error.status not in statuses:
            problems.append(
                f"{where}:{line}: error code {condition} has status {error.status}; its envelope "
                f"{error.envelope} pins status to {sorted(statuses)}"
            )
    if spec.family == "app-next":
        problems += _member_problems(
            store,
            profile,
            "cap_state",
            {
                "limit": params.default_cap.limit,
                "currency": params.default_cap.currency,
                "interval": params.default_cap.interval,
            },
            f"{where}:{_toml_line(text, 'default_cap')}: [parameters.default_cap]",
        )
        for message in ("attestation_header", "payment_token_header"):
            for alg in params.algorithms:
                problems += _member_problems(
                    store,
                    profile,
                    message,
                    {"alg": alg},
                    f"{where}:{_toml_line(text, 'algorithms')}: algorithms",
                )
        problems += _claim_problems(store, profile)
    problems += _example_problems(store, profile)
    problems += _citation_problems(store, profile)
    problems += _error_map_problems(store, profile)
    problems += unknown_requirement_ids(default_registry(), profile)
    return problems


# --- OpenAPI answers against the profile's error map ---------------------------------------


def _openapi_documents(store: SchemaStore, profile: str) -> list[tuple[Path, str, Any]]:
    """The OpenAPI documents `profile` is served by: its own directory's, then each ancestor's
    that no nearer profile overrides by file name."""
    files: dict[str, Path] = {}
    for member in store.lineage(profile):
        folder = store.profile(member).directory or Path(str(data_dir("schemas"))) / member
        for file in sorted(folder.glob("*.openapi.json")):
            files.setdefault(file.name, file)
    documents = []
    for file in files.values():
        text = file.read_text(encoding="utf-8", errors="replace")
        try:
            documents.append((file, text, strictjson.loads(file.read_bytes())))
        except strictjson.StrictJSONError:
            continue  # not JSON: nothing to compare here
    return documents


def _referenced_message(node: Any) -> str | None:
    """The message a `$ref` to a whole schema file names (`../app-0.1d/error_flat.schema.json`
    is error_flat); None for anything else."""
    ref = node.get("$ref") if isinstance(node, dict) else None
    if not isinstance(ref, str) or "#" in ref:
        return None
    name = ref.rsplit("/", 1)[-1]
    return name[: -len(SCHEMA_SUFFIX)] if name.endswith(SCHEMA_SUFFIX) else None


def _status_pins(schema: Mapping[str, Any]) -> tuple[set[Any] | None, dict[Any, set[Any]]]:
    """The statuses a message pins: for every code (its top-level `status` const or enum), and
    per code (an `allOf` rule `if code is C then status is S`)."""
    status = (schema.get("properties") or {}).get("status")
    everywhere: set[Any] | None = None
    if isinstance(status, dict) and "const" in status:
        everywhere = {status["const"]}
    elif isinstance(status, dict) and isinstance(status.get("enum"), list):
        everywhere = set(status["enum"])
    if everywhere is not None and not all(_http_status(value) for value in everywhere):
        everywhere = None  # a status member that is not the HTTP status (0.1d: "error")
    per_code: dict[Any, set[Any]] = {}
    for rule in schema.get("allOf") or []:
        if not isinstance(rule, dict):
            continue
        when = ((rule.get("if") or {}).get("properties") or {}).get("code")
        then = ((rule.get("then") or {}).get("properties") or {}).get("status")
        if (
            isinstance(when, dict)
            and "const" in when
            and isinstance(then, dict)
            and "const" in then
        ):
            per_code.setdefault(when["const"], set()).add(then["const"])
    return everywhere, per_code


def _http_status(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599


def _error_map_problems(store: SchemaStore, profile: str) -> list[str]:
    """Where the profile's OpenAPI documents contradict its `[parameters.error_codes]` map.

    For every documented answer (operation, HTTP status, schema) and every code of the map,
    the messages of that answer that can carry the code at that status (the message pins its
    code to a set holding it, and pins no other status for it) must be answered with a
    status and an envelope the map gives that code; a `oneOf` with two such messages is
    ambiguous (an answer carrying the code matches both, so it is valid against neither); and
    a message that pins the code to a status the map does not give contradicts the map."""
    params = store.profile(profile).parameters
    if params is None:
        return []
    by_code: dict[str, tuple[set[int], set[str]]] = {}
    for error in params.error_codes.values():
        statuses, envelopes = by_code.setdefault(error.code, (set(), set()))
        statuses.add(error.status)
        envelopes.add(error.envelope)
    known = set(store.messages(profile))
    problems: list[str] = []
    for file, text, document in _openapi_documents(store, profile):
        paths = document.get("paths") if isinstance(document, dict) else None
        for path, operations in (paths or {}).items():
            for method, operation in (operations or {}).items():
                responses = operation.get("responses") if isinstance(operation, dict) else None
                for status_key, response in (responses or {}).items():
                    if not str(status_key).isdigit() or not isinstance(response, dict):
                        continue
                    line = pointer_line(text, ["paths", path, method, "responses", status_key])
                    where = f"{file}:{line}: {method.upper()} {path} {status_key}"
                    for content in (response.get("content") or {}).values():
                        schema = content.get("schema") if isinstance(content, dict) else None
                        if not isinstance(schema, dict):
                            continue
                        problems += _answer_problems(
                            store, profile, where, int(status_key), schema, by_code, known
                        )
    return list(dict.fromkeys(problems))


def _answer_problems(
    store: SchemaStore,
    profile: str,
    where: str,
    status: int,
    schema: Mapping[str, Any],
    by_code: Mapping[str, tuple[set[int], set[str]]],
    known: set[str],
) -> list[str]:
    combinator = next((k for k in ("oneOf", "anyOf") if isinstance(schema.get(k), list)), "")
    alternatives = schema[combinator] if combinator else [schema]
    messages = [m for m in map(_referenced_message, alternatives) if m is not None and m in known]
    problems: list[str] = []
    for code, (statuses, envelopes) in sorted(by_code.items()):
        carriers = []
        for message in messages:
            message_schema = store.schema(profile, message)
            codes = _pinned(message_schema, ("code",))
            if codes is None or code not in codes:
                continue
            everywhere, per_code = _status_pins(message_schema)
            pinned = per_code.get(code, everywhere)
            if pinned is not None and not pinned & statuses:
                problems.append(
                    f"{where}: the {message} schema pins {code} to status "
                    f"{sorted(pinned)}; [parameters.error_codes] gives {code} status "
                    f"{sorted(statuses)}"
                )
            if pinned is not None and status not in pinned:
                allowed = everywhere
                if allowed is None and codes and all(c in per_code for c in codes):
                    allowed = set().union(*(per_code[c] for c in codes))
                if allowed is not None and status not in allowed:
                    problems.append(
                        f"{where}: {message}, which carries {code}, is documented with status "
                        f"{status}; its schema allows only {sorted(allowed)} and "
                        f"[parameters.error_codes] gives {code} status {sorted(statuses)}"
                    )
                continue  # the message cannot carry the code at this status
            carriers.append(message)
            if status not in statuses:
                problems.append(
                    f"{where}: {message} may carry {code} with status {status}; "
                    f"[parameters.error_codes] gives {code} status {sorted(statuses)}"
                )
            elif message not in envelopes:
                problems.append(
                    f"{where}: {code} is answered in {message}; [parameters.error_codes] "
                    f"carries it in {sorted(envelopes)}"
                )
        if combinator == "oneOf" and len(carriers) > 1:
            problems.append(
                f"{where}: an answer with {code} matches {' and '.join(carriers)} of its oneOf, "
                "so it is valid against neither: make them exclusive (or use anyOf)"
            )
    return problems


_CITED = re.compile(r"\b(?:PRV|ORC|AGT|RSV)-[A-Z]{3}-\d{3}\b")
_GENERIC_TERMS = frozenset(
    {"id", "type", "status", "error", "code", "message", "description", "data", "object", "name"}
)
"""Member names too common to tie a requirement to one message."""


def _terms(schema: Any) -> set[str]:
    """What a message is made of, by name: its member names at any depth and its constant
    and enumerated string values."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for name in (
                (node.get("properties") or {}) if isinstance(node.get("properties"), dict) else {}
            ):
                found.add(str(name))
            for key in ("const", "enum"):
                value = node.get(key)
                values = value if isinstance(value, list) else [value]
                found.update(v for v in values if isinstance(v, str))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(schema)
    return {term for term in found if term not in _GENERIC_TERMS and len(term) > 2}


def _citation_problems(store: SchemaStore, profile: str) -> list[str]:
    """A schema that cites a requirement for a rule it does not carry: the requirement's text
    names none of the message's members or constants (a citation copied from a neighbour)."""
    registry = default_registry()
    known = {requirement.id: requirement for requirement in registry.select()}
    problems: list[str] = []
    for message in store.own_messages(profile):
        schema = store.schema(profile, message)
        terms = _terms(schema) | {message}
        for cited in sorted(set(_CITED.findall(json.dumps(schema)))):
            requirement = known.get(cited)
            if requirement is None:
                continue  # unknown IDs are reported on their own
            text = requirement.text
            if not any(
                re.search(rf"(?<![A-Za-z0-9_]){re.escape(term)}(?![A-Za-z0-9_])", text)
                for term in terms
            ):
                problems.append(
                    f"{_schema_file(store, profile, message)}: cites {cited} for a rule it does "
                    f"not carry: {cited} ('{text[:90]}…') names none of {message}'s members or "
                    "constants"
                )
    return problems


def _toml_line(text: str, key: str) -> int:
    from conformance.profiles import line_of

    return line_of(text, key) or 1


def _pinned(schema: Any, members: tuple[str, ...]) -> set[Any] | None:
    """The values a schema's `members` (at any depth) are pinned to by const/enum; None when
    it does not pin them."""
    found: set[Any] = set()
    pinned = False

    def walk(node: Any) -> None:
        nonlocal pinned
        if isinstance(node, dict):
            for name, sub in (node.get("properties") or {}).items():
                if name in members and isinstance(sub, dict):
                    if "const" in sub:
                        found.add(_hashable(sub["const"]))
                        pinned = True
                    if isinstance(sub.get("enum"), list):
                        found.update(_hashable(v) for v in sub["enum"])
                        pinned = True
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return found if pinned else None


def _hashable(value: Any) -> Any:
    return json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else value


def _member_problems(
    store: SchemaStore, profile: str, message: str, values: Mapping[str, Any], what: str
) -> list[str]:
    if message not in store.messages(profile):
        return []
    properties = store.schema(profile, message).get("properties") or {}
    problems = []
    for name, value in values.items():
        sub = properties.get(name)
        if not isinstance(sub, dict):
            continue
        errors = list(Draft202012Validator(sub).iter_errors(value))
        if errors:
            problems.append(
                f"{what}: {name} {value!r} is refused by the profile's {message} schema "
                f"({errors[0].message})"
            )
    return problems


def _claim_problems(store: SchemaStore, profile: str) -> list[str]:
    """The claims the mocks put in an attestation and a payment token, against the profile's
    schemas: a claim they require that the mocks never send, or one they send that a closed
    schema does not allow."""
    params = store.profile(profile).params
    now = 1_700_000_000
    sent = {
        "attestation_claims": attestation_claims(
            issuer="https://orchestrator.example",
            audience="https://provider.example/api/app/",
            subject="usr_1",
            body=b"{}",
            now=now,
            lifetime=params.attestation_lifetime,
            claims={
                "email": "user@example.com",
                "email_verified": True,
                "orchestrator_account": "acct_1",
            },
        ),
        "payment_token_claims": payment_token_claims(
            issuer="https://orchestrator.example",
            audience="https://provider.example/api/app/",
            subject="usr_1",
            now=now,
            lifetime=params.payment_token_lifetime,
            max_amount=params.default_cap.limit,
            currency=params.default_cap.currency,
            service_id="svc_1",
            project_id="proj_1",
            jti="pt_1",
        ),
    }
    problems: list[str] = []
    for message, claims in sent.items():
        if message not in store.messages(profile):
            continue
        owner = store.defining_profile(profile, message)
        file = _schema_file(store, owner, message)
        for issue in store.validate(profile, message, claims):
            problems.append(
                f"{file}: the claims provspec's mocks send fail {message}: {issue} (a draft that "
                "requires a claim the mocks never send, or refuses one they do, cannot be "
                "satisfied without teaching the mocks)"
            )
    return problems


def _schema_file(store: SchemaStore, owner: str, message: str) -> str:
    spec = store.profile(owner)
    folder = spec.directory or Path(str(data_dir("schemas") / owner))
    return str(folder / f"{message}{SCHEMA_SUFFIX}")


def _example_problems(store: SchemaStore, profile: str) -> list[str]:
    """Messages a draft overrides: the family's valid fixtures (the shapes the mocks send)
    must still validate."""
    spec = store.profile(profile)
    if spec.builtin:
        return []
    root = Path(str(data_dir("fixtures"))) / "examples"
    problems: list[str] = []
    for message in store.own_messages(profile):
        owner = next(
            (
                member
                for member in store.lineage(profile)[1:]
                if message in store.own_messages(member)
            ),
            None,
        )
        if owner is None:
            continue
        for example in sorted((root / owner / message / "valid").glob("*.json")):
            try:
                instance = strictjson.loads(example.read_bytes())["instance"]
            except (strictjson.StrictJSONError, KeyError, TypeError):
                continue
            issues = store.validate(profile, message, instance)
            if issues:
                problems.append(
                    f"{_schema_file(store, profile, message)}: refuses {owner}'s valid example "
                    f"{example.name} ({issues[0]}): the mocks send this shape"
                )
    return problems


# --- diff -------------------------------------------------------------------------------


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


# --- examples in a Markdown draft ----------------------------------------------------------

_FENCE_OPEN = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*json\s+app:(?P<message>\S+)")


@dataclass
class Example:
    message: str
    line: int
    """The line of the opening fence (1-based)."""
    text: str
    first_line: int
    """The line of the example's first JSON line."""


def find_examples(markdown: str) -> list[Example]:
    """Every fenced block tagged ```` ```json app:<message> ````, in order."""
    examples: list[Example] = []
    lines = markdown.splitlines()
    index = 0
    while index < len(lines):
        match = _FENCE_OPEN.match(lines[index])
        if match is None:
            index += 1
            continue
        fence = match["fence"]
        body: list[str] = []
        start = index
        index += 1
        while index < len(lines) and not lines[index].strip().startswith(fence):
            body.append(lines[index])
            index += 1
        examples.append(Example(match["message"], start + 1, "\n".join(body), start + 2))
        index += 1
    return examples
