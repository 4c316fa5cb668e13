"""The MCP server recipe in docs/ci/ works: a dry run of its steps against the embedded mock
resource server, as tests/test_ci_recipes.py does for the general one."""

from __future__ import annotations

import json
from pathlib import Path

from tests.test_ci_recipes import NOT_HERE, ROOT, load, no_expressions, run_shell, shell_env

MCP = ROOT / "docs" / "ci" / "mcp-server-github-actions.yml"

__all__ = ["shell_env"]  # the fixture, used by name


def test_the_mcp_server_workflow_runs_against_the_embedded_mock(
    tmp_path: Path, shell_env: dict[str, str]
) -> None:
    workflow = load(MCP)
    steps = workflow["jobs"]["authorization"]["steps"]
    summary = tmp_path / "step-summary.md"
    ran = []
    for step in steps:
        script = no_expressions(step.get("run", ""))
        if not script or any(marker in script for marker in NOT_HERE):
            continue
        env = {**shell_env, **{k: str(v) for k, v in workflow["env"].items()}}
        env |= {k: no_expressions(str(v)) for k, v in step.get("env", {}).items()}
        env["GITHUB_STEP_SUMMARY"] = str(summary)
        done = run_shell(script, env, tmp_path)
        assert done.returncode == 0, f"{step['name']}:\n{done.stdout}\n{done.stderr}"
        ran.append(step["name"])
    assert ran == ["Start the MCP server under test", "Run provspec", "Summarise the results"]
    results = json.loads((tmp_path / "reports" / "results.json").read_text())
    assert (results["role"], results["profile"], results["exit_code"]) == (
        "resource-server",
        "mcp-2025-11-25",
        0,
    )
    assert summary.read_text().startswith("### provspec resource-server")
