from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import mocks
from conformance.cli import main
from mocks.faults import FaultSet, catalogue, render_fault_names
from spec.registry import default_registry
from wire.errors import UsageError

MOCK_SOURCE = "".join(path.read_text() for path in Path(mocks.__file__).parent.rglob("*.py"))


def test_at_least_forty_faults_across_the_four_mocks() -> None:
    faults = catalogue().values()
    assert len(faults) >= 40
    assert {fault.mock for fault in faults} == {
        "orchestrator",
        "provider",
        "agent",
        "resource-server",
    }


@pytest.mark.parametrize("name", sorted(catalogue()))
def test_every_fault_breaks_known_requirements_of_its_own_role_and_profiles(name: str) -> None:
    fault = catalogue()[name]
    registry = default_registry()
    assert fault.breaks, f"{name} names no requirement"
    prefix = {"provider": "PRV", "orchestrator": "ORC", "agent": "AGT", "resource-server": "RSV"}
    for requirement_id in fault.breaks:
        requirement = registry[requirement_id]
        assert requirement_id.startswith(prefix[fault.mock]), (
            f"{name} breaks another role's {requirement_id}"
        )
        assert set(fault.profiles) & set(requirement.profiles), (
            f"{name} runs in {fault.profiles} but {requirement_id} applies to {requirement.profiles}"
        )
    # A fault may break a revision's own rule next to the RFC's (selftest expects, per profile,
    # what that profile keeps), but in every profile it runs in it breaks something.
    for profile in fault.profiles:
        kept = {registry[rid].id for rid in fault.breaks if profile in registry[rid].profiles}
        assert kept, f"{name} runs in {profile}, where none of {fault.breaks} applies"


def test_every_fault_is_implemented_and_every_implemented_fault_is_declared() -> None:
    used = set(re.findall(r'faults\.active\(\s*"([a-z0-9-]+)"', MOCK_SOURCE))
    assert used == set(catalogue())


def test_unknown_and_misplaced_faults_are_refused_with_a_suggestion() -> None:
    with pytest.raises(UsageError, match=r"unknown fault 'acept-alg-none'.*accept-alg-none"):
        FaultSet("provider", "app-next", ["acept-alg-none"])
    with pytest.raises(UsageError, match=r"belongs to the provider mock"):
        FaultSet("orchestrator", "app-next", ["accept-alg-none"])
    with pytest.raises(UsageError, match=r"applies to app-next, not app-0.1d"):
        FaultSet("provider", "app-0.1d", ["accept-alg-none"])


def test_list_faults_prints_every_fault_with_its_requirements(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["mock", "--list-faults", "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)["faults"]
    assert {entry["name"] for entry in listed} == set(catalogue())
    assert all(entry["breaks"] for entry in listed)
    assert main(["mock", "--list-faults"]) == 0
    table = capsys.readouterr().out
    assert "accept-alg-none" in table
    assert "PRV-ATT-008" in table


def test_mock_without_a_role_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mock"]) == 2
    assert "name a mock to serve" in capsys.readouterr().err


def test_the_fault_name_type_lists_exactly_the_catalogue() -> None:
    # mypy checks every `faults.active("…")` against FaultName; a stale type would let a
    # misspelt or removed fault through, or refuse a new one.
    generated = Path(mocks.__file__).parent / "faults" / "_names.py"
    assert generated.read_text(encoding="utf-8") == render_fault_names(), (
        "mocks/faults/_names.py is stale: run `python -m mocks.faults`"
    )
