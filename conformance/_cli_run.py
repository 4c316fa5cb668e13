"""`provspec run`, `provspec selftest` (its output in `_cli_selftest`), `provspec init`,
`provspec keys`."""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from conformance._cli_ci import CassetteFile, print_ci_summary, record_provenance
from conformance._cli_selftest import SelftestColumns, selftest_command
from conformance._render import clip
from conformance.config import STARTER, RunConfig, load_config
from conformance.engine import RunPlan, run_sync, selected_checks
from conformance.events import Activity, CheckFinished, Event, RunFinished
from conformance.plan import (
    CERTIFY_FUZZ_EXAMPLES,
    RunOptions,
    build_plan,
    describe,
    identity_line,
    refuse_live,
    report_dir,
    selection,
)
from conformance.report import ReportFiles
from conformance.results import EXIT_CODES, RunResult, Status
from conformance.verdict import CheckOutcome, headline
from spec.profiles import DEFAULT_PROFILE
from spec.registry import default_registry
from spec.requirement import Role, Step
from spec.schemas import default_store
from wire.errors import UsageError
from wire.urls import orchestrator_metadata_url

__all__ = ["CERTIFY_FUZZ_EXAMPLES", "Heartbeat", "SelftestColumns", "add_run_parsers", "clip"]

MARKS = {
    Status.PASSED: "ok  ",
    Status.FAILED: "FAIL",
    Status.WARNING: "warn",
    Status.SKIPPED: "skip",
    Status.NOT_APPLICABLE: "n/a ",
    Status.UNTESTED: "----",
    Status.ERROR: "ERR ",
    Status.KNOWN: "know",
    Status.FLAKY: "flak",
}


def exit_codes_text() -> str:
    """The exit codes of `provspec run`, as its help says them."""
    return (
        "Exit codes: "
        + "; ".join(
            f"{code} {word + ': ' if word != '-' else ''}{meaning}"
            for code, word, meaning in EXIT_CODES
        )
        + "."
    )


