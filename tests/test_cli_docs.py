"""One CLI, consistent: the README's command list and every --help agree with the parser (a
test fails when they drift), one default profile, no options of another role, config
mistakes named with a suggestion, failure text never cut mid-word, progress while a step is
long, selftest columns that stay apart."""

from __future__ import annotations

import argparse
import io
import re
import time
from pathlib import Path
from typing import Any

import pytest

from conformance._cli_run import Heartbeat, SelftestColumns, clip, exit_codes_text
from conformance.cli import _parser, main
from conformance.results import EXIT_CODES
from spec.profiles import DEFAULT_PROFILE

README = Path(__file__).resolve().parent.parent / "README.md"
OPTION = re.compile(r"--[a-z][a-z0-9-]*")


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(actions[0].choices) if actions else {}


def leaves(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> dict[tuple[str, ...], argparse.ArgumentParser]:
    children = subcommands(parser)
    if not children:
        return {path: parser}
    found: dict[tuple[str, ...], argparse.ArgumentParser] = {}
    for name, child in children.items():
        found |= leaves(child, (*path, name))
    return found


def options(parser: argparse.ArgumentParser) -> set[str]:
    return {
        name
        for action in parser._actions
        for name in action.option_strings
        if name.startswith("--") and name != "--help"
    }


def readme_commands() -> list[tuple[tuple[str, ...], str]]:
    """(command path, its text) for every `provspec …` line of the README's command blocks
    (Commands and Mocks), continuation lines joined, `a · b` split, `x|y` expanded."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Commands") : text.index("## What is where")]
    blocks = re.findall(r"```(?:sh)?\n(.*?)```", section, flags=re.S)
    entries: list[str] = []
    for block in blocks:
        for line in block.splitlines():
            if line.startswith("provspec "):
                entries.extend(part.strip() for part in line.split(" · "))
            elif line.startswith(" ") and entries:
                entries[-1] += " " + line.strip()
    parser = _parser()
    found: list[tuple[tuple[str, ...], str]] = []
    for entry in entries:
        paths: list[tuple[tuple[str, ...], argparse.ArgumentParser]] = [((), parser)]
        for word in entry.split()[1:]:
            names = word.split("|")
            children = subcommands(paths[0][1])
            if not children or not all(name in children for name in names):
                break
            paths = [
                ((*path, name), subcommands(node)[name]) for path, node in paths for name in names
            ]
        found.extend((path, entry) for path, _ in paths)
    return found


def test_every_option_the_readme_lists_exists() -> None:
    parser = _parser()
    commands = leaves(parser)
    for path, text in readme_commands():
        node = parser
        for name in path:
            node = subcommands(node)[name]
        unknown = set(OPTION.findall(text)) - options(node)
        assert not unknown, f"README lists {sorted(unknown)} for provspec {' '.join(path)}"
        assert path in commands or subcommands(node), path


def test_every_command_and_option_of_the_parser_is_in_the_readme() -> None:
    documented: dict[tuple[str, ...], set[str]] = {}
    for path, text in readme_commands():
        listed = set(OPTION.findall(text))
        if "run options" in text:
            listed |= options(subcommands(_parser())["run"])
        if "…" in text.split("--json")[0] and path[:1] == ("orchestrator",):
            continue  # the mock orchestrator CLI: its per-command options are its own help's
        documented.setdefault(path, set()).update(listed)
    for path, parser in leaves(_parser()).items():
        if path[:1] == ("orchestrator",):
            continue
        assert path in documented, f"provspec {' '.join(path)} is not in README's Commands"
        missing = options(parser) - documented[path]
        assert not missing, f"README's provspec {' '.join(path)} lacks {sorted(missing)}"


def test_the_readme_exit_code_table_is_the_one_the_code_uses() -> None:
    text = README.read_text(encoding="utf-8")
    table = text[text.index("### Verdicts and exit codes") :]
    rows = re.findall(r"^\| (\d) \| ([A-Z—-]+) \|", table, flags=re.M)[: len(EXIT_CODES)]
    assert [(int(code), word) for code, word in rows] == [
        (code, "—" if word == "-" else word) for code, word, _ in EXIT_CODES
    ]
    run_help = subcommands(_parser())["run"].description or ""
    assert exit_codes_text() in run_help


def test_one_default_profile_for_every_command_and_help_says_it() -> None:
    for path, parser in leaves(_parser()).items():
        for action in parser._actions:
            if "--profile" not in action.option_strings or path[:1] == ("orchestrator",):
                continue
            if isinstance(action, argparse._AppendAction) or path == ("requirements",):
                assert action.default is None  # every profile
                continue
            if path in (("run",), ("baseline", "write")):
                assert action.default is None  # the role decides: resource-server: rfc9728
            else:
                assert action.default == DEFAULT_PROFILE, path
            assert f"default: {DEFAULT_PROFILE}" in (action.help or ""), path
    top = _parser().format_help()
    assert f"defaults to {DEFAULT_PROFILE}" in top
    assert "today: a provider" not in top


def test_run_help_names_every_role(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.strip().startswith("run "))
    for role in ("provider", "orchestrator", "agent", "resource server"):
        assert role in line


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--role", "provider", "--agent-cmd", "x"], "--agent-cmd is for --role agent"),
        (["--role", "agent", "--orchestrator-cli", "x"], "--orchestrator-cli is for --role orch"),
        (["--role", "orchestrator", "--fuzz-examples", "3"], "--fuzz-examples is for --role prov"),
        (["--role", "agent", "--target", "http://x.test/"], "--target is for --role provider or"),
    ],
)
def test_options_of_another_role_are_refused(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", *argv]) == 2
    assert said in capsys.readouterr().err


@pytest.mark.parametrize(
    ("toml", "said"),
    [
        ('[run]\nrole = "provder"\n', "run.role 'provder' is not a role (did you mean provider?)"),
        ("[provder]\n", "unknown section [provder] (did you mean provider?)"),
        ('[provider]\ntarge = "x"\n', "unknown key provider.targe (did you mean target?)"),
        (
            '[provider]\nhmac_secret = "whsec_x"\n',
            "provider.hmac_secret: a secret does not belong in the config file",
        ),
        ('[resource_server]\nclient_secret = "s"\n', "client_secret_env"),
        ("[run]\nstrict = 1\n", "run.strict must be true or false"),
    ],
    ids=["role", "section", "key", "hmac-secret", "client-secret", "strict"],
)
def test_config_mistakes_are_named_with_a_suggestion_and_exit_2(
    toml: str, said: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "provspec.toml"
    config.write_text(toml)
    assert main(["run", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert said in err
    assert "Traceback" not in err


def test_a_secret_in_the_config_names_the_variable_to_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "provspec.toml"
    config.write_text('[provider]\nhmac_secret = "whsec_x"\n')
    assert main(["run", "--config", str(config)]) == 2
    assert "export it as $PROVSPEC_HMAC_SECRET" in capsys.readouterr().err


@pytest.mark.parametrize("width", [10, 40, 80, 300])
def test_failure_text_is_never_cut_mid_word(width: int) -> None:
    text = "an account request with code_challenge_method plain must get 400, got 401 " * 6
    shown = clip(text, width)
    assert len(shown) <= width
    if shown != text:
        assert shown.endswith("…")
        kept = shown[:-1]
        assert text.startswith(kept)
        assert text[len(kept)] in " ,;:"


def test_the_heartbeat_speaks_whenever_the_run_is_silent() -> None:
    stream = io.StringIO()
    heartbeat = Heartbeat(stream, every=0.2)
    with heartbeat.running():
        heartbeat.doing("setting up the orchestrator's world")
        time.sleep(0.7)
        heartbeat.say("  ok    ORC-DSC-001")
        time.sleep(0.1)
    lines = stream.getvalue().splitlines()
    beats = [line for line in lines if "setting up the orchestrator's world" in line]
    assert len(beats) >= 2
    assert lines[-1] == "  ok    ORC-DSC-001"  # a line of its own resets the silence


def test_a_long_check_gets_progress_lines(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A check that blocks for 2.5 s (as a slow orchestrator CLI does) is not silent."""
    import dataclasses

    from conformance import checks as checks_module
    from conformance.checks import all_checks

    name = "discovery.health_lists_the_profile_version"
    original = next(c for c in all_checks() if c.name == name)

    async def slow(ctx: Any) -> None:
        time.sleep(2.5)  # blocking on purpose, as a slow CLI subprocess blocks the loop
        await original.func(ctx)

    monkeypatch.setitem(checks_module._CHECKS, name, dataclasses.replace(original, func=slow))
    main(["run", "--requirement", "PRV-DSC-001", "--report-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert re.search(rf"…  discovery: {re.escape(name)} \(\d s\)", out)


def test_selftest_columns_stay_apart_on_long_profile_names() -> None:
    from mocks.faults import catalogue

    profile = "./drafts/a-very-long-draft-profile-directory-name"
    columns = SelftestColumns.fitting(("app-0.1d", profile), catalogue().values())
    fault = max(catalogue().values(), key=lambda f: len(f.name))
    line = columns.line(fault.mock, fault.name, profile, "PRV-ATT-001, PRV-ATT-002", "ok")
    assert re.split(r"\s{2,}", line.strip()) == [
        fault.mock,
        fault.name,
        profile,
        "PRV-ATT-001, PRV-ATT-002",
        "ok",
    ]
    header = columns.line("mock", "fault", "profile", "expected", "result")
    assert header.index("profile") == line.index(profile)
