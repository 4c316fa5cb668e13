"""`provspec profile check` fails on an OpenAPI answer that contradicts the profile's
`[parameters.error_codes]` map (spec/drafts/consistency.py `_error_map_problems`): the three
contradictions an independent app-next orchestrator's author met, each planted in a draft
of app-next, and the built-in profiles clean."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conformance.cli import main
from spec.schemas import default_store

SOURCE = Path(__file__).resolve().parents[2] / "schemas" / "app-next"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def draft(tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str) -> Path:
    target = tmp_path / name
    assert run(capsys, "profile", "new", str(target), "--from", "app-next")[0] == 0
    return target


def openapi() -> dict[str, Any]:
    document: dict[str, Any] = json.loads((SOURCE / "orchestrator.openapi.json").read_text())
    return document


def responses(document: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = document["paths"]["/redemptions"]["post"]["responses"]
    return found


@pytest.mark.parametrize("profile", ["app-0.1d", "app-next"])
def test_the_built_in_profiles_agree_with_their_error_map(
    profile: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run(capsys, "profile", "check", profile)
    assert code == 0, out


def test_a_cap_refusal_documented_under_another_status_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = draft(tmp_path, capsys, "moved")
    document = openapi()
    answers = responses(document)
    answers["409"] = answers.pop("402")
    (target / "orchestrator.openapi.json").write_text(json.dumps(document, indent=2))
    code, out = run(capsys, "profile", "check", str(target))
    assert code == 1
    assert (
        "POST /redemptions 409: spend_cap_exceeded, which carries spend_cap_exceeded, is "
        "documented with status 409; its schema allows only [402] and [parameters.error_codes] "
        "gives spend_cap_exceeded status [402]"
    ) in out


def test_a_cap_refusal_in_another_envelope_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = draft(tmp_path, capsys, "enveloped")
    refusal = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://provspec.invalid/schemas/enveloped/cap_refusal.schema.json",
        "title": "A cap refusal of the draft's own",
        "description": "402 spend_cap_exceeded without the cap figures.",
        "x-unknown-members": "allowed",
        "type": "object",
        "properties": {
            "code": {"description": "The refusal.", "const": "spend_cap_exceeded"},
            "status": {"description": "The HTTP status.", "const": 402},
        },
        "required": ["code", "status"],
    }
    (target / "cap_refusal.schema.json").write_text(json.dumps(refusal, indent=2))
    document = openapi()
    responses(document)["402"]["content"]["application/problem+json"]["schema"] = {
        "oneOf": [{"$ref": "cap_refusal.schema.json"}, {"$ref": "redemption_error.schema.json"}]
    }
    (target / "orchestrator.openapi.json").write_text(json.dumps(document, indent=2))
    code, out = run(capsys, "profile", "check", str(target))
    assert code == 1
    assert (
        "POST /redemptions 402: spend_cap_exceeded is answered in cap_refusal; "
        "[parameters.error_codes] carries it in ["
    ) in out


def test_an_ambiguous_one_of_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The draft as it was: redemption_error also listed spend_cap_exceeded (with its cap), so
    a valid cap refusal matched both alternatives of the 402 oneOf and failed it."""
    target = draft(tmp_path, capsys, "ambiguous")
    schema = json.loads((SOURCE / "redemption_error.schema.json").read_text())
    schema["$id"] = schema["$id"].replace("/app-next/", "/ambiguous/")
    schema["properties"]["code"]["enum"].append("spend_cap_exceeded")
    (target / "redemption_error.schema.json").write_text(json.dumps(schema, indent=2))
    code, out = run(capsys, "profile", "check", str(target))
    assert code == 1
    assert (
        "POST /redemptions 402: an answer with spend_cap_exceeded matches spend_cap_exceeded and "
        "redemption_error of its oneOf"
    ) in out
    assert "spend_cap_exceeded is answered in redemption_error" in out


def test_a_valid_cap_refusal_matches_exactly_one_alternative_of_the_402() -> None:
    store = default_store()
    fixtures = Path(__file__).resolve().parents[2] / "fixtures" / "examples" / "app-next"
    answers = [
        json.loads(path.read_text())["instance"]
        for message in ("spend_cap_exceeded", "redemption_error")
        for path in sorted((fixtures / message / "valid").glob("*.json"))
    ]
    assert answers
    for answer in answers:
        if answer.get("status") != 402:
            continue
        matching = [
            message
            for message in ("spend_cap_exceeded", "redemption_error")
            if not store.validate("app-next", message, answer)
        ]
        assert len(matching) == 1, (answer.get("code"), matching)
