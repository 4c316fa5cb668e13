"""`provspec mock …`: list faults, or serve a mock on loopback."""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from typing import Any

import httpx

from mocks._core.store import MemoryStore, SQLiteStore, Store
from mocks.agent.scripted import ScriptedAgent, subprocess_runner
from mocks.faults import catalogue
from mocks.hosting import bind, serve
from mocks.orchestrator.app import OrchestratorMock, OrchestratorSettings
from mocks.provider.app import ProviderMock, ProviderSettings
from mocks.resource_server import ResourceServerMock, ResourceServerSettings
from spec.profiles import DEFAULT_PROFILE
from spec.registry import check_profile_has_role
from spec.requirement import Role
from spec.schemas import default_store
from wire.errors import UsageError

__all__ = ["add_mock_parser"]


def add_mock_parser(commands: Any) -> None:
    mock = commands.add_parser(
        "mock",
        help="serve a mock orchestrator or provider on loopback, or list the named faults",
        description="Serve one mock so that a real counterpart can call it. Prints the base URL "
        "and the trust material (HMAC secret, JWKS URL) the counterpart needs. Ctrl-C or SIGTERM "
        "stops it cleanly.",
    )
    mock.add_argument(
        "role",
        nargs="?",
        choices=("orchestrator", "provider", "agent", "resource-server"),
        help="which mock",
    )
    mock.add_argument("--list-faults", action="store_true", help="print every named fault and exit")
    mock.add_argument("--format", choices=("table", "json"), default="table", dest="output_format")
    mock.add_argument(
        "--profile",
        default=DEFAULT_PROFILE,
        help=f"app-0.1d, app-next or a draft profile's directory (default: {DEFAULT_PROFILE}); "
        "resource-server: rfc9728 (default) or an MCP profile",
    )
    mock.add_argument(
        "--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)"
    )
    mock.add_argument(
        "--port",
        type=int,
        default=None,
        help="port (default 8400 provider, 8401 orchestrator, 8402 resource-server; 0 = any)",
    )
    mock.add_argument("--state", help="SQLite file that keeps the mock's state across restarts")
    mock.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="NAME",
        help="inject a named fault (repeatable)",
    )
    mock.add_argument(
        "--base-path",
        default="/api/app/",
        help="provider: path of the base URL (default /api/app/)",
    )
    mock.add_argument(
        "--orchestrator-issuer",
        default="http://127.0.0.1:8401",
        help="provider, app-next: the orchestrator it trusts",
    )
    mock.add_argument(
        "--hmac-secret",
        help="provider, app-0.1d: the Stripe-Signature secret (default: random, kept in --state)",
    )
    mock.add_argument("--issuer", help="orchestrator: issuer URL (default: its own origin)")
    mock.add_argument(
        "--orchestrator-cmd",
        default="provspec orchestrator",
        help="agent: the orchestrator CLI to drive (default: provspec orchestrator)",
    )
    mock.add_argument("--provider", help="agent: the provider to provision at")
    mock.add_argument("--service", help="agent: the service to add (default: the first free one)")
    mock.set_defaults(handler=_mock)


def _mock(args: argparse.Namespace) -> int:
    if args.list_faults:
        return _list_faults(args.output_format)
    if args.role is None:
        raise UsageError("name a mock to serve (orchestrator or provider), or pass --list-faults")
    if args.role == "agent":
        return _agent(args)
    defaults = {"provider": 8400, "orchestrator": 8401, "resource-server": 8402}
    port = args.port if args.port is not None else defaults[args.role]
    if not 0 <= port <= 65535:
        raise UsageError(f"--port must be 0..65535, not {port}")
    store: Store = SQLiteStore(args.state) if args.state else MemoryStore()
    listener = bind(args.host, port)
    if args.role == "provider":
        app, banner = _provider(args, listener.origin, store)
    elif args.role == "resource-server":
        app, banner = _resource_server(args, listener.origin)
    else:
        app, banner = _orchestrator(args, listener.origin, store)
    try:
        serve(app, listener, banner=banner)
    finally:
        store.close()
    return 0


def _config(store: Store, name: str, default: str) -> str:
    """A setting kept in the state; the first process to store one wins, so processes that
    start at once on one file agree on it."""
    value = store.get("config", name)
    return str(store.setdefault("config", name, default) if value is None else value)


