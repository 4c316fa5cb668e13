"""The agent-facing CLI's commands: each turns parsed arguments into its JSON envelope.

The envelope is the Stripe Projects CLI's (wire-facts §1.1): `{ok, command, version, data,
warnings, next_steps, meta}`, and on failure `ok: false` with `error: {code, message}`.
Each handler answers `(envelope, exit code)`; what it prints on the way (a fault's stray
line) goes to `args.out` / `args.err`, the buffers mocks/orchestrator/cli.py gives it.
"""

from __future__ import annotations

import argparse
import unicodedata
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx

import mocks.orchestrator.custody as custody
from mocks._core.http import HTTPProblem
from mocks.faults import FaultSet
from mocks.orchestrator.catalog import aggregate
from mocks.orchestrator.engine import AddOutcome, Orchestrator, ProviderRecord
from wire import strictjson

__all__ = ["CLI_VERSION", "HANDLERS", "envelope"]

CLI_VERSION = "0.1"
EXIT_CODES = {"provisioned": 0, "pending": 0, "needs_information": 0}

Handler = Callable[[Orchestrator, argparse.Namespace], Awaitable[tuple[dict[str, Any], int]]]


def envelope(
    command: str,
    ok: bool,
    data: Any,
    *,
    warnings: list[str] | None = None,
    next_steps: list[str] | None = None,
    error: dict[str, Any] | None = None,
    authenticated: bool = True,
) -> dict[str, Any]:
    document: dict[str, Any] = {
        "ok": ok,
        "command": f"projects {command}",
        "version": CLI_VERSION,
        "data": data,
        "warnings": warnings or [],
        "next_steps": next_steps or [],
        "meta": {"authenticated": authenticated, "project_initialized": True},
    }
    if error is not None:
        document["error"] = error
    return document


async def _init(orchestrator: Orchestrator, args: argparse.Namespace) -> tuple[dict[str, Any], int]:
    if args.new_user:
        orchestrator.new_user(args.email)
    user = orchestrator.set_user(
        args.email,
        payment_method=not args.no_payment_method,
        email_verified=not args.email_unverified,
    )
    for spec in args.provider:
        name, _, rest = spec.partition("=")
        url, _, secret = rest.partition("#")
        if not name or not url.startswith(("http://", "https://")):
            raise HTTPProblem(
                400, "INVALID_ARGUMENT", f"--provider wants NAME=BASE_URL[#SECRET], not {spec!r}"
            )
        if not url.endswith("/"):
            url += "/"
        orchestrator.add_provider(
            ProviderRecord(name=name.lower(), base_url=url, hmac_secret=secret or None)
        )
    if args.accept_tos:
        for record in orchestrator.providers():
            orchestrator.accept_tos(record)
    data = {
        "profile": orchestrator.profile,
        "user": {"id": user.id, "email": user.email},
        "providers": [record.name for record in orchestrator.providers()],
    }
    return envelope(
        "init", True, data, next_steps=["Run `provspec orchestrator catalog --json`."]
    ), 0


async def _catalog(
    orchestrator: Orchestrator, args: argparse.Namespace
) -> tuple[dict[str, Any], int]:
    records = [orchestrator.provider(args.provider)] if args.provider else orchestrator.providers()
    catalogs: dict[str, list[dict[str, Any]]] = {}
    warnings: list[str] = []
    version = orchestrator.params.api_version
    for record in records:
        # One provider's slow, broken or hostile catalog costs only its own entries.
        try:
            if not await orchestrator.speaks_profile(record):
                warnings.append(
                    f"{record.name} does not list API version {version} in provisioning/health; "
                    "its services are left out"
                )
                continue
            catalogs[record.name] = await orchestrator.services(record)
        except HTTPProblem as problem:
            warnings.append(f"{record.name}'s catalog is left out: {problem.message}")
        except httpx.HTTPError as error:
            warnings.append(f"{record.name}'s catalog is left out: {type(error).__name__}")
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    data = aggregate(
        catalogs, last_updated=now, provider_filter=args.provider, faults=orchestrator.faults
    )
    if orchestrator.faults.active("catalog-last-updated-unix"):
        data["last_updated"] = int(datetime.now(UTC).timestamp())
    return envelope("catalog", True, data, warnings=warnings), 0


