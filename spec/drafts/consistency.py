"""Whether provspec's mocks and checks can satisfy a profile (`provspec profile check`).

`consistency(profile)` lists where the profile contradicts itself or asks what the mocks
cannot do: incomplete parameters, an error code whose envelope is missing or refuses it, a
default cap or an algorithm the draft's own schemas refuse, claims the mocks send that the
draft's schema refuses (or a required claim they never send), base examples of an
overridden message the new schema refuses, OpenAPI answers that contradict the error map,
schemas citing a requirement for a rule they do not carry, and requirement changes naming
unknown IDs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from spec._resources import data_dir
from spec.drafts.locate import pointer_line
from spec.profiles import line_of
from spec.registry import default_registry, unknown_requirement_ids
from spec.schemas import SCHEMA_SUFFIX, SchemaStore, default_store
from wire import strictjson
from wire.attestation import attestation_claims, payment_token_claims

__all__ = ["consistency"]


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
