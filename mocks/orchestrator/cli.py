"""`provspec orchestrator …`: the mock orchestrator's agent-facing CLI, and `dispatch`, the
same command called in-process.

It answers like the Stripe Projects CLI (wire-facts §1.1): with `--json`, one envelope
`{ok, command, version, data, warnings, next_steps, meta}` on stdout, and on failure
`ok: false` with `error: {code, message}`. The commands themselves are
mocks/orchestrator/_commands.py; this module parses, opens the state, runs one, prints. State (user, providers, connections, custody,
ledger, signing key) lives in the SQLite file `--state` / `$PROVSPEC_ORCHESTRATOR_STATE`,
shared with a served `provspec mock orchestrator --state` so that providers can fetch its
JWKS and redeem. Secret values are redacted by `env` unless `--reveal` is given.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import io
import os
import sys
import threading
import traceback
from collections.abc import Coroutine, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from gettext import gettext
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import httpx

from mocks._core.http import HTTPProblem
from mocks._core.network import DEFAULT_TIMEOUT
from mocks._core.pretty import indented
from mocks._core.store import SQLiteStore
from mocks.faults import FaultSet
from mocks.orchestrator._commands import HANDLERS, envelope
from mocks.orchestrator.app import OrchestratorMock, OrchestratorSettings
from mocks.orchestrator.engine import Orchestrator
from spec.schemas import default_store
from wire.errors import ProvspecError
from wire.ssrf import SSRFGuard
from wire.tls import tls_context

__all__ = [
    "CliOutcome",
    "CliSession",
    "SessionPerThread",
    "add_orchestrator_parser",
    "dispatch",
    "main",
]

STATE_ENV = "PROVSPEC_ORCHESTRATOR_STATE"

_Result = TypeVar("_Result")


@dataclass(frozen=True)
class CliOutcome:
    """What one CLI command answered: its exit code, its stdout and stderr text, and with
    `--json` the envelope it printed (None when stdout is not exactly that one document,
    e.g. when a fault prints stray text next to it, or without `--json`)."""

    code: int
    stdout: str
    stderr: str
    envelope: dict[str, Any] | None = None


class CliSession:
    """An event loop and an HTTP client kept across `dispatch` calls made from ONE thread.

    Without one, each command starts its own loop and client, and opens new connections to
    every provider it calls: a run of the embedded CLI pays that hundreds of times. Only
    connections are kept, to providers and to the state file (`store`): each command still
    reads the state anew (nothing is cached above SQLite) and starts with no cookies; the
    orchestrator object it acts through is kept while its settings stay (`orchestrator`).
    Idle connections are dropped after `KEEPALIVE_S`, well before a served
    mock (mocks.hosting, 5 s) closes them, so a command does not write to a closing socket.
    Close it when done, from the thread that used it or, once that thread is idle, any
    other thread whose own event loop is not running (`SessionPerThread.close` does that).
    """

    KEEPALIVE_S = 1.0

    def __init__(self, *, mounts: Mapping[str, httpx.AsyncBaseTransport] | None = None) -> None:
        """`mounts`: transports by origin for the session's client (httpx `mounts`), e.g. to
        reach providers served in this process without a socket; other origins go over the
        network as a process's CLI would."""
        self._runner = asyncio.Runner()
        self._mounts = dict(mounts or {})
        self._http: httpx.AsyncClient | None = None
        self._stores: dict[str, tuple[tuple[int, int], SQLiteStore]] = {}
        self._core: tuple[_CoreKey, OrchestratorMock] | None = None

    def store(self, path: str) -> SQLiteStore:
        """The state file at `path`, its connection kept open across commands. Nothing is
        cached above SQLite (autocommit, WAL): every read sees the last commit, whoever
        wrote it. A file replaced or removed since is opened anew."""
        opened = self._stores.get(path)
        try:
            found = os.stat(path)
            identity: tuple[int, int] | None = (found.st_dev, found.st_ino)
        except FileNotFoundError:
            identity = None
        if opened is not None and opened[0] == identity:
            return opened[1]
        if opened is not None:
            opened[1].close()
        store = SQLiteStore(path)
        found = os.stat(path)
        self._stores[path] = ((found.st_dev, found.st_ino), store)
        return store

    def http(self) -> httpx.AsyncClient:
        """The kept client (made on first use, inside the session's loop); no cookies."""
        if self._http is None:
            self._http = _new_client(self._mounts)
        self._http.cookies.clear()  # a command starts as a new process would
        return self._http

    def orchestrator(self, key: _CoreKey) -> OrchestratorMock:
        """The orchestrator the CLI acts through, for (state, profile, issuer, faults): kept
        while those stay (a profile, draft or not, is loaded once per process anyway). What
        the CLI uses of it holds no state of its own: its store is the state, its signing key
        is made once per state file and never replaced."""
        if self._core is not None and self._core[0] == key:
            return self._core[1]
        core = _orchestrator(key)
        self._core = (key, core)
        return core

    def run(self, work: Coroutine[Any, Any, _Result]) -> _Result:
        return self._runner.run(work)

    def close(self) -> None:
        try:
            for _, store in self._stores.values():
                store.close()
            self._stores.clear()
            if self._http is not None:
                self._runner.run(self._http.aclose())
                self._http = None
        finally:
            self._runner.close()

    def __enter__(self) -> CliSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SessionPerThread:
    """A `CliSession` for each thread that dispatches commands (a session is only used from
    the thread that made it): callers on a pool of threads, side by side, each keep their
    loop, client and state connections across commands. `close` when no thread uses them
    any more (from any thread)."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._made: list[CliSession] = []
        self._lock = threading.Lock()

    def here(self) -> CliSession:
        """This thread's session (made on its first command)."""
        session: CliSession | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = CliSession()
            with self._lock:
                self._made.append(session)
        return session

    def close(self) -> None:
        with self._lock:
            made, self._made = self._made, []
        self._local = threading.local()
        if not made:
            return
        # On threads of their own: a session runs its loop to close, which cannot happen
        # on a thread whose loop is running (the caller's may be).
        with ThreadPoolExecutor(max_workers=len(made)) as closer:
            for closing in [closer.submit(session.close) for session in made]:
                closing.result()


