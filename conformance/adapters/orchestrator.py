"""The orchestrator under test: its agent-facing CLI (run with --json) and its HTTP side.

The suite serves a mock provider on loopback for the orchestrator to provision at, and
watches everything the orchestrator sends it. The provider keeps payment tokens unredeemed,
so the suite itself can probe the orchestrator's redemption endpoint with them, signing as
that provider. With no command configured, the orchestrator is the embedded mock: its HTTP
side served on loopback and its CLI run in-process on a private state file.

What a check needs of the orchestrator beyond its CLI and HTTP side (a moved clock, a
redemption held in flight) it asks through the target's declared test control
(`orchestrator_control`), which a real orchestrator may offer too; the checks never reach
into the embedded mock.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from conformance.adapters._provider_side import (
    RawCapture,
    RawRequest,
    Tamper,
    Tampering,
    secrets_handed_out,
    secrets_sent,
)
from conformance.adapters.orchestrator_cli import (
    CLI_DATA,
    CONTRACT_RULE,
    contract_issues,
    envelope_of,
)
from conformance.adapters.orchestrator_control import (
    ChargeGate,
    EmbeddedControl,
    Kind,
    NoControl,
    ProviderClock,
    SetClock,
    TestControl,
    configured_control,
    embedded_paid_add,
    unoffered_reason,
)
from conformance.checks import Check, CheckContext, Skipped
from conformance.client import IdentityFactory, new_seed
from conformance.harness import PROVIDER_SIDE, HarnessMonitor
from conformance.recorder import CliCall, Exchange, Recorder, RecordingTransport
from mocks import SQLiteStore
from mocks.hosting import ServedInThread
from mocks.orchestrator import (
    CliSession,
    OrchestratorMock,
    OrchestratorSettings,
    dispatch,
)
from mocks.provider import ProviderMock, ProviderSettings
from spec.schemas import default_store
from wire.clock import OffsetClock
from wire.tls import tls_context

__all__ = [
    "CLI_DATA",
    "CONTRACT_RULE",
    "OTHER_PROVIDER_NAME",
    "PROVIDER_NAME",
    "OrchestratorContext",
    "OrchestratorTarget",
    "OrchestratorTargetConfig",
    "RawRequest",
    "Tamper",
    "contract_issues",
    "envelope_of",
]

PROVIDER_NAME = "provspecmock"
OTHER_PROVIDER_NAME = "provspecmock2"
"""A second registered provider: per-provider caps, aggregation, and tokens that must not
cross from one provider to the other."""


@dataclass
class OrchestratorTargetConfig:
    profile: str = "app-0.1d"
    command: str | None = None
    """The orchestrator's CLI prefix (e.g. "stripe projects"); None: the embedded mock."""
    issuer: str | None = None
    hmac_secret: str = "whsec_provspec_orchestrator_run"
    timeout: float = 10.0
    faults: tuple[str, ...] = ()
    provider_port: int = 8411
    other_provider_port: int = 8412
    """Where the suite serves its two providers for an external orchestrator, which must have
    them registered before the run (the embedded mock gets free ports)."""
    concurrent_redemptions: int = 50
    concurrency_rounds: int = 20
    """ORC-CAP-002: redemptions sent at once per round, and rounds (races are caught by
    repetition; negative-test-catalog ORC-PAY-02)."""

    control: str | None = None
    """The orchestrator's test control (`orchestrator_control`): a command that takes one
    JSON request on stdin, or an http(s) URL the request is POSTed to. Without it (or
    `clock_command`), the probes that need a control the target does not offer are not
    judged, saying so; the embedded mock offers every control."""
    clock_command: str | None = None
    """The older test clock: a command run with `{offset}` (seconds added to real time; 0
    restores it) and `{timestamp}` (the Unix time the clock should read now) replaced, a
    control that offers `set_clock` only."""
    identity_seed: int = field(default_factory=new_seed)
    """Seed of the identities the suite signs in as (fresh unless given): recorded with the
    run's settings, so the same users can be signed in again."""
    mock_options: tuple[str, ...] = ()
    """Extra `init` options for the embedded mock orchestrator: a variant that follows the
    profile another way (e.g. `--token-amount remaining`); ignored for a configured command."""

    def describe(self) -> str:
        return self.command or f"embedded mock orchestrator ({self.profile})"


