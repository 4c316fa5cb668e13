"""The mock agent: a scripted agent that drives an orchestrator CLI for a task
(`python -m mocks.agent`), with named faults for the agent requirements."""

from __future__ import annotations

from mocks.agent.scripted import AgentResult, ScriptedAgent, subprocess_runner

__all__ = ["AgentResult", "ScriptedAgent", "subprocess_runner"]
