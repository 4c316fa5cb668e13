"""CI-grade operation: `provspec baseline write`, `provspec replay`, `provspec report`, and the
run options `--baseline`, `--rerun-failures` and `--i-know-this-is-live`."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

from conformance import verdict
from conformance._render import clip
from conformance.baseline import render_baseline
from conformance.config import load_config
from conformance.engine import RunPlan, run_sync
from conformance.events import Event, RunFinished
from conformance.plan import RunOptions, build_plan, refuse_live
from conformance.provenance import (
    mask_command,
    mask_settings,
    profile_digest,
    registry_digest,
    secret_values,
    verify,
)
from conformance.replay import load_cassette, replay, write_cassette
from conformance.report._summary import render_summary
from conformance.results import EXIT_ERROR, RunResult, Status
from spec.requirement import Role
from wire.errors import ProvspecError, UsageError

__all__ = ["CassetteFile", "add_ci_parsers", "before_run", "print_ci_summary", "record_provenance"]


def add_ci_parsers(commands: Any) -> None:
    run = commands.choices["run"]
    _add_run_options(run)

    baseline = commands.add_parser(
        "baseline",
        help="write a baseline file of today's failures (provspec-baseline.toml)",
        description="A baseline lists failures a team knows about: `provspec run --baseline "
        "FILE` reports them as known and does not fail on them, fails on an entry whose "
        "requirement passes again (stale) or whose expires date is past.",
    )
    actions = baseline.add_subparsers(dest="baseline_command", metavar="ACTION", required=True)
    write = actions.add_parser(
        "write",
        parents=[run],
        add_help=False,
        conflict_handler="resolve",
        help="record the failures of a results.json (--from) or of a run (run options)",
        description="Write a baseline listing every failed, warned or flaky requirement, from "
        "--from RESULTS.json or from a run made with the `provspec run` options given.",
    )
    write.add_argument("--from", dest="from_results", type=Path, metavar="RESULTS.json")
    write.add_argument(
        "--output", type=Path, default=Path("provspec-baseline.toml"), help="where to write"
    )
    write.add_argument(
        "--reason", default="known failure, recorded by provspec baseline write", help="reason"
    )
    write.add_argument("--expires", help="expiry date of every entry, YYYY-MM-DD")
    write.add_argument("--force", action="store_true", help="overwrite an existing file")
    write.set_defaults(handler=_baseline_write)

    replay = commands.add_parser(
        "replay",
        help="re-run one requirement's check offline against a run's cassette",
        description="Re-run the check(s) that judged REQUIREMENT against the exchanges "
        "recorded in CASSETTE (written by `provspec run` as REPORT_DIR/cassette.json), with "
        "no target, and print the verdict next to the recorded one. Provider runs only. "
        "Exit 0 passed, 1 failed, 3 error, 2 usage error.",
    )
    replay.add_argument("cassette", type=Path)
    replay.add_argument("--requirement", required=True, metavar="ID")
    replay.set_defaults(handler=_replay)

    report = commands.add_parser(
        "report",
        help="sum up a results.json (the matrix and the top failures), or --verify it",
        description="Print the level x status matrix and the top failures of a results.json "
        "with their evidence; --format markdown for a pull-request comment. Exit 0 whatever "
        "the run's verdict (it is in the text), 2 when the file is unusable. With --verify: "
        "check the file against the integrity digests stored in it and print its provenance; "
        "exit 0 intact, 1 changed since the run wrote it (saying what changed), 2 unusable "
        "or without digests. Digests written under $PROVSPEC_RESULTS_KEY (HMAC) need it set.",
    )
    report.add_argument("results", type=Path)
    report.add_argument(
        "--verify",
        action="store_true",
        help="check RESULTS.json against its integrity digests instead of summing it up",
    )
    report.add_argument("--format", choices=("text", "markdown"), default="text", dest="fmt")
    report.add_argument("--top", type=int, default=10, help="how many failures (default 10)")
    report.add_argument("--output", type=Path, help="write to this file instead of stdout")
    report.set_defaults(handler=_report)


def _add_run_options(run: argparse.ArgumentParser) -> None:
    run.add_argument(
        "--baseline",
        type=Path,
        metavar="FILE",
        help="known failures (provspec-baseline.toml): reported as known, not failing; a "
        "stale or expired entry fails the run",
    )
    run.add_argument(
        "--rerun-failures",
        type=int,
        default=0,
        metavar="N",
        help="re-run a failed check alone up to N times; a pass then reports it flaky",
    )
    run.add_argument(
        "--i-know-this-is-live",
        action="store_true",
        help="run although the target looks like production or a live key is configured",
    )


def before_run(args: Any, plan: RunPlan) -> None:
    """Refuse a live-looking target; check the options before anything starts."""
    options = RunOptions.read(args)
    if options.rerun_failures < 0:
        raise UsageError("--rerun-failures wants a whole number of at least 0")
    plan.rerun_failures = options.rerun_failures
    refuse_live(plan, options)


class CassetteFile:
    """Writes the run's cassette (`provspec replay` re-runs a check from it) when it ends."""

    def __init__(self, plan: RunPlan, path: Path) -> None:
        self.path = path
        self._settings: dict[str, Any] = {}
        if plan.role is Role.PROVIDER:
            config = plan.provider
            self._settings = {
                "base_url": config.base_url,
                "existing_email": config.existing_email,
                "scripted_consent": config.base_url is None
                if config.scripted_consent is None
                else bool(config.scripted_consent),
                "fuzz_examples": config.fuzz_examples,
                "fuzz_seed": config.fuzz_seed,
            }

    def __call__(self, event: Event) -> None:
        if isinstance(event, RunFinished):
            write_cassette(event.result, self.path, self._settings)