def add_run_parsers(commands: Any) -> None:
    run = commands.add_parser(
        "run",
        help="check a provider, orchestrator, agent or resource server against the registry",
        description="Run the conformance checks of one role: a preflight first (is the "
        "target reachable, the protocol, accepting the suite's credentials), then every "
        "check. Without --target (--orchestrator-cli, --agent-cmd) the embedded mock is "
        "tested. Writes results.json, junit.xml, report.html and allure-results/ under "
        f"--report-dir. The default profile is {DEFAULT_PROFILE} (resource-server: rfc9728). "
        + exit_codes_text(),
    )
    run.add_argument("--role", choices=[role.value for role in Role], help="default: provider")
    run.add_argument(
        "--target",
        help="the provider's APP base URL, or with --role resource-server the protected "
        "resource's URL (default: the embedded mock)",
    )
    run.add_argument(
        "--orchestrator-cli", help="orchestrator under test: its CLI prefix, e.g. 'stripe projects'"
    )
    run.add_argument(
        "--agent-cmd", help="agent under test: the command to run once per scripted task"
    )
    run.add_argument(
        "--fuzz-examples",
        type=int,
        metavar="N",
        help="provider: N schema-generated requests per operation (default 0: off)",
    )
    run.add_argument(
        "--fuzz-seed", type=int, metavar="S", help="provider: seed of the generated requests"
    )
    run.add_argument(
        "--identity-seed",
        type=int,
        metavar="N",
        help="provider, orchestrator: seed of the names and emails the suite sends (the run's "
        "header prints the one it used)",
    )
    run.add_argument(
        "--profile",
        help=f"app-0.1d or app-next (default: {DEFAULT_PROFILE}) or a draft's directory; with "
        "--role resource-server rfc9728 (default), mcp-2025-06-18 or mcp-2025-11-25",
    )
    run.add_argument("--config", type=Path, help="provspec.toml (see `provspec init`)")
    run.add_argument(
        "--steps", help=f"comma-separated steps to run ({', '.join(s.value for s in Step)})"
    )
    run.add_argument(
        "--strict", action="store_true", default=None, help="a failed SHOULD fails the run"
    )
    run.add_argument("--report-dir", type=Path, help="where reports go (default: reports/)")
    run.add_argument("--junit", type=Path, help="JUnit XML path (default: REPORT_DIR/junit.xml)")
    run.add_argument("--html", type=Path, help="HTML report path (default: REPORT_DIR/report.html)")
    run.add_argument(
        "--json", type=Path, help="JSON results path (default: REPORT_DIR/results.json)"
    )
    run.add_argument(
        "--allure", type=Path, help="Allure results dir (default: REPORT_DIR/allure-results)"
    )
    run.add_argument(
        "--hmac-secret",
        help="app-0.1d: the provider's Stripe-Signature secret (prefer $PROVSPEC_HMAC_SECRET)",
    )
    run.add_argument(
        "--existing-email", help="an email that already has an account at the provider"
    )
    run.add_argument(
        "--orchestrator-port",
        type=int,
        help="app-next: port of the suite's orchestrator side (default 8401)",
    )
    run.add_argument(
        "--fault", action="append", default=[], help="embedded mock only: inject a named fault"
    )
    run.add_argument("--quiet", action="store_true", help="no per-check progress")
    run.add_argument(
        "--certify",
        action="store_true",
        help="everything a certification needs: fuzzing (at least "
        f"{CERTIFY_FUZZ_EXAMPLES} requests per operation), every advertised optional feature, "
        "consent; refused when something it needs is not configured; the verdict says "
        "CERTIFIED only when every MUST was judged and passed",
    )
    run.add_argument(
        "--requirement",
        metavar="ID[,ID]",
        help="re-run only the checks of these requirements, live; the results list only them",
    )
    run.add_argument(
        "--max-failures",
        type=int,
        metavar="N",
        help="stop after N failed requirements (the rest are skipped, saying so)",
    )
    run.add_argument(
        "--list-checks",
        action="store_true",
        help="list the checks the run would make, with their requirements, and exit",
    )
    run.set_defaults(handler=_run)

    selftest = commands.add_parser(
        "selftest",
        help="the suite against its own mocks and every named fault: detection matrix",
        description="Run the suite against the reference mocks (must pass clean) and against each "
        "named fault (must fail exactly the requirement it breaks). Prints the detection matrix, "
        "the detection rate and the false positives. Exit 0 only when both are perfect.",
    )
    selftest.add_argument("--profile", action="append", help="limit to a profile (repeatable)")
    selftest.add_argument(
        "--role",
        action="append",
        choices=[role.value for role in Role],
        help="limit to a role (repeatable)",
    )
    selftest.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="GLOB",
        help="only the faults whose name matches (repeatable, e.g. 'redemption-*')",
    )
    selftest.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        help="runs in parallel, one process each (default: the number of CPUs)",
    )
    selftest.set_defaults(handler=selftest_command)

    init = commands.add_parser("init", help="write a commented starter provspec.toml")
    init.add_argument("path", nargs="?", type=Path, default=Path("provspec.toml"))
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    init.set_defaults(handler=_init)

    keys = commands.add_parser(
        "keys", help="what a provider must be configured with to trust the suite"
    )
    keys.add_argument(
        "--profile", default=DEFAULT_PROFILE, help=f"profile (default: {DEFAULT_PROFILE})"
    )
    keys.add_argument("--config", type=Path)
    keys.add_argument("--orchestrator-port", type=int)
    keys.set_defaults(handler=_keys)


def _options(args: argparse.Namespace) -> tuple[RunOptions, RunConfig]:
    return RunOptions.read(args), load_config(args.config)


def _plan(args: argparse.Namespace) -> tuple[RunPlan, Path]:
    """The plan of `provspec run ARGS` and where its reports go."""
    options, config = _options(args)
    return build_plan(config, options), report_dir(config, options)


