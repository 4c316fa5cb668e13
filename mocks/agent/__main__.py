"""`python -m mocks.agent`: the mock agent as a command, taking its task from the environment
the agent conformance run gives every agent (see conformance/adapters/agent.py):

  PROVSPEC_ORCHESTRATOR_CLI     the orchestrator CLI prefix to drive (default "stripe projects")
  PROVSPEC_TASK_PROVIDER        the provider to provision at
  PROVSPEC_TASK_SERVICE         the service to add ("" = pick a free one from the catalog)
  PROVSPEC_TASK_PAID_CONFIRMED  "1" when the human has confirmed paying for it
"""

from __future__ import annotations

import argparse
import os
import sys

import httpx

from conformance.errors import UsageError
from mocks._core.faults import FaultSet
from mocks.agent.scripted import ScriptedAgent, subprocess_runner


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mocks.agent", description=__doc__)
    parser.add_argument("--profile", choices=("app-0.1d", "app-next"), default="app-0.1d")
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
    with httpx.Client(timeout=30) as http:
        agent = ScriptedAgent(
            subprocess_runner(os.environ.get("PROVSPEC_ORCHESTRATOR_CLI", "stripe projects")),
            provider=provider,
            service=os.environ.get("PROVSPEC_TASK_SERVICE") or None,
            profile=args.profile,
            faults=args.fault,
            http=http,
            paid_confirmed=os.environ.get("PROVSPEC_TASK_PAID_CONFIRMED") == "1",
        )
        result = agent.run()
    for line in result.transcript:
        sys.stdout.write(f"agent: {line}\n")
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
