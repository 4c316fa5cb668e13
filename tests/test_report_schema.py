"""schemas/results/run.schema.json: its examples both ways (fixtures/results/run/, the
envelope of fixtures/README.md), and what provspec writes today validates against it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError

from conformance.provenance import verify
from conformance.report import results_schema
from conformance.results import Status
from tests.report_world import MUST_IDS, World, make_result
from wire import strictjson

EXAMPLES = Path(__file__).resolve().parent.parent / "fixtures" / "results" / "run"
VALIDATOR = Draft202012Validator(results_schema(), format_checker=FormatChecker())


def examples(kind: str) -> list[Path]:
    return sorted((EXAMPLES / kind).glob("*.json"))


def load(path: Path) -> dict[str, Any]:
    envelope = strictjson.load_path(path)
    assert isinstance(envelope, dict)
    assert envelope["description"].strip()
    return envelope


def pointer(error: ValidationError) -> str:
    return "".join(f"/{part}" for part in error.absolute_path)


def test_there_are_examples_both_ways() -> None:
    assert len(examples("valid")) >= 1
    assert len(examples("invalid")) >= 2


@pytest.mark.parametrize("path", examples("valid"), ids=lambda p: p.name)
def test_valid_example_validates_and_its_digests_hold(path: Path) -> None:
    instance = load(path)["instance"]
    VALIDATOR.validate(instance)
    assert verify(instance) == []


@pytest.mark.parametrize("path", examples("invalid"), ids=lambda p: p.name)
def test_invalid_example_fails_for_its_stated_reason(path: Path) -> None:
    envelope = load(path)
    found = {(str(e.validator), pointer(e)) for e in VALIDATOR.iter_errors(envelope["instance"])}
    expected = (envelope["expect"]["keyword"], envelope["expect"]["path"])
    assert expected in found, f"expected {expected}, the schema reported {sorted(found)}"


@pytest.mark.parametrize(
    "world",
    [World(), World({MUST_IDS[1]: Status.FAILED}, stale=(MUST_IDS[0],)), World(harness=True)],
)
def test_what_provspec_writes_validates(world: World) -> None:
    VALIDATOR.validate(make_result(world).as_json())