def _run(args: argparse.Namespace) -> int:
    if args.list_checks:
        return _list_checks(args)
    options, config = _options(args)
    plan = build_plan(config, options)
    reports = report_dir(config, options)
    refuse_live(plan, options)
    record_provenance(args, plan)
    print(f"provspec run: {plan.role.value} · {plan.profile} · {describe(plan)}", flush=True)
    seeded = identity_line(plan)
    if seeded is not None:
        print(f"  {seeded}", flush=True)
    heartbeat = Heartbeat(sys.stdout, enabled=not args.quiet)
    files = ReportFiles(
        json=args.json or reports / "results.json",
        junit=args.junit or reports / "junit.xml",
        html=args.html or reports / "report.html",
        allure=args.allure or reports / "allure-results",
    )
    cassette = CassetteFile(plan, reports / "cassette.json")
    with heartbeat.running():
        result = run_sync(plan, listeners=[Console(heartbeat, args.quiet), cassette, files])
    _summary(result)
    print_ci_summary(result)
    for name, path in {**files.paths(), "replay": cassette.path}.items():
        print(f"  {name:<6} {path}")
    return result.exit_code


class Console:
    """`provspec run`'s progress: each check's verdicts under its step, and, through the
    heartbeat, what the run is doing while it is silent."""

    def __init__(self, heartbeat: Heartbeat, quiet: bool) -> None:
        self._heartbeat = heartbeat
        self._quiet = quiet
        self._step: str | None = None

    def __call__(self, event: Event) -> None:
        if isinstance(event, Activity):
            self._heartbeat.doing(event.doing)
        elif isinstance(event, RunFinished):
            self._heartbeat.doing("writing the reports")
        elif isinstance(event, CheckFinished) and not event.rerun and not self._quiet:
            self._heartbeat.say(self._lines(event.outcome))

    def _lines(self, outcome: CheckOutcome) -> str:
        step = outcome.check.step.value
        lines = []
        if self._step != step:
            self._step = step
            lines.append(f"\n{step}")
        for requirement_id, (status, message, _) in outcome.statuses.items():
            line = f"  {MARKS[status]}  {requirement_id}  {outcome.check.name}"
            if status in (Status.FAILED, Status.WARNING, Status.SKIPPED, Status.ERROR):
                line += f"\n          {clip(message, 300)}"
            lines.append(line)
        return "\n".join(lines)


