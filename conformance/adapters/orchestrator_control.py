"""The orchestrator's test control: what a check may ask of the target beyond what an agent
(the CLI) and a provider (the HTTP side) can do, declared so that a real orchestrator can
offer it too, and so that a check that needs it is skipped, saying what to configure, where
the target does not offer it.

A real orchestrator offers it through `[orchestrator] control` (docs/orchestrator-cli.md,
"Test controls outside the CLI"):

- a command (`control = "stripe projects test-control"`): run once per request with the
  request as one JSON object on stdin; it prints one JSON answer on stdout;
- or an http(s) URL (`control = "http://127.0.0.1:9000/test-control"`): the request is
  POSTed to it as JSON; the answer is the JSON body.

Every request is `{"control": KIND, ...}`; every answer is `{"ok": true, ...}` or
`{"ok": false, "error": "why"}`. The suite first sends `{"control": "describe"}`, and the
answer's `offers` lists the kinds the target takes (any subset of `Kind`). The older
`[orchestrator] clock_command` is a control that offers `set_clock` only.

The embedded mock orchestrator offers every kind, through its public face: its clock and
its `before_charge` hook are handed to it when it is built (`EmbeddedControl`). The suite's
own providers follow the orchestrator's moved clock while a probe lives at its time
(`ProviderClock`).
"""

from __future__ import annotations

import contextlib
import json
import shlex
import subprocess
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

import anyio.to_thread
import httpx

from conformance.recorder import Exchange, Recorder, mask_text
from mocks.orchestrator import HTTPProblem, Orchestrator, OrchestratorMock
from wire.clock import OffsetClock, SystemClock
from wire.tls import tls_context

__all__ = [
    "AwaitHeldCharge",
    "ChargeGate",
    "ClockCommandControl",
    "CommandControl",
    "ControlError",
    "ControlRequest",
    "EmbeddedControl",
    "HoldNextCharge",
    "HttpControl",
    "Kind",
    "NoControl",
    "ProviderClock",
    "ReleaseCharge",
    "SetClock",
    "WHAT_FOR",
    "TestControl",
    "configured_control",
    "embedded_paid_add",
    "unoffered_reason",
]


class Kind(StrEnum):
    """The requests a target's test control may take."""

    SET_CLOCK = "set_clock"
    """The orchestrator's clock reads real time + `offset` s (`timestamp`: what it should
    read now); offset 0 restores real time. Month-boundary and expiry probes."""
    HOLD_NEXT_CHARGE = "hold_next_charge"
    """The next redemption that reaches its charge (its Idempotency-Key taken, the cap not
    charged yet) waits there until `release_charge`. ORC-RED-004: a key still in flight."""
    AWAIT_HELD_CHARGE = "await_held_charge"
    """Answers `{"held": true}` once a redemption waits at its charge, or `{"held": false}`
    after `wait` seconds."""
    RELEASE_CHARGE = "release_charge"
    """The held redemption goes on, and no later one is held."""


WHAT_FOR: dict[Kind, str] = {
    Kind.SET_CLOCK: "moving its clock",
    Kind.HOLD_NEXT_CHARGE: "holding a redemption in flight",
    Kind.AWAIT_HELD_CHARGE: "holding a redemption in flight",
    Kind.RELEASE_CHARGE: "holding a redemption in flight",
}
"""What each kind lets the suite do, as a skip reason names it."""


@dataclass(frozen=True)
class ControlRequest:
    kind: ClassVar[Kind]

    def as_json(self) -> dict[str, Any]:
        return {"control": self.kind.value, **asdict(self)}


@dataclass(frozen=True)
class SetClock(ControlRequest):
    kind: ClassVar[Kind] = Kind.SET_CLOCK
    offset: float
    """Seconds from real time (a fraction kept: "one second before midnight" is exact)."""
    timestamp: int

    @classmethod
    def at_offset(cls, offset: float) -> SetClock:
        return cls(offset, int(time.time() + offset))


@dataclass(frozen=True)
class HoldNextCharge(ControlRequest):
    kind: ClassVar[Kind] = Kind.HOLD_NEXT_CHARGE


@dataclass(frozen=True)
class AwaitHeldCharge(ControlRequest):
    kind: ClassVar[Kind] = Kind.AWAIT_HELD_CHARGE
    wait: float


@dataclass(frozen=True)
class ReleaseCharge(ControlRequest):
    kind: ClassVar[Kind] = Kind.RELEASE_CHARGE


class ControlError(RuntimeError):
    """The target's test control failed to do what it offers: the run cannot go on with
    the probe (the suite's harness, not a verdict on the target's rules)."""


class TestControl(ABC):
    """What the suite may ask of the target besides its CLI and HTTP side."""

    __test__ = False  # not a pytest test class, whatever its name
    offers: frozenset[Kind] = frozenset()

    def offering(self, kind: Kind) -> bool:
        return kind in self.offers

    @abstractmethod
    def send(self, request: ControlRequest) -> dict[str, Any]:
        """The answer to `request` (a kind this control offers); ControlError if it fails.
        Blocking: call it off the event loop where a request of the run must go on meanwhile
        (`await_held_charge`)."""

    def describe(self) -> str:
        return "no test control"


