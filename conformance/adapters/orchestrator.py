"""The orchestrator under test: its agent-facing CLI (run with --json) and its HTTP side.

The suite serves a mock provider on loopback for the orchestrator to provision at, and
watches everything the orchestrator sends it. The provider keeps payment tokens unredeemed,
so the suite itself can probe the orchestrator's redemption endpoint with them, signing as
that provider. With no command configured, the orchestrator is the embedded mock: its HTTP
side served on loopback and its CLI run in-process on a private state file.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shlex
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conformance.checks import Check, CheckContext, Skipped
from conformance.harness import PROVIDER_SIDE, HarnessMonitor
from conformance.recorder import CliCall, Exchange, Recorder, RecordingASGI, RecordingTransport
from mocks import SQLiteStore
from mocks.hosting import ServedInThread
from mocks.orchestrator import OrchestratorMock, OrchestratorSettings, dispatch
from mocks.provider import ProviderMock, ProviderSettings
from spec.schemas import default_store
from wire import strictjson
from wire.clock import OffsetClock

__all__ = [
    "CLI_DATA",
    "CONTRACT_RULE",
    "OrchestratorContext",
    "OrchestratorTarget",
    "OrchestratorTargetConfig",
    "RawRequest",
    "contract_issues",
]

PROVIDER_NAME = "provspecmock"
OTHER_PROVIDER_NAME = "provspecmock2"
"""A second registered provider: per-provider caps, aggregation, and tokens that must not
cross from one provider to the other."""


CLI_DATA: Mapping[str, str] = MappingProxyType(
    {
        "init": "cli_init_data",
        "catalog": "cli_catalog",
        "add": "cli_add_data",
        "status": "cli_status_data",
        "env": "cli_env_data",
        "billing": "cli_billing_data",
        "revoke": "cli_revoke_data",
        "remove": "cli_remove_data",
    }
)
"""The agent-facing CLI contract the suite drives (docs/orchestrator-cli.md): for each
command, the schema of its answer's `data` (cli_catalog: the whole catalog envelope)."""

CONTRACT_RULE: Mapping[str, str] = MappingProxyType(
    {"catalog": "ORC-DSC-006", "add": "ORC-PRO-002"}
)
"""The requirement an answer outside the contract breaks: the catalog's and add's own, every
other command's ORC-PRO-015."""


def contract_issues(profile: str, command: str, envelope: dict[str, Any]) -> list[str]:
    """Where an answer of `command` breaks the CLI contract (ORC-PRO-015): a success whose
    data is not valid against the command's schema, or an add failure whose data (when it
    has one) is not. An empty or unparsable answer is ORC-PRO-004's and -013's matter."""
    message = CLI_DATA.get(command)
    if message is None or not envelope:
        return []
    store = default_store()
    if message == "cli_catalog":
        if envelope.get("ok") is not True:
            return []
        issues = store.validate(profile, message, envelope)
        return [
            f"{issue.path or '/'}: {_short(issue.message)} [{issue.keyword}]" for issue in issues
        ][:3]
    data = envelope.get("data")
    if envelope.get("ok") is not True and not (command == "add" and isinstance(data, dict)):
        return []
    issues = store.validate(profile, message, data)
    return [f"data{issue.path}: {_short(issue.message)} [{issue.keyword}]" for issue in issues][:3]


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


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

    clock_command: str | None = None
    """The orchestrator's test clock: a command run with `{offset}` (seconds added to real
    time; 0 restores it) and `{timestamp}` (the Unix time the clock should read now) replaced.
    Without it, and for any orchestrator but the embedded mock, the probes that need another
    month are not judged, saying so."""
    mock_options: tuple[str, ...] = ()
    """Extra `init` options for the embedded mock orchestrator: a variant that follows the
    profile another way (e.g. `--token-amount remaining`); ignored for a configured command."""

    def describe(self) -> str:
        return self.command or f"embedded mock orchestrator ({self.profile})"


@dataclass
class RawRequest:
    """What the suite's mock provider received, unmasked, and what it answered (after any
    tampering): only checks see it, never reports."""

    exchange_id: int
    provider: str
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    query: str = ""
    status: int | None = None
    response: bytes = b""
    at: float = field(default_factory=time.monotonic)
    """When the request arrived (time.monotonic): how far apart two requests came."""


