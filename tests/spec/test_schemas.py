from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from spec.schemas import SchemaStore, close_open_objects, default_store
from wire.errors import ProvspecError, UsageError

STORE = default_store()
ALL_SCHEMAS = [
    (profile, message)
    for profile in STORE.profiles()
    for message in STORE.messages(profile)
    if STORE.defining_profile(profile, message) == profile
]


def _make_store(
    tmp_path: Path, schemas: dict[str, dict[str, Any]], base: str | None = None
) -> SchemaStore:
    for profile, messages in schemas.items():
        directory = tmp_path / profile
        directory.mkdir()
        manifest = f'name = "{profile}"\napi_version = "1"\n'
        if base and profile != base:
            manifest += f'base = "{base}"\n'
        (directory / "profile.toml").write_text(manifest)
        for message, schema in messages.items():
            schema = {
                "$id": f"https://provspec.invalid/schemas/{profile}/{message}.schema.json",
                **schema,
            }
            (directory / f"{message}.schema.json").write_text(json.dumps(schema))
    return SchemaStore(tmp_path)


TOY = {
    "type": "object",
    "properties": {
        "when": {"type": "string", "format": "date-time"},
        "link": {"type": "string", "format": "uri"},
        "email": {"type": "string", "format": "email"},
        "nested": {"type": "object", "properties": {"a": {"type": "integer"}}},
        "map": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}


@pytest.mark.parametrize(
    ("member", "value"),
    [("when", "yesterday"), ("link", "not a uri"), ("email", "no-at-sign")],
)
def test_formats_are_asserted(tmp_path: Path, member: str, value: str) -> None:
    store = _make_store(tmp_path, {"p": {"toy": TOY}})
    issues = store.validate("p", "toy", {member: value})
    assert [(issue.keyword, issue.path) for issue in issues] == [("format", f"/{member}")]


def test_strict_mode_reports_every_unmodelled_member_but_not_open_maps(tmp_path: Path) -> None:
    store = _make_store(tmp_path, {"p": {"toy": TOY}})
    instance = {"extra": 1, "nested": {"a": 1, "drift": True}, "map": {"anything": "goes"}}
    assert store.validate("p", "toy", instance) == []
    issues = store.validate("p", "toy", instance, strict=True)
    assert sorted((issue.keyword, issue.path) for issue in issues) == [
        ("unevaluatedProperties", ""),
        ("unevaluatedProperties", "/nested"),
    ]
    assert "'drift'" in next(issue.message for issue in issues if issue.path == "/nested")


def test_closing_objects_does_not_touch_a_property_named_properties() -> None:
    schema = {
        "type": "object",
        "properties": {"properties": {"type": "object"}, "const": {"const": {"properties": {}}}},
    }
    closed = close_open_objects(schema)
    assert closed["unevaluatedProperties"] is False
    assert "unevaluatedProperties" not in closed["properties"]
    assert closed["properties"]["const"] == {"const": {"properties": {}}}
    assert "unevaluatedProperties" not in schema  # the original is untouched


@pytest.mark.parametrize("amount", [60.0, 6e3, True])
def test_money_must_be_a_wire_integer_not_a_float_with_no_fraction(amount: object) -> None:
    body = {"payment_token": "a.b.c", "amount": amount, "currency": "usd"}
    issues = STORE.validate("app-next", "redemption_request", body)
    assert [(issue.keyword, issue.path) for issue in issues] == [("type", "/amount")]


def test_strict_mode_does_not_close_conditions(tmp_path: Path) -> None:
    conditional = {
        "type": "object",
        "properties": {"ok": {"type": "boolean"}, "error": {"type": "string"}},
        "if": {"properties": {"ok": {"const": False}}},
        "then": {"required": ["error"]},
    }
    store = _make_store(tmp_path, {"p": {"toy": conditional}})
    failure = {"ok": False}
    assert [issue.keyword for issue in store.validate("p", "toy", failure, strict=True)] == [
        "required"
    ]


def test_a_profile_inherits_and_overrides_its_base(tmp_path: Path) -> None:
    store = _make_store(
        tmp_path,
        {
            "base": {"shared": {"type": "string"}, "changed": {"type": "string"}},
            "next": {"changed": {"type": "integer"}},
        },
        base="base",
    )
    assert store.messages("next") == ["changed", "shared"]
    assert store.defining_profile("next", "shared") == "base"
    assert store.validate("next", "changed", 1) == []
    assert store.validate("base", "changed", 1) != []


def test_unknown_names_get_suggestions() -> None:
    with pytest.raises(UsageError, match=r"unknown profile 'app-nxt'.*did you mean app-next"):
        STORE.profile("app-nxt")
    with pytest.raises(
        UsageError, match=r"unknown message .*'acount_request'.*did you mean account_request"
    ):
        STORE.schema("app-0.1d", "acount_request")


def test_a_schema_with_the_wrong_id_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "p"
    directory.mkdir()
    (directory / "profile.toml").write_text('name = "p"\napi_version = "1"\n')
    (directory / "toy.schema.json").write_text('{"$id": "https://elsewhere.example/toy.json"}')
    with pytest.raises(ProvspecError, match=r"toy\.schema\.json: '\$id' must be"):
        SchemaStore(tmp_path)


def test_an_unknown_base_profile_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "p"
    directory.mkdir()
    (directory / "profile.toml").write_text('name = "p"\napi_version = "1"\nbase = "ghost"\n')
    with pytest.raises(ProvspecError, match=r"unknown base 'ghost'"):
        SchemaStore(tmp_path)


def test_validators_are_compiled_once() -> None:
    profile, message = ALL_SCHEMAS[0]
    assert STORE.validator(profile, message) is STORE.validator(profile, message)
    assert STORE.validator(profile, message, strict=True) is not STORE.validator(profile, message)


# --- the shipped schemas ----------------------------------------------------------------


def test_both_profiles_are_shipped() -> None:
    # and the resource-server role's three, which carry no messages of their own
    assert STORE.profiles() == [
        "app-0.1d",
        "app-next",
        "mcp-2025-06-18",
        "mcp-2025-11-25",
        "rfc9728",
    ]
    assert not any(STORE.own_messages(p) for p in ("mcp-2025-06-18", "mcp-2025-11-25", "rfc9728"))
    assert STORE.profile("app-next").base == "app-0.1d"
    assert set(STORE.messages("app-0.1d")) < set(STORE.messages("app-next"))


@pytest.mark.parametrize(("profile", "message"), ALL_SCHEMAS, ids=lambda value: str(value))
def test_schema_follows_the_conventions(profile: str, message: str) -> None:
    schema = STORE.schema(profile, message)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema.get("title")
    assert schema.get("description")
    policy = schema.get("x-unknown-members")
    assert policy in ("allowed", "rejected")
    undocumented = [
        path
        for path, prop in _properties(schema, "")
        if not (isinstance(prop, dict) and prop.get("description")) and prop is not False
    ]
    assert undocumented == [], f"properties without a description: {undocumented}"
    if policy == "rejected":
        silent = [
            path
            for path, sub in _object_schemas(schema, "")
            if "additionalProperties" not in sub and "unevaluatedProperties" not in sub
        ]
        assert silent == [], (
            f"x-unknown-members is 'rejected' but these objects tolerate extras: {silent}"
        )


def _walk(schema: Any, path: str):
    if not isinstance(schema, dict):
        return
    yield path, schema
    for keyword in (
        "additionalProperties",
        "unevaluatedProperties",
        "items",
        "contains",
        "not",
        "if",
        "then",
        "else",
        "propertyNames",
    ):
        if keyword in schema:
            yield from _walk(schema[keyword], f"{path}/{keyword}")
    for keyword in ("properties", "patternProperties", "$defs", "dependentSchemas"):
        for name, sub in (schema.get(keyword) or {}).items():
            yield from _walk(sub, f"{path}/{keyword}/{name}")
    for keyword in ("allOf", "anyOf", "oneOf", "prefixItems"):
        for index, sub in enumerate(schema.get(keyword) or []):
            yield from _walk(sub, f"{path}/{keyword}/{index}")


def _properties(schema: Any, path: str):
    for where, sub in _walk(schema, path):
        for name, prop in (sub.get("properties") or {}).items():
            yield f"{where}/properties/{name}", prop


def _object_schemas(schema: Any, path: str):
    for where, sub in _walk(schema, path):
        if "properties" in sub:
            yield where, sub


# The messages the foundation issue names, per profile (inherited ones count for app-next).
REQUIRED_MESSAGES = {
    "app-0.1d": {
        "health_response", "services_response", "service", "config_schema",
        "account_request", "account_response_oauth", "account_response_requires_auth",
        "account_response_error", "token_request", "token_response", "error_oauth",
        "error_typed", "error_status", "error_flat", "resource_create_request",
        "resource_response", "update_service_request", "rotate_credentials_request",
        "remove_request", "remove_response", "deep_link_request", "deep_link_response",
        "provider_service_detail", "cli_envelope", "cli_catalog",
    },
    "app-next": {
        "attestation_header", "attestation_claims", "orchestrator_metadata", "jwks",
        "payment_token_header", "payment_token_claims", "payment_credentials",
        "resource_create_request", "update_service_request", "redemption_request",
        "redemption_response", "refund_request", "refund_response", "cap_state", "problem",
        "redemption_error", "spend_cap_exceeded", "account_response_consent_required",
        "protected_resource_metadata", "authorization_server_metadata",
        "www_authenticate_challenge", "authorization_request", "token_request",
        "revocation_request",
    },
}  # fmt: skip


@pytest.mark.parametrize("profile", sorted(REQUIRED_MESSAGES))
def test_every_protocol_message_has_a_schema(profile: str) -> None:
    missing = REQUIRED_MESSAGES[profile] - set(STORE.messages(profile))
    assert missing == set(), f"{profile} has no schema for {sorted(missing)}"


@pytest.mark.parametrize(
    "message",
    ["resource_create_request", "update_service_request", "token_request"],
)
def test_app_next_overrides_the_messages_it_changes(message: str) -> None:
    assert STORE.defining_profile("app-next", message) == "app-next"
    assert STORE.defining_profile("app-0.1d", message) == "app-0.1d"


@pytest.mark.parametrize(
    ("value", "fmt"),
    [("not a uri", "uri"), ("a b", "uri-reference"), ("2026-13-01T00:00:00Z", "date-time")],
)
def test_the_formats_our_schemas_use_are_really_checked(value: str, fmt: str) -> None:
    # The format checkers come from optional packages; without them jsonschema skips a format
    # silently, so this guards the dependency list.
    from jsonschema import Draft202012Validator

    assert not Draft202012Validator.FORMAT_CHECKER.conforms(value, fmt)


@pytest.mark.parametrize(
    ("paid", "valid"),
    [
        ({"type": "freeform", "freeform": "$50/month"}, True),
        ({"type": "freeform", "freeform": "$50/month", "amount": 5000, "currency": "usd"}, True),
        ({"type": "freeform", "amount": 5000}, False),
        ({"type": "freeform", "currency": "usd"}, False),
        ({"type": "freeform", "amount": 5000, "currency": "USD"}, False),
        ({"type": "freeform", "amount": 50.0, "currency": "usd"}, False),
    ],
)
def test_app_next_prices_state_amount_and_currency_together(paid: Any, valid: bool) -> None:
    entry = {
        "id": "pro",
        "description": "d",
        "categories": [],
        "kind": "plan",
        "pricing": {"type": "paid", "paid": paid},
        "allowed_updates": [],
    }
    assert (STORE.validate("app-next", "services_response", {"data": [entry]}) == []) is valid
    # the deployed wire knows text prices only and never judges the extra members
    assert STORE.validate("app-0.1d", "services_response", {"data": [entry]}) == [] or not valid


def _refs(schema: Any) -> Any:
    if isinstance(schema, dict):
        if isinstance(schema.get("$ref"), str):
            yield schema["$ref"]
        for value in schema.values():
            yield from _refs(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from _refs(value)


@pytest.mark.parametrize(("profile", "message"), ALL_SCHEMAS, ids=lambda value: str(value))
def test_every_reference_resolves(profile: str, message: str) -> None:
    # A copied schema keeps relative $refs that may point at a file its profile lacks; the
    # validator would only notice when an instance reaches that branch.
    schema = STORE.schema(profile, message)
    resolver = STORE._registry(False).resolver(base_uri=schema["$id"])
    broken = []
    for ref in _refs(schema):
        if ref.startswith("#"):
            continue
        try:
            resolver.lookup(ref)
        except Exception as exc:  # referencing's errors share no useful base
            broken.append(f"{ref}: {type(exc).__name__}")
    assert broken == []
