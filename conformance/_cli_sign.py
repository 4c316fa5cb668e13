"""`provspec sign`: the signature header value for a body, as the suite's orchestrator signs.

What a failure's reproduction (`curl`, see `conformance.reproduce`) calls to sign afresh:

* app-0.1d: the `Stripe-Signature` value `t=<now>,v1=<HMAC-SHA256>` of the body under the
  secret in `$PROVSPEC_HMAC_SECRET` (`--secret-env` names another variable; never an option,
  so the secret stays out of shell history and process lists);
* app-next: an attestation of the body (`APP-Attestation`) with the claims given as JSON
  (`--claims`: `iss`, `sub`, `aud`, `email`, … as a report shows them), fresh `iat`, `exp`,
  `jti` and `body_sha256`, signed with the key of `provspec mock orchestrator --state FILE`,
  which serves the matching JWKS for the provider to fetch.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from conformance.client._signing import attestation, stripe_signature
from mocks import SQLiteStore
from mocks.orchestrator import OrchestratorMock, OrchestratorSettings
from spec.profiles import DEFAULT_PROFILE
from spec.schemas import default_store
from wire.errors import UsageError

__all__ = ["add_sign_parser"]


def add_sign_parser(commands: Any) -> None:
    sign = commands.add_parser(
        "sign",
        help="print the signature header value for a body (what a reproduction runs)",
        description="Print the value of the signature header the suite's orchestrator would "
        "send with BODY: app-0.1d a Stripe-Signature from $PROVSPEC_HMAC_SECRET; app-next an "
        "attestation of --claims signed with a served mock orchestrator's key (--state). "
        "Exit 0, or 2 when the secret, key or claims are missing.",
    )
    sign.add_argument(
        "--profile", default=DEFAULT_PROFILE, help=f"profile (default: {DEFAULT_PROFILE})"
    )
    sign.add_argument(
        "--body-file",
        default="-",
        metavar="FILE",
        help="the exact body bytes to sign, or - for standard input (default: -)",
    )
    sign.add_argument(
        "--secret-env",
        default="PROVSPEC_HMAC_SECRET",
        metavar="VAR",
        help="app-0.1d: the variable holding the HMAC secret (default: PROVSPEC_HMAC_SECRET)",
    )
    sign.add_argument(
        "--timestamp", type=int, metavar="T", help="app-0.1d: sign at Unix time T (default: now)"
    )
    sign.add_argument(
        "--state",
        type=Path,
        metavar="FILE",
        help="app-next: the state file of `provspec mock orchestrator --state FILE` (its key)",
    )
    sign.add_argument(
        "--claims", metavar="JSON", help="app-next: the attestation's claims as a JSON object"
    )
    sign.set_defaults(handler=_sign)


def _sign(args: argparse.Namespace) -> int:
    spec = default_store().profile(args.profile)
    raw = _body(args.body_file)
    now = int(time.time())
    if spec.family == "app-0.1d":
        secret = os.environ.get(args.secret_env)
        if not secret:
            raise UsageError(
                f"${args.secret_env} is not set: export the provider's "
                f"{spec.params.signature_header} secret in it (it is never an option)"
            )
        print(stripe_signature(secret, raw, now if args.timestamp is None else args.timestamp))
        return 0
    if args.state is None or not args.state.exists():
        raise UsageError(
            "app-next signs with a served mock orchestrator's key: give --state FILE, the state "
            "file of `provspec mock orchestrator --state FILE` (the issuer the provider trusts)"
        )
    claims = _claims(args.claims)
    issuer = claims.get("iss")
    if not isinstance(issuer, str) or not issuer:
        raise UsageError("--claims must name the issuer (iss) the provider trusts")
    store = SQLiteStore(args.state)
    try:
        key = OrchestratorMock(
            OrchestratorSettings(profile=spec, issuer=issuer, store=store)
        ).signing_key
    finally:
        store.close()
    fixed = {k: v for k, v in claims.items() if k not in ("iss", "sub", "aud")}
    print(
        attestation(
            key,
            issuer=issuer,
            audience=str(claims.get("aud", "")),
            subject=str(claims.get("sub", "")),
            raw=raw,
            now=now,
            lifetime=spec.params.attestation_lifetime,
            claims=fixed,
        )
    )
    return 0


def _body(name: str) -> bytes:
    if name == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(name).read_bytes()
    except OSError as error:
        raise UsageError(f"--body-file {name}: {error.strerror}") from None


def _claims(text: str | None) -> dict[str, Any]:
    if not text:
        raise UsageError("app-next: give the attestation's claims with --claims '{...}'")
    try:
        claims = json.loads(text)
    except ValueError as error:
        raise UsageError(f"--claims is not JSON: {error}") from None
    if not isinstance(claims, dict):
        raise UsageError("--claims must be a JSON object")
    return claims
