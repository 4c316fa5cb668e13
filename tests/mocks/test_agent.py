from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mocks.agent.scripted import EXIT_DONE, EXIT_ESCALATED, ScriptedAgent
from tests.mocks._world import World, served_world

CLIENTS: list[httpx.Client] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while CLIENTS:
        CLIENTS.pop().close()


def agent(
    world: World, *, service: str | None = None, faults: tuple[str, ...] = ()
) -> ScriptedAgent:
    CLIENTS.append(httpx.Client(timeout=10))
    return ScriptedAgent(
        world.run, provider="mockbase", service=service, faults=faults, http=lambda: CLIENTS[-1]
    )


@pytest.mark.parametrize("profile", ["app-0.1d", "app-next"])
def test_the_agent_provisions_a_free_service_and_proves_the_credentials_work(
    tmp_path: Path, profile: str
) -> None:
    with served_world(tmp_path, profile) as world:
        result = agent(world).run()
        assert result.exit_code == EXIT_DONE, result.transcript
        assert result.commands[0][:2] == ["catalog", "mockbase"]
        assert all("--json" in command for command in result.commands)
        assert "the provider API answered 200" in result.transcript
        secret = world.cli("env", "--reveal")["data"]["variables"]["FREE_API_KEY"]
        assert not any(secret in line for line in result.transcript)


@pytest.mark.parametrize("profile", ["app-0.1d", "app-next"])
def test_the_agent_escalates_consent_to_the_human(tmp_path: Path, profile: str) -> None:
    with served_world(tmp_path, profile) as world:
        world.cli("init", "--email", "existing@example.com")
        result = agent(world).run()
        assert result.exit_code == EXIT_ESCALATED
        assert any("for the human" in line for line in result.transcript)


def test_the_agent_stops_on_a_paid_service_and_on_the_cap(tmp_path: Path) -> None:
    with served_world(tmp_path, "app-next") as world:
        assert agent(world, service="gpu").run().exit_code == EXIT_ESCALATED
        world.cli("add", "mockbase/gpu", "--confirm-paid-service", "--name", "first")
        capped = agent(world, service="gpu", faults=("auto-confirms-paid",)).run()
        assert capped.exit_code == EXIT_ESCALATED
        adds = [command for command in capped.commands if command[0] == "add"]
        assert len(adds) == 1, "a cap refusal is not retried"


def test_faults_change_exactly_the_behaviour_they_name(tmp_path: Path) -> None:
    with served_world(tmp_path, "app-0.1d") as world:
        leaky = agent(world, faults=("leaks-secret",)).run()
        secret = world.cli("env", "--reveal")["data"]["variables"]["FREE_API_KEY"]
        assert any(secret in line for line in leaky.transcript)
        blind = agent(world, faults=("skips-catalog",)).run()
        assert all(command[0] != "catalog" for command in blind.commands)
        raw = agent(world, faults=("no-json-flag",)).run()
        without = [command for command in raw.commands if "--json" not in command]
        assert without == [["env"]]  # one listing scraped as text; the rest still use --json


def test_provspec_mock_agent_drives_an_orchestrator_cli_in_a_subprocess(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess
    import sys

    with served_world(tmp_path, "app-0.1d") as world:
        monkeypatch.setenv("PROVSPEC_ORCHESTRATOR_STATE", str(world.state))
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "conformance",
                "mock",
                "agent",
                "--provider",
                "mockbase",
                "--orchestrator-cmd",
                f"{sys.executable} -m conformance orchestrator",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == EXIT_DONE, done.stdout + done.stderr
        assert "agent: the provider API answered 200" in done.stdout


@pytest.mark.parametrize(
    ("query", "announced", "wrong"),
    [
        ("code=c&state=s&iss=https%3A%2F%2Fas.example", False, []),
        ("code=c&state=s", False, []),  # no iss from a server that never announced one
        ("code=c&state=s", True, ["iss"]),  # RFC 9207 §2.4: announced, so required
        ("code=c&state=other&iss=https%3A%2F%2Fas.example", False, ["state"]),
        ("code=c&iss=https%3A%2F%2Fmix-up.example", False, ["state", "iss"]),
    ],
)
def test_the_agent_compares_state_and_issuer_of_an_authorization_response(
    query: str, announced: bool, wrong: list[str]
) -> None:
    from mocks.agent._consent import checked_response

    metadata = {"authorization_response_iss_parameter_supported": announced}
    params, found = checked_response(
        query, state="s", issuer="https://as.example", metadata=metadata
    )
    assert found == wrong
    assert params["code"] == "c"