@dataclass
class OrchestratorTarget:
    config: OrchestratorTargetConfig
    recorder: Recorder = field(init=False)

    def __post_init__(self) -> None:
        self.spec = default_store().profile(self.config.profile)
        self.profile = self.spec.name
        self.recorder = Recorder.for_profile(self.spec.parameters)
        self.family = self.spec.family
        """The built-in profile whose wire the run speaks (a draft's base family)."""
        self.params = self.spec.params
        self.raw: list[RawRequest] = []
        self.provider: ProviderMock | None = None
        self.core: OrchestratorMock | None = None
        self.http: httpx.AsyncClient | None = None
        self.state: Path | None = None
        self.issuer = self.config.issuer or ""
        self.clock: OffsetClock | None = None
        """What the suite told the orchestrator's clock (None: the target offers no
        `set_clock`)."""
        self.control: TestControl = NoControl()
        self.provider_clock = ProviderClock()
        self.identities = IdentityFactory(self.config.identity_seed)
        self.other_provider: ProviderMock | None = None
        self.outputs: dict[int, tuple[str, str]] = {}
        """Raw (stdout, stderr) of each CLI call, by the recorded call's id."""
        self.contract: dict[int, list[str]] = {}
        """Where each CLI answer breaks the CLI contract (`contract_issues`), by call id."""
        self.in_process: dict[str, httpx.AsyncBaseTransport] = {}
        """The suite's servers by origin, reached in this process without a socket (the
        embedded mock only: a real orchestrator meets them over the network)."""
        self._cli_thread: ThreadPoolExecutor | None = None
        self._cli_session: CliSession | None = None
        """The embedded CLI's one worker thread, and the loop and HTTP client it keeps
        across commands (each command still reads the state anew)."""

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[OrchestratorTarget]:
        async with contextlib.AsyncExitStack() as stack:
            embedded = self.config.command is None
            provider_listener = ServedInThread(port=0 if embedded else self.config.provider_port)
            if embedded:
                directory = Path(
                    stack.enter_context(tempfile.TemporaryDirectory(prefix="provspec-orc-"))
                )
                self.state = directory / "orchestrator.db"
                listener = ServedInThread()
                self.issuer = listener.origin
                store = SQLiteStore(self.state)
                stack.callback(store.close)
                # Its test control is what it is built with: a clock to move and a hook
                # before each charge.
                mock_clock, gate = OffsetClock(), ChargeGate()
                self.core = OrchestratorMock(
                    OrchestratorSettings(
                        profile=self.spec,
                        issuer=self.issuer,
                        faults=self.config.faults,
                        store=store,
                        clock=mock_clock,
                        before_charge=gate,
                        http=self._embedded_client,
                    )
                )
                self.control = EmbeddedControl(mock_clock, gate)
                stack.enter_context(listener.serving(self.core.app))
            else:
                self.control = configured_control(
                    self.config.control,
                    self.config.clock_command,
                    self.recorder,
                    max(self.config.timeout * 3, 30),
                )
            if self.control.offering(Kind.SET_CLOCK):
                self.clock = OffsetClock()
                stack.callback(self._restore_clock)
            self.provider = ProviderMock(
                ProviderSettings(
                    profile=self.spec,
                    base_url=provider_listener.origin + "/api/app/",
                    hmac_secret=self.config.hmac_secret,
                    orchestrator_issuer=self.issuer,
                    redeem=False,
                    verify_requests=False,
                    clock=self.provider_clock,
                )
            )
            # A second registered provider: tokens minted for the first must not be redeemable
            # by it (ORC-RED-007), and its cap and catalog are its own.
            other_listener = ServedInThread(port=0 if embedded else self.config.other_provider_port)
            self.other_provider = ProviderMock(
                ProviderSettings(
                    profile=self.spec,
                    base_url=other_listener.origin + "/api/app/",
                    hmac_secret=self.config.hmac_secret,
                    orchestrator_issuer=self.issuer,
                    redeem=False,
                    verify_requests=False,
                    clock=self.provider_clock,
                )
            )
            # The suite's own providers' answers are validated as they leave (harness blame);
            # a check's tampering sits outside and is meant to be wrong.
            profile = self.profile
            self.other_tampering = Tampering(
                HarnessMonitor(self.other_provider.app, self.recorder, profile, PROVIDER_SIDE)
            )
            stack.enter_context(
                other_listener.serving(
                    RawCapture(self.other_tampering, self.recorder, self.raw, OTHER_PROVIDER_NAME)
                )
            )
            self.tampering = Tampering(
                HarnessMonitor(self.provider.app, self.recorder, profile, PROVIDER_SIDE)
            )
            stack.enter_context(
                provider_listener.serving(
                    RawCapture(self.tampering, self.recorder, self.raw, PROVIDER_NAME)
                )
            )
            served = [provider_listener, other_listener, *([listener] if embedded else [])]
            # On the way out the servers are all asked to stop before any is waited for.
            for each in served:
                stack.callback(each.stop_soon)
            if embedded:
                # The embedded mock and the suite meet the suite's servers in this process
                # without a socket (each app still runs on its server's loop); any other
                # origin, a check's own listener for one, goes over the network.
                self.in_process = {each.origin: each.transport() for each in served}
            self.http = await stack.enter_async_context(
                httpx.AsyncClient(
                    transport=RecordingTransport(httpx.AsyncHTTPTransport(), self.recorder),
                    mounts={
                        origin: RecordingTransport(transport, self.recorder)
                        for origin, transport in self.in_process.items()
                    },
                    timeout=self.config.timeout,
                )
            )
            if embedded:
                # Closed first on the way out: its idle connections before the servers stop.
                stack.callback(self._close_cli_thread)
                faults = [argument for name in self.config.faults for argument in ("--fault", name)]
                init = self.cli(
                    "init",
                    "--profile",
                    self.spec.spec,
                    "--issuer",
                    self.issuer,
                    "--accept-tos",
                    "--provider",
                    f"{PROVIDER_NAME}={self.provider.base_url}#{self.config.hmac_secret}",
                    "--provider",
                    f"{OTHER_PROVIDER_NAME}={self.other_provider.base_url}#{self.config.hmac_secret}",
                    *faults,
                    *self.config.mock_options,
                )
                if not init[1].get("ok"):
                    raise RuntimeError(f"the embedded orchestrator would not initialise: {init[1]}")
            yield self

    def _embedded_client(self) -> httpx.AsyncClient:
        """The embedded mock's client for its own fetches (a caller's keys, a consent's
        token exchange): the suite's servers in process, anything else over the network."""
        return httpx.AsyncClient(
            timeout=self.config.timeout,
            follow_redirects=False,
            verify=tls_context(),
            mounts=dict(self.in_process),
        )

    def _close_cli_thread(self) -> None:
        pool, session = self._cli_thread, self._cli_session
        self._cli_thread = self._cli_session = None
        if pool is None:
            return
        with pool:
            if session is not None:
                pool.submit(session.close).result()

    def offers(self, kind: Kind) -> bool:
        """Whether the orchestrator's test control takes requests of `kind`."""
        return self.control.offering(kind)

    def unoffered(self, kind: Kind, needs: str = "") -> Skipped:
        """The skip of a probe that needs a control of `kind` the target does not offer."""
        return Skipped(unoffered_reason(kind, needs))

    @property
    def clock_movable(self) -> bool:
        """Whether the suite can move the orchestrator's clock (its control offers set_clock)."""
        return self.clock is not None

    def move_clock(self, seconds: float) -> None:
        """Move the orchestrator's clock by `seconds` (and back with a negative value)."""
        if self.clock is None:
            raise self.unoffered(Kind.SET_CLOCK)
        self.clock.advance(seconds)
        self.control.send(SetClock.at_offset(self.clock.offset))

    def _restore_clock(self) -> None:
        if self.clock is not None and self.clock.offset:
            self.clock.offset = 0.0
            self.control.send(SetClock.at_offset(0.0))

    def providers_on_its_clock(self) -> contextlib.AbstractContextManager[None]:
        """The suite's providers read the orchestrator's (moved) clock for the block, so a
        token minted at its time is checked at the same time."""
        return self.provider_clock.following_for_the_block(self.clock)

    async def paid_add_on_moved_clock(
        self, provider: str, service: str, name: str
    ) -> tuple[CliCall | None, dict[str, Any]]:
        """`add PROVIDER/SERVICE --name NAME --confirm-paid-service` at the orchestrator's
        moved time: through the CLI, whose orchestrator keeps the time its control set.

        The embedded mock's CLI keeps wall time (`mocks.orchestrator.dispatch` takes no
        clock), so for it the same paid add runs on its engine, on the moved clock, and
        answers as its CLI would (no CLI call is recorded)."""
        if self.core is None:
            return self.cli(
                "add", f"{provider}/{service}", "--name", name, "--confirm-paid-service"
            )
        return None, await embedded_paid_add(
            self.core, provider, service, name, timeout=self.config.timeout, mounts=self.in_process
        )

    def cli(self, *arguments: str, cwd: Path | None = None) -> tuple[CliCall, dict[str, Any]]:
        """Run one orchestrator CLI command with --json; the recorded call and its envelope.

        `cwd`: the directory to run it in (where a command such as `env --pull` writes).
        The recorded call is masked; `self.outputs[call.id]` keeps the raw stdout and stderr
        for the checks that must look for secrets in them."""
        argv = [*arguments, "--json"]
        started = time.perf_counter()
        if self.config.command is None:
            assert self.state is not None
            # The CLI runs its own event loop; a worker thread keeps it off the run's loop.
            # One thread for the run, so its session's loop and client are only ever used
            # from it.
            if self._cli_thread is None:
                self._cli_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cli")
                self._cli_session = CliSession(mounts=self.in_process)
            outcome = self._cli_thread.submit(
                dispatch, argv, state=self.state, cwd=cwd, session=self._cli_session
            ).result()
            code, stdout, stderr = outcome.code, outcome.stdout, outcome.stderr
            shown = ["provspec", "orchestrator", *argv]
        else:
            shown = [*shlex.split(self.config.command), *argv]
            try:
                done = subprocess.run(
                    shown,
                    capture_output=True,
                    text=True,
                    timeout=max(self.config.timeout * 6, 30),
                    check=False,
                    cwd=cwd,
                )
            except subprocess.TimeoutExpired:
                call = self.recorder.record_cli(
                    shown, None, "", "timed out", (time.perf_counter() - started) * 1000
                )
                self.outputs[call.id] = ("", "timed out")
                return call, {}
            code, stdout, stderr = done.returncode, done.stdout, done.stderr
        call = self.recorder.record_cli(
            shown, code, stdout, stderr, (time.perf_counter() - started) * 1000
        )
        self.outputs[call.id] = (stdout, stderr)
        envelope = envelope_of(stdout)
        if arguments:
            self.contract[call.id] = contract_issues(self.profile, arguments[0], envelope)
        return call, envelope