class Heartbeat:
    """Says what the run is doing whenever it has been silent for `every` seconds (setting
    up an orchestrator's world, a fuzzing check), so no step is silent for 2 s or more.

    It writes to the stream it was given, never to `sys.stdout` at the time: the embedded
    orchestrator CLI redirects `sys.stdout` while it runs, and a line written there would
    land inside the envelope the checks read."""

    def __init__(self, stream: TextIO, *, enabled: bool = True, every: float = 1.5) -> None:
        self._stream = stream
        self._enabled = enabled
        self._every = every
        self._lock = threading.Lock()
        self._activity = ""
        self._since = time.monotonic()
        self._last = time.monotonic()
        self._stop = threading.Event()

    def doing(self, activity: str) -> None:
        with self._lock:
            self._activity, self._since = activity, time.monotonic()

    def say(self, text: str) -> None:
        with self._lock:
            self._stream.write(text + "\n")
            self._stream.flush()
            self._last = time.monotonic()

    @contextmanager
    def running(self) -> Iterator[None]:
        if not self._enabled:
            yield
            return
        thread = threading.Thread(target=self._beat, name="provspec-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            self._stop.set()
            thread.join()

    def _beat(self) -> None:
        while not self._stop.wait(min(0.1, self._every / 4)):
            with self._lock:
                now = time.monotonic()
                if now - self._last < self._every or not self._activity:
                    continue
                self._stream.write(f"  …  {self._activity} ({now - self._since:.0f} s)\n")
                self._stream.flush()
                self._last = now


def _list_checks(args: argparse.Namespace) -> int:
    options, config = _options(args)
    role, profile, steps, requirements = selection(config, options)
    plan = RunPlan(role, profile, steps=steps, only_requirements=requirements)
    checks = sorted(selected_checks(plan), key=lambda c: (list(Step).index(c.step), c.name))
    registry = default_registry()
    width = max((len(item.name) for item in checks), default=10) + 2
    print(f"{len(checks)} check(s) for {role.value} · {profile}\n")
    print(f"{'step':<14}{'check':<{width}}requirements")
    for item in checks:
        judged = [
            f"{rid} ({registry[rid].level.value})"
            for rid in item.requirements
            if requirements is None or rid in requirements
        ]
        print(f"{item.step.value:<14}{item.name:<{width}}{', '.join(judged)}")
    return 0


def _summary(result: RunResult) -> None:
    statuses = [
        Status.PASSED,
        Status.FAILED,
        Status.WARNING,
        Status.SKIPPED,
        Status.NOT_APPLICABLE,
        Status.UNTESTED,
    ]
    counts = result.counts()
    extra = [Status.ERROR, Status.KNOWN, Status.FLAKY]
    statuses += [s for s in extra if any(s.value in row for row in counts.values())]
    print(f"\n{'level':<8}" + "".join(f"{s.value.replace('_', ' '):>16}" for s in statuses))
    for level in ("MUST", "SHOULD", "MAY"):
        row = counts.get(level, {})
        if row:
            print(f"{level:<8}" + "".join(f"{row.get(s.value, 0):>16}" for s in statuses))
    if result.stopped:
        print(f"\nstopped early: {result.stopped.removeprefix('not run: ')}")
    failed = result.failed()
    for finding in failed[:10]:
        print(f"\n  FAIL  {finding.requirement.id}  {clip(finding.message, 300)}")
        if finding.reproduction:
            print("\n".join(f"        {line}" for line in finding.reproduction.splitlines()))
    if len(failed) > 10:
        print(
            f"\n  … {len(failed) - 10} more failure(s), each with its reproduction in results.json"
        )
    print(
        f"\n{headline(result)}  "
        f"({result.duration_s:.2f} s, {len(result.recorder.exchanges)} exchanges)"
    )
    unjudged = result.unjudged()
    if unjudged and not failed:
        print(f"  {len(unjudged)} MUST(s) not judged, each with what would enable it:")
        for finding in unjudged:
            print(f"    {finding.requirement.id}  {clip(finding.message, 200)}")


def _init(args: argparse.Namespace) -> int:
    path: Path = args.path
    if path.exists() and not args.force:
        raise UsageError(f"{path} exists; pass --force to overwrite it")
    path.write_text(STARTER, encoding="utf-8")
    print(
        f"wrote {path}: edit [provider] target (and the secret variable), then `provspec run --config {path}`"
    )
    return 0


def _keys(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    spec = default_store().profile(args.profile)
    host = config.get("provider", "orchestrator_host", "127.0.0.1")
    port = args.orchestrator_port or config.get("provider", "orchestrator_port", 8401)
    if spec.family == "app-0.1d":
        header = spec.params.signature_header
        print(f"{args.profile}: the suite signs with the provider's own {header} secret.")
        print(
            "  give it to the run: --hmac-secret or $PROVSPEC_HMAC_SECRET (never in the config file)"
        )
        return 0
    public = config.get("provider", "orchestrator_public_url")
    issuer = str(public).rstrip("/") if public else f"http://{host}:{port}"
    print(f"{args.profile}: configure the provider to trust this orchestrator for the run:")
    print(f"  orchestrator issuer   {issuer}")
    if public:
        print(
            f"  served on             http://{host}:{port} (reached at {issuer}: forward it there)"
        )
    print(f"  metadata              {orchestrator_metadata_url(issuer)}")
    print(f"  JWKS                  {issuer}/jwks.json  (keys are made fresh for every run)")
    print(f"  redemption endpoint   {issuer}/redemptions")
    print("  The provider fetches the JWKS from the metadata; nothing else is pre-shared.")
    print(
        f"  (`provspec mock provider --profile app-next --orchestrator-issuer {issuer}` is set up this way.)"
    )

    return 0
