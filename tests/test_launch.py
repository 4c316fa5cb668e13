"""The `provspec` entry point: `provspec orchestrator …` answers exactly as the whole CLI
does, without loading the suite; every other command is the suite's."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from conformance import cli
from conformance._launch import main


def _through(
    entry: Callable[[list[str]], int], argv: list[str], capsys: pytest.CaptureFixture[str]
) -> tuple[object, str, str]:
    try:
        code: object = entry(argv)
    except SystemExit as exit_:  # argparse's way out in the whole CLI
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "argv",
    [
        ["orchestrator", "--help"],
        ["orchestrator", "add", "--help"],
        ["orchestrator"],
        ["orchestrator", "fly"],
        ["orchestrator", "status", "--json", "--nonsense"],
        ["orchestrator", "billing", "--limit", "ten", "--json"],
        ["orchestrator", "status", "--json"],
        ["orchestrator", "status"],
        ["orchestrator", "init", "--profile", "no-such-profile", "--json"],
    ],
)
def test_the_orchestrator_cli_answers_as_the_whole_cli_does(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = ["--state", str(tmp_path / "state.db")] if "--help" not in argv and argv[1:] else []
    fast = _through(main, [*argv, *state], capsys)
    whole = _through(cli.main, [*argv, *state], capsys)
    assert fast == whole
    assert fast[0] in (0, 1, 2)


def test_other_commands_are_the_suites(capsys: pytest.CaptureFixture[str]) -> None:
    assert _through(main, ["requirements", "--role", "agent", "--format", "json"], capsys) == (
        _through(cli.main, ["requirements", "--role", "agent", "--format", "json"], capsys)
    )


def test_the_orchestrator_cli_starts_without_the_suite(tmp_path: Path) -> None:
    probe = (
        "import sys\n"
        "from conformance._launch import main\n"
        f"code = main(['orchestrator', 'status', '--json', '--state', {str(tmp_path / 's.db')!r}])\n"
        "print('suite loaded' if 'conformance.cli' in sys.modules else 'suite not loaded')\n"
        "print(code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-2:] == ["suite not loaded", "1"]
    assert '"NOT_INITIALIZED"' in done.stdout
