"""The orchestrator's RFC 9728 consent client, observed from the suite's provider.

An existing account at the suite's provider makes the orchestrator's account request end in
`401` + `WWW-Authenticate: Bearer resource_metadata=…`. A sound orchestrator then discovers
the authorization server (RFC 9728, RFC 8414), validates what it reads exactly, and hands
the human an authorization URL with PKCE S256, state and the resource (RFC 8707); when the
browser comes back to its redirect URI it exchanges the code with the verifier and the same
resource. Adversarial variants are made by tampering with the suite's provider's answers
for the length of one probe.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

from conformance.adapters.orchestrator import OrchestratorContext, RawRequest
from conformance.checks import NotApplicable, Skipped, check
from conformance.recorder import CliCall

EXISTING_EMAIL = "existing@example.com"
"""An account the suite's provider already holds, never linked to the orchestrator."""


@contextlib.contextmanager
def as_a_known_email(ctx: OrchestratorContext) -> Iterator[None]:
    """Sign the orchestrator's user in as someone the provider already has an account for,
    and back to a fresh user afterwards, so later checks are not sent down the consent path."""
    ctx.cli("init", "--new-user", "--email", EXISTING_EMAIL, "--accept-tos")
    try:
        yield
    finally:
        email = f"provspec+{secrets.token_hex(4)}@example.com"
        ctx.cli("init", "--new-user", "--email", email, "--accept-tos")


async def ask_for_consent(ctx: OrchestratorContext) -> tuple[CliCall, dict[str, Any], int]:
    """Within `as_a_known_email`: add a service; the CLI call, its envelope and the recorder
    mark before it."""
    mark = ctx.recorder.mark
    call, envelope = await ctx.add("free")
    return call, envelope, mark


def consent_url(envelope: dict[str, Any]) -> str:
    error = envelope.get("error")
    data = envelope.get("data")
    if not isinstance(error, dict) or error.get("code") != "CONSENT_REQUIRED":
        return ""
    url = data.get("url") if isinstance(data, dict) else None
    return url if isinstance(url, str) else ""


def query_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query, keep_blank_values=True)


def gets(ctx: OrchestratorContext, since: int, path: str) -> list[RawRequest]:
    return [r for r in ctx.received(since) if r.method == "GET" and r.path == path]


