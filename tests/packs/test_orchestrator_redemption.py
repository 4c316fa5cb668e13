"""The redemption and cap checks beyond what `provspec selftest` shows: the cap race's knobs
and its fallback when refunds do not restore the cap, the in-flight probe for orchestrators
the suite cannot pause, evidence that stays right under concurrency, and the config keys."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from conformance.adapters.orchestrator import (
    OrchestratorContext,
    OrchestratorTarget,
    OrchestratorTargetConfig,
)
from conformance.adapters.orchestrator_control import NoControl
from conformance.checks import all_checks
from conformance.cli import main
from conformance.config import load_config
from conformance.engine import CheckOutcome, run_check
from conformance.packs.orchestrator import _cap, _money
from conformance.recorder import Exchange
from conformance.results import Status
from wire.errors import UsageError


def _in_target(
    config: OrchestratorTargetConfig,
    scenario: Callable[[OrchestratorTarget], Awaitable[Any]],
) -> Any:
    async def go() -> Any:
        target = OrchestratorTarget(config)
        async with target.running():
            return await scenario(target)

    return asyncio.run(go())


async def _run(target: OrchestratorTarget, name: str) -> CheckOutcome:
    check = next(c for c in all_checks() if c.name == name)
    return await run_check(check, OrchestratorContext(target, check), 60)


def _sent(target: OrchestratorTarget, mark: int, suffix: str) -> list[Exchange]:
    return [
        e for e in target.recorder.since(mark) if e.direction == "sent" and e.url.endswith(suffix)
    ]


RACE = "cap.concurrent_redemptions_never_cross_the_cap"


def test_the_cap_race_sends_the_configured_width_and_rounds_and_refunds_each_winner() -> None:
    config = OrchestratorTargetConfig(
        profile="app-next", concurrent_redemptions=6, concurrency_rounds=3
    )

    async def scenario(target: OrchestratorTarget) -> None:
        mark = target.recorder.mark
        outcome = await _run(target, RACE)
        assert outcome.statuses["ORC-CAP-002"][0] is Status.PASSED
        redemptions = _sent(target, mark, "/redemptions")
        assert len(redemptions) == 18
        assert sorted(e.status or 0 for e in redemptions) == [201] * 3 + [402] * 15
        assert [e.status for e in _sent(target, mark, "/refunds")] == [201] * 3
        # The tokens the cap refused are used again: 6 mints, then one per round.
        mints = [c for c in target.recorder.cli_calls if "add" in c.argv]
        assert len(mints) == 6 + 2

    _in_target(config, scenario)


def test_the_cap_race_goes_on_with_smaller_amounts_when_refunds_do_not_restore_the_cap() -> None:
    # 10000 -> 6000 charged, then just over half of what is left (2001) with the two tokens
    # the cap refused: with 4000 left below gpu's price of 6000 no token is minted
    # (ORC-CAP-010), so the next round is a new user's with the whole cap again.
    config = OrchestratorTargetConfig(
        profile="app-next",
        concurrent_redemptions=3,
        concurrency_rounds=13,
        faults=("refund-keeps-spend",),
    )

    async def scenario(target: OrchestratorTarget) -> None:
        mark = target.recorder.mark
        outcome = await _run(target, RACE)
        assert outcome.statuses["ORC-CAP-002"][0] is Status.PASSED
        amounts = [
            json.loads(e.request_body)["amount"]
            for e in _sent(target, mark, "/redemptions")
            if e.status == 201
        ]
        assert amounts == [6000, 2001] * 6 + [6000]

    _in_target(config, scenario)


def test_the_in_flight_probe_never_fails_a_correct_orchestrator_it_cannot_pause() -> None:
    async def scenario(target: OrchestratorTarget) -> list[Status]:
        # as if the orchestrator offered no control that holds a redemption in flight
        control, target.control = target.control, NoControl()
        try:
            outcomes = [
                await _run(target, "redemption_keys.a_key_still_in_flight_is_refused_with_409")
                for _ in range(3)
            ]
        finally:
            target.control = control
        return [o.statuses["ORC-RED-004"][0] for o in outcomes]

    statuses = _in_target(OrchestratorTargetConfig(profile="app-next"), scenario)
    assert set(statuses) <= {Status.PASSED, Status.SKIPPED}


def test_each_concurrent_answer_cites_its_own_exchange() -> None:
    async def scenario(target: OrchestratorTarget) -> None:
        check = next(c for c in all_checks() if c.name == RACE)
        ctx = OrchestratorContext(target, check)
        keys = [secrets.token_hex(8) for _ in range(20)]
        answers = await asyncio.gather(
            *(_money.redeem(ctx, "a.b.c", 100 + i, key=k) for i, k in enumerate(keys))
        )
        for i, (key, answer) in enumerate(zip(keys, answers, strict=True)):
            assert answer.exchange is not None
            assert answer.exchange.request_headers["idempotency-key"] == key
            assert json.loads(answer.exchange.request_body)["amount"] == 100 + i
            assert answer.exchange.status == answer.status

    _in_target(OrchestratorTargetConfig(profile="app-next"), scenario)


def test_the_month_boundaries_include_a_new_year_and_a_leap_february() -> None:
    november = _cap.boundaries(datetime(2026, 11, 23, 12, tzinfo=UTC))
    assert november == [
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
        datetime(2028, 3, 1, tzinfo=UTC),
    ]
    december = _cap.boundaries(datetime(2027, 12, 31, 23, tzinfo=UTC))
    assert december == [
        datetime(2028, 1, 1, tzinfo=UTC),
        datetime(2029, 1, 1, tzinfo=UTC),
        datetime(2028, 3, 1, tzinfo=UTC),
    ]
    assert _cap.boundaries(datetime(2028, 3, 1, tzinfo=UTC))[2] == datetime(2032, 3, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "data",
    [
        {"caps": {"p": {"limit": 1, "spent": 0}}},
        {"providers": [{"provider": "q"}, {"provider": "p", "limit": 1, "spent": 0}]},
        {"caps": [{"name": "p", "limit": 1, "spent": 0}]},
    ],
)
def test_cap_figures_are_read_from_either_billing_shape(data: dict[str, Any]) -> None:
    figures = _money.cap_figures({"ok": True, "data": data}, "p")
    assert figures is not None
    assert figures["limit"] == 1
    assert _money.cap_figures({"ok": True, "data": data}, "r") is None


def test_the_cap_race_is_configured_in_provspec_toml(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "provspec.toml"
    config.write_text("[orchestrator]\nconcurrent_redemptions = 64\nconcurrency_rounds = 30\n")
    loaded = load_config(config)
    assert loaded.get("orchestrator", "concurrency_rounds") == 30
    config.write_text("[orchestrator]\nconcurrent_redemptions = 1\nconcurrency_rounds = 0\n")
    with pytest.raises(UsageError) as error:
        load_config(config)
    assert "concurrent_redemptions must be an integer of at least 2" in str(error.value)
    assert "concurrency_rounds must be an integer of at least 1" in str(error.value)
    assert main(["run", "--role", "orchestrator", "--config", str(config)]) == 2
    assert "concurrency_rounds" in capsys.readouterr().err
