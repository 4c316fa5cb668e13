"""`python -m mocks.agent`: the mock agent as a command, taking its task from the environment
the agent conformance run gives every agent (see conformance/adapters/agent.py):

  PROVSPEC_ORCHESTRATOR_CLI     the orchestrator CLI prefix to drive (default "stripe projects")
  PROVSPEC_TASK_PROVIDER        the provider to provision at
  PROVSPEC_TASK_SERVICE         the service to add ("" = pick a free one from the catalog)
  PROVSPEC_TASK_CATEGORY        the kind of service needed when none is named ("" = any)
  PROVSPEC_TASK_PAID_CONFIRMED  "1" when the human has confirmed paying for it
  PROVSPEC_TASK_RESOURCE        an OAuth-protected resource to call with a token of its own
                                ("" = none): it prints the authorization URL for the human

It prints what it says as it says it, so a human can act on it while it waits.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from mocks.agent.scripted import ScriptedAgent, subprocess_runner
from mocks.faults import FaultSet
from wire.errors import UsageError

if TYPE_CHECKING:
    import httpx


def _client() -> httpx.Client:
    import httpx

    return httpx.Client(timeout=30)


def _launch(argv: Sequence[str]) -> None:
    subprocess.run(list(argv), capture_output=True, timeout=10, check=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mocks.agent", description=__doc__)
    parser.add_argument("--profile", default="app-0.1d", help="a profile name or directory")
    parser.add_argument("--fault", action="append", default=[], metavar="NAME")
    args = parser.parse_args(argv)
    provider = os.environ.get("PROVSPEC_TASK_PROVIDER", "").strip().lower()
    if not provider:
        sys.stderr.write("mock agent: PROVSPEC_TASK_PROVIDER names no provider\n")
        return 2
    try:
        FaultSet("agent", args.profile, args.fault)
    except UsageError as error:
        sys.stderr.write(f"mock agent: {error}\n")
        return 2
    agent = ScriptedAgent(
        subprocess_runner(os.environ.get("PROVSPEC_ORCHESTRATOR_CLI", "stripe projects")),
        provider=provider,
        service=os.environ.get("PROVSPEC_TASK_SERVICE") or None,
        profile=args.profile,
        faults=args.fault,
        http=_client,
        paid_confirmed=os.environ.get("PROVSPEC_TASK_PAID_CONFIRMED") == "1",
        category=os.environ.get("PROVSPEC_TASK_CATEGORY", ""),
        launcher=_launch,
        resource=os.environ.get("PROVSPEC_TASK_RESOURCE", ""),
        on_say=_print,
    )
    return agent.run().exit_code


def _print(line: str) -> None:
    sys.stdout.write(f"agent: {line}\n")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
