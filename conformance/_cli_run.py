"""`provspec run`, `provspec selftest`, `provspec init`, `provspec keys`."""

from __future__ import annotations

import argparse
import difflib
import fnmatch
import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from conformance._cli_ci import after_run, before_run, print_ci_summary
from conformance._cli_resource_server import resource_server_config, target_url
from conformance.adapters.agent import DEFAULT_ORCHESTRATOR_CLI, AgentTargetConfig
from conformance.adapters.orchestrator import OrchestratorTargetConfig
from conformance.adapters.provider import (
    DEFAULT_FAILING_PAYMENT_TOKEN,
    DEFAULT_OVERSIZED_BODY,
    ProviderTarget,
    ProviderTargetConfig,
)
from conformance.client import ClientSettings
from conformance.config import (
    STARTER,
    consent_options,
    load_config,
    normalise_target,
    orchestrator_identity,
)
from conformance.credentials import parse_probes
from conformance.engine import CheckOutcome, RunPlan, run_sync, selected_checks
from conformance.report import write_allure, write_html, write_json, write_junit
from conformance.results import EXIT_CODES, RunResult, Status
from conformance.selftest import FaultRow, run_selftest
from mocks.faults import FaultSet, catalogue
from spec.profiles import DEFAULT_PROFILE
from spec.registry import check_profile_has_role, default_registry
from spec.requirement import Role, Step
from spec.schemas import default_store
from wire.errors import UsageError
from wire.urls import orchestrator_metadata_url

__all__ = ["add_run_parsers"]

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


CERTIFY_FUZZ_EXAMPLES = 25
"""--certify: generated requests per operation, unless the config asks for more."""

ROLE_OPTIONS: dict[str, tuple[Role, ...]] = {
    "target": (Role.PROVIDER, Role.RESOURCE_SERVER),
    "orchestrator_cli": (Role.ORCHESTRATOR,),
    "agent_cmd": (Role.AGENT,),
    "fuzz_examples": (Role.PROVIDER,),
    "fuzz_seed": (Role.PROVIDER,),
    "hmac_secret": (Role.PROVIDER, Role.ORCHESTRATOR),
    "existing_email": (Role.PROVIDER,),
    "orchestrator_port": (Role.PROVIDER,),
}
"""The run options that mean something for some roles only; given with another, refused."""


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
    selftest.set_defaults(handler=_selftest)

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


def _selection(
    args: argparse.Namespace, config: Any
) -> tuple[Role, str, tuple[Step, ...] | None, tuple[str, ...] | None]:
    """Role, profile, steps and requirements of a run, checked (no target needed)."""
    role = Role(args.role or config.get("run", "role", "provider"))
    fallback = "rfc9728" if role is Role.RESOURCE_SERVER else DEFAULT_PROFILE
    profile = args.profile or config.get("run", "profile", fallback)
    # unknown profile -> a message with suggestions
    default_store().profile(profile)
    check_profile_has_role(role, profile)
    _refuse_other_roles_options(args, role)
    steps = args.steps or config.get("run", "steps")
    step_list: tuple[Step, ...] | None = None
    if steps:
        names = steps.split(",") if isinstance(steps, str) else list(steps)
        try:
            step_list = tuple(Step(name.strip()) for name in names if name.strip())
        except ValueError as error:
            raise UsageError(
                f"--steps: {error}; known steps: {', '.join(s.value for s in Step)}"
            ) from None
    requirements = _requirements_option(getattr(args, "requirement", None), role, profile)
    return role, profile, step_list, requirements


def _refuse_other_roles_options(args: argparse.Namespace, role: Role) -> None:
    """An option another role uses, given with this one, is a mistake: say which role it is for."""
    for name, roles in ROLE_OPTIONS.items():
        value = getattr(args, name, None)
        if value is None or role in roles:
            continue
        option = "--" + name.replace("_", "-")
        meant = " or ".join(f"--role {r.value}" for r in roles)
        raise UsageError(f"{option} is for {meant}, not --role {role.value}: leave it out")


def _requirements_option(value: str | None, role: Role, profile: str) -> tuple[str, ...] | None:
    """--requirement ID[,ID]: each a requirement of this role and profile (with suggestions)."""
    if value is None:
        return None
    known = {r.id for r in default_registry().select(role=role, profile=profile)}
    everything = {r.id for r in default_registry().select()}
    chosen: list[str] = []
    for raw in value.split(","):
        name = raw.strip().upper()
        if not name:
            continue
        if name not in known:
            where = (
                f"not a {role.value} requirement of {profile}"
                if name in everything
                else "not a requirement"
            )
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise UsageError(f"--requirement {name}: {where}{hint}")
        chosen.append(name)
    if not chosen:
        raise UsageError("--requirement wants at least one requirement ID, e.g. PRV-ACC-001")
    return tuple(dict.fromkeys(chosen))


