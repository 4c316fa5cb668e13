"""The `provspec` command's entry point.

`provspec orchestrator …`, the mock orchestrator's agent-facing CLI, is a process per command
when an agent or a run drives it: it goes straight to the mock (`mocks.orchestrator`)
without loading the suite, which would add about 0.3 s to every command. Every other command
is `conformance.cli`'s.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from mocks.orchestrator import cli_main

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["orchestrator"]:
        return cli_main(arguments[1:])
    from conformance.cli import main as suite_main  # the suite, only when it is asked for

    return suite_main(arguments)
