from __future__ import annotations

import json
from pathlib import Path

import pytest

from spec.schemas import default_store
from tests.mocks._world import served_world

STORE = default_store()


@pytest.mark.parametrize("profile", ["app-0.1d", "app-next"])
def test_catalog_add_env_status_and_revoke_speak_the_stripe_envelope(
    tmp_path: Path, profile: str
) -> None:
    with served_world(tmp_path, profile) as world:
        catalog = world.cli("catalog")
        assert STORE.validate("app-0.1d", "cli_catalog", catalog) == []
        assert {entry["service_id"] for entry in catalog["data"]["services"]} >= {
            "free",
            "pro",
            "gpu",
        }

        added = world.cli("add", "mockbase/free", "--name", "analytics")
        assert STORE.validate("app-0.1d", "cli_envelope", added) == []
        assert added["ok"]
        assert added["data"]["status"] == "provisioned"

        env = world.cli("env")
        assert env["data"]["variables"]["ANALYTICS_API_KEY"] == "••••••••"
        revealed = world.cli("env", "--reveal")
        secret = revealed["data"]["variables"]["ANALYTICS_API_KEY"]
        assert secret.startswith("pmk_")
        for command in (("status",), ("env",), ("catalog",), ("billing",)):
            assert secret not in json.dumps(world.cli(*command))

        assert world.cli("revoke", "mockbase")["ok"]


def test_paid_add_needs_confirmation_and_the_cap_refusal_carries_a_next_step(
    tmp_path: Path,
) -> None:
    with served_world(tmp_path, "app-next") as world:
        unconfirmed = world.cli("add", "mockbase/gpu")
        assert not unconfirmed["ok"]
        assert unconfirmed["error"]["code"] == "CONFIRMATION_REQUIRED"
        assert world.cli("add", "mockbase/gpu", "--confirm-paid-service", "--name", "gpu-1")["ok"]
        refused = world.cli("add", "mockbase/gpu", "--confirm-paid-service", "--name", "gpu-2")
        assert refused["error"]["code"] == "SPEND_CAP_EXCEEDED"
        assert refused["data"]["cap"]["remaining"] == 4000
        assert "raise the limit" in refused["next_steps"][0]
        billing = world.cli("billing", "--provider", "mockbase", "--limit", "20000")
        assert billing["data"]["caps"]["mockbase"]["remaining"] == 14000
        assert world.cli("add", "mockbase/gpu", "--confirm-paid-service", "--name", "gpu-2")["ok"]


@pytest.mark.parametrize(
    ("arguments", "code"),
    [
        (("add", "mockbase"), "INVALID_ARGUMENT"),
        (("add", "nobody/free"), "PROVIDER_NOT_FOUND"),
        (("add", "mockbase/free", "--config", '{"a": 1, "a": 2}'), "INVALID_ARGUMENT"),
        (("add", "mockbase/free", "--config", "[1]"), "INVALID_ARGUMENT"),
        (("add", "mockbase/ghost"), "SERVICE_NOT_FOUND"),
        (("billing", "--limit", "5"), "INVALID_ARGUMENT"),
        (("revoke", "mockbase"), "RESOURCE_NOT_FOUND"),
    ],
)
def test_bad_arguments_get_a_failure_envelope_and_change_nothing(
    tmp_path: Path, arguments: tuple[str, ...], code: str
) -> None:
    with served_world(tmp_path, "app-0.1d") as world:
        before = world.state.read_bytes()
        exit_code, stdout = world.run([*arguments, "--json"])
        document = json.loads(stdout)
        assert exit_code == 1
        assert document["ok"] is False
        assert document["error"]["code"] == code
        assert "Traceback" not in stdout
        assert world.cli("status")["data"]["resources"] == []
        assert len(before) > 0


def test_commands_before_init_say_what_to_do(tmp_path: Path) -> None:
    from conformance.cli import main

    assert main(["orchestrator", "status", "--json", "--state", str(tmp_path / "x.db")]) == 1
