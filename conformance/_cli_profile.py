"""`provspec profile new|check|diff` and `provspec examples`: the spec author's commands."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from spec._resources import data_dir
from spec.drafts.diff import diff
from spec.drafts.examples import find_examples
from spec.drafts.lint import builtin_at, check_directory
from spec.drafts.locate import offset_line
from spec.profiles import DEFAULT_PROFILE, PARAMETER_DOCS
from spec.schemas import default_store
from wire import strictjson
from wire.errors import UsageError

__all__ = ["add_profile_parsers"]


def add_profile_parsers(commands: Any) -> None:
    profile = commands.add_parser(
        "profile",
        help="scaffold, check or compare profiles (spec authors)",
        description="A profile is a directory: profile.toml (base, parameters, requirement "
        "changes) and the message schemas it adds or overrides. See schemas/README.md.",
    )
    actions = profile.add_subparsers(dest="profile_command", metavar="ACTION", required=True)
    new = actions.add_parser("new", help="scaffold a draft profile directory")
    new.add_argument("path", type=Path, help="the directory to create, e.g. ./my-draft")
    new.add_argument(
        "--from",
        dest="base",
        default=DEFAULT_PROFILE,
        help=f"base profile (default: {DEFAULT_PROFILE})",
    )
    new.set_defaults(handler=_new)
    check = actions.add_parser("check", help="validate a draft's manifest, schemas and consistency")
    check.add_argument("path", type=Path, help="the draft profile's directory")
    check.set_defaults(handler=_check)
    compare = actions.add_parser("diff", help="what changes from profile A to profile B")
    compare.add_argument("a", help="profile name or directory")
    compare.add_argument("b", help="profile name or directory")
    compare.add_argument(
        "--format", choices=("text", "markdown"), default="text", dest="output_format"
    )
    compare.set_defaults(handler=_diff)

    examples = commands.add_parser(
        "examples",
        help="validate the JSON examples of a Markdown draft",
        description="Find the fenced blocks tagged ```json app:<message> in a Markdown file, "
        "validate each against its message schema, and report file:line for every failure.",
    )
    examples.add_argument("file", type=Path, help="the Markdown draft")
    examples.add_argument(
        "--profile",
        default=DEFAULT_PROFILE,
        help=f"profile name or directory (default: {DEFAULT_PROFILE})",
    )
    examples.add_argument("--strict", action="store_true", help="report unmodelled members too")
    examples.set_defaults(handler=_examples)


def _new(args: argparse.Namespace) -> int:
    path: Path = args.path
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise UsageError(f"{path} exists and is not empty; choose a new directory")
    store = default_store()
    base = store.profile(args.base)
    name = path.resolve().name
    base_ref = base.name if base.builtin else os.path.relpath(base.spec, path.resolve())
    if name == base.name or name in store.profiles():
        raise UsageError(f"{path}: a draft needs a name of its own, not {name!r}")
    params = base.params
    cap = params.default_cap
    lines = [
        f"# Draft profile {name!r}, based on {base.name}. Manifest format: provspec's",
        '# schemas/README.md ("Profile manifest"). Check it with',
        f"#   provspec profile check {path}",
        "# and see what it changes with",
        f"#   provspec profile diff {base.name} {path}",
        "#",
        "# Schemas: put <message>.schema.json files in this directory to add a message or",
        f'# override {base.name}\'s; each has "$id": ',
        f'#   "https://provspec.invalid/schemas/{name}/<message>.schema.json"',
        f'name = "{name}"',
        f'title = "{name} (draft based on {base.name})"',
        f'base = "{base_ref}"',
        f'api_version = "{base.api_version}"   # the wire version string',
        "",
        "# Every parameter is inherited from the base; uncomment one to change it.",
        "[parameters]",
    ]
    for key in PARAMETER_DOCS:
        value = getattr(params, key)
        if key in ("default_cap", "error_codes"):
            continue
        shown = (
            "[" + ", ".join(f'"{item}"' for item in value) + "]"
            if isinstance(value, tuple)
            else f'"{value}"'
            if isinstance(value, str)
            else str(value)
        )
        lines.append(f"# {key} = {shown:<24} # {PARAMETER_DOCS[key]}")
    lines += [
        "",
        f"# {PARAMETER_DOCS['default_cap']}",
        "[parameters.default_cap]",
        f"# limit = {cap.limit}",
        f'# currency = "{cap.currency}"',
        f'# interval = "{cap.interval}"',
        "",
        f"# {PARAMETER_DOCS['error_codes']}",
        "[parameters.error_codes]",
    ]
    for condition, code in params.error_codes.items():
        lines.append(
            f'# {condition} = {{ code = "{code.code}", status = {code.status}, '
            f'envelope = "{code.envelope}" }}'
        )
    lines += [
        "",
        f"# Requirement changes against {base.name}'s set (`provspec requirements --profile "
        f"{base.name}`).",
        "[requirements]",
        '# drop = ["PRV-ATT-003"]',
        '# level = { "PRV-ATT-010" = "SHOULD" }',
        "# [[requirements.add]]",
        '# id = "PRV-ATT-901"',
        '# level = "MUST"',
        '# role = "provider"',
        '# step = "attestation"',
        '# text = "The provider rejects an attestation without the tenant claim with 401."',
        '# source = "project decision: the draft scopes accounts to a tenant"',
        "",
    ]
    path.mkdir(parents=True, exist_ok=True)
    (path / "profile.toml").write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {path / 'profile.toml'} (draft {name!r}, based on {base.name})")
    print(f"next: edit it, add schemas, then `provspec profile check {path}`")
    return 0


def _check(args: argparse.Namespace) -> int:
    path: Path = args.path
    if not path.is_dir() and str(path) in default_store().profiles():
        path = Path(str(data_dir("schemas"))) / str(path)  # a built-in, by name
    if not path.is_dir():
        raise UsageError(
            f"{path} is neither a profile directory nor a built-in profile "
            f"({', '.join(default_store().profiles())})"
        )
    problems = check_directory(path)
    if problems:
        print(f"{path}: {len(problems)} problem(s)")
        for problem in problems:
            print(f"  {problem}")
        return 1
    spec = default_store().profile(builtin_at(path) or str(path))
    own = default_store().own_messages(spec.name)
    print(
        f"{path}: ok: profile {spec.name!r} (base {spec.base}, family {spec.family}), "
        f"{len(own)} schema(s) of its own, parameters complete"
    )
    return 0


def _diff(args: argparse.Namespace) -> int:
    result = diff(args.a, args.b)
    sys.stdout.write(result.markdown() if args.output_format == "markdown" else result.text())
    return 0


def _examples(args: argparse.Namespace) -> int:
    file: Path = args.file
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"cannot read {file}: {error}") from None
    store = default_store()
    profile = store.profile(args.profile).name
    messages = set(store.messages(profile))
    examples = find_examples(text)
    if not examples:
        print(f"{file}: no examples tagged ```json app:<message>", file=sys.stderr)
        return 0
    failed = 0
    for example in examples:
        where = f"{file}:{example.line}"
        if example.message not in messages:
            failed += 1
            print(f"{where}: FAIL unknown message {example.message!r} in {profile}")
            continue
        try:
            instance = strictjson.loads(example.text)
        except strictjson.StrictJSONError as error:
            failed += 1
            line = example.first_line + offset_line(example.text, error.offset) - 1
            print(f"{file}:{line}: FAIL {example.message}: not strict JSON ({error})")
            continue
        issues = store.validate(profile, example.message, instance, strict=args.strict)
        if issues:
            failed += 1
            print(f"{where}: FAIL {example.message}: {len(issues)} problem(s)")
            for issue in issues:
                print(f"  {issue}")
        else:
            print(f"{where}: ok {example.message}")
    print(f"{len(examples) - failed} of {len(examples)} example(s) valid as {profile}")
    return 1 if failed else 0
