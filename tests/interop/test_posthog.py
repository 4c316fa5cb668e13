"""Interop: provspec against PostHog's APP 0.1d provider, as simulated in ../shared/targets.

The simulation (`../shared/targets/posthog_0_1d`, each behaviour read from PostHog's source)
is served on loopback exactly as its README says and judged with the worked-example
configuration `docs/examples/posthog/provspec.toml`. The faithful build must fail nothing but
the committed known deviations (`known-deviations.toml`, used as the run's baseline); each of
its single-bug mutants must fail, beyond those, the requirement for the rule it breaks.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from conformance.baseline import load_baseline
from conformance.cli import main
from mocks.hosting import ServedInThread

ROOT = Path(__file__).resolve().parents[2]
TARGETS = ROOT.parent / "shared" / "targets"
EXAMPLE = ROOT / "docs" / "examples" / "posthog"
SECRET = "whsec_test"

# The requirement each mutant's rule is (the simulation's README, "Mutants").
EXPECTED = {
    "pkce-failure-consumes-code": "PRV-CNS-015",
    "pkce-downgrade": "PRV-CNS-006",
    "code-reuse": "PRV-CNS-007",
    "refresh-token-reuse": "PRV-REV-005",
    "signature-ignores-body": "PRV-ATT-004",
    "stale-timestamp": "PRV-ATT-003",
    "first-v1-only": "PRV-ATT-027",
    "api-version-ignored": "PRV-ATT-005",
    "bearer-only-resources": "PRV-PRO-002",
    "signature-before-body-validation": "PRV-ACC-014",
    "cross-account-read": "PRV-PRO-007",
    "project-id-cross-account": "PRV-PRO-006",
    "rotate-keeps-old-key": "PRV-CRD-003",
    "deep-link-reuse": "PRV-PRO-017",
    "bad-json-500": "PRV-PRO-011",
    "spt-failure-ignored": "PRV-CAP-004",
}


@pytest.fixture(scope="module")
def posthog() -> Iterator[ModuleType]:
    if not (TARGETS / "posthog_0_1d" / "__init__.py").is_file():
        pytest.skip(f"the PostHog simulation is not beside this checkout ({TARGETS})")
    sys.path.insert(0, str(TARGETS))
    try:
        # Imported by name: the simulation lives beside the checkout, not in it.
        yield importlib.import_module("posthog_0_1d")
    finally:
        sys.path.remove(str(TARGETS))


def known() -> set[str]:
    return {entry.id for entry in load_baseline(EXAMPLE / "known-deviations.toml").entries}


def run(
    posthog: ModuleType, mutant: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[int, dict[str, str]]:
    """`provspec run` with the worked example against the served build: (exit code,
    requirement -> status for every requirement that did not pass)."""
    monkeypatch.setenv("PROVSPEC_HMAC_SECRET", SECRET)
    reports = tmp_path / (mutant or "faithful")
    listener = ServedInThread()
    with listener.serving(posthog.create_app(secret=SECRET, mutant=mutant)) as origin:
        code = main(
            [
                "run",
                "--config",
                str(EXAMPLE / "provspec.toml"),
                "--target",
                f"{origin}/api/partners/stripe/",
                "--baseline",
                str(EXAMPLE / "known-deviations.toml"),
                "--report-dir",
                str(reports),
                "--quiet",
            ]
        )
    results = json.loads((reports / "results.json").read_text())
    unmet = {
        entry["id"]: entry["status"]
        for entry in results["requirements"]
        if entry["status"] in ("failed", "warning", "known", "error")
    }
    return code, unmet


def test_every_mutant_has_its_requirement(posthog: ModuleType) -> None:
    assert set(EXPECTED) == set(posthog.MUTANTS)
    assert not set(EXPECTED.values()) & known()


def test_the_faithful_build_fails_only_its_known_deviations(
    posthog: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, unmet = run(posthog, "", tmp_path, monkeypatch)
    assert unmet == dict.fromkeys(known(), "known")
    assert code == 0


@pytest.mark.parametrize("mutant", sorted(EXPECTED))
def test_each_mutant_fails_the_requirement_it_breaks(
    posthog: ModuleType, mutant: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, unmet = run(posthog, mutant, tmp_path, monkeypatch)
    beyond = {rid: status for rid, status in unmet.items() if rid not in known()}
    assert EXPECTED[mutant] in beyond, beyond
    assert beyond[EXPECTED[mutant]] in ("failed", "warning")
    assert code == (0 if set(beyond.values()) == {"warning"} else 1)
