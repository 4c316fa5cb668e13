"""Every schema's examples, run both ways; the real Stripe catalog against its schema.

Fixture layout and envelope: fixtures/README.md. An invalid example must fail on the keyword
and instance location it names, so it cannot pass for the wrong reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema.exceptions import ValidationError

from spec._resources import data_dir
from spec.schemas import default_store
from wire import strictjson

STORE = default_store()
EXAMPLES = Path(str(data_dir("fixtures"))) / "examples"
REAL_CATALOG = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "real"
    / "stripe-projects-catalog-2026-06-13.json"
)
OWN_SCHEMAS = {
    (profile, message)
    for profile in STORE.profiles()
    for message in STORE.messages(profile)
    if STORE.defining_profile(profile, message) == profile
}


def _fixture_files() -> list[Path]:
    return sorted(EXAMPLES.glob("*/*/*/*.json"))


def _id(path: Path) -> str:
    return "/".join(path.relative_to(EXAMPLES).parts)


def _load(path: Path) -> dict[str, Any]:
    envelope = strictjson.load_path(path)
    kind = path.parent.name
    allowed = (
        {"description", "instance", "expect", "mode"}
        if kind == "invalid"
        else {"description", "instance"}
    )
    assert isinstance(envelope, dict), f"{path}: a fixture is a JSON object envelope"
    assert set(envelope) <= allowed, f"{path}: unknown envelope members {set(envelope) - allowed}"
    assert isinstance(envelope.get("description"), str)
    assert envelope["description"].strip()
    assert "instance" in envelope, f"{path}: no 'instance'"
    if kind == "invalid":
        expect = envelope.get("expect")
        assert isinstance(expect, dict)
        assert set(expect) == {"keyword", "path"}, f"{path}: 'expect' needs keyword and path"
        assert envelope.get("mode", "default") in ("default", "strict")
    return envelope


def _all_errors(errors: Any) -> Iterator[ValidationError]:
    for error in errors:
        yield error
        yield from _all_errors(error.context or [])


def _pointer(error: ValidationError) -> str:
    return "".join(
        "/" + str(part).replace("~", "~0").replace("/", "~1") for part in error.absolute_path
    )


def test_fixture_tree_matches_the_schemas() -> None:
    directories = {(path.parent.name, path.name) for path in EXAMPLES.glob("*/*") if path.is_dir()}
    orphans = sorted(directories - OWN_SCHEMAS)
    assert orphans == [], f"fixture directories without a schema: {orphans}"
    stray = sorted(
        str(path.relative_to(EXAMPLES))
        for path in EXAMPLES.glob("*/*/*")
        if path.name not in ("valid", "invalid")
    )
    assert stray == [], f"fixture files outside valid/ or invalid/: {stray}"
    short = []
    for profile, message in sorted(OWN_SCHEMAS):
        valid = list((EXAMPLES / profile / message / "valid").glob("*.json"))
        invalid = list((EXAMPLES / profile / message / "invalid").glob("*.json"))
        if len(valid) < 1 or len(invalid) < 2:
            short.append(f"{profile}/{message}: {len(valid)} valid, {len(invalid)} invalid")
    assert short == [], "every schema needs >= 1 valid and >= 2 invalid examples:\n" + "\n".join(
        short
    )


@pytest.mark.parametrize("path", [p for p in _fixture_files() if p.parent.name == "valid"], ids=_id)
def test_valid_example_validates(path: Path) -> None:
    envelope = _load(path)
    profile, message = path.parts[-4], path.parts[-3]
    issues = STORE.validate(profile, message, envelope["instance"])
    assert issues == [], "\n".join(map(str, issues))


@pytest.mark.parametrize(
    "path", [p for p in _fixture_files() if p.parent.name == "invalid"], ids=_id
)
def test_invalid_example_fails_for_its_stated_reason(path: Path) -> None:
    envelope = _load(path)
    profile, message = path.parts[-4], path.parts[-3]
    strict = envelope.get("mode") == "strict"
    if strict:
        assert STORE.validate(profile, message, envelope["instance"]) == [], (
            "a drift example must be valid in the default mode"
        )
    validator = STORE.validator(profile, message, strict=strict)
    found = {
        (str(error.validator), _pointer(error))
        for error in _all_errors(validator.iter_errors(envelope["instance"]))
    }
    expected = (envelope["expect"]["keyword"], envelope["expect"]["path"])
    assert found, "the example is valid: it proves nothing"
    assert expected in found, f"expected {expected}, the schema reported {sorted(found)}"


@pytest.mark.skipif(not REAL_CATALOG.is_file(), reason=f"the real capture is not at {REAL_CATALOG}")
def test_real_stripe_projects_catalog_validates() -> None:
    catalog = strictjson.load_path(REAL_CATALOG)
    assert len(catalog["data"]["services"]) == 161
    issues = STORE.validate("app-0.1d", "cli_catalog", catalog)
    assert issues == [], "\n".join(map(str, issues[:20]))
