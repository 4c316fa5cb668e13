"""The orchestrator's declared test control: the shapes a real orchestrator offers it in (a
command, an http(s) URL, the older clock_command), what the embedded mock offers, and the
skip a probe gets where the target offers no control for it."""

from __future__ import annotations

import asyncio
import json
import shlex
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
import respx

from conformance.adapters.orchestrator import OrchestratorTarget, OrchestratorTargetConfig
from conformance.adapters.orchestrator_control import (
    AwaitHeldCharge,
    ChargeGate,
    ClockCommandControl,
    CommandControl,
    ControlError,
    EmbeddedControl,
    HoldNextCharge,
    HttpControl,
    Kind,
    NoControl,
    ReleaseCharge,
    SetClock,
    configured_control,
)
from conformance.checks import Skipped
from conformance.recorder import Recorder
from wire.clock import OffsetClock

CONTROL_URL = "http://127.0.0.1:9/test-control"


def control_script(tmp_path: Path, answers: str) -> str:
    """A control command that logs each request to requests.jsonl and answers by `answers`
    (Python code that sets `answer` from `request`)."""
    script = tmp_path / "control.py"
    script.write_text(
        textwrap.dedent(
            """\
            import json, pathlib, sys
            request = json.loads(sys.stdin.read())
            with open(pathlib.Path(__file__).with_name("requests.jsonl"), "a") as log:
                log.write(json.dumps(request) + "\\n")
            """
        )
        + textwrap.dedent(answers)
        + "print(json.dumps(answer))\n"
    )
    return f"{shlex.quote(sys.executable)} {shlex.quote(str(script))}"