_CoreKey = tuple[SQLiteStore, str, str, tuple[str, ...]]
"""What an orchestrator for the CLI is built of: the state, profile, issuer and faults."""


def _orchestrator(key: _CoreKey) -> OrchestratorMock:
    store, profile, issuer, faults = key
    return OrchestratorMock(
        OrchestratorSettings(profile=profile, issuer=issuer, faults=faults, store=store)
    )


def _new_client(mounts: Mapping[str, httpx.AsyncBaseTransport] | None = None) -> httpx.AsyncClient:
    limits = httpx.Limits(
        max_connections=100, max_keepalive_connections=20, keepalive_expiry=CliSession.KEEPALIVE_S
    )
    return httpx.AsyncClient(
        timeout=DEFAULT_TIMEOUT,
        follow_redirects=False,
        verify=tls_context(),
        limits=limits,
        mounts=dict(mounts or {}),
    )


def dispatch(
    argv: Sequence[str],
    *,
    state: Path,
    cwd: Path | None = None,
    session: CliSession | None = None,
) -> CliOutcome:
    """Run `provspec orchestrator ARGV --state STATE` in this process, as the CLI would.

    Nothing is written to `sys.stdout` / `sys.stderr` and no `SystemExit` escapes: a usage
    error is code 2 with argparse's usage text on stderr, `--help` code 0 with the help on
    stdout, exactly what the command prints. Safe to call from several threads at once:
    each call has its own buffers, event loop and state connection, and the parser is
    built once per process and only read. `cwd` is the directory the command runs in
    (where `env --pull` writes and a relative state path is found); default the process's.
    `session`: a loop and client to reuse (only ever from the thread that made it); without
    one the command makes and closes its own.
    """
    here = Path.cwd() if cwd is None else cwd
    try:
        args = _parser().parse_args(["orchestrator", *argv, "--state", str(state)])
    except _ParserExit as ended:
        return CliOutcome(ended.code, ended.stdout, ended.stderr)
    try:
        return _execute(args, here, session)
    except ProvspecError as error:  # as `provspec` itself answers it: message, no traceback
        return CliOutcome(error.exit_code, "", f"provspec: error: {error}\n")


