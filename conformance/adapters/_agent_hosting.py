"""Where one task of the agent run happens: the capture in front of a served mock, the
stand-ins put first on the agent's PATH, the task's clock and world, and reading a child
agent's output within its timeout."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from starlette.responses import JSONResponse

from conformance.adapters import _agent_worlds as _worlds
from conformance.adapters._agent_records import Launch, ProviderRequest, TaskRun
from conformance.adapters._agent_tasks import PROVIDER_NAME, AgentTask
from conformance.recorder import Recorder, RecordingASGI, mask_values
from mocks.agent import ScriptedAgent
from mocks.provider import ProviderMock
from wire.tls import tls_context

__all__ = [
    "LAUNCHERS",
    "SHIM",
    "Capture",
    "TaskClock",
    "TaskWorld",
    "agent_environment",
    "communicate",
    "files_left",
    "install_shims",
    "catalog_entries",
    "mask_exchanges",
    "run_mock_agent",
    "secret_values",
]


class Capture:
    """Requests reaching a served app, with raw query, headers and body; in a world where the
    credentials were revoked, the provider's API answers them 401; in a consent world, the
    Location of its answers is what `relocate` makes of it."""

    def __init__(
        self,
        app: Any,
        recorder: Recorder,
        *,
        refuse_credentials: bool = False,
        relocate: Callable[[str, str, int], str] | None = None,
    ) -> None:
        self._app = RecordingASGI(self._inner, recorder)
        self._wrapped = app
        self._refuse = refuse_credentials
        self._relocate = relocate
        self.requests: list[ProviderRequest] = []
        self.orchestrator_busy = 0
        """CLI calls in progress: requests then come from the orchestrator, not the agent."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self._app(scope, receive, send)

    async def _inner(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self._wrapped(scope, receive, send)
            return
        headers = {
            k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])
        }
        human = headers.get("user-agent") == _worlds.HUMAN_AGENT
        request = ProviderRequest(
            scope["method"],
            scope["path"],
            scope.get("query_string", b"").decode("latin-1"),
            headers,
            int(scope.get("provspec.exchange_id", 0)),
            by_agent=self.orchestrator_busy == 0 and not human,
            by_human=human,
        )
        self.requests.append(request)

        async def keep() -> Any:
            # Kept as it arrives: whoever sent it may read `requests` as soon as the answer
            # is out, before this handler has returned.
            message = await receive()
            if message.get("type") == "http.request":
                request.body += message.get("body", b"")
            return message

        relocate = self._relocate

        async def answer(message: Any) -> None:
            if relocate is not None and message.get("type") == "http.response.start":
                message = dict(message)
                message["headers"] = [
                    (
                        name,
                        relocate(request.path, value.decode("latin-1"), request.exchange_id).encode(
                            "latin-1"
                        )
                        if name.lower() == b"location"
                        else value,
                    )
                    for name, value in message.get("headers", [])
                ]
            await send(message)

        if (
            self._refuse
            and "authorization" in headers
            and not any(part in scope["path"] for part in _worlds.PROTOCOL_PATHS)
        ):
            await JSONResponse(
                {"error": "invalid_token", "error_description": "the credentials were revoked"},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )(scope, keep, answer)
        else:
            await self._wrapped(scope, keep, answer)


# Raw HTTP over a socket: urllib would cost the agent ~100 ms of imports per CLI call.
SHIM = """#!{python} -IS
# provspec's stand-in for `{program}`: forwards argv to the conformance run, replays its answer.
import json, socket, sys
body = json.dumps({{"argv": sys.argv[1:]}}).encode()
try:
    with socket.create_connection(("127.0.0.1", {port}), timeout={timeout}) as connection:
        connection.sendall(b"POST {path} HTTP/1.0\\r\\nContent-Type: application/json\\r\\n"
                           b"Content-Length: %d\\r\\n\\r\\n%s" % (len(body), body))
        raw = b""
        while chunk := connection.recv(65536):
            raw += chunk
    out = json.loads(raw.split(b"\\r\\n\\r\\n", 1)[1])
except Exception as error:
    sys.stderr.write("provspec stand-in: the conformance run is not answering: %s\\n" % error)
    sys.exit(70)
sys.stdout.write(out["stdout"])
sys.stderr.write(out["stderr"])
sys.exit(out["exit"])
"""

