"""provspec's pytest plugin (registered through the `pytest11` entry point).

It registers the `requirement` marker and refuses at collection any test that names a
requirement ID the registry does not have. With `--provspec-role provider` (and
`--provspec-target`, `--provspec-profile`, `--provspec-config`, `--provspec-steps`,
`--provspec-strict`) pytest collects the registry's checks instead of test files and runs them
on the engine behind `provspec run`.

    @pytest.mark.requirement("PRV-ATT-001")
    def test_alg_none_is_rejected(...): ...
"""

from __future__ import annotations

import pytest

from conformance import __version__
from conformance._pytest_engine import SESSION, add_options, collect, settle
from conformance.verdict import headline
from spec.registry import default_registry
from wire.errors import ProvspecError

MARKER = "requirement"


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_collection(session: pytest.Session) -> bool | None:
    if not session.config.getoption("provspec_role"):
        return None
    try:
        items = collect(session)
    except ProvspecError as error:
        raise pytest.UsageError(f"provspec: {error}") from None
    session.items = items
    session.testscollected = len(items)
    hook = session.config.hook
    hook.pytest_collection_modifyitems(session=session, config=session.config, items=session.items)
    settle(session)
    hook.pytest_collection_finish(session=session)
    return True


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The run's verdict, worded as `provspec run` words it (the same rules decide it)."""
    state = terminalreporter.config.stash.get(SESSION, None)
    result = state.finish() if state is not None else None
    if result is not None:
        terminalreporter.write_line(f"provspec: {headline(result)}")


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(SESSION, None)
    if state is not None:
        state.close()


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