class _RawCapture:
    def __init__(
        self, app: ASGIApp, recorder: Recorder, store: list[RawRequest], provider: str
    ) -> None:
        self._app = RecordingASGI(app, recorder)
        self._recorder = recorder
        self._store = store
        self._provider = provider

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        chunks: list[bytes] = []

        async def keep() -> Any:
            message = await receive()
            if message.get("type") == "http.request":
                chunks.append(message.get("body", b""))
                # Kept as it arrives: the client can have its answer (and a check read this)
                # before the `finally` below runs in the server's thread.
                request.body = b"".join(chunks)
            return message

        headers = {
            k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])
        }
        request = RawRequest(
            self._recorder.mark + 1,
            self._provider,
            scope["method"],
            scope["path"],
            headers,
            b"",
            query=scope.get("query_string", b"").decode("latin-1"),
        )
        self._store.append(request)
        answer: list[bytes] = []

        async def answer_and_keep(message: Message) -> None:
            if message["type"] == "http.response.start":
                request.status = int(message["status"])
            elif message["type"] == "http.response.body":
                answer.append(message.get("body", b""))
                request.response = b"".join(answer)
            recorded = scope.get("provspec.exchange_id")
            if isinstance(recorded, int):
                request.exchange_id = recorded
            await send(message)

        try:
            await self._app(scope, keep, answer_and_keep)
        finally:
            request.body = b"".join(chunks)
            request.response = b"".join(answer)
            # RecordingASGI numbers the exchange when it starts; cite that exact one.
            recorded = scope.get("provspec.exchange_id")
            if isinstance(recorded, int):
                request.exchange_id = recorded


Tamper = Callable[[int, dict[str, str], bytes], tuple[int, dict[str, str], bytes]]
"""Rewrites one answer of the suite's provider: (status, headers, body) in and out."""