class NoControl(TestControl):
    """A target that offers no test control."""

    def send(self, request: ControlRequest) -> dict[str, Any]:
        raise ControlError(f"the target offers no test control ({request.kind})")


def _answer_of(text: str, where: str) -> dict[str, Any]:
    try:
        answer = json.loads(text)
    except ValueError:
        raise ControlError(f"{where} answered no JSON object: {text.strip()[:200]!r}") from None
    if not isinstance(answer, dict):
        raise ControlError(f"{where} answered {type(answer).__name__}, not a JSON object")
    if answer.get("ok") is not True:
        raise ControlError(f"{where} refused: {str(answer.get('error') or answer)[:200]}")
    return answer


def _offers_of(answer: dict[str, Any]) -> frozenset[Kind]:
    listed = answer.get("offers")
    if not isinstance(listed, list):
        raise ControlError("the control's describe answer lists no `offers`")
    known = {kind.value for kind in Kind}
    return frozenset(Kind(name) for name in listed if isinstance(name, str) and name in known)


class CommandControl(TestControl):
    """`[orchestrator] control` as a command: the request on stdin, the answer on stdout."""

    def __init__(self, command: str, recorder: Recorder, timeout: float) -> None:
        self.argv = shlex.split(command)
        self.recorder = recorder
        self.timeout = timeout
        self.offers = _offers_of(self._run({"control": "describe"}))

    def send(self, request: ControlRequest) -> dict[str, Any]:
        return self._run(request.as_json())

    def _run(self, document: dict[str, Any]) -> dict[str, Any]:
        text = json.dumps(document)
        shown = [*self.argv, f"<<< {text}"]
        started = time.perf_counter()
        try:
            done = subprocess.run(
                self.argv,
                input=text,
                capture_output=True,
                text=True,
                timeout=self.timeout,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            self.recorder.record_cli(
                shown, None, "", str(error), (time.perf_counter() - started) * 1000
            )
            raise ControlError(f"the control command could not run: {error}") from None
        call = self.recorder.record_cli(
            shown, done.returncode, done.stdout, done.stderr, (time.perf_counter() - started) * 1000
        )
        if done.returncode != 0:
            raise ControlError(
                f"the control command exited {done.returncode} (CLI call {call.id}): "
                f"{done.stderr.strip()[:200]}"
            )
        return _answer_of(done.stdout, f"the control command (CLI call {call.id})")

    def describe(self) -> str:
        return f"control command `{shlex.join(self.argv)}`"


class HttpControl(TestControl):
    """`[orchestrator] control` as an http(s) URL: the request POSTed as JSON."""

    def __init__(self, url: str, recorder: Recorder, timeout: float) -> None:
        self.url = url
        self.recorder = recorder
        self.timeout = timeout
        self.offers = _offers_of(self._post({"control": "describe"}))

    def send(self, request: ControlRequest) -> dict[str, Any]:
        return self._post(request.as_json())

    def _post(self, document: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps(document)
        exchange = Exchange(
            id=self.recorder.next_id(),
            method="POST",
            url=mask_text(self.url),
            request_headers={"content-type": "application/json"},
            request_body=mask_text(body),
        )
        self.recorder.exchanges.append(exchange)
        started = time.perf_counter()
        try:
            with httpx.Client(timeout=self.timeout) as http:
                response = http.post(
                    self.url, content=body, headers={"content-type": "application/json"}
                )
        except httpx.HTTPError as error:
            exchange.error = mask_text(f"{type(error).__name__}: {error}")
            raise ControlError(f"the control endpoint could not be reached: {error}") from None
        finally:
            exchange.elapsed_ms = (time.perf_counter() - started) * 1000
        exchange.status = response.status_code
        exchange.response_headers = self.recorder.mask_headers(response.headers)
        exchange.response_body = mask_text(response.text[:10_000])
        if response.status_code >= 400:
            raise ControlError(
                f"the control endpoint answered {response.status_code} (exchange {exchange.id})"
            )
        return _answer_of(response.text, f"the control endpoint (exchange {exchange.id})")

    def describe(self) -> str:
        return f"control endpoint {self.url}"


class ClockCommandControl(TestControl):
    """`[orchestrator] clock_command`: a command run with `{offset}` and `{timestamp}`
    replaced, offering `set_clock` only."""

    offers = frozenset({Kind.SET_CLOCK})

    def __init__(self, template: str, recorder: Recorder, timeout: float) -> None:
        self.template = template
        self.recorder = recorder
        self.timeout = timeout

    def send(self, request: ControlRequest) -> dict[str, Any]:
        if not isinstance(request, SetClock):
            raise ControlError(f"clock_command takes set_clock only, not {request.kind}")
        argv = [
            part.replace("{offset}", str(int(request.offset))).replace(
                "{timestamp}", str(request.timestamp)
            )
            for part in shlex.split(self.template)
        ]
        started = time.perf_counter()
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=self.timeout, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            self.recorder.record_cli(
                argv, None, "", str(error), (time.perf_counter() - started) * 1000
            )
            raise ControlError(f"clock_command could not run: {error}") from None
        call = self.recorder.record_cli(
            argv, done.returncode, done.stdout, done.stderr, (time.perf_counter() - started) * 1000
        )
        if done.returncode != 0:
            raise ControlError(
                f"clock_command exited {done.returncode} (CLI call {call.id}): "
                f"{done.stderr.strip()[:200]}"
            )
        return {"ok": True}

    def describe(self) -> str:
        return f"clock_command `{self.template}`"


class ChargeGate:
    """The embedded mock orchestrator's `before_charge` hook: a no-op until the suite asks
    it to hold the next redemption that reaches its charge."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed = False
        self.entered = threading.Event()
        self.release = threading.Event()

    def hold_next(self) -> None:
        with self._lock:
            self._armed = True
            self.entered.clear()
            self.release.clear()

    def release_held(self) -> None:
        with self._lock:
            self._armed = False
        self.release.set()

    async def __call__(self) -> None:
        with self._lock:
            if not self._armed or self.entered.is_set():
                return
            self.entered.set()
        await anyio.to_thread.run_sync(self.release.wait, 10.0)


class EmbeddedControl(TestControl):
    """The embedded mock orchestrator's test control: the clock it was built with, and the
    `before_charge` hook it was built with (`ChargeGate`)."""

    offers = frozenset(Kind)

    def __init__(self, clock: OffsetClock, gate: ChargeGate) -> None:
        self.clock = clock
        self.gate = gate

    def send(self, request: ControlRequest) -> dict[str, Any]:
        if isinstance(request, SetClock):
            self.clock.offset = request.offset
        elif isinstance(request, HoldNextCharge):
            self.gate.hold_next()
        elif isinstance(request, AwaitHeldCharge):
            return {"ok": True, "held": self.gate.entered.wait(request.wait)}
        elif isinstance(request, ReleaseCharge):
            self.gate.release_held()
        return {"ok": True}

    def describe(self) -> str:
        return "the embedded mock orchestrator's test control"


def unoffered_reason(kind: Kind, needs: str = "") -> str:
    """Why a probe that needs a control of `kind` is not judged, and what to configure."""
    return (
        f"not judged: the orchestrator offers the suite no test control for {WHAT_FOR[kind]} "
        f"({kind}){needs}; configure [orchestrator] control with a command or URL that takes "
        f"it (docs/orchestrator-cli.md, Test controls)"
    )


def configured_control(
    control: str | None, clock_command: str | None, recorder: Recorder, timeout: float
) -> TestControl:
    """The control `[orchestrator] control` (or the older `clock_command`) declares."""
    if control:
        if control.startswith(("http://", "https://")):
            return HttpControl(control, recorder, timeout)
        return CommandControl(control, recorder, timeout)
    if clock_command:
        return ClockCommandControl(clock_command, recorder, timeout)
    return NoControl()


class ProviderClock:
    """The suite's providers' clock: real time, or the orchestrator's moved clock while a
    probe lives at its time (`OrchestratorTarget.providers_on_its_clock`)."""

    def __init__(self) -> None:
        self.following: OffsetClock | None = None
        self._real = SystemClock()

    @contextlib.contextmanager
    def following_for_the_block(self, clock: OffsetClock | None) -> Iterator[None]:
        self.following = clock
        try:
            yield
        finally:
            self.following = None

    def now(self) -> datetime:
        return (self.following or self._real).now()

    def timestamp(self) -> int:
        return (self.following or self._real).timestamp()


async def embedded_paid_add(
    core: OrchestratorMock,
    provider: str,
    service: str,
    name: str,
    *,
    timeout: float,
    mounts: Mapping[str, httpx.AsyncBaseTransport] | None = None,
) -> dict[str, Any]:
    """The embedded mock's paid `add` on its own (moved) clock, answered as its CLI would.

    Its CLI (`mocks.orchestrator.dispatch`) keeps wall time, so a token it mints is not
    valid a month later; its engine runs the same paid add (catalog, account, resource
    creation with the payment token) on the clock the control moved. `mounts`: transports
    by origin, as its CLI has them."""
    try:
        async with httpx.AsyncClient(
            timeout=timeout, verify=tls_context(), mounts=dict(mounts or {})
        ) as http:
            engine = Orchestrator(core, http, auto_consent=False)
            engine.strict_answers = True
            outcome = await engine.add(
                provider, service, name=name, confirm_paid=True, accept_tos=True
            )
    except HTTPProblem as problem:  # what the CLI would answer as ok false
        return {"ok": False, "error": {"code": problem.code, "message": problem.message}}
    except httpx.HTTPError as error:
        return {"ok": False, "error": {"code": "NETWORK_ERROR", "message": str(error)}}
    ok = outcome.status in ("provisioned", "pending", "needs_information")
    envelope: dict[str, Any] = {"ok": ok, "data": outcome.data}
    if not ok:
        envelope["error"] = {"code": outcome.status.upper(), "message": outcome.message}
    return envelope
