"""The identities a provider run sends are seeded: the header prints the seed, the run's
settings record it, and `--identity-seed` with it sends the same names and emails again."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conformance.cli import main
from conformance.config import load_config
from conformance.engine import run_sync
from conformance.plan import RunOptions, build_plan, identity_line
from conformance.results import RunResult, Status


def run(seed: int | None) -> RunResult:
    plan = build_plan(load_config(None), RunOptions(identity_seed=seed, requirement="PRV-ACC-001"))
    result = run_sync(plan)
    assert [f.status for f in result.findings] == [Status.PASSED]
    return result


def identities(result: RunResult) -> list[tuple[Any, Any]]:
    """The (email, name) of every account request the run sent, as recorded. The recorder
    masks secrets, not identities, so the recorded bodies show what went on the wire."""
    sent = [
        json.loads(exchange.request_body)
        for exchange in result.recorder.exchanges
        if exchange.direction == "sent" and exchange.url.endswith("/account_requests")
    ]
    assert sent, "the run sent no account request"
    return [(body.get("email"), body.get("name")) for body in sent]


def test_the_same_seed_sends_the_same_identities() -> None:
    first, again, other = run(4242), run(4242), run(4243)
    assert identities(first) == identities(again)
    assert all(email and name for email, name in identities(first))
    assert identities(other) != identities(first)


def test_every_run_has_a_seed_of_its_own() -> None:
    plan = build_plan(load_config(None), RunOptions())
    assert isinstance(plan.provider.identity_seed, int)
    another = build_plan(load_config(None), RunOptions())
    assert plan.provider.identity_seed != another.provider.identity_seed


def test_the_header_prints_the_seed_and_the_settings_record_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "run",
            "--requirement",
            "PRV-ACC-001",
            "--identity-seed",
            "977",
            "--report-dir",
            str(tmp_path),
            "--quiet",
        ]
    )
    assert code == 0
    header = capsys.readouterr().out.splitlines()[:3]
    assert "  identities: seed 977 (--identity-seed 977 reproduces them)" in header
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["provenance"]["config"]["settings"]["provider"]["identity_seed"] == 977


def test_the_orchestrator_run_takes_the_seed_too() -> None:
    plan = build_plan(load_config(None), RunOptions(role="orchestrator", identity_seed=31))
    assert plan.orchestrator.identity_seed == 31
    assert identity_line(plan) == "identities: seed 31 (--identity-seed 31 reproduces them)"