def _plan(args: argparse.Namespace) -> tuple[RunPlan, Path]:
    config = load_config(args.config)
    role, profile, step_list, requirements = _selection(args, config)
    family = default_store().profile(profile).family  # a draft is judged as its family
    target = args.target or config.get("provider", "target")
    resource_url: str | None = None
    if role is Role.RESOURCE_SERVER:
        # Taken exactly as given: the resource identifier is compared code point by code point.
        resource_url, target = target_url(args.target, config), None
    target = normalise_target(target) if target else None
    if args.fault and (target or resource_url):
        raise UsageError(
            "--fault injects faults into the embedded mock; start a served mock with --fault instead"
        )
    hmac_secret = args.hmac_secret or config.hmac_secret()
    if target and family == "app-0.1d" and not hmac_secret:
        raise UsageError(
            f"{profile} signs with the provider's HMAC secret: give --hmac-secret or set "
            "$PROVSPEC_HMAC_SECRET"
        )
    provider_table: dict[str, Any] = dict(config.values.get("provider", {}))
    probes, _ = parse_probes(provider_table.get("credential_probe"), "provider.credential_probe")
    client = ClientSettings(
        orchestrator=orchestrator_identity(provider_table),
        scopes=tuple(provider_table.get("scopes", ())),
        client_capabilities=tuple(provider_table.get("client_capabilities", ("browser",))),
        account_configuration=dict(provider_table.get("account_configuration", {})),
    )
    provider = ProviderTargetConfig(
        profile=profile,
        base_url=target,
        hmac_secret=hmac_secret,
        existing_email=args.existing_email
        or config.get("provider", "existing_email", "existing@example.com"),
        scripted_consent=config.get("provider", "scripted_consent"),
        orchestrator_host=config.get("provider", "orchestrator_host", "127.0.0.1"),
        orchestrator_port=args.orchestrator_port
        if args.orchestrator_port is not None
        else config.get("provider", "orchestrator_port", 8401),
        timeout=float(config.get("timeouts", "request", 10)),
        faults=tuple(args.fault) if role is Role.PROVIDER else (),
        allowed_hosts=tuple(config.get("ssrf", "allowed_hosts", ())),
        capabilities=dict(config.values.get("capabilities", {})),
        fuzz_examples=_non_negative(
            "--fuzz-examples",
            getattr(args, "fuzz_examples", None) or config.get("run", "fuzz_examples", 0),
        ),
        fuzz_seed=getattr(args, "fuzz_seed", None) or 0,
        orchestrator=client.orchestrator,
        client=client,
        test_payment_token=provider_table.get("test_payment_token"),
        failing_payment_token=str(
            provider_table.get("failing_payment_token", DEFAULT_FAILING_PAYMENT_TOKEN)
        ),
        credential_probes=probes,
        consent=consent_options(provider_table),
        orchestrator_public_url=provider_table.get("orchestrator_public_url"),
        oversized_body_bytes=int(
            provider_table.get("oversized_body_bytes", DEFAULT_OVERSIZED_BODY)
        ),
    )
    if args.fault:
        FaultSet(role.value, profile, args.fault)  # unknown or misplaced fault -> UsageError
    orchestrator = OrchestratorTargetConfig(
        profile=profile,
        command=getattr(args, "orchestrator_cli", None) or config.get("orchestrator", "command"),
        issuer=config.get("orchestrator", "issuer"),
        hmac_secret=hmac_secret or OrchestratorTargetConfig.hmac_secret,
        provider_port=int(config.get("orchestrator", "provider_port", 8411)),
        other_provider_port=int(config.get("orchestrator", "other_provider_port", 8412)),
        timeout=float(config.get("timeouts", "request", 10)),
        faults=tuple(args.fault) if role is Role.ORCHESTRATOR else (),
        # checked by load_config (at least 2 and 1)
        concurrent_redemptions=int(config.get("orchestrator", "concurrent_redemptions", 50)),
        concurrency_rounds=int(config.get("orchestrator", "concurrency_rounds", 20)),
        clock_command=config.get("orchestrator", "clock_command"),
    )
    agent_command = getattr(args, "agent_cmd", None) or config.get("agent", "command")
    if args.fault and agent_command and role is Role.AGENT:
        raise UsageError(
            "--fault injects faults into the embedded mock agent, not into --agent-cmd"
        )
    agent = AgentTargetConfig(
        profile=profile,
        command=agent_command,
        orchestrator_cli=str(config.get("agent", "orchestrator_cli", DEFAULT_ORCHESTRATOR_CLI)),
        timeout=float(config.get("timeouts", "agent", 60)),
        faults=tuple(args.fault) if role is Role.AGENT else (),
    )
    strict = args.strict if args.strict is not None else bool(config.get("run", "strict", False))
    resource_server = resource_server_config(
        config, profile, resource_url, tuple(args.fault) if role is Role.RESOURCE_SERVER else ()
    )
    plan = RunPlan(
        role,
        profile,
        provider=provider,
        orchestrator=orchestrator,
        agent=agent,
        resource_server=resource_server,
        steps=step_list,
        strict=strict,
        check_timeout=float(config.get("timeouts", "check", 60)),
        only_requirements=requirements,
        max_failures=_max_failures(getattr(args, "max_failures", None)),
    )
    if getattr(args, "certify", False):
        _certify(plan, config)
    report_dir = args.report_dir or Path(config.get("run", "report_dir", "reports"))
    return plan, report_dir