class _ParserExit(Exception):
    """argparse's exit (usage error, --help) as a value instead of output and SystemExit."""

    def __init__(self, code: int, *, stdout: str = "", stderr: str = "") -> None:
        super().__init__(code)
        self.code, self.stdout, self.stderr = code, stdout, stderr


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises what it would print; its subparsers are of its kind."""

    def error(self, message: str) -> NoReturn:
        # The same text argparse writes: the usage, then "PROG: error: MESSAGE".
        usage = self.format_usage()
        text = gettext("%(prog)s: error: %(message)s\n") % {"prog": self.prog, "message": message}
        raise _ParserExit(2, stderr=usage + text)

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        raise _ParserExit(status, stderr=message or "")

    def print_help(self, file: Any = None) -> None:
        if file is not None:
            super().print_help(file)
            return
        # Only --help asks for help on stdout, and exits right after.
        raise _ParserExit(0, stdout=self.format_help())


@functools.cache
def _parser() -> argparse.ArgumentParser:
    # Built once per process (building it, help texts and all, costs more than a command);
    # parse_args only reads it, so threads share it.
    parser = _Parser(prog="provspec")
    # As `provspec`'s own parser has it, so a usage error names the same usage line
    # (`provspec --version` itself is answered by the suite's CLI, never here).
    parser.add_argument("--version", action="version", version="provspec")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_orchestrator_parser(commands)
    return parser


def add_orchestrator_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "orchestrator",
        help="the mock orchestrator's agent-facing CLI (Stripe Projects style)",
        description="Drive the mock orchestrator as an agent would. State lives in --state or "
        f"${STATE_ENV} (default .provspec/orchestrator.db).",
    )
    sub = parser.add_subparsers(dest="orchestrator_command", metavar="COMMAND", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        child: argparse.ArgumentParser = sub.add_parser(name, help=help_text)
        child.add_argument("--json", action="store_true", help="print the JSON envelope")
        child.add_argument(
            "--state", help=f"state file (default ${STATE_ENV} or .provspec/orchestrator.db)"
        )
        return child

    init = command("init", "set up the user, the providers and the profile")
    init.add_argument(
        "--provider", action="append", default=[], metavar="NAME=BASE_URL[#HMAC_SECRET]"
    )
    init.add_argument("--email", default="dev@example.com")
    init.add_argument(
        "--new-user", action="store_true", help="start over as a new user (new opaque id)"
    )
    init.add_argument("--no-payment-method", action="store_true")
    init.add_argument(
        "--email-unverified",
        action="store_true",
        help="the user's email is not verified yet (attestations say email_verified false)",
    )
    init.add_argument(
        "--accept-tos",
        action="store_true",
        help="the human accepts every configured provider's terms",
    )
    init.add_argument(
        "--profile", default=None, help="app-0.1d, app-next or a draft profile's directory"
    )
    init.add_argument("--issuer", help="the served mock orchestrator's issuer URL (app-next)")
    init.add_argument("--fault", action="append", default=[], metavar="NAME")
    init.add_argument(
        "--token-amount",
        choices=("price", "remaining"),
        help="what a payment token for a price the catalog states allows: that price (the "
        "default) or the whole remaining cap; both follow ORC-PAY-001 and ORC-PAY-015",
    )
    catalog = command("catalog", "list every provider's services")
    catalog.add_argument("provider", nargs="?")
    add = command("add", "provision PROVIDER/SERVICE")
    add.add_argument("reference", metavar="PROVIDER/SERVICE")
    add.add_argument("--name")
    add.add_argument("--config", help="configuration as a JSON object")
    add.add_argument("--confirm-paid-service", action="store_true")
    add.add_argument("--accept-tos", action="store_true")
    add.add_argument("--yes", action="store_true")
    command("status", "list provisioned resources (asking providers about unfinished ones)")
    remove = command("remove", "deprovision a resource at its provider")
    remove.add_argument("resource", metavar="NAME", help="the resource's name")
    remove.add_argument("--yes", action="store_true", help="confirm removing it")
    remove.add_argument("--force", action="store_true")
    env = command("env", "credentials as environment variables (values redacted)")
    env.add_argument("--reveal", action="store_true", help="print secret values")
    env.add_argument("--pull", action="store_true", help="write the values to ./.env (mode 600)")
    billing = command("billing", "show or set the monthly spend limit per provider")
    billing.add_argument("--provider")
    billing.add_argument("--limit", type=int, help="new monthly limit in minor units")
    billing.add_argument("--add-payment-method", action="store_true")
    revoke = command("revoke", "revoke the credentials held for a provider")
    revoke.add_argument("provider", nargs="?", help="the provider (omit with --all)")
    revoke.add_argument("--all", action="store_true", help="revoke at every connected provider")
    command("logout", "sign the user out (every other command but init then refuses)")
    parser.set_defaults(handler=run)


def main(argv: Sequence[str]) -> int:
    """`provspec orchestrator ARGV` as its own process: what `provspec` prints for it (the
    answer, a usage error, the help) and its exit status, without loading the suite (the
    `provspec` entry point sends the command here: an agent or a run calls it once per
    command)."""
    try:
        args = _parser().parse_args(["orchestrator", *argv])
    except _ParserExit as ended:
        sys.stdout.write(ended.stdout)
        sys.stderr.write(ended.stderr)
        return ended.code
    try:
        return run(args)
    except ProvspecError as error:
        sys.stderr.write(f"provspec: error: {error}\n")
        return error.exit_code
    except BrokenPipeError:  # e.g. `provspec orchestrator catalog --json | head`
        return 0


def run(args: argparse.Namespace) -> int:
    """`provspec orchestrator …` from the command line: the outcome on the real streams."""
    outcome = _execute(args, Path.cwd())
    sys.stdout.write(outcome.stdout)
    sys.stderr.write(outcome.stderr)
    return outcome.code


def _execute(args: argparse.Namespace, cwd: Path, session: CliSession | None = None) -> CliOutcome:
    command = args.orchestrator_command
    args.cwd = cwd
    # What the command prints on the way (faults' stray lines) goes to these, in order.
    args.out, args.err = io.StringIO(), io.StringIO()
    args.fault_set = None  # the state's FaultSet, set by _dispatch once the state is read
    try:
        work = _dispatch(args, session)
        document, code = asyncio.run(work) if session is None else session.run(work)
    except HTTPProblem as problem:
        faults: FaultSet | None = args.fault_set
        if (
            problem.code == "PROVIDER_ERROR"
            and faults is not None
            and faults.active("traceback-on-provider-error")
        ):
            args.err.write(traceback.format_exc())  # the "debug" build left in
        document, code = (
            envelope(
                command,
                False,
                None,
                error={"code": problem.code, "message": problem.message, **_details(problem)},
                authenticated=problem.code != "JSON_REQUIRES_AUTH",
            ),
            1,
        )
    except (httpx.HTTPError, OSError) as error:
        document, code = (
            envelope(
                command, False, None, error={"code": "NETWORK_ERROR", "message": str(error)[:300]}
            ),
            1,
        )
    printed = None
    if args.json:
        if not args.out.tell():
            printed = document  # stdout holds this document and nothing else
        args.out.write(indented(document) + "\n")
    else:
        _human(document, args.out, args.err)
    return CliOutcome(code, args.out.getvalue(), args.err.getvalue(), printed)


def _details(problem: HTTPProblem) -> dict[str, Any]:
    details = problem.extra.get("details")
    return {"details": details} if isinstance(details, dict) else {}


def _human(document: dict[str, Any], out: io.StringIO, err: io.StringIO) -> None:
    if not document["ok"]:
        print(f"error: {document['error']['code']}: {document['error']['message']}", file=err)
        return
    print(indented(document["data"]), file=out)
    for step in document["next_steps"]:
        print(f"next: {step}", file=out)


async def _dispatch(
    args: argparse.Namespace, session: CliSession | None
) -> tuple[dict[str, Any], int]:
    path = args.state or os.environ.get(STATE_ENV) or os.path.join(".provspec", "orchestrator.db")
    path = os.path.join(args.cwd, path)  # a relative path is the command's directory's
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    store = SQLiteStore(path) if session is None else session.store(os.path.abspath(path))
    try:
        config = dict(store.items("config"))
        if args.orchestrator_command == "init":
            profile = args.profile or config.get("profile") or "app-0.1d"
            config["profile"] = default_store().profile(profile).spec  # a draft: its path
            config["issuer"] = args.issuer or config.get("issuer") or "http://127.0.0.1:8401"
            config["faults"] = args.fault or config.get("faults") or []
            config["token_amount"] = args.token_amount or config.get("token_amount") or "price"
            for key, value in config.items():
                store.put("config", key, value)
        if "profile" not in config:
            raise HTTPProblem(400, "NOT_INITIALIZED", "run `provspec orchestrator init` first")
        built_of = (store, config["profile"], config["issuer"], tuple(config.get("faults") or ()))
        core = _orchestrator(built_of) if session is None else session.orchestrator(built_of)
        args.fault_set = core.faults
        command = args.orchestrator_command
        if command == "init":
            store.put("config", "signed_in", True)
        elif command == "logout":
            store.put("config", "signed_in", False)
            return envelope("logout", True, {"signed_in": False}, authenticated=False), 0
        elif config.get("signed_in") is False and not core.faults.active("signed-out-still-calls"):
            # ORC-ATT-015: nobody to attest for, so no provider is called at all.
            raise HTTPProblem(
                401,
                "JSON_REQUIRES_AUTH",
                "no user is signed in: the human must sign in (provspec orchestrator init)",
            )
        core.settings.ssrf = SSRFGuard(allow_loopback=True)
        if session is not None:
            return await _handle(core, session.http(), args)
        async with _new_client() as http:
            return await _handle(core, http, args)
    finally:
        if session is None:
            store.close()


async def _handle(
    core: OrchestratorMock, http: httpx.AsyncClient, args: argparse.Namespace
) -> tuple[dict[str, Any], int]:
    orchestrator = Orchestrator(core, http, auto_consent=False)
    orchestrator.strict_answers = True
    return await HANDLERS[args.orchestrator_command](orchestrator, args)