def requests_logged(tmp_path: Path) -> list[dict[str, object]]:
    lines = (tmp_path / "requests.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_a_command_says_what_it_offers_and_takes_typed_requests(tmp_path: Path) -> None:
    command = control_script(
        tmp_path,
        """
        if request["control"] == "describe":
            answer = {"ok": True, "offers": ["set_clock", "teleport"]}
        else:
            answer = {"ok": True, "echo": request}
        """,
    )
    recorder = Recorder()
    control = CommandControl(command, recorder, timeout=30)
    assert control.offers == {Kind.SET_CLOCK}  # a kind the suite does not know is left out
    assert not control.offering(Kind.HOLD_NEXT_CHARGE)
    answer = control.send(SetClock(86400.5, 1_900_000_000))
    assert answer["echo"] == {"control": "set_clock", "offset": 86400.5, "timestamp": 1_900_000_000}
    assert requests_logged(tmp_path) == [{"control": "describe"}, answer["echo"]]
    # Each request is a recorded CLI call, the request shown after the command.
    assert [call.argv[-1] for call in recorder.cli_calls] == [
        '<<< {"control": "describe"}',
        '<<< {"control": "set_clock", "offset": 86400.5, "timestamp": 1900000000}',
    ]


@pytest.mark.parametrize(
    ("answers", "said"),
    [
        ('answer = {"ok": True}\nsys.exit(3)\n', "exited 3"),
        ('answer = "not an object"\n', "not a JSON object"),
        ('answer = {"ok": False, "error": "no test mode"}\n', "refused: no test mode"),
        ('answer = {"ok": True}\n', "lists no `offers`"),
    ],
    ids=["exits", "no-object", "refuses", "no-offers"],
)
def test_a_command_that_fails_says_why(tmp_path: Path, answers: str, said: str) -> None:
    with pytest.raises(ControlError, match=said):
        CommandControl(control_script(tmp_path, answers), Recorder(), timeout=30)


def test_a_missing_command_is_a_control_error(tmp_path: Path) -> None:
    with pytest.raises(ControlError, match="could not run"):
        CommandControl(str(tmp_path / "no-such-command"), Recorder(), timeout=30)


@respx.mock(assert_all_called=True)
def test_an_endpoint_takes_the_same_requests_posted_as_json(respx_mock: respx.MockRouter) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        sent = json.loads(request.content)
        if sent["control"] == "describe":
            return httpx.Response(200, json={"ok": True, "offers": list(Kind)})
        if sent["control"] == "await_held_charge":
            return httpx.Response(200, json={"ok": True, "held": sent["wait"] == 10})
        return httpx.Response(503, text="test mode is off")

    respx_mock.post(CONTROL_URL).mock(side_effect=answer)
    recorder = Recorder()
    control = HttpControl(CONTROL_URL, recorder, timeout=5)
    assert control.offers == frozenset(Kind)
    assert control.send(AwaitHeldCharge(10)) == {"ok": True, "held": True}
    with pytest.raises(ControlError, match="answered 503"):
        control.send(ReleaseCharge())
    assert [exchange.status for exchange in recorder.exchanges] == [200, 200, 503]
    assert json.loads(recorder.exchanges[1].request_body) == {
        "control": "await_held_charge",
        "wait": 10,
    }


@respx.mock(assert_all_called=True)
def test_an_endpoint_that_cannot_be_reached_is_a_control_error(
    respx_mock: respx.MockRouter,
) -> None:
    respx_mock.post(CONTROL_URL).mock(side_effect=httpx.ConnectError("refused"))
    recorder = Recorder()
    with pytest.raises(ControlError, match="could not be reached"):
        HttpControl(CONTROL_URL, recorder, timeout=5)
    assert recorder.exchanges[0].error == "ConnectError: refused"


def test_clock_command_offers_the_clock_only(tmp_path: Path) -> None:
    recorder = Recorder()
    template = f"{shlex.quote(sys.executable)} -c pass --offset {{offset}} --at {{timestamp}}"
    control = configured_control(None, template, recorder, 30)
    assert isinstance(control, ClockCommandControl)
    assert control.offers == {Kind.SET_CLOCK}
    control.send(SetClock(-90.7, 1_800_000_000))
    assert recorder.cli_calls[0].argv[-4:] == ["--offset", "-90", "--at", "1800000000"]
    with pytest.raises(ControlError, match="set_clock only"):
        control.send(HoldNextCharge())


def test_control_wins_over_clock_command_and_nothing_offers_nothing(tmp_path: Path) -> None:
    command = control_script(tmp_path, 'answer = {"ok": True, "offers": []}\n')
    assert isinstance(configured_control(command, "clock {offset}", Recorder(), 30), CommandControl)
    assert isinstance(configured_control(None, None, Recorder(), 30), NoControl)
    assert not NoControl().offers


def test_the_embedded_control_moves_the_mocks_clock() -> None:
    clock = OffsetClock()
    control = EmbeddedControl(clock, ChargeGate())
    assert control.offers == frozenset(Kind)
    control.send(SetClock.at_offset(3600.25))
    assert clock.offset == 3600.25  # fractions kept: "one second before midnight" stays exact
    control.send(SetClock.at_offset(0))
    assert clock.offset == 0


def test_the_embedded_control_holds_the_next_charge_until_released() -> None:
    gate = ChargeGate()
    control = EmbeddedControl(OffsetClock(), gate)

    async def scenario() -> None:
        await gate()  # not asked to hold: the charge goes on at once
        assert control.send(AwaitHeldCharge(0)) == {"ok": True, "held": False}
        control.send(HoldNextCharge())
        first = asyncio.create_task(gate())
        assert await asyncio.to_thread(control.send, AwaitHeldCharge(5)) == {
            "ok": True,
            "held": True,
        }
        await gate()  # only the first charge is held
        assert not first.done()
        control.send(ReleaseCharge())
        await asyncio.wait_for(first, 5)
        await gate()  # released: nothing is held any more

    asyncio.run(scenario())


def test_a_target_without_control_skips_what_needs_it_saying_what_to_configure() -> None:
    target = OrchestratorTarget(OrchestratorTargetConfig(command="my-orchestrator"))
    assert not target.clock_movable
    assert not target.offers(Kind.SET_CLOCK)
    with pytest.raises(Skipped) as skipped:
        target.move_clock(60)
    reason = str(skipped.value)
    assert reason.startswith("not judged: the orchestrator offers the suite no test control")
    assert "moving its clock (set_clock)" in reason
    assert "[orchestrator] control" in reason
    assert "docs/orchestrator-cli.md" in reason