def print_ci_summary(result: RunResult) -> None:
    """The lines `provspec run` adds after its matrix: baseline problems, errors, flakes."""
    for problem in result.baseline_problems:
        print(f"  baseline: {problem}")
    for harness in result.harness_problems[:5]:
        print(f"  harness: #{harness['exchange']} {harness['message']}")
    errors = result.errors()
    if errors:
        blames = sorted({f.blame.value for f in errors if f.blame is not None})
        print(
            f"  {len(errors)} requirement(s) not judged ({', '.join(blames)} error): "
            + ", ".join(f.requirement.id for f in errors[:12])
        )
    flaky = [f.requirement.id for f in result.findings if f.status is Status.FLAKY]
    if flaky:
        print(f"  flaky (failed, then passed alone): {', '.join(flaky)}")


def _baseline_write(args: argparse.Namespace) -> int:
    if args.output.exists() and not args.force:
        raise UsageError(f"{args.output} exists; pass --force to overwrite it")
    expires: dt.date | None = None
    if args.expires:
        try:
            expires = dt.date.fromisoformat(args.expires)
        except ValueError:
            raise UsageError(f"--expires wants a date YYYY-MM-DD, not {args.expires!r}") from None
    if args.from_results is not None:
        results = _read_results(args.from_results)
    else:
        options = RunOptions.read(args)
        plan = build_plan(load_config(options.config), options)
        plan.baseline = None  # the run's failures as they are, none excused
        refuse_live(plan, options)
        print(f"provspec baseline write: running {plan.role.value} · {plan.profile}", flush=True)
        results = run_sync(plan).as_json()
    text = render_baseline(results, args.reason, expires, verdict.today())
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    count = text.count("[[known]]")
    print(f"wrote {args.output}: {count} known failure(s)")
    return 0


def _read_results(path: Path) -> dict[str, Any]:
    try:
        document: Any = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path} does not exist (`provspec run` writes results.json)") from None
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise UsageError(f"{path} is not readable JSON: {error}") from None
    if not isinstance(document, dict) or document.get("provspec") != "results/1":
        raise UsageError(f"{path} is not a provspec results file (results/1)")
    return document