def _provider(args: argparse.Namespace, origin: str, store: Store) -> tuple[Any, str]:
    path = args.base_path if args.base_path.endswith("/") else args.base_path + "/"
    if not path.startswith("/"):
        raise UsageError("--base-path must start with '/'")
    secret = args.hmac_secret or _config(store, "hmac_secret", "whsec_" + secrets.token_hex(16))
    profile = default_store().profile(args.profile)
    try:
        mock = ProviderMock(
            ProviderSettings(
                profile=profile, base_url=origin + path, hmac_secret=secret,
                orchestrator_issuer=args.orchestrator_issuer, faults=tuple(args.fault), store=store,
            )
        )  # fmt: skip
    except ValueError as error:
        raise UsageError(str(error)) from None
    lines = [
        f"provspec mock provider ({profile.name}) listening",
        f"  base URL:            {mock.base_url}",
        f"  health:              {mock.base_url}provisioning/health",
    ]
    if profile.family == "app-0.1d":
        params = profile.params
        lines.append(
            f"  HMAC secret:         {secret}   ({params.signature_header}, "
            f"{params.version_header}: {params.api_version})"
        )
    else:
        lines += [
            f"  resource metadata:   {mock.prm_url}",
            f"  AS metadata:         {mock.as_metadata_url}",
            f"  JWKS (redemptions):  {mock.base_url}jwks.json",
            f"  trusts orchestrator: {args.orchestrator_issuer}",
        ]
    lines.append(f"  faults:              {', '.join(args.fault) or 'none'}")
    return mock.app, "\n".join(lines)


def _resource_server(args: argparse.Namespace, origin: str) -> tuple[Any, str]:
    """The mock resource server and its authorization server (state in memory)."""
    profile = "rfc9728" if args.profile == DEFAULT_PROFILE else args.profile  # the default
    check_profile_has_role(Role.RESOURCE_SERVER, profile)
    mock = ResourceServerMock(
        ResourceServerSettings(origin=origin, profile=profile, faults=tuple(args.fault))
    )
    lines = [
        "provspec mock resource-server listening",
        f"  resource:            {mock.resource_url}",
        f"  resource metadata:   {mock.prm_url}",
        f"  AS metadata:         {mock.as_metadata_url}",
        f"  faults:              {', '.join(args.fault) or 'none'}",
    ]
    return mock.app, "\n".join(lines)


def _orchestrator(args: argparse.Namespace, origin: str, store: Store) -> tuple[Any, str]:
    # Without --issuer the issuer is the origin actually bound (`--port 0` picks a new port on
    # every start), never one stored by an earlier run: that would advertise a dead endpoint.
    issuer = args.issuer or origin
    try:
        mock = OrchestratorMock(
            OrchestratorSettings(
                profile=default_store().profile(args.profile),
                issuer=issuer,
                faults=tuple(args.fault),
                store=store,
            )
        )
    except ValueError as error:
        raise UsageError(str(error)) from None
    store.put("config", "issuer", issuer)
    lines = [
        f"provspec mock orchestrator ({mock.spec.name}) listening on {origin}",
        f"  issuer:              {issuer}",
        f"  metadata:            {mock.metadata_url}",
        f"  JWKS:                {mock.jwks_url}",
        f"  redemption endpoint: {mock.redemption_endpoint}",
        f"  faults:              {', '.join(args.fault) or 'none'}",
    ]
    return mock.app, "\n".join(lines)


def _agent(args: argparse.Namespace) -> int:
    """Run the scripted agent once against an orchestrator CLI; its exit code is the agent's."""
    if not args.provider:
        raise UsageError("the mock agent needs --provider NAME (as the orchestrator knows it)")
    with httpx.Client(timeout=30) as http:
        agent = ScriptedAgent(
            subprocess_runner(args.orchestrator_cmd),
            provider=args.provider.lower(),
            service=args.service,
            profile=args.profile,
            faults=args.fault,
            http=lambda: http,
        )
        result = agent.run()
    for line in result.transcript:
        print(f"agent: {line}")
    return result.exit_code


def _profiles_label(profiles: tuple[str, ...]) -> str:
    if set(profiles) == {"app-0.1d", "app-next"}:
        return "both"
    if set(profiles) == {"rfc9728", "mcp-2025-06-18", "mcp-2025-11-25"}:
        return "all three"
    return ",".join(profiles)


def _list_faults(output_format: str) -> int:
    faults = sorted(catalogue().values(), key=lambda fault: (fault.mock, fault.name))
    if output_format == "json":
        document = [
            {"name": f.name, "mock": f.mock, "profiles": list(f.profiles), "breaks": list(f.breaks),
             "summary": f.summary}
            for f in faults
        ]  # fmt: skip
        sys.stdout.write(json.dumps({"faults": document}, indent=2) + "\n")
        return 0
    width = max(len(fault.name) for fault in faults)
    labels = {fault.name: _profiles_label(fault.profiles) for fault in faults}
    column = max(len(label) for label in labels.values())
    for mock in ("orchestrator", "provider", "agent", "resource-server"):
        group = [fault for fault in faults if fault.mock == mock]
        if not group:
            continue
        print(f"{mock} ({len(group)} faults)")
        for fault in group:
            profiles = labels[fault.name]
            print(
                f"  {fault.name:<{width}}  {profiles:<{column}}  {', '.join(fault.breaks):<24}  {fault.summary}"
            )
    print(f"{len(faults)} faults")
    return 0