class _Tampering:
    """Lets a check make the suite's provider answer adversarially on some paths, for the
    length of a `with ctx.tampered(...)` block (the provider itself stays correct)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self.rules: dict[str, Tamper] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        rule = next(
            (fn for suffix, fn in self.rules.items() if scope.get("path", "").endswith(suffix)),
            None,
        )
        if scope["type"] != "http" or rule is None:
            await self._app(scope, receive, send)
            return
        started: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def keep(message: Message) -> None:
            if message["type"] == "http.response.start":
                started.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self._app(scope, receive, keep)
        headers = {
            k.decode("latin-1").lower(): v.decode("latin-1") for k, v in started.get("headers", [])
        }
        status, headers, body = rule(int(started.get("status", 500)), headers, b"".join(chunks))
        headers["content-length"] = str(len(body))
        raw_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": body})


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
        self.other_provider: ProviderMock | None = None
        self.outputs: dict[int, tuple[str, str]] = {}
        """Raw (stdout, stderr) of each CLI call, by the recorded call's id."""
        self.contract: dict[int, list[str]] = {}
        """Where each CLI answer breaks the CLI contract (`contract_issues`), by call id."""

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
                self.clock = OffsetClock()
                self.core = OrchestratorMock(
                    OrchestratorSettings(
                        profile=self.spec,
                        issuer=self.issuer,
                        faults=self.config.faults,
                        store=store,
                        clock=self.clock,
                    )
                )
                stack.enter_context(listener.serving(self.core.app))
            elif self.config.clock_command:
                self.clock = OffsetClock()  # what the suite told the orchestrator's test clock
                stack.callback(self._restore_clock)
            self.provider = ProviderMock(
                ProviderSettings(
                    profile=self.spec,
                    base_url=provider_listener.origin + "/api/app/",
                    hmac_secret=self.config.hmac_secret,
                    orchestrator_issuer=self.issuer,
                    redeem=False,
                    verify_requests=False,
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
                )
            )
            # The suite's own providers' answers are validated as they leave (harness blame);
            # a check's tampering sits outside and is meant to be wrong.
            profile = self.profile
            self.other_tampering = _Tampering(
                HarnessMonitor(self.other_provider.app, self.recorder, profile, PROVIDER_SIDE)
            )
            stack.enter_context(
                other_listener.serving(
                    _RawCapture(self.other_tampering, self.recorder, self.raw, OTHER_PROVIDER_NAME)
                )
            )
            self.tampering = _Tampering(
                HarnessMonitor(self.provider.app, self.recorder, profile, PROVIDER_SIDE)
            )
            stack.enter_context(
                provider_listener.serving(
                    _RawCapture(self.tampering, self.recorder, self.raw, PROVIDER_NAME)
                )
            )
            self.http = await stack.enter_async_context(
                httpx.AsyncClient(
                    transport=RecordingTransport(httpx.AsyncHTTPTransport(), self.recorder),
                    timeout=self.config.timeout,
                )
            )
            if embedded:
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

    @property
    def clock_movable(self) -> bool:
        """Whether the suite can move the orchestrator's clock: the embedded mock's, or the
        test clock `clock_command` drives."""
        return self.clock is not None

    def move_clock(self, seconds: float) -> None:
        """Move the orchestrator's clock by `seconds` (and back with a negative value)."""
        if self.clock is None:
            raise RuntimeError("this orchestrator's clock cannot be moved")
        self.clock.advance(seconds)
        if self.config.command is not None and self.config.clock_command:
            self._set_test_clock(self.clock.offset)

    def _restore_clock(self) -> None:
        if self.clock is not None and self.clock.offset:
            self.clock.offset = 0.0
            self._set_test_clock(0.0)

    def _set_test_clock(self, offset: float) -> None:
        """Run `clock_command` for `offset`; a command that fails is a harness error."""
        template = self.config.clock_command or ""
        argv = [
            part.replace("{offset}", str(int(offset))).replace(
                "{timestamp}", str(int(time.time() + offset))
            )
            for part in shlex.split(template)
        ]
        started = time.perf_counter()
        try:
            done = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=max(self.config.timeout * 3, 30),
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            self.recorder.record_cli(
                argv, None, "", str(error), (time.perf_counter() - started) * 1000
            )
            raise RuntimeError(f"clock_command could not run: {error}") from None
        call = self.recorder.record_cli(
            argv, done.returncode, done.stdout, done.stderr, (time.perf_counter() - started) * 1000
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"clock_command exited {done.returncode} (CLI call {call.id}): "
                f"{done.stderr.strip()[:200]}"
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
            with ThreadPoolExecutor(max_workers=1) as pool:
                outcome = pool.submit(dispatch, argv, state=self.state, cwd=cwd).result()
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


def envelope_of(stdout: str) -> dict[str, Any]:
    """The JSON envelope in a command's stdout. Stray text around it (ORC-PRO-013's finding)
    does not hide the envelope from the other checks: failing that, the last line that
    starts a JSON object and parses to the end is taken."""
    text = stdout.strip()
    if not text:
        return {}
    candidates = [text]
    offset = 0
    starts = []
    for line in text.splitlines(keepends=True):
        if line.startswith("{"):
            starts.append(offset)
        offset += len(line)
    candidates += [text[start:] for start in reversed(starts)]
    for candidate in candidates:
        try:
            # A big catalog is still one envelope: the size limit is the output's own.
            document = strictjson.loads(
                candidate, max_bytes=max(len(candidate) * 4, strictjson.DEFAULT_MAX_BYTES)
            )
        except strictjson.StrictJSONError:
            continue
        return document if isinstance(document, dict) else {}
    return {}


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

    def sign_in(self, email: str | None = None, *, accept_tos: bool = True) -> str:
        """Start over as a new signed-in user (no provider connection yet); the email used."""
        email = email or f"provspec+{secrets.token_hex(5)}@example.com"
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
        found: dict[str, str] = {}
        for raw in self.target.raw:
            document = _loads(raw.response)
            if not isinstance(document, dict):
                continue
            for member in ("access_token", "refresh_token"):
                if isinstance(document.get(member), str):
                    found[document[member]] = f"{raw.provider} {member}"
            oauth = document.get("oauth")
            if isinstance(oauth, dict) and isinstance(oauth.get("code"), str):
                found[oauth["code"]] = f"{raw.provider} authorization code"
            complete = document.get("complete")
            access = complete.get("access_configuration") if isinstance(complete, dict) else None
            if isinstance(access, dict):
                for name, value in access.items():
                    if isinstance(value, str) and len(value) >= 12 and "://" not in value:
                        found[value] = f"{raw.provider} credential {name}"
        return found

    def sent_secrets(self) -> dict[str, str]:
        """Every secret the orchestrator sent the suite's providers: Authorization values,
        signatures, attestations and payment tokens, by value, naming its kind."""
        found: dict[str, str] = {}
        for raw in self.target.raw:
            params = self.params
            for header in (
                "authorization",
                params.signature_header.lower(),
                params.attestation_header.lower(),
            ):
                value = raw.headers.get(header, "")
                if header == "authorization":
                    value = value.partition(" ")[2].strip()
                if len(value) >= 12:
                    found[value] = f"{header} sent to {raw.provider}"
            body = _loads(raw.body)
            credentials = body.get("payment_credentials") if isinstance(body, dict) else None
            if isinstance(credentials, dict):
                for member in ("app_payment_token", "stripe_payment_token"):
                    if isinstance(credentials.get(member), str):
                        found[credentials[member]] = f"payment token sent to {raw.provider}"
        return found

    def now(self) -> int:
        """The orchestrator's time as the suite believes it (moved by `shifted_clock`)."""
        clock = self.target.clock
        return clock.timestamp() if clock is not None else int(time.time())

    @contextlib.contextmanager
    def shifted_clock(self, seconds: float) -> Iterator[None]:
        """Move the orchestrator's clock for one probe: the embedded mock's, or the test
        clock `[orchestrator] clock_command` drives; otherwise the probe is not judged."""
        if not self.target.clock_movable:
            raise Skipped(
                f"not judged: the suite cannot move this orchestrator's clock (the probe needs "
                f"it {seconds:+.0f} s away); set [orchestrator] clock_command to the command "
                "that moves its test clock"
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


def _loads(raw: bytes) -> Any:
    if not raw or len(raw) > strictjson.DEFAULT_MAX_BYTES:
        return None
    try:
        return strictjson.loads(raw)
    except strictjson.StrictJSONError:
        return None
