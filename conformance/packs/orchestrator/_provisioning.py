"""Moves of the provisioning checks (provisioning.py): bearer tokens the suite's provider
issued, the status an add answers, failure envelopes judged, and resource names.
"""

from __future__ import annotations

import json
from typing import Any

from conformance.adapters.orchestrator import (
    PROVIDER_NAME,
    OrchestratorContext,
    envelope_of,
)
from conformance.packs.orchestrator._probes import (
    ADD_STATUSES,
    answer_of,
    error_code,
)
from conformance.recorder import CliCall
from wire import strictjson

__all__ = [
    "SUCCESSES",
    "TRACEBACK",
    "bearer_token",
    "contract_status",
    "issued_access_tokens",
    "judge_failure",
    "resource_names",
    "strictjson_envelope",
]


TRACEBACK = "Traceback (most recent call last)"


def bearer_token(value: str) -> str:
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def issued_access_tokens(ctx: OrchestratorContext, provider: str = PROVIDER_NAME) -> set[str]:
    return {
        str(answer["access_token"])
        for raw in ctx.received(0, "/oauth/token", provider=provider)
        for answer in [answer_of(raw)]
        if isinstance(answer, dict) and isinstance(answer.get("access_token"), str)
    }


SUCCESSES = frozenset({"provisioned", "pending", "needs_information"})
"""ORC-PRO-002: the add statuses answered with ok true, in data.status."""


def contract_status(envelope: dict[str, Any]) -> tuple[str, str]:
    """The status an add answer reports where the CLI contract puts it, or "" and why not:
    ok true, data.status one of SUCCESSES; ok false, error.code the status in upper-snake
    case (or Stripe's JSON_REQUIRES_CONFIRMATION), with data.status, if any, agreeing."""
    data = envelope.get("data")
    shown = data.get("status") if isinstance(data, dict) else None
    if envelope.get("ok") is True:
        if shown in SUCCESSES:
            return str(shown), ""
        return "", f"ok true with data.status {shown!r}, not one of {sorted(SUCCESSES)}"
    code = error_code(envelope)
    status = {"json_requires_confirmation": "confirmation_required"}.get(code.lower(), code.lower())
    if code != code.upper() or status not in ADD_STATUSES - SUCCESSES:
        return "", f"ok {envelope.get('ok')!r} with error.code {code!r}"
    if shown is not None and shown != status:
        return "", f"error.code {code!r} but data.status {shown!r}"
    return status, ""


def judge_failure(ctx: OrchestratorContext, requirement: str, call: CliCall, what: str) -> None:
    stdout, stderr = ctx.output(call)
    envelope = strictjson_envelope(stdout)
    error = envelope.get("error") if isinstance(envelope, dict) else None
    shaped = (
        isinstance(envelope, dict)
        and envelope.get("ok") is False
        and isinstance(error, dict)
        and isinstance(error.get("code"), str)
        and bool(error["code"])
        and isinstance(error.get("message"), str)
        and bool(error["message"])
    )
    ctx.require(
        requirement,
        shaped and TRACEBACK not in stdout + stderr,
        f"{what}: the failure must be an envelope with ok false and error {{code, message}}, "
        f"and no traceback (envelope {'well formed' if shaped else 'missing or malformed'}, "
        f"traceback {'printed' if TRACEBACK in stdout + stderr else 'none'})",
        call,
    )


def strictjson_envelope(stdout: str) -> Any:
    try:
        return strictjson.loads(stdout.strip()) if stdout.strip() else None
    except strictjson.StrictJSONError:
        return envelope_of(stdout)


def resource_names(envelope: dict[str, Any]) -> set[str]:
    data = envelope.get("data")
    resources = data.get("resources") if isinstance(data, dict) else None
    return {
        json.dumps([item.get("provider"), item.get("name")])
        for item in resources or []
        if isinstance(item, dict)
    }
