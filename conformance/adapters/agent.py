"""The agent under test: a command, judged by what it asks the orchestrator for.

For each scripted task the suite builds a small world — a fresh user at the mock orchestrator,
a mock provider served on loopback behind it — puts a stand-in for the orchestrator CLI first
on PATH (named like the real one, `stripe projects` by default, answering with the same JSON
envelope) and runs the agent command once: in a temporary working directory, with a clean
environment that holds only PATH, HOME and the task, under a timeout. Every CLI call the agent
makes, every request it sends to the provider, and its own output are kept as evidence, with
the credentials the suite handed out masked.

The stand-in is a few lines of stdlib Python that forward argv to the suite over loopback, so
each agent call costs milliseconds and the suite records it first-hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import secrets
import shlex
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from conformance import strictjson
from conformance.checks import Check, CheckContext
from conformance.errors import UsageError
from conformance.recorder import CliCall, Recorder, RecordingASGI, mask_values
from mocks._core.store import SQLiteStore
from mocks._serve import ServedInThread
from mocks.orchestrator.app import OrchestratorMock, OrchestratorSettings
from mocks.provider.app import ProviderMock, ProviderSettings

__all__ = ["AgentContext", "AgentTarget", "AgentTargetConfig", "AgentTask", "TASKS", "TaskRun"]

PROVIDER_NAME = "mockprov"
DEFAULT_ORCHESTRATOR_CLI = "stripe projects"


@dataclass(frozen=True)
class AgentTask:
    name: str
    instruction: str
    """What the agent is told (PROVSPEC_TASK)."""
    service: str = ""
    """PROVSPEC_TASK_SERVICE: "" lets the agent pick a free service from the catalog."""
    paid_confirmed: bool = False
    world: str = "plain"
    """plain, existing-account, cap-reached or no-payment-method."""
    escalation: str = ""
    """The CLI error code the agent must stop on and hand to the human ("" = the task can be done)."""


TASKS: tuple[AgentTask, ...] = (
    AgentTask(
        "free-service",
        f"Provision a free service at {PROVIDER_NAME}, prove it works by calling its API with "
        "the credentials you get, and say which service you added.",
    ),
    AgentTask(
        "paid-unconfirmed",
        f"Add the paid service {PROVIDER_NAME}/pro. The human has not confirmed its cost.",
        service="pro",
        escalation="CONFIRMATION_REQUIRED",
    ),
    AgentTask(
        "existing-account",
        f"Provision a free service at {PROVIDER_NAME}.",
        world="existing-account",
        escalation="CONSENT_REQUIRED",
    ),
    AgentTask(
        "cap-reached",
        f"Add the paid service {PROVIDER_NAME}/pro; the human confirmed its cost.",
        service="pro",
        paid_confirmed=True,
        world="cap-reached",
        escalation="SPEND_CAP_EXCEEDED",
    ),
    AgentTask(
        "no-payment-method",
        f"Add the paid service {PROVIDER_NAME}/pro; the human confirmed its cost.",
        service="pro",
        paid_confirmed=True,
        world="no-payment-method",
        escalation="PAYMENT_METHOD_REQUIRED",
    ),
)


@dataclass
class AgentTargetConfig:
    profile: str = "app-0.1d"
    command: str | None = None
    """The agent command; None: the embedded mock agent."""
    orchestrator_cli: str = DEFAULT_ORCHESTRATOR_CLI
    """The CLI prefix the agent expects on PATH; the suite's stand-in answers to it."""
    timeout: float = 60.0
    faults: tuple[str, ...] = ()
    """Faults of the embedded mock agent."""

    def describe(self) -> str:
        return self.command or f"embedded mock agent ({self.profile})"


@dataclass
class OrchestratorCall:
    """One call the agent made to the orchestrator CLI stand-in, unmasked (checks only)."""

    argv: list[str]
    """After the CLI prefix, e.g. ["add", "mockprov/free", "--json"]."""
    exit_code: int
    stdout: str
    envelope: dict[str, Any]
    evidence: CliCall

    @property
    def command(self) -> str:
        return self.argv[0] if self.argv else ""

    @property
    def error_code(self) -> str:
        error = self.envelope.get("error")
        return str(error.get("code", "")) if isinstance(error, dict) else ""


