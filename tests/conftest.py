"""Suite-wide collection order: the longest test files start first.

The tests run on every core (pytest-xdist, `--dist loadfile --no-loadscope-reorder` in
pyproject.toml): each file goes whole to one worker, and workers take files in collection order
as they finish. A file that takes minutes (the full selftest matrix) started last would leave
one core idle for its whole length; started first, the other worker works through everything
else beside it. So the files named below, longest first, are moved to the front; every other
file keeps its place. A name that no longer exists moves nothing (the order is a hint, never a
requirement).
"""

from __future__ import annotations

import pytest

# Files ordered by how long they take on a 2-core machine (pytest --durations), longest first.
LONGEST_FIRST: tuple[str, ...] = (
    "tests/test_run_cli.py",  # the full selftest: about two thirds of the suite's CPU
    "tests/independent/test_app_next_provider.py",
    "tests/packs/test_orchestrator.py",
    "tests/test_ci_recipes.py",
    "tests/test_engine.py",
    "tests/mocks/test_shared_state.py",
    "tests/test_packaging.py",
    "tests/packs/test_orchestrator_obedient.py",
    "tests/mocks/test_crash_safety.py",
)


def _rank(item: pytest.Item) -> int:
    """Where the item's file stands in LONGEST_FIRST; files not named come after all of them."""
    path = item.nodeid.split("::", 1)[0]
    try:
        return LONGEST_FIRST.index(path)
    except ValueError:
        return len(LONGEST_FIRST)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A stable sort: tests inside a file, and the files not named, keep their order. Every
    # xdist worker collects and sorts alike, which the scheduler checks.
    items.sort(key=_rank)


@pytest.fixture
def pytester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """The pytest runs a test starts are not xdist workers, whatever process they run in.

    An xdist worker carries PYTEST_XDIST_WORKER in its environment; a pytest started inside it
    would take itself for a worker too (pytest-benchmark, where installed, then warns, and
    warnings are errors here).
    """
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    monkeypatch.delenv("PYTEST_XDIST_WORKER_COUNT", raising=False)
    return pytester
