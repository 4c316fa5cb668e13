"""The mock orchestrator, in rooms: its server side (`app`: metadata, JWKS, the consent
redirect URI; `_callers`, `_money`, `_redemption`, `ledger`, `_idempotency`: the money
endpoints), the engine acting for its signed-in user (`engine.Orchestrator` over the
`client` package: session, consent, payment, custody, catalogs, provisioning), and the
agent-facing CLI (`cli`: `provspec orchestrator`, and `dispatch` to call it in-process)."""

from __future__ import annotations

from mocks._core.http import HTTPProblem
from mocks.orchestrator.app import OrchestratorMock, OrchestratorSettings
from mocks.orchestrator.cli import (
    CliOutcome,
    CliSession,
    SessionPerThread,
    add_orchestrator_parser,
    dispatch,
)
from mocks.orchestrator.cli import main as cli_main
from mocks.orchestrator.engine import AddOutcome, Orchestrator, ProviderRecord

__all__ = [
    # the server and its settings
    "OrchestratorMock",
    "OrchestratorSettings",
    "HTTPProblem",
    # the engine acting for the user
    "Orchestrator",
    "ProviderRecord",
    "AddOutcome",
    # the agent-facing CLI: its parser for `provspec`, and in-process calls
    "add_orchestrator_parser",
    "cli_main",
    "dispatch",
    "CliOutcome",
    "CliSession",
    "SessionPerThread",
]