def _replay(args: argparse.Namespace) -> int:
    cassette = load_cassette(args.cassette)
    recorded = cassette["verdicts"].get(args.requirement, {})
    finding, _ = replay(cassette, args.requirement)
    blame = finding.as_json()["blame"]
    print(f"replayed {args.requirement} offline from {args.cassette}")
    print(f"  verdict:  {finding.status.value}" + (f" ({blame})" if blame else ""))
    if finding.message:
        print(f"  why:      {clip(finding.message, 500)}")
    print(f"  recorded: {recorded.get('status')}")
    same = recorded.get("status") == finding.status.value
    print("  same verdict as recorded" if same else "  DIFFERENT from the recorded verdict")
    if finding.status is Status.ERROR:
        return EXIT_ERROR
    return 1 if finding.status is Status.FAILED else 0


def _report(args: argparse.Namespace) -> int:
    if args.verify:
        return _verify(args.results)
    if args.top < 1:
        raise UsageError("--top wants a positive number")
    text = render_summary(_read_results(args.results), args.fmt, args.top)
    if args.output is not None:
        args.output.write_text(text, encoding="utf-8")
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _verify(path: Path) -> int:
    results = _read_results(path)
    try:
        changes = verify(results)
    except ValueError as error:
        raise UsageError(f"{path} cannot be verified: {error}") from None
    provenance: dict[str, Any] = results.get("provenance") or {}
    if changes:
        print(f"{path}: CHANGED since the run wrote it (integrity digest does not match)")
        for change in changes:
            print(f"  {change}")
        return 1
    print(f"{path}: intact ({results['integrity']['digest']})")
    print(
        f"  {results.get('verdict', '?')} · provspec {provenance.get('provspec_version')} · "
        f"{results.get('role')} · {results.get('profile')} · {results.get('target')}"
    )
    print(f"  started {provenance.get('timestamp')}")
    print(f"  command {provenance.get('command_line') or '(not run from the command line)'}")
    role, profile = str(results.get("role")), str(results.get("profile"))
    current: dict[str, str | None] = {"registry_digest": None, "profile_digest": None}
    try:
        current["registry_digest"] = registry_digest(role, profile)
        current["profile_digest"] = profile_digest(profile)
    except (ValueError, KeyError, ProvspecError):
        pass  # a role or profile this install does not know
    for name, member in (("requirement set", "registry_digest"), ("profile", "profile_digest")):
        stored = provenance.get(member)
        same = "same as this install" if current[member] == stored else "differs from this install"
        print(f"  {name} {stored} ({same})")
    return 0


def record_provenance(args: argparse.Namespace, plan: RunPlan) -> None:
    """The command line and the configuration into the plan (its result carries them),
    secrets masked."""
    role_settings = {
        Role.PROVIDER: plan.provider,
        Role.ORCHESTRATOR: plan.orchestrator,
        Role.AGENT: plan.agent,
        Role.RESOURCE_SERVER: plan.resource_server,
    }[plan.role]
    secrets = secret_values(role_settings)
    argv = getattr(args, "argv", None)
    if argv is not None:
        plan.command = ["provspec", *mask_command(argv, secrets)]
    options = {
        name: value
        for name, value in vars(args).items()
        if name not in ("handler", "argv") and value not in (None, [], False)
    }
    config_path = getattr(args, "config", None)
    plan.recorded_config = {
        "file": str(config_path) if config_path is not None else None,
        "values": mask_settings(load_config(config_path).values, secrets),
        "options": mask_settings(options, secrets),
        "settings": mask_settings(
            {
                "steps": [step.value for step in plan.steps] if plan.steps else None,
                "strict": plan.strict,
                "check_timeout": plan.check_timeout,
                "rerun_failures": plan.rerun_failures,
                plan.role.value: role_settings,
            },
            secrets,
        ),
    }