def rewrite_json(change: dict[str, Any]) -> Any:
    def rule(
        status: int, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        document = json.loads(body)
        document.update(change)
        return status, headers, json.dumps(document).encode()

    return rule


@check("ORC-CNS-001", "ORC-CNS-005", "ORC-CNS-010")
async def consent_path_is_discovered_and_handed_to_the_human(ctx: OrchestratorContext) -> None:
    provider = ctx.provider
    with as_a_known_email(ctx):
        call, envelope, mark = await ask_for_consent(ctx)
    prm_path = urlsplit(provider.prm_url).path
    as_path = urlsplit(provider.as_metadata_url).path
    metadata_fetches = [
        r for r in ctx.received(mark) if r.method == "GET" and "/.well-known/" in r.path
    ]
    ctx.require(
        "ORC-CNS-001",
        bool(gets(ctx, mark, prm_path))
        and all(r.path in (prm_path, as_path) for r in metadata_fetches),
        f"the metadata must be fetched from the challenge's resource_metadata ({prm_path}); "
        f"fetched {[r.path for r in metadata_fetches]}",
        call,
    )
    ctx.require(
        "ORC-CNS-010",
        bool(gets(ctx, mark, as_path)),
        f"the authorization server metadata must be fetched from the RFC 8414 URL {as_path}",
        call,
    )
    url = consent_url(envelope)
    query = query_of(url)
    problems = []
    if not (query.get("code_challenge") or [""])[0]:
        problems.append("no code_challenge")
    if query.get("code_challenge_method") != ["S256"]:
        problems.append(f"code_challenge_method {query.get('code_challenge_method')}")
    if not (query.get("state") or [""])[0]:
        problems.append("no state")
    if query.get("resource") != [provider.base_url]:
        problems.append(f"resource {query.get('resource')} is not [{provider.base_url!r}]")
    if not query.get("login_hint"):
        problems.append("no login_hint")
    ctx.require(
        "ORC-CNS-005",
        bool(url) and not problems,
        f"the authorization URL handed to the human must carry PKCE S256, state, resource and "
        f"login_hint: {problems or 'no consent URL at all'}",
        call,
    )


@check("ORC-CNS-006")
async def the_code_is_exchanged_with_the_verifier_and_the_same_resource(
    ctx: OrchestratorContext,
) -> None:
    with as_a_known_email(ctx):
        _, envelope, _ = await ask_for_consent(ctx)
        url = consent_url(envelope)
        if not url:
            raise Skipped("the orchestrator handed over no consent URL (see ORC-CNS-005)")
        # The suite plays the human's browser: approve at the provider, follow the redirect.
        answer, approval = await ctx.get(url)
        location = answer.headers.get("location", "")
        if answer.status_code not in (302, 303) or not location:
            raise Skipped(f"the provider did not redirect the approval ({answer.status_code})")
        mark = ctx.recorder.mark
        await ctx.get(location)
    tokens = [r for r in ctx.received(mark, "/oauth/token") if r.method == "POST"]
    if not tokens:
        ctx.require("ORC-CNS-006", False, "the redirect back led to no token request", approval)
        return
    form = {k: v[0] for k, v in parse_qs(tokens[-1].body.decode("latin-1")).items()}
    asked = query_of(url)
    challenge = (asked.get("code_challenge") or [""])[0]
    verifier = form.get("code_verifier", "")
    computed = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    problems = []
    if not verifier or computed != challenge:
        problems.append("the code_verifier is missing or does not match the code_challenge")
    requested = next(iter(asked.get("resource") or []), None)
    if "resource" not in form or form.get("resource") != requested:
        problems.append(
            f"resource {form.get('resource')!r} differs from the authorization request's "
            f"{requested!r}"
        )
    ctx.require(
        "ORC-CNS-006",
        not problems,
        f"the token request after consent: {problems}",
        ctx.exchange(tokens[-1]),
    )


@check("ORC-CNS-002", "ORC-CNS-003", "ORC-CNS-004")
async def tampered_discovery_ends_the_consent_path(ctx: OrchestratorContext) -> None:
    provider = ctx.provider
    prm_path = urlsplit(provider.prm_url).path
    as_path = urlsplit(provider.as_metadata_url).path
    answer, _ = await ctx.get(provider.as_metadata_url)
    authorize = str((answer.json() or {}).get("authorization_endpoint", ""))
    for requirement, path, change, why in (
        (
            "ORC-CNS-002",
            prm_path,
            {"resource": provider.base_url.rstrip("/")},
            "a Protected Resource Metadata resource that differs by a trailing slash",
        ),
        (
            "ORC-CNS-003",
            as_path,
            {"issuer": provider.issuer + "/"},
            "an authorization server issuer that differs by a trailing slash",
        ),
        (
            "ORC-CNS-004",
            as_path,
            {"code_challenge_methods_supported": ["plain"]},
            "an authorization server without PKCE S256",
        ),
    ):
        with ctx.tampered(path, rewrite_json(change)), as_a_known_email(ctx):
            call, envelope, _ = await ask_for_consent(ctx)
        url = consent_url(envelope)
        ctx.require(
            requirement,
            not (url and authorize and url.startswith(authorize)),
            f"after {why} the orchestrator still handed over an authorization URL",
            call,
        )


@check("ORC-CNS-008")
async def urls_from_the_challenge_pass_the_ssrf_policy(ctx: OrchestratorContext) -> None:
    if ctx.profile != "app-next":
        raise NotApplicable("in 0.1d the orchestrator hands the requires_auth URL over unfetched")
    provider = ctx.provider
    parts = urlsplit(provider.prm_url)
    # Userinfo in front of the host is the classic way to make a URL look like one host and
    # reach another; any SSRF policy refuses it. It points back at the suite, so a fetch shows.
    hostile = f"{parts.scheme}://provspec@{parts.netloc}{parts.path}"

    def challenge(
        status: int, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        if status == 401:
            headers["www-authenticate"] = f'Bearer resource_metadata="{hostile}"'
        return status, headers, body

    with ctx.tampered("/provisioning/account_requests", challenge), as_a_known_email(ctx):
        call, _, mark = await ask_for_consent(ctx)
    fetched = gets(ctx, mark, parts.path)
    ctx.require(
        "ORC-CNS-008",
        not fetched,
        f"the orchestrator fetched {hostile!r}, a URL with userinfo, from a challenge",
        call,
        *(ctx.exchange(r) for r in fetched[:1]),
    )