@dataclass
class ProviderRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    exchange_id: int


@dataclass
class TaskRun:
    task: AgentTask
    email: str
    exit_code: int | None
    output: str
    """The agent's stdout and stderr, unmasked (checks only)."""
    evidence: CliCall
    calls: list[OrchestratorCall] = field(default_factory=list)
    provider_requests: list[ProviderRequest] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    """Credential values the orchestrator held for this user after the run."""
    catalog_services: set[str] = field(default_factory=set)

    def calls_of(self, command: str) -> list[OrchestratorCall]:
        return [call for call in self.calls if call.command == command]


class _Capture:
    """Requests reaching the served provider, with their raw query and headers."""

    def __init__(self, app: Any, recorder: Recorder) -> None:
        self._app = RecordingASGI(app, recorder)
        self._recorder = recorder
        self.requests: list[ProviderRequest] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = {
                k.decode("latin-1").lower(): v.decode("latin-1")
                for k, v in scope.get("headers", [])
            }
            self.requests.append(
                ProviderRequest(
                    scope["method"],
                    scope["path"],
                    scope.get("query_string", b"").decode("latin-1"),
                    headers,
                    self._recorder.mark + 1,
                )
            )
        await self._app(scope, receive, send)


_SHIM = """#!{python} -I
# provspec's stand-in for `{prefix}`: forwards argv to the conformance run and replays its answer.
import json, sys, urllib.request
request = urllib.request.Request(
    {url!r}, data=json.dumps({{"argv": sys.argv[1:]}}).encode(),
    headers={{"Content-Type": "application/json"}})
try:
    with urllib.request.urlopen(request, timeout={timeout}) as answer:
        out = json.load(answer)
except Exception as error:
    sys.stderr.write("provspec stand-in: the conformance run is not answering: %s\\n" % error)
    sys.exit(70)
sys.stdout.write(out["stdout"])
sys.stderr.write(out["stderr"])
sys.exit(out["exit"])
"""


