from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from conformance.cli import main
from spec.registry import RegistryError, default_registry, load_registry
from spec.requirement import Level, Role, Step

PROFILES = ("app-0.1d", "app-next")
GOOD = """
[[requirement]]
id = "PRV-ATT-001"
level = "MUST"
role = "provider"
profiles = ["app-next"]
step = "attestation"
text = "The provider rejects alg none."
source = "RFC 8725 §3.1"
"""


def _load(tmp_path: Path, *documents: str):
    files = []
    for index, document in enumerate(documents):
        file = tmp_path / f"part{index}.toml"
        file.write_text(document, encoding="utf-8")
        files.append(file)
    return load_registry(files, profiles=PROFILES)


def test_a_well_formed_registry_loads(tmp_path: Path) -> None:
    registry = _load(tmp_path, GOOD)
    requirement = registry["PRV-ATT-001"]
    assert requirement.level is Level.MUST
    assert requirement.role is Role.PROVIDER
    assert requirement.step is Step.ATTESTATION
    assert requirement.profiles == ("app-next",)


def test_duplicate_id_is_refused_even_across_files(tmp_path: Path) -> None:
    with pytest.raises(
        RegistryError,
        match=r"part1\.toml .*PRV-ATT-001.*duplicate ID, first defined in part0\.toml",
    ):
        _load(tmp_path, GOOD, GOOD)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ('level = "MUST"', 'level = "MANDATORY"'),
            r"unknown level 'MANDATORY' \(allowed: MUST, SHOULD, MAY\)",
        ),
        (('role = "provider"', 'role = "bank"'), r"unknown role 'bank'"),
        (('step = "attestation"', 'step = "signup"'), r"unknown step 'signup'"),
        (('profiles = ["app-next"]', 'profiles = ["app-9"]'), r"unknown profile 'app-9'"),
        (('profiles = ["app-next"]', "profiles = []"), r"'profiles' must be a non-empty list"),
        (('source = "RFC 8725 §3.1"', 'source = "  "'), r"'source' must be a non-empty string"),
        (('source = "RFC 8725 §3.1"', ""), r"missing fields \['source'\]"),
        (
            ('text = "The provider rejects alg none."', 'text = "a"\nnote = "x"'),
            r"unknown fields \['note'\]",
        ),
        (('id = "PRV-ATT-001"', 'id = "PRV-ATT-1"'), r"ID must look like PRV-ATT-007"),
        (
            ('id = "PRV-ATT-001"', 'id = "ORC-ATT-001"'),
            r"ID prefix ORC disagrees with role 'provider'",
        ),
        (
            ('id = "PRV-ATT-001"', 'id = "PRV-PAY-001"'),
            r"ID step code PAY disagrees with step 'attestation'",
        ),
        (
            ('text = "The provider rejects alg none."', 'text = """two\nlines"""'),
            r"'text' must be one line",
        ),
    ],
)
def test_bad_entries_are_refused_with_a_message_naming_the_entry(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    with pytest.raises(RegistryError, match=expected) as caught:
        _load(tmp_path, GOOD.replace(*change))
    assert "part0.toml requirement #1" in str(caught.value)


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    bad = GOOD.replace('level = "MUST"', 'level = "MUSt"') + GOOD.replace(
        "PRV-ATT-001", "PRV-ATT-002"
    ).replace('role = "provider"', 'role = "agent"')
    with pytest.raises(RegistryError) as caught:
        _load(tmp_path, bad)
    assert len(caught.value.problems) == 2


def test_invalid_toml_is_refused_with_the_file_name(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match=r"part0\.toml: not valid TOML"):
        _load(tmp_path, "[[requirement]\nid=")


# --- the shipped registry ---------------------------------------------------------------


# The APP roles; the resource-server role has profiles of its own (rfc9728 and the MCP revisions).
APP_ROLES = [Role.PROVIDER, Role.ORCHESTRATOR, Role.AGENT]
RS_PROFILES = ("rfc9728", "mcp-2025-06-18", "mcp-2025-11-25")


def test_shipped_registry_is_large_and_covers_both_profiles_and_all_roles() -> None:
    registry = default_registry()
    assert len(registry) >= 150
    for role in APP_ROLES:
        for profile in PROFILES:
            assert registry.select(role=role, profile=profile), (role, profile)


def test_the_resource_server_role_lives_in_its_own_profiles() -> None:
    found = default_registry().select(role=Role.RESOURCE_SERVER)
    assert {r.step for r in found} == {Step.DISCOVERY, Step.CONSENT, Step.REVOCATION}
    assert all(set(r.profiles) <= set(RS_PROFILES) for r in found)
    for profile in PROFILES:  # the APP profiles
        assert not default_registry().select(role=Role.RESOURCE_SERVER, profile=profile)


@pytest.mark.parametrize("role", APP_ROLES, ids=str)
def test_every_step_has_requirements_for_every_role(role: Role) -> None:
    steps = Counter(requirement.step for requirement in default_registry().select(role=role))
    assert set(steps) == set(Step), f"{role}: no requirements for {set(Step) - set(steps)}"


def test_every_level_is_used_where_the_sources_say_so() -> None:
    levels = Counter(requirement.level for requirement in default_registry())
    assert levels[Level.MUST]
    assert levels[Level.SHOULD]


def test_texts_are_unique() -> None:
    texts = Counter(requirement.text for requirement in default_registry())
    assert [text for text, count in texts.items() if count > 1] == []


def test_generated_requirements_page_is_up_to_date(tmp_path: Path) -> None:
    committed = Path(__file__).resolve().parents[2] / "docs" / "requirements.md"
    fresh = tmp_path / "requirements.md"
    assert main(["requirements", "--format", "markdown", "--output", str(fresh)]) == 0
    assert committed.read_text(encoding="utf-8") == fresh.read_text(encoding="utf-8"), (
        "docs/requirements.md is stale: run "
        "`provspec requirements --format markdown --output docs/requirements.md`"
    )
