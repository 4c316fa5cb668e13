"""`mocks.orchestrator.dispatch`: the agent-facing CLI called in-process, as the embedded
orchestrator and the agent worlds call it (side by side, never printing, never exiting)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from mocks.hosting import ServedInThread
from mocks.orchestrator import (
    CliOutcome,
    CliSession,
    SessionPerThread,
    add_orchestrator_parser,
    dispatch,
)
from mocks.provider import ProviderMock, ProviderSettings


def _argparse_answer(argv: list[str]) -> tuple[int, str, str]:
    """What a plain argparse parser with the same commands prints and exits with (with
    `--version`, as `provspec`'s own parser has it: a usage line names it)."""
    parser = argparse.ArgumentParser(prog="provspec")
    parser.add_argument("--version", action="version", version="provspec")
    add_orchestrator_parser(parser.add_subparsers(dest="command", metavar="COMMAND"))
    out, err = io.StringIO(), io.StringIO()
    with (
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
        pytest.raises(SystemExit) as ended,
    ):
        parser.parse_args(["orchestrator", *argv])
    assert isinstance(ended.value.code, int)
    return ended.value.code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    "argv",
    [
        ["frobnicate"],
        ["add"],
        ["billing", "--limit", "ten"],
        ["env", "--no-such-option"],
        ["add", "--help"],
    ],
)
def test_usage_answers_as_argparse_prints_it(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state.db"
    outcome = dispatch(argv, state=state)
    code, stdout, stderr = _argparse_answer([*argv, "--state", str(state)])
    assert (outcome.code, outcome.stdout, outcome.stderr) == (code, stdout, stderr)
    assert outcome.code == (0 if "--help" in argv else 2)
    assert outcome.envelope is None
    assert capsys.readouterr() == ("", "")  # nothing reached the process's streams
    assert not state.exists()  # refused before the state was opened


def test_json_envelope_is_what_stdout_holds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state.db"
    refused = dispatch(["billing", "--json"], state=state)
    assert refused.code == 1
    assert refused.envelope is not None
    assert refused.envelope["error"]["code"] == "NOT_INITIALIZED"
    assert json.loads(refused.stdout) == refused.envelope

    init = dispatch(["init", "--profile", "app-0.1d", "--json"], state=state)
    assert init.code == 0, init.stderr
    assert init.envelope is not None
    assert init.envelope["ok"] is True
    assert init.envelope["command"] == "projects init"
    assert json.loads(init.stdout) == init.envelope

    human = dispatch(["billing"], state=state)
    assert human.code == 0
    assert human.envelope is None
    assert json.loads(human.stdout)["payment_method"] is True
    assert capsys.readouterr() == ("", "")


def test_unknown_profile_is_a_usage_error_not_an_exception(tmp_path: Path) -> None:
    outcome = dispatch(["init", "--profile", "no-such-profile"], state=tmp_path / "s.db")
    assert outcome.code == 2
    assert outcome.stderr.startswith("provspec: error: ")
    assert outcome.stdout == ""


def test_env_pull_writes_in_the_given_directory(tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    assert dispatch(["init", "--json"], state=state).code == 0
    work = tmp_path / "work"
    work.mkdir()
    pulled = dispatch(["env", "--pull", "--json"], state=state, cwd=work)
    assert pulled.code == 0, pulled.stderr
    assert pulled.envelope is not None
    assert pulled.envelope["data"]["path"] == str(work / ".env")
    assert (work / ".env").exists()


def test_threads_side_by_side_keep_their_own_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Several threads at once, each on its own state: every outcome holds its own command's
    answer only (no shared stdout to redirect, no lock queueing them)."""
    emails = [f"user{index}@example.com" for index in range(6)]
    start = threading.Barrier(len(emails) + 1)

    def run(email: str) -> tuple[CliOutcome, CliOutcome]:
        state = tmp_path / f"{email}.db"
        start.wait()
        init = dispatch(["init", "--email", email, "--json"], state=state)
        usage = dispatch(["add", "--json"], state=state)
        return init, usage

    def refuse() -> CliOutcome:
        start.wait()
        return dispatch(["frobnicate"], state=tmp_path / "unused.db")

    with ThreadPoolExecutor(max_workers=len(emails) + 1) as pool:
        answers = [pool.submit(run, email) for email in emails]
        refused = pool.submit(refuse)
        for email, future in zip(emails, answers, strict=True):
            init, usage = future.result()
            assert init.code == 0, init.stderr
            assert init.envelope is not None
            assert init.envelope["data"]["user"]["email"] == email
            assert init.stderr == ""
            assert (usage.code, usage.stdout) == (2, "")
            assert "the following arguments are required: PROVIDER/SERVICE" in usage.stderr
        assert refused.result().code == 2
        assert "invalid choice: 'frobnicate'" in refused.result().stderr
    assert capsys.readouterr() == ("", "")


class _Watched:
    """The provider's app behind a recorder of each request's connection (the client's
    port), path and Cookie header; every answer sets a cookie."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.seen: list[tuple[int, str, str | None]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        cookie = headers.get(b"cookie")
        self.seen.append((scope["client"][1], scope["path"], cookie.decode() if cookie else None))

        async def send_with_cookie(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message["headers"], (b"set-cookie", b"seen=1; Path=/")]
            await send(message)

        await self.app(scope, receive, send_with_cookie)


def test_a_session_keeps_its_connections_but_no_cookies_and_no_state(tmp_path: Path) -> None:
    """Commands in one CliSession reuse its connections to the provider, yet each starts
    without the cookies an earlier one was given (within a command its client keeps them,
    as without a session) and reads the state anew."""
    listener = ServedInThread()
    provider = ProviderMock(ProviderSettings(base_url=listener.origin + "/api/app/"))
    watched = _Watched(provider.app)
    state = tmp_path / "state.db"
    spec = f"provspecmock={provider.base_url}#{provider.settings.hmac_secret}"
    with listener.serving(watched), CliSession() as session:
        init = dispatch(["init", "--provider", spec, "--json"], state=state, session=session)
        assert init.code == 0, init.stdout + init.stderr
        for _ in range(2):
            listed = dispatch(["catalog", "--json"], state=state, session=session)
            assert listed.envelope is not None, listed.stdout
            assert listed.envelope["ok"], listed.stdout
        assert len(watched.seen) >= 4  # health and services, twice
        assert len({port for port, _, _ in watched.seen}) == 1  # one connection throughout
        firsts = [cookie for _, path, cookie in watched.seen if path.endswith("/health")]
        assert firsts == [None, None]  # each catalog command's first call
        assert "seen=1" in {cookie for _, _, cookie in watched.seen}
        # Written by another process between two commands of the session: seen at once.
        assert dispatch(["logout", "--json"], state=state).code == 0
        refused = dispatch(["catalog", "--json"], state=state, session=session)
        assert refused.envelope is not None
        assert refused.envelope["error"]["code"] == "JSON_REQUIRES_AUTH"
        # A state file removed since the last command is not read through a kept connection.
        for leftover in tmp_path.glob("state.db*"):
            leftover.unlink()
        anew = dispatch(["status", "--json"], state=state, session=session)
        assert anew.envelope is not None
        assert anew.envelope["error"]["code"] == "NOT_INITIALIZED"


def test_a_session_follows_settings_changed_between_its_commands(tmp_path: Path) -> None:
    """The orchestrator a session keeps is rebuilt when the state's settings change, here
    its faults, written by a command outside the session."""
    state = tmp_path / "state.db"
    with CliSession() as session:
        assert dispatch(["init", "--json"], state=state, session=session).code == 0
        before = dispatch(["env", "--json"], state=state, session=session).envelope
        assert before is not None
        assert isinstance(before["data"]["variables"], dict)
        changed = dispatch(["init", "--fault", "env-variables-as-list", "--json"], state=state)
        assert changed.code == 0, changed.stdout + changed.stderr
        after = dispatch(["env", "--json"], state=state, session=session).envelope
        assert after is not None
        assert isinstance(after["data"]["variables"], list)


def test_sessions_per_thread_are_one_per_thread_and_close_from_a_running_loop(
    tmp_path: Path,
) -> None:
    """SessionPerThread gives each thread its own session, the same one for each of its
    commands, and closes them all from anywhere, even a thread whose loop is running."""
    sessions = SessionPerThread()
    state = tmp_path / "state.db"
    assert dispatch(["init", "--json"], state=state, session=sessions.here()).code == 0
    mine = sessions.here()
    with ThreadPoolExecutor(max_workers=2) as pool:
        theirs = list(pool.map(lambda _: sessions.here(), range(8)))
        answered = pool.submit(
            lambda: dispatch(["status", "--json"], state=state, session=sessions.here())
        ).result()
    assert answered.code == 0, answered.stdout + answered.stderr
    assert sessions.here() is mine
    assert mine not in theirs
    assert 1 <= len({id(session) for session in theirs}) <= 2

    async def close_inside_a_loop() -> None:
        sessions.close()

    asyncio.run(close_inside_a_loop())
    assert sessions.here() is not mine  # closed and forgotten: a new one next time
    sessions.close()