def _max_failures(value: int | None) -> int | None:
    if value is not None and value < 1:
        raise UsageError(f"--max-failures wants a whole number of at least 1, not {value}")
    return value


def _certify(plan: RunPlan, config: Any) -> None:
    """Turn on what a certification needs, or refuse, listing every missing piece at once:
    a certified run judges every MUST, so nothing may be left off or unconfigured."""
    missing: list[str] = []
    if plan.steps is not None or plan.only_requirements is not None:
        missing.append("the whole suite: leave out --steps and --requirement")
    if plan.max_failures is not None:
        missing.append("every check: leave out --max-failures")
    if plan.role is Role.PROVIDER:
        provider = plan.provider
        provider.fuzz_examples = max(provider.fuzz_examples, CERTIFY_FUZZ_EXAMPLES)
        hidden = sorted(name for name, on in provider.capabilities.items() if on is False)
        if hidden:
            missing.append(
                "every advertised optional feature: remove "
                + ", ".join(f"[capabilities] {name} = false" for name in hidden)
            )
        if provider.base_url is not None:
            consent = ProviderTarget(provider).consent_options
            if not consent.available:
                missing.append(
                    "the consent MUSTs: this run has no way to give consent (no terminal); set "
                    "[provider] consent (command or browser) or scripted_consent = true"
                )
            if provider.test_payment_token is None:
                missing.append(
                    "the payment MUSTs: set [provider] test_payment_token to a token your test "
                    "mode activates"
                )
            if not provider.credential_probes:
                missing.append(
                    "the credential MUSTs: add a [[provider.credential_probe]] per credential"
                )
    elif plan.role is Role.ORCHESTRATOR and plan.orchestrator.command is not None:
        if not plan.orchestrator.clock_command:
            missing.append(
                "the month-boundary MUSTs: set [orchestrator] clock_command to move the "
                "orchestrator's test clock"
            )
        family = default_store().profile(plan.profile).family
        if family == "app-next" and not plan.orchestrator.issuer:
            missing.append("the app-next orchestrator MUSTs: set [orchestrator] issuer")
    if missing:
        raise UsageError(
            "--certify cannot certify this run; it needs "
            + "; ".join(missing)
            + " (or run without --certify)"
        )
    plan.certify = True


