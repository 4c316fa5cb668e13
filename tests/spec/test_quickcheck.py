from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from spec._quickcheck import QuickCheck, _pattern_alike, plain_json
from spec.schemas import SchemaStore, _issue, default_store

STORE = default_store()


def _slow(store: SchemaStore, profile: str, message: str, instance: Any) -> list[Any]:
    """What jsonschema alone says, without the quick check."""
    errors = store.validator(profile, message).iter_errors(instance)
    return sorted((_issue(error) for error in errors), key=lambda issue: issue.path)


def _store(tmp_path: Path, schema: dict[str, Any]) -> SchemaStore:
    directory = tmp_path / "p"
    directory.mkdir()
    (directory / "profile.toml").write_text('name = "p"\napi_version = "1"\n')
    full = {"$id": "https://provspec.invalid/schemas/p/toy.schema.json", **schema}
    (directory / "toy.schema.json").write_text(json.dumps(full))
    return SchemaStore(tmp_path)


@pytest.mark.parametrize(
    ("instance", "plain"),
    [
        ({"a": [1, "x", True, None, {"b": -(2**63)}]}, True),
        ({"a": 60.0}, False),  # jsonschema-rs counts it an integer; the wire validator does not
        ({"a": (1, 2)}, False),  # jsonschema-rs reads a tuple as an array; jsonschema does not
        ({"a": 2**64}, False),
        ({1: "a"}, False),
        ({"a": object()}, False),
    ],
)
def test_only_plain_json_takes_the_quick_path(instance: Any, plain: bool) -> None:
    assert plain_json(instance) is plain


@pytest.mark.parametrize(
    ("pattern", "alike"),
    [
        ("^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$", True),
        ("^[\\x20-\\x7E]+$", True),
        ("^(?:sha256|hmac):[0-9a-f]{64}$", True),
        ("^\\S+$", False),  # Python's \s holds \x1c-\x1f, Rust's does not
        ("\\bword", False),
        ("^\\d{3}$", False),
        ("(?i)abc", False),
        ("^a{,3}$", False),
        ("[[:alpha:]]", False),
        ("[a-z&&[^x]]", False),
        ("[[a]]", False),  # a nested class to Rust, a literal "[" to Python
        ("[]a]", True),
        ("a\\<b", False),  # a word boundary to Rust, a literal "<" to Python
        ("\\x2", False),
        ("(unclosed", False),
    ],
)
def test_patterns_the_engines_read_differently_are_left_to_jsonschema(
    pattern: str, alike: bool
) -> None:
    assert _pattern_alike(pattern) is alike


def test_a_schema_with_an_unlike_pattern_never_takes_the_quick_path() -> None:
    schema = {"type": "string", "pattern": "^\\S+$"}
    quick = QuickCheck([("https://provspec.invalid/s.json", schema)])
    assert not quick.passes(("p", "s"), lambda: schema, "a\x1cb")
    assert not quick.passes(("p", "s"), lambda: schema, "ab")


def test_the_quick_path_says_valid_only_for_what_jsonschema_accepts(tmp_path: Path) -> None:
    store = _store(
        tmp_path,
        {
            "type": "object",
            "required": ["amount"],
            "properties": {
                "amount": {"type": "integer", "minimum": 0},
                "email": {"type": "string", "format": "email"},
                "code": {"type": "string", "pattern": "^[a-z]{3}$"},
                "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
            },
        },
    )
    instances: list[Any] = [
        {"amount": 1, "email": "dev@example.com", "code": "usd", "tags": ["a", "b"]},
        {"amount": 60.0},
        {"amount": True},
        {"amount": 1, "email": "a..b@example.com"},  # jsonschema-rs's own check accepts it
        {"amount": 1, "code": "usd\n"},  # Python's $ matches before a final newline
        {"amount": 1, "tags": ["a", "a"]},
        {"amount": -1},
        {},
        [],
    ]
    for instance in instances:
        assert store.validate("p", "toy", instance) == _slow(store, "p", "toy", instance)


@pytest.mark.parametrize("strict", [False, True])
def test_shipped_schemas_take_the_quick_path_and_agree(strict: bool) -> None:
    health = {"supported_versions": ["0.1d"], "status": "ok"}
    quick = QuickCheck(STORE._resources(strict))
    schema = STORE._compiled_schema("app-0.1d", "health_response", strict)
    assert quick.passes(("app-0.1d", "health_response"), lambda: schema, health)
    assert not quick.passes(("app-0.1d", "health_response"), lambda: schema, {"status": 1})
    assert STORE.validate("app-0.1d", "health_response", {"status": 1}, strict=strict)
