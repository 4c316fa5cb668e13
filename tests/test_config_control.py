"""`[orchestrator] control` (docs/orchestrator-cli.md): read from the config into the run's plan."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.config import load_config
from conformance.plan import RunOptions, build_plan
from wire.errors import UsageError


def _config(tmp_path: Path, table: str) -> Path:
    path = tmp_path / "provspec.toml"
    path.write_text(f"[orchestrator]\n{table}\n")
    return path


def test_the_declared_control_reaches_the_orchestrator_target(tmp_path: Path) -> None:
    path = _config(tmp_path, 'control = "http://127.0.0.1:9000/test-control"')
    options = RunOptions(role="orchestrator", orchestrator_cli="true", config=path)
    plan = build_plan(load_config(path), options)
    assert plan.orchestrator.control == "http://127.0.0.1:9000/test-control"


@pytest.mark.parametrize("value", ['""', "3", '"   "'])
def test_a_control_that_is_no_command_or_url_is_refused(tmp_path: Path, value: str) -> None:
    with pytest.raises(UsageError, match=r"orchestrator.control must be a command or an"):
        load_config(_config(tmp_path, f"control = {value}"))


def _certify_refusal(path: Path) -> str:
    options = RunOptions(role="orchestrator", orchestrator_cli="true", config=path, certify=True)
    try:
        build_plan(load_config(path), options)
    except UsageError as refused:
        return str(refused)
    return ""


def test_certify_takes_a_control_for_the_clock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROVSPEC_HMAC_SECRET", "whsec_x")
    without = _certify_refusal(_config(tmp_path, ""))
    assert "set [orchestrator] control (or clock_command)" in without
    with_control = _certify_refusal(_config(tmp_path, 'control = "stripe projects test-control"'))
    assert "clock" not in with_control  # it may still need other things, never the clock
