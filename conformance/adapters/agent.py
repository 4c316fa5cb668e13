"""The agent under test: a command, judged by what it asks the orchestrator for.

For each scripted task the suite builds a small world — a fresh user at the mock orchestrator,
a mock provider served on loopback behind it — puts a stand-in for the orchestrator CLI first
on PATH (named like the real one, `stripe projects` by default, answering with the same JSON
envelope) and runs the agent command once: in a temporary working directory, with a clean
environment that holds only PATH, HOME and the task, under a timeout. Every CLI call the agent
makes, every request it sends to the provider, and its own output are kept as evidence, with
the credentials the suite handed out masked, and so is whatever secret a world showed it.
Where a task needs a human in the loop while the agent runs (its own OAuth consent), the
world's human reads the agent's output as it comes.

The stand-in is a few lines of stdlib Python that forward argv to the suite over loopback, so
each agent call costs milliseconds and the suite records it first-hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from conformance.adapters import _agent_worlds as _worlds
from conformance.adapters._agent_hosting import (
    Capture,
    TaskWorld,
    agent_environment,
    catalog_entries,
    communicate,
    files_left,
    install_shims,
    mask_exchanges,
    run_mock_agent,
    secret_values,
)
from conformance.adapters._agent_records import Launch, OrchestratorCall, ProviderRequest, TaskRun
from conformance.adapters._agent_tasks import PROVIDER_NAME, TASKS, AgentTask, tasks_for
from conformance.checks import Check, CheckContext
from conformance.recorder import CliCall, Exchange, Recorder, mask_values
from mocks import SQLiteStore
from mocks.hosting import ServedInThread
from mocks.orchestrator import OrchestratorMock, OrchestratorSettings, SessionPerThread, dispatch
from mocks.provider import ProviderMock, ProviderSettings
from spec.schemas import default_store
from wire import strictjson
from wire.errors import UsageError

__all__ = [
    "PROVIDER_NAME",
    "TASKS",
    "AgentContext",
    "AgentTarget",
    "AgentTargetConfig",
    "AgentTask",
    "Launch",
    "OrchestratorCall",
    "ProviderRequest",
    "TaskRun",
    "tasks_for",
]

T = TypeVar("T")
DEFAULT_ORCHESTRATOR_CLI = "stripe projects"


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
    in_process: bool = True
    """Run the embedded mock agent in this process (fast); False runs `python -m mocks.agent`
    as a child process, exactly like an agent command."""

    def describe(self) -> str:
        return self.command or f"embedded mock agent ({self.profile})"


@dataclass
class AgentTarget:
    config: AgentTargetConfig
    recorder: Recorder = field(init=False)

    def __post_init__(self) -> None:
        # a name, or a draft's directory: what the agent's worlds (child processes) resolve
        spec = default_store().profile(self.config.profile)
        self.profile = spec.spec
        self.recorder = Recorder.for_profile(spec.parameters)
        self.runs: dict[str, TaskRun] = {}
        self._prefix = shlex.split(self.config.orchestrator_cli) or shlex.split(
            DEFAULT_ORCHESTRATOR_CLI
        )
        self._root: Path | None = None
        self._stack: contextlib.ExitStack | None = None
        self._worlds: dict[str, TaskWorld] = {}
        self._started: dict[str, asyncio.Task[TaskRun]] = {}
        self._shim_port = 0
        self._trap: Capture | None = None
        self._trap_origin = ""
        self._launches: dict[str, list[Launch]] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._side_by_side: list[contextlib.ExitStack] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sessions = SessionPerThread()
        self.tasks = tasks_for(self.profile)
        """The tasks of this run's profile."""

    # --- the run ---------------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[AgentTarget]:
        argv = self._argv()
        if not argv or shutil.which(argv[0]) is None:
            raise UsageError(
                f"the agent command {self.config.command!r} does not name a program that can be "
                "run (check [agent] command or --agent-cmd)"
            )
        self._loop = asyncio.get_running_loop()
        with contextlib.ExitStack() as stack:
            self._stack = stack
            self._root = Path(
                stack.enter_context(tempfile.TemporaryDirectory(prefix="provspec-agt-"))
            )
            # The servers stop after the tasks' threads are done with them, and before the
            # directory their stores live in goes.
            stack.callback(self._close_side_by_side)
            # Before the servers: the embedded CLI's idle connections to them, its state files.
            stack.callback(self._sessions.close)
            self._pool = stack.enter_context(ThreadPoolExecutor(max_workers=len(self.tasks) + 2))
            shim_listener, trap_listener = ServedInThread(), ServedInThread()
            self._closing(shim_listener.serving(self._shim_app()))
            self._shim_port = int(shim_listener.origin.rsplit(":", 1)[1])
            self._trap = Capture(JSONResponse({"ok": True}), self.recorder)
            self._closing(trap_listener.serving(self._trap))
            self._trap_origin = trap_listener.origin
            try:
                yield self
            finally:
                for started in self._started.values():
                    started.cancel()
                self._stack = None

    def _closing(self, served: contextlib.AbstractContextManager[Any]) -> contextlib.ExitStack:
        """Enter a server (or anything) the run closes side by side with the others; what
        the returned stack takes on closes with it, first."""
        stack = contextlib.ExitStack()
        self._side_by_side.append(stack)
        stack.enter_context(served)
        return stack

    def _close_side_by_side(self) -> None:
        """Stop every server at once: each takes up to a tick of its loop (0.1 s) to notice,
        and the ~40 of a run one after another would add seconds to it."""
        stacks, self._side_by_side = self._side_by_side, []
        if not stacks:
            return
        # A thread each: the task pool is narrower, and would stop them in rounds.
        with ThreadPoolExecutor(max_workers=len(stacks)) as closer:
            closing = [closer.submit(stack.close) for stack in stacks]
        errors = [error for future in closing if (error := future.exception()) is not None]
        if errors:
            raise errors[0]

    # --- one world per task ------------------------------------------------------------------------
    def _world(self, task: AgentTask) -> TaskWorld:
        """A fresh orchestrator (HTTP side and CLI state), provider and directory for one task,
        so tasks run side by side without sharing a user, a cap or a resource."""
        assert self._stack is not None
        assert self._root is not None
        directory = self._root / task.name
        (directory / "bin").mkdir(parents=True)
        (directory / "home").mkdir()
        (directory / "work").mkdir()
        state = directory / "orchestrator.db"
        orchestrator_listener, provider_listener = ServedInThread(), ServedInThread()
        store = SQLiteStore(state)
        orchestrator_side = self._closing(contextlib.closing(store))
        core = OrchestratorMock(
            OrchestratorSettings(
                profile=self.profile, issuer=orchestrator_listener.origin, store=store
            )
        )
        orchestrator_side.enter_context(orchestrator_listener.serving(core.app))
        secret = "whsec_" + secrets.token_hex(16)
        provider = ProviderMock(
            ProviderSettings(
                profile=self.profile,
                base_url=provider_listener.origin + "/api/app/",
                hmac_secret=secret,
                orchestrator_issuer=core.issuer,
            )
        )
        answers = _worlds.world(
            task.world,
            cli=" ".join(self._prefix),
            provider=PROVIDER_NAME,
            trap=f"{self._trap_origin}/t/{task.name}",
            signing=self.recorder.signing_headers,
        )
        capture = Capture(
            provider.app,
            self.recorder,
            refuse_credentials=answers.refuses_credentials,
            relocate=answers.authorization_redirect if task.world in _worlds.FORGED else None,
        )
        self._closing(provider_listener.serving(capture))
        world = TaskWorld(task, directory, state, provider, capture, answers)
        self._worlds[task.name] = world
        install_shims(world, self._prefix[0], self._shim_port, self.config.timeout)
        self._orchestrator(
            world,
            "init",
            "--profile",
            self.profile,
            "--issuer",
            core.issuer,
            "--provider",
            f"{PROVIDER_NAME}={provider.base_url}#{secret}",
        )
        return world

    def _orchestrator(self, world: TaskWorld, *arguments: str) -> tuple[int, str, str]:
        """Run the mock orchestrator CLI in-process on the task's state (side by side with
        other tasks; an unknown command or option is usage on stderr and exit 2, as the real
        CLI answers it)."""
        world.capture.orchestrator_busy += 1
        try:
            outcome = dispatch(arguments, state=world.state, session=self._sessions.here())
        finally:
            world.capture.orchestrator_busy -= 1
        return outcome.code, outcome.stdout, outcome.stderr

    def _shim_app(self) -> Starlette:
        async def cli(request: Request) -> Response:
            world = self._worlds.get(request.path_params["task"])
            try:
                argv = (await request.json())["argv"]
                if (
                    world is None
                    or not isinstance(argv, list)
                    or not all(isinstance(a, str) for a in argv)
                ):
                    raise ValueError
            except (ValueError, KeyError, TypeError):
                return JSONResponse({"stdout": "", "stderr": "bad stand-in request\n", "exit": 2})
            code, stdout, stderr = await asyncio.to_thread(self._answer, world, argv)
            return JSONResponse({"stdout": stdout, "stderr": stderr, "exit": code})

        async def launch(request: Request) -> Response:
            try:
                argv = (await request.json())["argv"]
            except (ValueError, KeyError, TypeError):
                argv = []
            launched = Launch(request.path_params["program"], [str(a) for a in argv])
            self._launches.setdefault(request.path_params["task"], []).append(launched)
            self._tell_human(self._worlds.get(request.path_params["task"]), launched, "launch")
            return JSONResponse({"stdout": "", "stderr": "", "exit": 0})

        return Starlette(
            routes=[
                Route("/cli/{task}", cli, methods=["POST"]),
                Route("/launch/{task}/{program}", launch, methods=["POST"]),
            ]
        )

    def _tell_human(self, world: TaskWorld | None, said: str | Launch, stream: str) -> None:
        """What the human of a consent world sees, from any thread: a line the agent printed,
        or a browser launcher opening what it was handed (AGT-CNS-004 judges the handing)."""
        if world is None or world.human is None or self._loop is None:
            return
        text = " ".join(said.argv) if isinstance(said, Launch) else said
        self._loop.call_soon_threadsafe(world.human.saw, text + "\n", stream)

    def _answer(self, world: TaskWorld, argv: list[str]) -> tuple[int, str, str]:
        started, clock = time.perf_counter(), world.clock.now()
        rest = self._prefix[1:]
        inner = argv[len(rest) :]
        if argv[: len(rest)] != rest:
            code, stdout, stderr = 2, "", f"unknown command: {' '.join(argv)[:200]}\n"
        elif any(a == "--state" or a.startswith("--state=") for a in argv):
            code, stdout, stderr = 2, "", "--state is not an option of this CLI\n"
        else:
            planted = world.answers.before(inner)
            if planted is not None:
                code, stdout, stderr = planted
            else:
                start = len(world.capture.requests)
                answer = self._orchestrator(world, *inner)
                sent = [
                    _worlds.Sent(
                        r.method, f"http://{r.headers.get('host', '')}{r.path}", r.headers, r.body
                    )
                    for r in world.capture.requests[start:]
                    if not r.by_agent and not r.by_human
                ]
                code, stdout, stderr = world.answers.after(inner, answer, sent)
        run = world.run
        known = [*(run.secrets if run is not None else []), *world.answers.planted]
        evidence = self.recorder.record_cli(
            [self._prefix[0], *(mask_values(argument, known) for argument in argv)],
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
                    inner,
                    code,
                    stdout,
                    envelope if isinstance(envelope, dict) else {},
                    evidence,
                    clock,
                    world.clock.now(),
                )
            )
        return code, stdout, stderr

    # --- tasks ---------------------------------------------------------------------------------
    def _prepare(self, task: AgentTask) -> tuple[TaskWorld, str]:
        world = self._world(task)
        email = f"agent-{task.name}-{secrets.token_hex(3)}@example.com"
        init = ["init", "--new-user", "--email", email, "--accept-tos"]
        if task.world == "no-payment-method":
            init.append("--no-payment-method")
        self._orchestrator(world, *init)
        if task.world == "existing-account" or task.oauth_resource:
            # the human's own account at the provider (for a consent world: the one they
            # sign in to when they approve)
            world.provider.state.create_account(email, origin="provider")
        if task.world == "cap-reached":
            self._orchestrator(world, "billing", "--provider", PROVIDER_NAME, "--limit", "0")
        return world, email

    def _catalog_as_shown(self, world: TaskWorld) -> list[dict[str, Any]]:
        """The catalog the way this world's stand-in shows it to the agent."""
        answer = world.answers.after(["catalog"], self._orchestrator(world, "catalog", "--json"))
        return catalog_entries(answer[1])

    def _held_secrets(self, world: TaskWorld) -> list[str]:
        return secret_values(self._orchestrator(world, "env", "--reveal", "--json")[1])

    def _argv(self) -> list[str]:
        if self.config.command is not None:
            return shlex.split(self.config.command)
        faults = [argument for name in self.config.faults for argument in ("--fault", name)]
        return [sys.executable, "-m", "mocks.agent", "--profile", self.profile, *faults]

    async def _in_thread(self, func: Callable[..., T], *args: Any) -> T:
        """Blocking work of one task, on a pool wide enough for every task at once (the
        default executor's few threads would queue whole tasks behind each other)."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, func, *args)

    def _run_mock_agent(self, world: TaskWorld) -> tuple[int, str]:
        """The embedded mock agent, in-process (see run_mock_agent)."""

        def runner(arguments: Sequence[str]) -> tuple[int, str]:
            code, stdout, _ = self._answer(world, [*self._prefix[1:], *arguments])
            return code, stdout

        def launched(launch: Launch) -> None:
            self._launches.setdefault(world.task.name, []).append(launch)
            self._tell_human(world, launch, "launch")

        def said(line: str) -> None:
            self._tell_human(world, f"agent: {line}", "out")

        return run_mock_agent(
            world,
            runner,
            profile=self.profile,
            faults=self.config.faults,
            timeout=self.config.timeout,
            launched=launched,
            said=said,
        )

    async def run_task(self, task: AgentTask) -> TaskRun:
        """Run the agent on one task (once per run; checks share the result)."""
        if task.name not in self._started:
            self._started[task.name] = asyncio.ensure_future(self._run_task(task))
        return await asyncio.shield(self._started[task.name])

    async def run_all(self) -> list[TaskRun]:
        """Every task, side by side: each has its own world, so none waits for another."""
        return list(await asyncio.gather(*(self.run_task(task) for task in self.tasks)))

    async def _run_task(self, task: AgentTask) -> TaskRun:
        world, email = await self._in_thread(self._prepare, task)
        catalog = await self._in_thread(self._catalog_as_shown, world)
        workdir = world.directory / "work"
        argv = self._argv()
        placeholder = CliCall(0, argv, None, "", "", 0.0)
        run = TaskRun(
            task,
            email,
            None,
            "",
            placeholder,
            catalog=catalog,
            catalog_services={
                f"{str(entry.get('provider_name', '')).lower()}/{entry.get('service_id', '')}"
                for entry in catalog
            },
            provider_base_url=world.provider.base_url,
        )
        world.run = run
        if task.oauth_resource:
            world.human = _worlds.Human(
                world.answers, world.provider.base_url + "oauth/authorize", email, self.recorder
            )
        assert self._trap is not None
        started = time.perf_counter()
        if self.config.command is None and self.config.in_process:
            argv = ["mocks.agent (in-process)", "--profile", self.profile, *argv[4:]]
            run.exit_code, text = await self._in_thread(self._run_mock_agent, world)
            out, err = text.encode(), b""
        else:
            try:
                process = await asyncio.create_subprocess_exec(
                    *argv,
                    cwd=workdir,
                    env=agent_environment(world, self._prefix, self.config.command is None),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                )
            except OSError as error:
                run.output = f"the agent command could not start: {error}"
                run.evidence = self.recorder.record_cli(argv, None, "", run.output, 0.0)
                self.runs[task.name] = run
                return run
            run.exit_code, out, err = await communicate(process, world.human, self.config.timeout)
        if world.human is not None:
            await world.human.settle()
        world.run = None
        run.secrets = await self._in_thread(self._held_secrets, world)
        run.shown = {kind: set(values) for kind, values in world.answers.shown.items()}
        run.authorization_responses = list(world.answers.authorization_responses)
        run.human_notes = list(world.answers.notes)
        masked = [*run.secrets, *run.planted]
        run.output = out.decode("utf-8", "replace") + err.decode("utf-8", "replace")
        run.evidence = self.recorder.record_cli(
            [*argv, f"# task {task.name}"],
            run.exit_code,
            mask_values(out.decode("utf-8", "replace"), masked),
            mask_values(err.decode("utf-8", "replace"), masked),
            (time.perf_counter() - started) * 1000,
        )
        run.provider_requests = list(world.capture.requests)
        run.trap_requests = [
            r for r in self._trap.requests if r.path.startswith(f"/t/{task.name}/")
        ]
        if run.planted:
            # What the agent sent on is recorded before anyone knew which values to mask.
            mask_exchanges(
                self.recorder,
                {r.exchange_id for r in [*run.provider_requests, *run.trap_requests]},
                run.planted,
            )
        run.launches = list(self._launches.get(task.name, []))
        run.files = files_left(world.directory, ("work", "home"))
        self.runs[task.name] = run
        return run


class AgentContext(CheckContext):
    def __init__(self, target: AgentTarget, check: Check) -> None:
        super().__init__(target.recorder, check)
        self.target = target
        self.profile = target.profile

    async def task(self, name: str) -> TaskRun:
        for task in self.target.tasks:
            if task.name == name:
                return await self.target.run_task(task)
        raise KeyError(name)

    async def every_task(self) -> Iterator[TaskRun]:
        return iter(await self.target.run_all())

    def exchange_of(self, request: ProviderRequest) -> list[Exchange]:
        return [e for e in self.recorder.exchanges if e.id == request.exchange_id]