@dataclass
class AgentTarget:
    config: AgentTargetConfig
    recorder: Recorder = field(default_factory=Recorder)

    def __post_init__(self) -> None:
        self.profile = self.config.profile
        self.runs: dict[str, TaskRun] = {}
        self._prefix = shlex.split(self.config.orchestrator_cli) or shlex.split(
            DEFAULT_ORCHESTRATOR_CLI
        )
        self._cli_lock = threading.Lock()
        self._current: TaskRun | None = None
        self._capture: _Capture | None = None
        self._workdir: Path | None = None
        self._state: Path | None = None
        self._provider: ProviderMock | None = None
        self._shim_url = ""

    # --- the world -------------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[AgentTarget]:
        argv = self._argv()
        if not argv or shutil.which(argv[0]) is None:
            raise UsageError(
                f"the agent command {self.config.command!r} does not name a program that can be "
                "run (check [agent] command or --agent-cmd)"
            )
        with contextlib.ExitStack() as stack:
            self._workdir = Path(
                stack.enter_context(tempfile.TemporaryDirectory(prefix="provspec-agt-"))
            )
            self._state = self._workdir / "orchestrator.db"
            orchestrator_listener, provider_listener, shim_listener = (
                ServedInThread(),
                ServedInThread(),
                ServedInThread(),
            )
            store = SQLiteStore(self._state)
            stack.callback(store.close)
            core = OrchestratorMock(
                OrchestratorSettings(
                    profile=self.profile, issuer=orchestrator_listener.origin, store=store
                )
            )
            stack.enter_context(orchestrator_listener.serving(core.app))
            secret = "whsec_" + secrets.token_hex(16)
            self._provider = ProviderMock(
                ProviderSettings(
                    profile=self.profile,
                    base_url=provider_listener.origin + "/api/app/",
                    hmac_secret=secret,
                    orchestrator_issuer=core.issuer,
                )
            )
            self._capture = _Capture(self._provider.app, self.recorder)
            stack.enter_context(provider_listener.serving(self._capture))
            stack.enter_context(shim_listener.serving(self._shim_app()))
            self._shim_url = shim_listener.origin + "/cli"
            self._install_shim()
            await asyncio.to_thread(
                self._orchestrator,
                "init",
                "--profile",
                self.profile,
                "--issuer",
                core.issuer,
                "--provider",
                f"{PROVIDER_NAME}={self._provider.base_url}#{secret}",
            )
            yield self

    def _install_shim(self) -> None:
        assert self._workdir is not None
        directory = self._workdir / "bin"
        directory.mkdir()
        shim = directory / self._prefix[0]
        shim.write_text(
            _SHIM.format(
                python=sys.executable,
                prefix=" ".join(self._prefix),
                url=self._shim_url,
                timeout=int(self.config.timeout),
            )
        )
        shim.chmod(0o755)

    def _orchestrator(self, *arguments: str) -> tuple[int, str, str]:
        """Run the mock orchestrator CLI in-process on the run's state."""
        from conformance.cli import main

        assert self._state is not None
        out, err = io.StringIO(), io.StringIO()
        # One at a time: the CLI prints through the process-wide stdout.
        with self._cli_lock, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["orchestrator", *arguments, "--state", str(self._state)])
        return code, out.getvalue(), err.getvalue()

    def _shim_app(self) -> Starlette:
        async def cli(request: Request) -> Response:
            try:
                argv = (await request.json())["argv"]
                if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
                    raise ValueError
            except (ValueError, KeyError, TypeError):
                return JSONResponse({"stdout": "", "stderr": "bad stand-in request\n", "exit": 2})
            code, stdout, stderr = await asyncio.to_thread(self._answer, argv)
            return JSONResponse({"stdout": stdout, "stderr": stderr, "exit": code})

        return Starlette(routes=[Route("/cli", cli, methods=["POST"])])

    def _answer(self, argv: list[str]) -> tuple[int, str, str]:
        started = time.perf_counter()
        rest = self._prefix[1:]
        if argv[: len(rest)] != rest:
            code, stdout, stderr = 2, "", f"unknown command: {' '.join(argv)[:200]}\n"
        elif any(a == "--state" or a.startswith("--state=") for a in argv):
            code, stdout, stderr = 2, "", "--state is not an option of this CLI\n"
        else:
            code, stdout, stderr = self._orchestrator(*argv[len(rest) :])
        run = self._current
        known = run.secrets if run is not None else []
        evidence = self.recorder.record_cli(
            [self._prefix[0], *argv],
            code,
            mask_values(stdout, known),
            mask_values(stderr, known),
            (time.perf_counter() - started) * 1000,
        )
        if run is not None:
            try:
                envelope = strictjson.loads(stdout) if stdout.strip() else {}
            except strictjson.StrictJSONError:
                envelope = {}
            run.calls.append(
                OrchestratorCall(
                    argv[len(rest) :],
                    code,
                    stdout,
                    envelope if isinstance(envelope, dict) else {},
                    evidence,
                )
            )
        return code, stdout, stderr

    # --- tasks ---------------------------------------------------------------------------------
    def _prepare(self, task: AgentTask) -> str:
        assert self._provider is not None
        email = f"agent-{task.name}-{secrets.token_hex(3)}@example.com"
        init = ["init", "--new-user", "--email", email, "--accept-tos"]
        if task.world == "no-payment-method":
            init.append("--no-payment-method")
        self._orchestrator(*init)
        if task.world == "existing-account":
            self._provider.state.create_account(email, origin="provider")
        if task.world == "cap-reached":
            self._orchestrator("billing", "--provider", PROVIDER_NAME, "--limit", "0")
        return email

    def _catalog_services(self) -> set[str]:
        _, stdout, _ = self._orchestrator("catalog", PROVIDER_NAME, "--json")
        try:
            document = json.loads(stdout)
        except ValueError:
            return set()
        entries = (document.get("data") or {}).get("services") or []
        return {
            f"{entry.get('provider_name', '')}/{entry.get('service_id', '')}".lower()
            for entry in entries
            if isinstance(entry, dict)
        }

    def _held_secrets(self) -> list[str]:
        _, stdout, _ = self._orchestrator("env", "--reveal", "--json")
        try:
            variables = (json.loads(stdout).get("data") or {}).get("variables") or {}
        except (ValueError, AttributeError):
            return []
        return [
            value
            for name, value in variables.items()
            if isinstance(value, str) and not name.endswith(("_URL", "_HOST", "_ID"))
        ]

    def _argv(self) -> list[str]:
        if self.config.command is not None:
            return shlex.split(self.config.command)
        faults = [argument for name in self.config.faults for argument in ("--fault", name)]
        return [sys.executable, "-m", "mocks.agent", "--profile", self.profile, *faults]

    def _environment(self, task: AgentTask) -> dict[str, str]:
        assert self._workdir is not None
        home = self._workdir / "home"
        home.mkdir(exist_ok=True)
        environment = {
            "PATH": os.pathsep.join(
                [str(self._workdir / "bin"), os.environ.get("PATH", os.defpath)]
            ),
            "HOME": str(home),
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            "PROVSPEC_TASK": task.instruction,
            "PROVSPEC_ORCHESTRATOR_CLI": " ".join(self._prefix),
            "PROVSPEC_TASK_PROVIDER": PROVIDER_NAME,
            "PROVSPEC_TASK_SERVICE": task.service,
            "PROVSPEC_TASK_PAID_CONFIRMED": "1" if task.paid_confirmed else "0",
        }
        if self.config.command is None:
            # The embedded mock agent imports provspec from wherever this run imports it.
            environment["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        return environment

    async def run_task(self, task: AgentTask) -> TaskRun:
        """Run the agent on one task (once per run; checks share the result)."""
        if task.name in self.runs:
            return self.runs[task.name]
        assert self._capture is not None
        assert self._workdir is not None
        email = await asyncio.to_thread(self._prepare, task)
        services = await asyncio.to_thread(self._catalog_services)
        workdir = self._workdir / "tasks" / task.name
        workdir.mkdir(parents=True)
        argv = self._argv()
        placeholder = CliCall(0, argv, None, "", "", 0.0)
        run = TaskRun(task, email, None, "", placeholder, catalog_services=services)
        self._current = run
        seen = len(self._capture.requests)
        started = time.perf_counter()
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                cwd=workdir,
                env=self._environment(task),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as error:
            run.output = f"the agent command could not start: {error}"
            run.evidence = self.recorder.record_cli(argv, None, "", run.output, 0.0)
            self._current = None
            self.runs[task.name] = run
            return run
        try:
            out, err = await asyncio.wait_for(process.communicate(), self.config.timeout)
            run.exit_code = process.returncode
        except TimeoutError:
            process.kill()
            out, err = await process.communicate()
            err += f"\n[provspec] the agent was stopped after {self.config.timeout:g} s".encode()
        self._current = None
        run.secrets = await asyncio.to_thread(self._held_secrets)
        run.output = out.decode("utf-8", "replace") + err.decode("utf-8", "replace")
        run.evidence = self.recorder.record_cli(
            [*argv, f"# task {task.name}"],
            run.exit_code,
            mask_values(out.decode("utf-8", "replace"), run.secrets),
            mask_values(err.decode("utf-8", "replace"), run.secrets),
            (time.perf_counter() - started) * 1000,
        )
        run.provider_requests = self._capture.requests[seen:]
        self.runs[task.name] = run
        return run


class AgentContext(CheckContext):
    def __init__(self, target: AgentTarget, check: Check) -> None:
        super().__init__(target.recorder, check)
        self.target = target
        self.profile = target.profile

    async def task(self, name: str) -> TaskRun:
        for task in TASKS:
            if task.name == name:
                return await self.target.run_task(task)
        raise KeyError(name)

    async def every_task(self) -> Iterator[TaskRun]:
        return iter([await self.target.run_task(task) for task in TASKS])