class OrchestratorContext(CheckContext):
    def __init__(self, target: OrchestratorTarget, check: Check) -> None:
        super().__init__(target.recorder, check)
        self.target = target
        self.profile = target.profile
        self.family = target.family
        self.params = target.params
        """The active profile's parameters: header names, lifetimes, algorithms, cap."""
        assert target.provider is not None
        assert target.http is not None
        self.provider = target.provider
        self.http = target.http
        self.issuer = target.issuer

    def cli(self, *arguments: str, cwd: Path | None = None) -> tuple[CliCall, dict[str, Any]]:
        return self.target.cli(*arguments, cwd=cwd)

    def data_of(self, call: CliCall, envelope: dict[str, Any]) -> dict[str, Any]:
        """The `data` of a CLI answer as its command's contract schema describes it (`{}`
        when the answer has none); Skipped, blocked by ORC-PRO-015, when the answer breaks the
        contract: a list where an object is due is that requirement's failure, and a check
        that reads the answer cannot judge its own rule on it."""
        issues = self.target.contract.get(call.id) or []
        if issues:
            command = next((a for a in call.argv if a in CLI_DATA), "")
            raise Skipped(
                f"blocked by {CONTRACT_RULE.get(command, 'ORC-PRO-015')}: "
                f"`{' '.join(call.argv[-4:])}` answered outside the CLI contract ({issues[0]})"
            )
        data = envelope.get("data")
        return data if isinstance(data, dict) else {}

    def output(self, call: CliCall) -> tuple[str, str]:
        """The raw (stdout, stderr) of a CLI call (the recorded call is masked)."""
        return self.target.outputs.get(call.id, (call.stdout, call.stderr))

    def new_email(self) -> str:
        """A new user's email, drawn from the run's identity seed."""
        return self.target.identities.email()

    def sign_in(self, email: str | None = None, *, accept_tos: bool = True) -> str:
        """Start over as a new signed-in user (no provider connection yet); the email used."""
        email = email or self.new_email()
        arguments = ["init", "--new-user", "--email", email]
        if accept_tos:
            arguments.append("--accept-tos")
        self.cli(*arguments)
        return email

    async def add_at(
        self, provider: str, service: str, *extra: str
    ) -> tuple[CliCall, dict[str, Any]]:
        """`add PROVIDER/SERVICE --name <unique>` at either of the suite's providers."""
        return self.cli(
            "add",
            f"{provider}/{service}",
            "--name",
            f"{service.replace(':', '-')}-{len(self.recorder.cli_calls)}",
            *extra,
        )

    def handed_out(self) -> dict[str, str]:
        """Every secret the suite's providers handed the orchestrator so far (authorization
        codes, access and refresh tokens, credential values), by value, naming its kind."""
        return secrets_handed_out(self.target.raw)

    def sent_secrets(self) -> dict[str, str]:
        """Every secret the orchestrator sent the suite's providers: Authorization values,
        signatures, attestations and payment tokens, by value, naming its kind."""
        return secrets_sent(self.target.raw, self.params)

    def now(self) -> int:
        """The orchestrator's time as the suite believes it (moved by `shifted_clock`)."""
        clock = self.target.clock
        return clock.timestamp() if clock is not None else int(time.time())

    @contextlib.contextmanager
    def shifted_clock(self, seconds: float) -> Iterator[None]:
        """Move the orchestrator's clock for one probe: the embedded mock's, or the test
        clock `[orchestrator] clock_command` drives; otherwise the probe is not judged."""
        if not self.target.clock_movable:
            raise self.target.unoffered(
                Kind.SET_CLOCK, f", the probe needs it {seconds:+.0f} s away"
            )
        self.target.move_clock(seconds)
        try:
            yield
        finally:
            self.target.move_clock(-seconds)

    @contextlib.contextmanager
    def tampered(
        self, path_suffix: str, rule: Tamper, provider: str = PROVIDER_NAME
    ) -> Iterator[None]:
        """Answers of the suite's provider on paths ending in `path_suffix` pass through `rule`."""
        tampering = (
            self.target.other_tampering
            if provider == OTHER_PROVIDER_NAME
            else self.target.tampering
        )
        tampering.rules[path_suffix] = rule
        try:
            yield
        finally:
            tampering.rules.pop(path_suffix, None)

    def received(
        self, since: int, path_suffix: str = "", provider: str | None = PROVIDER_NAME
    ) -> list[RawRequest]:
        """Requests the suite's providers received after exchange `since` (provider None: both)."""
        return [
            r
            for r in self.target.raw
            if r.exchange_id > since
            and r.path.endswith(path_suffix)
            and (provider is None or r.provider == provider)
        ]

    def exchange(self, raw: RawRequest) -> Exchange | None:
        for exchange in self.recorder.exchanges:
            if exchange.id == raw.exchange_id:
                return exchange
        return None

    async def add(self, service: str, *extra: str) -> tuple[CliCall, dict[str, Any]]:
        return self.cli(
            "add",
            f"{PROVIDER_NAME}/{service}",
            "--name",
            f"{service.replace(':', '-')}-{len(self.recorder.cli_calls)}",
            *extra,
        )

    async def get(self, url: str) -> tuple[httpx.Response, Exchange]:
        response = await self.http.get(url)
        return response, self.recorder.exchanges[-1]

    def need_issuer(self) -> str:
        if not self.issuer:
            raise Skipped("the orchestrator's issuer URL is not configured ([orchestrator] issuer)")
        return self.issuer

    @staticmethod
    def body(raw: RawRequest) -> Any:
        try:
            return json.loads(raw.body) if raw.body else None
        except ValueError:
            return None
