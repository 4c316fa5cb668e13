"""What a run is: the plan both front ends build from the config and the options.

`provspec run` (argparse) and the pytest plugin (`--provspec-*` options) each fill a
`RunOptions`, with the names of `provspec run`'s options, and build the `RunPlan` with
`build_plan`: one set of rules for both (which role and profile, which target, which
options only some roles take, what `--certify` needs, which targets look live).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conformance._cli_resource_server import resource_server_config, target_url
from conformance.adapters.agent import DEFAULT_ORCHESTRATOR_CLI, AgentTargetConfig
from conformance.adapters.orchestrator import OrchestratorTargetConfig
from conformance.adapters.provider import (
    DEFAULT_FAILING_PAYMENT_TOKEN,
    DEFAULT_OVERSIZED_BODY,
    ProviderTarget,
    ProviderTargetConfig,
)
from conformance.baseline import load_baseline
from conformance.client import ClientSettings, new_seed
from conformance.config import (
    RunConfig,
    consent_options,
    normalise_target,
    orchestrator_identity,
)
from conformance.credentials import parse_probes
from conformance.engine import RunPlan
from conformance.safety import check_not_live, live_reasons
from mocks.faults import FaultSet
from spec.profiles import DEFAULT_PROFILE
from spec.registry import check_profile_has_role, default_registry
from spec.requirement import Role, Step
from spec.schemas import default_store
from wire.errors import UsageError

__all__ = [
    "CERTIFY_FUZZ_EXAMPLES",
    "ROLE_OPTIONS",
    "RunOptions",
    "build_plan",
    "describe",
    "refuse_live",
    "report_dir",
    "selection",
]


@dataclass(frozen=True)
class RunOptions:
    """What the command line (or pytest's `--provspec-*` options) asked for; None: the
    config file's value, or the default. Named as `provspec run`'s options are."""

    role: str | None = None
    target: str | None = None
    profile: str | None = None
    config: Path | None = None
    steps: str | None = None
    strict: bool | None = None
    hmac_secret: str | None = None
    existing_email: str | None = None
    orchestrator_port: int | None = None
    orchestrator_cli: str | None = None
    agent_cmd: str | None = None
    fuzz_examples: int | None = None
    fuzz_seed: int | None = None
    identity_seed: int | None = None
    fault: tuple[str, ...] = ()
    requirement: str | None = None
    max_failures: int | None = None
    certify: bool = False
    report_dir: Path | None = None
    baseline: Path | None = None
    rerun_failures: int = 0
    i_know_this_is_live: bool = False

    @classmethod
    def read(cls, source: Any) -> RunOptions:
        """The options of an object with attributes of these names (argparse's Namespace);
        one it lacks keeps its default."""
        values: dict[str, Any] = {}
        for option in dataclasses.fields(cls):
            if hasattr(source, option.name):
                value = getattr(source, option.name)
                values[option.name] = tuple(value or ()) if option.name == "fault" else value
        values["certify"] = bool(values.get("certify", False))
        values["i_know_this_is_live"] = bool(values.get("i_know_this_is_live", False))
        values["rerun_failures"] = values.get("rerun_failures") or 0
        return cls(**values)


CERTIFY_FUZZ_EXAMPLES = 25
"""--certify: generated requests per operation, unless the config asks for more."""

ROLE_OPTIONS: dict[str, tuple[Role, ...]] = {
    "target": (Role.PROVIDER, Role.RESOURCE_SERVER),
    "orchestrator_cli": (Role.ORCHESTRATOR,),
    "agent_cmd": (Role.AGENT,),
    "fuzz_examples": (Role.PROVIDER,),
    "fuzz_seed": (Role.PROVIDER,),
    "identity_seed": (Role.PROVIDER, Role.ORCHESTRATOR),
    "hmac_secret": (Role.PROVIDER, Role.ORCHESTRATOR),
    "existing_email": (Role.PROVIDER,),
    "orchestrator_port": (Role.PROVIDER,),
}
"""The run options that mean something for some roles only; given with another, refused."""


def selection(
    config: RunConfig, args: RunOptions
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
    requirements = _requirements_option(args.requirement, role, profile)
    return role, profile, step_list, requirements


def _refuse_other_roles_options(args: RunOptions, role: Role) -> None:
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


def build_plan(config: RunConfig, args: RunOptions) -> RunPlan:
    """The plan of a run: the config file's values, the options over them, each checked;
    a UsageError names what is wrong (and the closest known value)."""
    role, profile, step_list, requirements = selection(config, args)
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
    # One seed for the identities the run sends: the header prints it, the settings record it.
    identity_seed = new_seed() if args.identity_seed is None else args.identity_seed
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
            args.fuzz_examples or config.get("run", "fuzz_examples", 0),
        ),
        fuzz_seed=args.fuzz_seed or 0,
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
        identity_seed=identity_seed,
    )
    if args.fault:
        FaultSet(role.value, profile, args.fault)  # unknown or misplaced fault -> UsageError
    orchestrator = OrchestratorTargetConfig(
        profile=profile,
        command=args.orchestrator_cli or config.get("orchestrator", "command"),
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
        control=config.get("orchestrator", "control"),
        identity_seed=identity_seed,
    )
    agent_command = args.agent_cmd or config.get("agent", "command")
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
        max_failures=_max_failures(args.max_failures),
    )
    if args.rerun_failures < 0:
        raise UsageError("--rerun-failures wants a whole number of at least 0")
    plan.rerun_failures = args.rerun_failures
    if args.baseline is not None:
        plan.baseline = load_baseline(args.baseline)  # a bad file is refused before the run
    if args.certify:
        _certify(plan, config)
    return plan


def report_dir(config: RunConfig, args: RunOptions) -> Path:
    """Where the run's reports go: --report-dir, else [run] report_dir, else reports/."""
    return args.report_dir or Path(config.get("run", "report_dir", "reports"))


def refuse_live(plan: RunPlan, args: RunOptions) -> None:
    """Refuse a target that looks like production, or a live key, unless the user said
    --i-know-this-is-live."""
    urls: list[str | None] = []
    values: dict[str, str | None] = {}
    environment: dict[str, str] = {}
    if plan.role is Role.PROVIDER:
        urls.append(plan.provider.base_url)
        values["the HMAC secret"] = plan.provider.hmac_secret
    # Resource-server mode only reads public metadata and probes without a token: it creates
    # nothing and spends nothing, so a production host (say, a public RFC 9728 server) is fine.
    elif plan.role is Role.ORCHESTRATOR:
        urls.append(plan.orchestrator.issuer)
        values["the orchestrator command"] = plan.orchestrator.command
        if plan.orchestrator.command:
            environment = dict(os.environ)
    elif plan.role is Role.AGENT:
        values["the agent command"] = plan.agent.command
    values["--target"] = args.target
    check_not_live(live_reasons(urls, values, environment), args.i_know_this_is_live)


def _max_failures(value: int | None) -> int | None:
    if value is not None and value < 1:
        raise UsageError(f"--max-failures wants a whole number of at least 1, not {value}")
    return value


def _certify(plan: RunPlan, config: RunConfig) -> None:
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
        if not (plan.orchestrator.clock_command or plan.orchestrator.control):
            missing.append(
                "the month-boundary MUSTs: set [orchestrator] control (or clock_command) to "
                "move the orchestrator's test clock"
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


def identity_line(plan: RunPlan) -> str | None:
    """The header line naming the seed of the identities the run sends (None: the role
    sends none), so that a run can be reproduced with the same names and emails."""
    if plan.role is Role.PROVIDER:
        seed = plan.provider.identity_seed
    elif plan.role is Role.ORCHESTRATOR:
        seed = plan.orchestrator.identity_seed
    else:
        return None
    return f"identities: seed {seed} (--identity-seed {seed} reproduces them)"


def describe(plan: RunPlan) -> str:
    """The target of the plan, in words."""
    if plan.role is Role.ORCHESTRATOR:
        return plan.orchestrator.describe()
    if plan.role is Role.AGENT:
        return plan.agent.describe()
    if plan.role is Role.RESOURCE_SERVER:
        return plan.resource_server.describe()
    return plan.provider.describe()
