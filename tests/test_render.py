"""The registry rendered as docs/requirements.md: each requirement with its checks and faults."""

from __future__ import annotations

from conformance._render import requirements_markdown
from conformance.checks import all_checks
from mocks.faults import catalogue
from spec.registry import default_registry


def _row(page: str, requirement_id: str) -> list[str]:
    line = next(line for line in page.splitlines() if line.startswith(f"| {requirement_id} |"))
    return [cell.strip() for cell in line.strip("|").split(" | ")]


def test_each_requirement_names_the_checks_that_judge_it_and_the_faults_that_prove_them() -> None:
    registry = default_registry()
    page = requirements_markdown(list(registry))
    for requirement in registry:
        checks = sorted(c.name for c in all_checks() if requirement.id in c.requirements)
        faults = sorted(f.name for f in catalogue().values() if requirement.id in f.breaks)
        row = _row(page, requirement.id)
        assert row[-2] == (", ".join(f"`{c}`" for c in checks) or "—"), requirement.id
        assert row[-1] == (", ".join(f"`{f}`" for f in faults) or "—"), requirement.id


def test_a_known_requirement_shows_its_check_and_its_fault() -> None:
    row = _row(requirements_markdown(list(default_registry())), "PRV-ATT-002")
    assert "`attestation.wrong_hmac_is_refused`" in row[-2]
    assert "`accept-bad-signature`" in row[-1]
