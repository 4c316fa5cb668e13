"""provspec's pytest plugin (registered through the `pytest11` entry point).

What it does now: registers the `requirement` marker, refuses at collection any test that
names a requirement ID the registry does not have, and reports the registry in the header.
The engine options (`--provspec-role`, `--provspec-target`, …) arrive with the engine.

    @pytest.mark.requirement("PRV-ATT-001")
    def test_alg_none_is_rejected(...): ...
"""

from __future__ import annotations

import pytest

from conformance import __version__
from conformance.registry import default_registry

MARKER = "requirement"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(*ids): the provspec requirement IDs this test checks "
        "(see `provspec requirements`); unknown IDs fail collection.",
    )


def pytest_report_header(config: pytest.Config) -> str:
    return f"provspec {__version__}: {len(default_registry())} requirements in the registry"


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    registry = default_registry()
    problems: list[str] = []
    for item in items:
        for marker in item.iter_markers(MARKER):
            if not marker.args:
                problems.append(f"{item.nodeid}: @pytest.mark.{MARKER}() names no requirement ID")
            for requirement_id in marker.args:
                if not isinstance(requirement_id, str) or requirement_id not in registry:
                    problems.append(
                        f"{item.nodeid}: {registry.explain_unknown(str(requirement_id))}"
                    )
    if problems:
        raise pytest.UsageError(
            "provspec: tests name requirements the registry does not have:\n  "
            + "\n  ".join(problems)
        )
