"""`provspec profile new|check|diff`, `provspec examples`, and path profiles on the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conformance.cli import main

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "fixtures" / "drafts" / "sample-draft.md"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_profile_new_scaffolds_a_checked_draft_and_refuses_to_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "scaffolded"
    code, out, _ = run(capsys, "profile", "new", str(target), "--from", "app-next")
    assert code == 0
    assert "based on app-next" in out
    text = (target / "profile.toml").read_text()
    assert 'base = "app-next"' in text
    assert '# attestation_header = "APP-Attestation"' in text
    assert "# limit = 10000" in text
    code, out, _ = run(capsys, "profile", "check", str(target))
    assert code == 0
    assert "ok: profile 'scaffolded'" in out
    code, _, err = run(capsys, "profile", "new", str(target))
    assert code == 2
    assert err.startswith("provspec: error:")
    assert "not empty" in err


def test_profile_check_names_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "checked"
    run(capsys, "profile", "new", str(target))
    (target / "thing.schema.json").write_text(
        "{\n"
        '  "$schema": "https://json-schema.org/draft/2020-12/schema",\n'
        '  "$id": "https://provspec.invalid/schemas/checked/thing.schema.json",\n'
        '  "type": "object",\n'
        '  "properties": {\n'
        '    "a": {"type": "strng"},\n'
        '    "b": {"$ref": "missing.schema.json"}\n'
        "  }\n"
        "}\n"
    )
    code, out, _ = run(capsys, "profile", "check", str(target))
    assert code == 1
    assert f"{target / 'thing.schema.json'}:6: not a valid 2020-12 schema" in out
    (target / "thing.schema.json").write_text(
        (target / "thing.schema.json").read_text().replace("strng", "string")
    )
    code, out, _ = run(capsys, "profile", "check", str(target))
    assert code == 1
    assert f"{target / 'thing.schema.json'}:7: $ref 'missing.schema.json' does not resolve" in out


def test_profile_diff_between_the_built_ins(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "profile", "diff", "app-0.1d", "app-next")
    assert code == 0
    assert out.startswith("profile diff app-0.1d -> app-next\n")
    assert '  api_version: "0.1d" -> "next"' in out
    assert "  error_codes.spend_cap_exceeded.status: (unset) -> 402" in out
    assert "requirements, provider:" in out
    assert "requirements, orchestrator:" in out
    assert "  + PRV-ATT-007 MUST: " in out
    assert "  + message redemption_request" in out
    assert "  ~ message token_request\n      + member client_id (string)" in out
    assert "      - member payment_credentials.stripe_payment_token (string)" in out
    code, markdown, _ = run(
        capsys, "profile", "diff", "app-0.1d", "app-next", "--format", "markdown"
    )
    assert markdown.startswith("## Changes from `app-0.1d` to `app-next`")
    assert "- **new message** `redemption_request`" in markdown
    assert "- **added** PRV-ATT-007 MUST: " in markdown


def test_profile_diff_of_a_draft_shows_its_changes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "differs"
    target.mkdir()
    (target / "profile.toml").write_text(
        'name = "differs"\nbase = "app-next"\napi_version = "next"\n'
        '[parameters]\nattestation_header = "X-Att"\n[parameters.default_cap]\nlimit = 5000\n'
        '[requirements]\ndrop = ["PRV-ATT-007"]\nlevel = { "PRV-ATT-008" = "SHOULD" }\n'
    )
    schema = json.loads((ROOT / "schemas/app-next/cap_state.schema.json").read_text())
    schema["$id"] = "https://provspec.invalid/schemas/differs/cap_state.schema.json"
    schema["properties"]["tier"] = {"description": "new", "type": "string"}
    schema["required"] = [*schema["required"], "tier"]
    (target / "cap_state.schema.json").write_text(json.dumps(schema, indent=2))
    code, out, _ = run(capsys, "profile", "diff", "app-next", str(target))
    assert code == 0
    assert '  attestation_header: "APP-Attestation" -> "X-Att"' in out
    assert "  default_cap.limit: 10000 -> 5000" in out
    assert "  - PRV-ATT-007 MUST: " in out
    assert "  ~ PRV-ATT-008 MUST -> SHOULD: " in out
    assert "      + member tier (string)\n      ! newly required tier" in out


def test_examples_validates_a_markdown_draft_and_reports_the_broken_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "examples", str(SAMPLE), "--profile", "app-next")
    assert code == 1
    assert f"{SAMPLE}:11: ok redemption_request" in out
    assert f"{SAMPLE}:23: ok cap_state" in out
    assert f"{SAMPLE}:38: FAIL redemption_request: 2 problem(s)" in out
    assert "/amount: 60.5 is not of type 'integer'" in out
    assert "2 of 3 example(s) valid as app-next" in out


def test_examples_reports_bad_json_and_unknown_messages_by_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = tmp_path / "draft.md"
    doc.write_text(
        '# t\n\n```json app:cap_state\n{\n  "limit": 1,\n  "limit": 2\n}\n```\n\n'
        "```json app:no_such_message\n{}\n```\n"
    )
    code, out, _ = run(capsys, "examples", str(doc), "--profile", "app-next")
    assert code == 1
    assert f"{doc}:4: FAIL cap_state: not strict JSON" in out
    assert f"{doc}:10: FAIL unknown message 'no_such_message'" in out
    code, _, err = run(capsys, "examples", str(tmp_path / "missing.md"))
    assert code == 2
    assert err.startswith("provspec: error: cannot read")


def test_validate_and_requirements_take_a_draft_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "pathprofile"
    target.mkdir()
    (target / "profile.toml").write_text(
        'name = "pathprofile"\nbase = "app-next"\napi_version = "next"\n'
        '[requirements]\ndrop = ["PRV-ATT-007"]\n'
    )
    message = tmp_path / "cap.json"
    message.write_text(
        '{"limit": 1, "spent": 0, "remaining": 1, "currency": "usd", '
        '"interval": "month", "resets_at": "2026-07-01T00:00:00Z"}'
    )
    code, out, _ = run(
        capsys, "validate", str(message), "--message", "cap_state", "--profile", str(target)
    )
    assert code == 0
    assert "valid" in out
    code, out, _ = run(
        capsys, "requirements", "--profile", str(target), "--role", "provider", "--format", "json"
    )
    assert code == 0
    ids = {item["id"] for item in json.loads(out)["requirements"]}
    assert "PRV-ATT-008" in ids
    assert "PRV-ATT-007" not in ids
    code, _, err = run(
        capsys, "validate", str(message), "--message", "cap_state", "--profile", "./nope"
    )
    assert code == 2
    assert "neither a known profile" in err


def test_a_ref_moved_to_the_base_file_is_not_a_type_change() -> None:
    from spec.drafts.diff import diff

    # app-next's service refers to ../app-0.1d/config_schema.schema.json, its base's file
    text = diff("app-0.1d", "app-next").text()
    service = text.split("~ message service", 1)[1].split("~ message", 1)[0]
    assert "pricing.paid.amount" in service
    assert "configuration_schema" not in service


def test_profile_check_takes_a_built_in_by_name(capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("app-0.1d", "app-next"):
        code, out, _ = run(capsys, "profile", "check", name)
        assert code == 0, out
        assert f"ok: profile {name!r}" in out
    code, _, err = run(capsys, "profile", "check", "app-nxt")
    assert code == 2
    assert "neither a profile directory nor a built-in profile" in err


def test_a_schema_citing_a_requirement_for_another_rule_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The citation the independent app-next provider's author tripped on: consent_required
    citing PRV-CNS-001 (AS metadata) for what PRV-ACC-009 requires."""
    target = tmp_path / "cited"
    run(capsys, "profile", "new", str(target), "--from", "app-next")
    source = Path(__file__).resolve().parent.parent / "schemas" / "app-next"
    schema = json.loads((source / "account_response_consent_required.schema.json").read_text())
    schema["$id"] = (
        "https://provspec.invalid/schemas/cited/account_response_consent_required.schema.json"
    )
    schema["description"] = schema["description"].replace("PRV-ACC-009", "PRV-CNS-001")
    (target / "account_response_consent_required.schema.json").write_text(json.dumps(schema))
    code, out, _ = run(capsys, "profile", "check", str(target))
    assert code == 1
    assert "cites PRV-CNS-001 for a rule it does not carry" in out
    # The same schema citing the rule it carries is clean (a fresh draft: one is loaded once).
    fixed = tmp_path / "fixed"
    run(capsys, "profile", "new", str(fixed), "--from", "app-next")
    schema["$id"] = schema["$id"].replace("/cited/", "/fixed/")
    schema["description"] = schema["description"].replace("PRV-CNS-001", "PRV-ACC-009")
    (fixed / "account_response_consent_required.schema.json").write_text(json.dumps(schema))
    code, out, _ = run(capsys, "profile", "check", str(fixed))
    assert code == 0, out
