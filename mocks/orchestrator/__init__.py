"""The mock orchestrator: its server side (metadata, JWKS, redemption, ledger), the engine
acting for its signed-in user, and the agent-facing CLI (`provspec orchestrator`)."""

from __future__ import annotations

from mocks._core.http import HTTPProblem
from mocks.orchestrator.app import OrchestratorMock, OrchestratorSettings
from mocks.orchestrator.cli import CliOutcome, add_orchestrator_parser, dispatch
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
    "dispatch",
    "CliOutcome",
]
