"""The CI recipes in docs/ci/ work: their provspec commands run here against the embedded mock.

The GitHub Actions workflow and the GitLab CI job are parsed, and every shell step that is
not the install (network) or the pull-request comment (a GitHub token) runs in a temporary
directory with the recipe's own variables, `provspec` on PATH, and no target: exactly what
the recipe does as a dry run before a team fills in its placeholders.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
GITHUB = ROOT / "docs" / "ci" / "github-actions.yml"
GITLAB = ROOT / "docs" / "ci" / "gitlab-ci.yml"
ORCHESTRATOR = ROOT / "docs" / "ci" / "orchestrator-github-actions.yml"
NOT_HERE = ("pip install", "gh pr comment")
"""Steps the test leaves out: they need the network or a GitHub token."""


def load(path: Path) -> dict[Any, Any]:
    document: dict[Any, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return document


def no_expressions(text: str) -> str:
    """GitHub `${{ … }}` expressions: secrets and tokens are empty here."""
    return re.sub(r"\$\{\{[^}]*\}\}", "", text)


@pytest.fixture
def shell_env(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "provspec"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m conformance "$@"\n')
    shim.chmod(0o755)
    env = dict(os.environ)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT)
    env.pop("PROVSPEC_HMAC_SECRET", None)
    return env


def run_shell(script: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-e", "-o", "pipefail", "-c", script],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_github_workflow_runs_against_the_embedded_mock(
    tmp_path: Path, shell_env: dict[str, str]
) -> None:
    workflow = load(GITHUB)
    assert set(workflow[True]) == {"push", "pull_request"}  # YAML 1.1 reads `on` as true
    steps = workflow["jobs"]["conformance"]["steps"]
    summary = tmp_path / "step-summary.md"
    ran, left_out = [], []
    for step in steps:
        if "run" not in step:
            continue
        script = no_expressions(step["run"])
        if any(marker in script for marker in NOT_HERE):
            left_out.append(step["name"])
            continue
        env = {**shell_env, **{k: str(v) for k, v in workflow["env"].items()}}
        env |= {k: no_expressions(str(v)) for k, v in step.get("env", {}).items()}
        env["GITHUB_STEP_SUMMARY"] = str(summary)
        done = run_shell(script, env, tmp_path)
        assert done.returncode == 0, f"{step['name']}:\n{done.stdout}\n{done.stderr}"
        ran.append(step["name"])
    assert ran == ["Start the target under test", "Run provspec", "Summarise the results"]
    assert left_out == ["Install provspec", "Comment the summary on the pull request"]
    reports = tmp_path / "reports"
    results = json.loads((reports / "results.json").read_text())
    assert results["exit_code"] == 0
    assert (reports / "junit.xml").exists()
    assert (reports / "report.html").exists()
    assert (reports / "cassette.json").exists()
    assert summary.read_text().startswith("### provspec provider")
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["with"]["path"] == "reports"
    assert upload["if"] == "always()"
    comment = next(s for s in steps if s.get("name") == "Comment the summary on the pull request")
    assert "--body-file reports/summary.md" in comment["run"]


def test_the_github_workflow_picks_up_a_baseline(tmp_path: Path, shell_env: dict[str, str]) -> None:
    (tmp_path / "provspec-baseline.toml").write_text(
        '[[known]]\nid = "PRV-PRO-003"\nreason = "fixed since"\n', encoding="utf-8"
    )
    workflow = load(GITHUB)
    step = next(
        s for s in workflow["jobs"]["conformance"]["steps"] if s.get("name") == "Run provspec"
    )
    env = {**shell_env, **{k: str(v) for k, v in workflow["env"].items()}}
    done = run_shell(no_expressions(step["run"]), env, tmp_path)
    assert done.returncode == 1  # the entry is stale: PRV-PRO-003 passes against the mock
    assert "stale baseline entry PRV-PRO-003" in done.stdout


def test_the_gitlab_job_runs_against_the_embedded_mock(
    tmp_path: Path, shell_env: dict[str, str]
) -> None:
    job = load(GITLAB)["provspec"]
    env = {**shell_env, **{k: str(v) for k, v in job["variables"].items()}}
    script = [line for line in job["script"] if not any(m in line for m in NOT_HERE)]
    assert len(script) == len(job["script"]) - 1
    done = run_shell("\n".join(script), env, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    after = run_shell("\n".join(job["after_script"]), env, tmp_path)
    assert after.returncode == 0, after.stdout + after.stderr
    assert "provspec provider" in after.stdout
    assert (tmp_path / "reports" / "summary.md").read_text().startswith("### provspec")
    assert job["artifacts"]["reports"]["junit"] == "reports/junit.xml"
    assert job["artifacts"]["when"] == "always"


def test_the_recipes_agree_with_the_orchestrator_recipe() -> None:
    general = load(GITHUB)["jobs"]["conformance"]["steps"]
    orchestrator = load(ORCHESTRATOR)["jobs"]["conformance"]["steps"]

    def uses(steps: list[dict[str, Any]]) -> set[str]:
        return {str(step["uses"]) for step in steps if "uses" in step}

    assert uses(general) == uses(orchestrator)
    install = [s["run"] for s in general + orchestrator if s.get("name") == "Install provspec"]
    assert len(set(install)) == 1
    python = {
        s["with"]["python-version"]
        for s in general + orchestrator
        if "setup-python" in s.get("uses", "")
    }
    assert python == {"3.11"}