async def _add(orchestrator: Orchestrator, args: argparse.Namespace) -> tuple[dict[str, Any], int]:
    faults = orchestrator.faults
    reference = args.reference
    if faults.active("progress-on-stdout"):
        args.out.write(f"Provisioning {reference}...\n")
    if faults.active("reference-normalised"):
        reference = unicodedata.normalize("NFKC", reference).strip()
    # Provider and service are compared code point by code point with what is registered and
    # listed (ORC-DSC-013): no case folding beyond ASCII, no normalising, no trimming.
    provider, _, service = reference.partition("/")
    if not provider or not service:
        raise HTTPProblem(
            400, "INVALID_ARGUMENT", f"expected PROVIDER/SERVICE, got {args.reference!r}"
        )
    configuration = _configuration(args.config, faults)
    if faults.active("provider-from-config") and isinstance(configuration.get("provider"), str):
        provider = configuration["provider"]  # lets --config pick where to provision
    user = orchestrator.user()
    borrowed = configuration.get("email")
    if faults.active("account-email-from-config") and isinstance(borrowed, str):
        orchestrator.set_user(
            borrowed, payment_method=user.payment_method, email_verified=user.email_verified
        )
    try:
        outcome: AddOutcome = await orchestrator.add(
            provider,
            service,
            name=args.name,
            configuration=configuration,
            confirm_paid=args.confirm_paid_service
            or (args.yes and faults.active("yes-confirms-paid")),
            accept_tos=args.accept_tos or args.yes or faults.active("tos-not-required"),
        )
    except HTTPProblem:
        if faults.active("bearer-on-stderr"):
            for token in orchestrator.held_tokens():
                print(f"debug: Authorization: Bearer {token}", file=args.err)
        raise
    finally:
        if orchestrator.user().email != user.email:
            orchestrator.set_user(
                user.email, payment_method=user.payment_method, email_verified=user.email_verified
            )
    status = outcome.status
    if status == "consent_required" and faults.active("consent-reported-provisioned"):
        status = "provisioned"
    ok = status in EXIT_CODES
    shown = (
        "complete" if status == "provisioned" and faults.active("add-status-complete") else status
    )
    data = {"status": shown, **outcome.data}
    failure = None if ok else {"code": status.upper(), "message": outcome.message}
    return envelope("add", ok, data, next_steps=outcome.next_steps, error=failure), 0 if ok else 1


def _configuration(text: str | None, faults: FaultSet) -> dict[str, Any]:
    """`--config`: a JSON object, strictly parsed (400 otherwise); {} when not given."""
    if not text:
        return {}
    try:
        parsed = strictjson.loads(text)
    except strictjson.StrictJSONError as error:
        if not faults.active("malformed-config-ignored"):
            raise HTTPProblem(
                400, "INVALID_ARGUMENT", f"--config is not acceptable JSON: {error}"
            ) from None
        return {}
    if not isinstance(parsed, dict):
        if not faults.active("malformed-config-ignored"):
            raise HTTPProblem(400, "INVALID_ARGUMENT", "--config must be a JSON object")
        return {}
    return parsed


async def _status(
    orchestrator: Orchestrator, args: argparse.Namespace
) -> tuple[dict[str, Any], int]:
    shown = []
    for resource in orchestrator.resources():
        if resource.get("status") in ("pending", "needs_information") and not (
            orchestrator.faults.active("pending-not-polled")
        ):
            resource = await orchestrator.poll(resource)
        if not orchestrator.faults.active("status-shows-credentials"):
            resource = {key: value for key, value in resource.items() if key != "credentials"}
        shown.append(resource)
    return envelope("status", True, {"resources": shown}), 0


async def _remove(
    orchestrator: Orchestrator, args: argparse.Namespace
) -> tuple[dict[str, Any], int]:
    if not args.yes:
        raise HTTPProblem(
            400,
            "JSON_REQUIRES_CONFIRMATION",
            f"removing {args.resource!r} deletes it at its provider: re-run with --yes",
        )
    return envelope("remove", True, await orchestrator.remove(args.resource)), 0


async def _env(orchestrator: Orchestrator, args: argparse.Namespace) -> tuple[dict[str, Any], int]:
    warnings = (
        ["Secret values are shown: do not paste them into logs or chats."] if args.reveal else []
    )
    variables: Any = custody.variables(orchestrator, reveal=args.reveal)
    if orchestrator.faults.active("env-variables-as-list"):
        variables = [{"name": name, "value": value} for name, value in variables.items()]
    data: dict[str, Any] = {"variables": variables}
    if args.pull:
        data["path"] = str(custody.write_env_file(orchestrator, args.cwd))
    return envelope("env", True, data, warnings=warnings), 0


async def _billing(
    orchestrator: Orchestrator, args: argparse.Namespace
) -> tuple[dict[str, Any], int]:
    user = orchestrator.user()
    if args.add_payment_method:
        user = orchestrator.set_user(user.email, payment_method=True)
    records = [orchestrator.provider(args.provider)] if args.provider else orchestrator.providers()
    if args.limit is not None:
        if not args.provider:
            raise HTTPProblem(400, "INVALID_ARGUMENT", "--limit needs --provider")
        if args.limit < 0:
            raise HTTPProblem(
                400, "INVALID_ARGUMENT", "--limit is a non-negative integer in minor units"
            )
        orchestrator.core.ledger.set_limit(user.id, records[0].base_url, args.limit)
    caps = {
        record.name: orchestrator.core.ledger.report(user.id, record.base_url).as_json()
        for record in records
    }
    return envelope("billing", True, {"payment_method": user.payment_method, "caps": caps}), 0


async def _revoke(
    orchestrator: Orchestrator, args: argparse.Namespace
) -> tuple[dict[str, Any], int]:
    if args.all:
        return envelope("revoke", True, {"revoked": await orchestrator.revoke_all()}), 0
    if not args.provider:
        raise HTTPProblem(400, "INVALID_ARGUMENT", "name a provider, or pass --all")
    return envelope("revoke", True, await orchestrator.revoke(args.provider)), 0


HANDLERS: dict[str, Handler] = {
    "init": _init,
    "catalog": _catalog,
    "add": _add,
    "status": _status,
    "remove": _remove,
    "env": _env,
    "billing": _billing,
    "revoke": _revoke,
}
