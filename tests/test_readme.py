"""README's two setup commands are the ones CI and users actually run."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _sh_blocks() -> list[str]:
    return [
        block.strip()
        for block in re.findall(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    ]


def test_readme_has_an_install_and_run_command_and_a_test_command() -> None:
    blocks = _sh_blocks()
    assert blocks[0] == "pip install . && provspec selftest"
    assert blocks[1] == 'pip install -e ".[test]" && pytest'


def test_ci_runs_readmes_test_command() -> None:
    assert _sh_blocks()[1] in (ROOT / ".ci" / "run").read_text().splitlines()
