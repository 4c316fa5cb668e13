"""The `provspec` command line.

Every subcommand runs on the same library the pytest plugin uses. Exit codes: 0 success,
1 the checked thing is not conformant (e.g. an invalid message), 2 a usage or configuration
error, with a message that says what to fix and never a traceback; `provspec run` adds 3
(environment or harness error) and 4 (incomplete: a MUST was not judged). Every command that
takes --profile defaults to the same one (`DEFAULT_PROFILE`, app-0.1d).
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Sequence
from pathlib import Path

from conformance import __version__
from conformance._cli_ci import add_ci_parsers
from conformance._cli_profile import add_profile_parsers
from conformance._cli_run import add_run_parsers
from conformance._cli_sign import add_sign_parser
from conformance._render import requirements_json, requirements_markdown, requirements_table
from conformance.suite import all_checks
from mocks.cli import add_mock_parser
from mocks.faults import catalogue
from mocks.orchestrator import add_orchestrator_parser
from spec.profiles import DEFAULT_PROFILE
from spec.registry import default_registry
from spec.requirement import Level, Role, Step
from spec.schemas import default_store
from wire import strictjson
from wire.errors import ProvspecError

__all__ = ["main"]

EXIT_OK = 0
EXIT_NONCONFORMANT = 1
EXIT_USAGE = 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # provenance: the command line
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        result: int = args.handler(args)
    except ProvspecError as exc:
        print(f"provspec: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # e.g. `provspec requirements | head`
        return EXIT_OK
    return result


@functools.cache
def _parser() -> argparse.ArgumentParser:
    # Built once per process: parse_args leaves the parser untouched, and the embedded
    # orchestrator CLI is invoked hundreds of times per run, where building the parser
    # (with its help texts) cost more than the command itself.
    parser = argparse.ArgumentParser(
        prog="provspec",
        description="Conformance suite and mocks for the Agentic Provisioning Protocol (APP). "
        f"Every command that takes --profile defaults to {DEFAULT_PROFILE}.",
    )
    parser.add_argument("--version", action="version", version=f"provspec {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    requirements = commands.add_parser(
        "requirements",
        help="list the requirement registry",
        description="Print the requirements provspec checks, filtered by role, profile, step "
        "or level.",
    )
    requirements.add_argument("--role", choices=[role.value for role in Role])
    requirements.add_argument(
        "--profile", help="e.g. app-0.1d, app-next or a draft's directory (default: every profile)"
    )
    requirements.add_argument("--step", choices=[step.value for step in Step])
    requirements.add_argument("--level", choices=[level.value for level in Level])
    requirements.add_argument(
        "--format", choices=("table", "json", "markdown"), default="table", dest="output_format"
    )
    requirements.add_argument("--output", type=Path, help="write to this file instead of stdout")
    requirements.add_argument(
        "--unchecked",
        action="store_true",
        help="only the requirements no check judges yet (empty when coverage is complete)",
    )
    requirements.add_argument(
        "--unproven",
        action="store_true",
        help="only the MUSTs no mock fault breaks, so nothing yet shows their check can fail",
    )
    requirements.set_defaults(handler=_requirements)

    validate = commands.add_parser(
        "validate",
        help="validate one JSON message against its schema",
        description="Validate a JSON document (FILE, or - for stdin) as one protocol message. "
        "--strict also reports every member the schema does not model (drift detection).",
    )
    validate.add_argument("file", help="JSON file to validate, or - for standard input")
    validate.add_argument("--message", required=True, help="message name, e.g. account_request")
    validate.add_argument(
        "--profile",
        default=DEFAULT_PROFILE,
        help=f"profile name or directory (default: {DEFAULT_PROFILE})",
    )
    validate.add_argument("--strict", action="store_true", help="report unmodelled members too")
    validate.set_defaults(handler=_validate)

    add_profile_parsers(commands)
    add_run_parsers(commands)
    add_ci_parsers(commands)
    add_sign_parser(commands)
    add_mock_parser(commands)
    add_orchestrator_parser(commands)
    return parser


def _requirements(args: argparse.Namespace) -> int:
    registry = default_registry()
    if args.profile is not None:
        default_store().profile(args.profile)  # unknown profile -> UsageError with suggestions
    selected = registry.select(
        role=Role(args.role) if args.role else None,
        profile=args.profile,
        step=Step(args.step) if args.step else None,
        level=Level(args.level) if args.level else None,
    )
    if args.unchecked:
        checked = {rid for item in all_checks() for rid in item.requirements}
        selected = [requirement for requirement in selected if requirement.id not in checked]
    if args.unproven:
        proven = {rid for fault in catalogue().values() for rid in fault.breaks}
        selected = [
            requirement
            for requirement in selected
            if requirement.level is Level.MUST and requirement.id not in proven
        ]
    if (args.unchecked or args.unproven) and not selected and args.output_format == "table":
        # Silence on stdout is the answer a CI gate wants; the note is for the human.
        done = "has a check" if args.unchecked else "is broken by some fault"
        print(f"provspec: every selected requirement {done}", file=sys.stderr)
        return 0
    filters = {
        name: value
        for name in ("role", "profile", "step", "level")
        if (value := getattr(args, name)) is not None
    }
    if args.output_format == "json":
        text = requirements_json(selected, filters)
    elif args.output_format == "markdown":
        text = requirements_markdown(selected)
    else:
        text = requirements_table(selected)
    if args.output is not None:
        args.output.write_text(text, encoding="utf-8")
        print(f"wrote {len(selected)} requirements to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def _validate(args: argparse.Namespace) -> int:
    store = default_store()
    store.defining_profile(args.profile, args.message)  # unknown names -> UsageError
    try:
        raw = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as exc:
        raise ProvspecError(f"cannot read {args.file}: {exc.strerror}") from None
    try:
        instance = strictjson.loads(raw)
    except strictjson.StrictJSONError as exc:
        print(f"{args.file}: refused ({exc.reason}): {exc}")
        return EXIT_NONCONFORMANT
    issues = store.validate(args.profile, args.message, instance, strict=args.strict)
    mode = "strict" if args.strict else "default"
    if not issues:
        print(f"{args.file}: valid {args.profile} {args.message} ({mode} mode)")
        return EXIT_OK
    print(f"{args.file}: {len(issues)} problem(s) as {args.profile} {args.message} ({mode} mode)")
    for issue in issues:
        print(f"  {issue}")
    return EXIT_NONCONFORMANT


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