LAUNCHERS = (
    "open",
    "xdg-open",
    "sensible-browser",
    "x-www-browser",
    "www-browser",
    "gnome-open",
    "kde-open",
    "wslview",
)
"""Browser launchers the agent might hand a URL to (AGT-CNS-004); the stand-ins only record."""


class TaskClock:
    """The time one task's agent sees pass, which stamps its CLI calls (pacing, overlap).

    A real agent's waits are real: its clock is time.monotonic(). The embedded mock agent
    sleeps on this clock instead (between status checks of a pending resource), which skips
    ahead rather than waits: the clock runs at real time plus every second skipped, so the
    checks see the same gaps a real sleep leaves and the run does not sit them out."""

    def __init__(self) -> None:
        self._skipped = 0.0

    def now(self) -> float:
        return time.monotonic() + self._skipped

    def sleep(self, seconds: float) -> None:
        self._skipped += max(0.0, seconds)


@dataclass
class TaskWorld:
    task: AgentTask
    directory: Path
    state: Path
    provider: ProviderMock
    capture: Capture
    answers: _worlds.World
    run: TaskRun | None = None
    human: _worlds.Human | None = None
    clock: TaskClock = field(default_factory=TaskClock)


def install_shims(world: TaskWorld, program: str, port: int, timeout: float) -> None:
    """The orchestrator CLI stand-in and the browser launchers, first on the agent's PATH."""
    programs = {program: f"/cli/{world.task.name}"}
    programs.update({name: f"/launch/{world.task.name}/{name}" for name in LAUNCHERS})
    for name, path in programs.items():
        shim = world.directory / "bin" / name
        shim.write_text(
            SHIM.format(
                python=sys.executable,
                program=name,
                port=port,
                path=path,
                timeout=int(timeout),
            )
        )
        shim.chmod(0o755)


