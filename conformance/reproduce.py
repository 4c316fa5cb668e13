"""Copy-paste reproductions of failures: the request that broke a rule, as a shell command.

Every failed (or warned) requirement whose evidence holds a request the suite sent gets a
`curl` command that sends it again, as recorded:

* secrets never appear: an `Authorization` bearer becomes `$PROVSPEC_ACCESS_TOKEN`, a
  value the recorder masked (`«masked 1a2b3c4d»`) stays masked, with a note to fill it in;
* the signature is recomputed when the command runs, by `provspec sign` (0.1d: the
  `Stripe-Signature` from `$PROVSPEC_HMAC_SECRET`; app-next: an attestation of the recorded
  claims, signed with the key of a served `provspec mock orchestrator --state FILE`), since a
  recorded one goes stale in minutes;
* a CLI call (an orchestrator's or an agent's) is its command line.

The reproduction re-sends what broke the rule; what the target answered is in the report's
evidence (exchange `#N`).
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable
from typing import Any

from conformance.recorder import CliCall, Exchange, Recorder
from conformance.results import Finding, Status

__all__ = ["attach_reproductions", "curl_for", "reproduction"]

_LEFT_OUT = {"host", "content-length", "accept-encoding", "connection", "user-agent"}
_MASK = re.compile(r"«masked [0-9a-f]{8}»|%C2%ABmasked\+[0-9a-f]{8}%C2%BB")
"""A value the recorder masked, as shown in text or inside a form-encoded body."""
_CLAIMS = re.compile(r"claims (\{.*\}) signature ")
ORCHESTRATOR_STATE = "provspec-orchestrator.db"
"""What app-next reproductions name as the served mock orchestrator's state file."""


def attach_reproductions(findings: Iterable[Finding], target: Any) -> None:
    """Give every failed, warned or flaky finding the reproduction of its first evidence."""
    recorder: Recorder = target.recorder
    for finding in findings:
        if finding.status in (Status.FAILED, Status.WARNING, Status.FLAKY):
            finding.reproduction = reproduction(recorder, finding.evidence, target)


def reproduction(recorder: Recorder, evidence: Iterable[int], target: Any) -> str | None:
    """The command for the first piece of evidence the suite sent itself (an exchange in the
    `sent` direction, or a CLI call); None when the evidence holds neither."""
    wanted = list(dict.fromkeys(evidence))
    exchanges = {exchange.id: exchange for exchange in recorder.exchanges}
    calls = {call.id: call for call in recorder.cli_calls}
    for identifier in wanted:
        exchange = exchanges.get(identifier)
        if exchange is not None and exchange.direction == "sent":
            return curl_for(exchange, target)
        call = calls.get(identifier)
        if call is not None:
            return _command_for(call)
    return None


def curl_for(exchange: Exchange, target: Any) -> str:
    """`curl` re-sending `exchange`, with its signature (if any) recomputed by `provspec sign`."""
    params = getattr(target, "params", None)
    profile = str(getattr(target, "profile", ""))
    signature = params.signature_header.lower() if params is not None else None
    attestation = params.attestation_header.lower() if params is not None else None
    body = exchange.request_body
    notes = [f"# re-sends exchange #{exchange.id} (what it answered is in the report)"]
    headers: list[str] = []
    shown: list[str] = [exchange.url, body]
    signed: str | None = None
    for name, value in exchange.request_headers.items():
        lower = name.lower()
        if lower in _LEFT_OUT:
            continue
        if lower == signature:
            signed = (
                f"{name}: $(printf '%s' \"$body\" | provspec sign --profile {profile} "
                "--body-file -)"
            )
            notes.append(f"# {name} is made afresh from $PROVSPEC_HMAC_SECRET by provspec sign")
        elif lower == attestation:
            claims = _claims(value)
            signed = (
                f"{name}: $(printf '%s' \"$body\" | provspec sign --profile {profile} "
                f"--state {ORCHESTRATOR_STATE} --claims {shlex.quote(claims)} --body-file -)"
            )
            notes.append(
                f"# {name} is made afresh by provspec sign with the key of `provspec mock "
                f"orchestrator --profile {profile} --state {ORCHESTRATOR_STATE}`, served at "
                "the issuer the provider trusts (the claims' iss)"
            )
        elif lower == "authorization" and value.lower().startswith("bearer "):
            headers.append(f'-H "{name}: Bearer $PROVSPEC_ACCESS_TOKEN"')
            notes.append("# $PROVSPEC_ACCESS_TOKEN: a token the provider issued the suite's user")
        else:
            shown.append(value)
            headers.append(f"-H {shlex.quote(f'{name}: {value}')}")
    if _MASK.search(" ".join(shown)):
        notes.append("# values shown «masked …» were secrets: put the real ones in first")
    parts = [f"curl -sS -i -X {exchange.method} {shlex.quote(exchange.url)}", *headers]
    if signed is not None:
        parts.append(f'-H "{signed}"')
    lines = list(notes)
    if body:
        lines.append(f"body={shlex.quote(body)}")
        parts.append('--data-binary "$body"')
    elif signed is not None:
        lines.append("body=''")
    return "\n".join([*lines, " \\\n  ".join(parts)])


def _claims(header: str) -> str:
    """The claims of a recorded attestation (the recorder shows a JWS's header and claims),
    without the ones `provspec sign` makes afresh."""
    match = _CLAIMS.search(header)
    if match is None:
        return "{}"
    try:
        claims = json.loads(match.group(1))
    except ValueError:
        return "{}"
    if not isinstance(claims, dict):
        return "{}"
    for fresh in ("iat", "exp", "nbf", "jti", "body_sha256"):
        claims.pop(fresh, None)
    return json.dumps(claims, separators=(",", ":"), sort_keys=True)


def _command_for(call: CliCall) -> str:
    lines = [f"# re-runs CLI call #{call.id} (what it printed is in the report)"]
    if _MASK.search(" ".join(call.argv)):
        lines.append("# values shown «masked …» were secrets: put the real ones in first")
    return "\n".join([*lines, shlex.join(call.argv)])