def _non_negative(option: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UsageError(f"{option} wants a whole number of at least 0, not {value!r}")
    return value


def _described(plan: RunPlan) -> str:
    if plan.role is Role.ORCHESTRATOR:
        return plan.orchestrator.describe()
    if plan.role is Role.AGENT:
        return plan.agent.describe()
    if plan.role is Role.RESOURCE_SERVER:
        return plan.resource_server.describe()
    return plan.provider.describe()


def _run(args: argparse.Namespace) -> int:
    if args.list_checks:
        return _list_checks(args)
    plan, report_dir = _plan(args)
    before_run(args, plan)
    print(f"provspec run: {plan.role.value} · {plan.profile} · {_described(plan)}", flush=True)
    current: list[str] = []
    heartbeat = Heartbeat(sys.stdout, enabled=not args.quiet)

    def progress(outcome: CheckOutcome) -> None:
        if args.quiet:
            return
        step = outcome.check.step.value
        lines = []
        if not current or current[0] != step:
            current[:] = [step]
            lines.append(f"\n{step}")
        for requirement_id, (status, message, _) in outcome.statuses.items():
            line = f"  {MARKS[status]}  {requirement_id}  {outcome.check.name}"
            if status in (Status.FAILED, Status.WARNING, Status.SKIPPED, Status.ERROR):
                line += f"\n          {clip(message, 300)}"
            lines.append(line)
        heartbeat.say("\n".join(lines))

    paths = {
        "json": args.json or report_dir / "results.json",
        "junit": args.junit or report_dir / "junit.xml",
        "html": args.html or report_dir / "report.html",
        "allure": args.allure or report_dir / "allure-results",
    }
    with heartbeat.running():
        result = run_sync(plan, progress, heartbeat.doing)
        heartbeat.doing("writing the reports")
        cassette = after_run(args, plan, result, report_dir)
        write_json(result, paths["json"])
        write_junit(result, paths["junit"])
        write_html(result, paths["html"])
        write_allure(result, paths["allure"])
    _summary(result)
    print_ci_summary(result)
    for name, path in {**paths, "replay": cassette}.items():
        print(f"  {name:<6} {path}")
    return result.exit_code


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


def clip(text: str, width: int) -> str:
    """`text` cut to at most `width` characters at a word boundary, with … when cut."""
    if len(text) <= width:
        return text
    cut = text[: width - 1]
    space = cut.rfind(" ")
    if space > 0:  # one word longer than the width (a URL) is the only thing ever split
        cut = cut[:space]
    return cut.rstrip(" ,;:") + "…"


def _list_checks(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    role, profile, steps, requirements = _selection(args, config)
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
    word = "CERTIFIED" if result.certified else result.verdict.value.upper()
    if result.certify and not result.certified:
        word += " (not certified)"
    names = ", ".join(f.requirement.id for f in failed) or "none"
    print(
        f"\n{word}: {len(failed)} failing requirement(s): {names}  "
        f"({result.duration_s:.2f} s, {len(result.recorder.exchanges)} exchanges)"
    )
    unjudged = result.unjudged()
    if unjudged and not failed:
        print(f"  {len(unjudged)} MUST(s) not judged, each with what would enable it:")
        for finding in unjudged:
            print(f"    {finding.requirement.id}  {clip(finding.message, 200)}")


def _selftest(args: argparse.Namespace) -> int:
    profiles = tuple(args.profile or default_store().profiles())
    for profile in profiles:
        default_store().profile(profile)
    if args.fault and not any(
        fnmatch.fnmatchcase(name, glob) for glob in args.fault for name in catalogue()
    ):
        raise UsageError(
            f"no fault matches {', '.join(args.fault)}; `provspec mock --list-faults` lists them"
        )
    print(
        f"provspec selftest: reference mocks, then every named fault ({', '.join(profiles)})\n",
        flush=True,
    )
    columns = SelftestColumns.fitting(profiles, catalogue().values())
    print(columns.line("mock", "fault", "profile", "expected", "result"), flush=True)

    def progress(row: FaultRow) -> None:
        expected = ", ".join(row.fault.breaks)
        if row.status == "not-run":
            result = f"not run: {row.why_not_run}"
        elif row.status == "exact":
            result = "caught exactly"
        else:
            parts = []
            if row.missing:
                parts.append(f"MISSED {', '.join(sorted(row.missing))}")
            if row.extra:
                parts.append(f"also failed {', '.join(sorted(row.extra))}")
            result = "; ".join(parts)
        print(
            columns.line(row.fault.mock, row.fault.name, row.profile, expected, result),
            flush=True,
        )

    roles = tuple(Role(name) for name in args.role) if args.role else tuple(Role)
    if args.jobs < 1:
        raise UsageError("--jobs wants a positive number of processes")
    outcome = run_selftest(profiles, progress, roles, args.jobs, args.fault)
    for (role, profile), failed in outcome.references.items():
        state = "clean" if not failed else f"FAILED {', '.join(failed)}"
        print(f"\nreference mock {role} ({profile}): {state}")
    run_rows = outcome.run_rows
    print(
        f"\ndetection rate {outcome.detection_rate:.0%} ({sum(1 for r in run_rows if not r.missing)}/{len(run_rows)} "
        f"fault runs caught), false positives {outcome.false_positives}, "
        f"{len(outcome.rows) - len(run_rows)} fault runs not yet covered, {outcome.duration_s:.1f} s"
    )
    return outcome.exit_code


@dataclass(frozen=True)
class SelftestColumns:
    """The selftest matrix's column widths: each as wide as its longest entry (a draft's
    profile directory, a long fault name), so no two columns ever run together."""

    mock: int
    fault: int
    profile: int
    expected: int

    @staticmethod
    def fitting(profiles: Iterable[str], faults: Iterable[Any]) -> SelftestColumns:
        faults = list(faults)
        return SelftestColumns(
            mock=max([len("mock"), *(len(f.mock) for f in faults)]),
            fault=max([len("fault"), *(len(f.name) for f in faults)]),
            profile=max([len("profile"), *(len(p) for p in profiles)]),
            expected=min(max([len("expected"), *(len(", ".join(f.breaks)) for f in faults)]), 40),
        )

    def line(self, mock: str, fault: str, profile: str, expected: str, result: str) -> str:
        """One row; two spaces at least between columns, whatever a cell holds."""
        return (
            f"  {mock:<{self.mock}}  {fault:<{self.fault}}  {profile:<{self.profile}}  "
            f"{expected:<{self.expected}}  {result}"
        )


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