def agent_environment(world: TaskWorld, cli: Sequence[str], embedded: bool) -> dict[str, str]:
    """What the agent command runs with: PATH (the stand-ins first), HOME and the task."""
    task = world.task
    environment = {
        "PATH": os.pathsep.join([str(world.directory / "bin"), os.environ.get("PATH", os.defpath)]),
        "HOME": str(world.directory / "home"),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "PROVSPEC_TASK": task.instruction,
        "PROVSPEC_ORCHESTRATOR_CLI": " ".join(cli),
        "PROVSPEC_TASK_PROVIDER": PROVIDER_NAME,
        "PROVSPEC_TASK_SERVICE": task.service,
        "PROVSPEC_TASK_CATEGORY": task.category,
        "PROVSPEC_TASK_PAID_CONFIRMED": "1" if task.paid_confirmed else "0",
        "PROVSPEC_TASK_RESOURCE": world.provider.base_url if task.oauth_resource else "",
    }
    if embedded:
        # The embedded mock agent imports provspec from wherever this run imports it.
        environment["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return environment


async def communicate(
    process: asyncio.subprocess.Process, human: _worlds.Human | None, timeout: float
) -> tuple[int | None, bytes, bytes]:
    """The agent's exit code and output, read as it comes (the human of a consent world
    reads along), within the timeout; a stopped agent's output ends with a note saying so."""
    out, err = bytearray(), bytearray()

    async def pump(stream: asyncio.StreamReader | None, sink: bytearray, name: str) -> None:
        while stream is not None and (chunk := await stream.read(1 << 16)):
            sink.extend(chunk)
            if human is not None:
                human.saw(chunk, name)

    finished = asyncio.ensure_future(
        asyncio.gather(
            pump(process.stdout, out, "out"), pump(process.stderr, err, "err"), process.wait()
        )
    )
    try:
        await asyncio.wait_for(asyncio.shield(finished), timeout)
    except TimeoutError:
        process.kill()
        # Output still buffered in the pipes; a child the agent left holding them open
        # must not hold the run as well.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(finished, 5)
        err.extend(f"\n[provspec] the agent was stopped after {timeout:g} s".encode())
        return None, bytes(out), bytes(err)
    return process.returncode, bytes(out), bytes(err)


def mask_exchanges(recorder: Recorder, ids: set[int], values: set[str]) -> None:
    """Mask `values` in the recorded exchanges `ids` (recorded before anyone knew them)."""
    for exchange in recorder.exchanges:
        if exchange.id not in ids:
            continue
        exchange.url = mask_values(exchange.url, values)
        exchange.request_headers = {
            name: mask_values(value, values) for name, value in exchange.request_headers.items()
        }
        exchange.request_body = mask_values(exchange.request_body, values)
        exchange.response_body = mask_values(exchange.response_body, values)


def files_left(directory: Path, under: tuple[str, ...]) -> dict[str, str]:
    """Text of the files the agent wrote (up to 1 MiB each), except the orchestrator's .env."""
    found: dict[str, str] = {}
    for top in under:
        for path in sorted((directory / top).rglob("*")):
            if not path.is_file() or path.name == ".env" or path.stat().st_size > 1 << 20:
                continue
            found[str(path.relative_to(directory))] = path.read_bytes().decode("utf-8", "replace")
    return found


def run_mock_agent(
    world: TaskWorld,
    runner: Callable[[Sequence[str]], tuple[int, str]],
    *,
    profile: str,
    faults: Sequence[str],
    timeout: float,
    launched: Callable[[Launch], None],
    said: Callable[[str], None],
) -> tuple[int, str]:
    """The embedded mock agent, in-process: the same script `python -m mocks.agent` runs,
    with its CLI calls going straight to the stand-in (`runner`) instead of through a child
    process per call (the self-test runs it ~30 times; the subprocess path is tested on its
    own), and its waits on the task's clock. What it says reaches the human of a consent
    world as it says it (`said`). Its exit code and what it printed."""
    task = world.task

    def launcher(argv: Sequence[str]) -> None:
        launched(Launch(Path(argv[0]).name, [str(a) for a in argv[1:]]))

    clients: list[httpx.Client] = []

    def client() -> httpx.Client:
        # The process's one TLS context: a fresh one per client reads the CA bundle.
        clients.append(httpx.Client(timeout=timeout, verify=tls_context()))
        return clients[-1]

    agent = ScriptedAgent(
        runner,
        provider=PROVIDER_NAME,
        service=task.service or None,
        profile=profile,
        faults=faults,
        http=client,
        paid_confirmed=task.paid_confirmed,
        category=task.category,
        sleep=world.clock.sleep,
        launcher=launcher,
        workdir=world.directory / "work",
        resource=world.provider.base_url if task.oauth_resource else "",
        on_say=said,
    )
    try:
        result = agent.run()
    finally:
        for opened in clients:
            opened.close()
    return result.exit_code, "".join(f"agent: {line}\n" for line in result.transcript)


def catalog_entries(stdout: str) -> list[dict[str, Any]]:
    """The services of a catalog answer ([] when it is not one)."""
    try:
        document = json.loads(stdout)
        entries = (document.get("data") or {}).get("services") or []
    except (ValueError, AttributeError):
        return []
    return [entry for entry in entries if isinstance(entry, dict)]


def secret_values(stdout: str) -> list[str]:
    """The credential values of an `env --reveal` answer (not URLs, hosts or ids)."""
    try:
        variables = (json.loads(stdout).get("data") or {}).get("variables") or {}
    except (ValueError, AttributeError):
        return []
    return [
        value
        for name, value in variables.items()
        if isinstance(value, str) and not name.endswith(("_URL", "_HOST", "_ID"))
    ]
