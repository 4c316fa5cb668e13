"""Moves of the consent checks (consent.py): the suite's provider's answers tampered with for
one probe, the consent URL the orchestrator hands the human, and the suite playing the human's
browser back to the orchestrator's redirect URI.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit, urlunsplit

from conformance.adapters.orchestrator import (
    OrchestratorContext,
    RawRequest,
    Tamper,
)
from conformance.checks import Skipped
from conformance.recorder import CliCall, Exchange
from wire.urls import as_metadata_url

__all__ = [
    "authorization_server_comes_from_the_prm",
    "metadata_comes_from_the_challenge_url",
    "DROP",
    "EXISTING_EMAIL",
    "LOOPBACK_HOSTS",
    "RETRY_BUDGET",
    "Refusing",
    "as_a_known_email",
    "ask_for_consent",
    "browse_to_the_redirect",
    "challenge_naming",
    "consent_to_the_redirect",
    "consent_url",
    "document_at",
    "form_of",
    "gets",
    "handed_over",
    "is_loopback_or_https",
    "probe",
    "query_of",
    "redirect_to",
    "resource_variants",
    "rewrite_json",
    "serve_json",
    "tampering",
    "token_requests",
    "with_query",
]


EXISTING_EMAIL = "existing@example.com"
"""An account the suite's provider already holds, never linked to the orchestrator."""


LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


RETRY_BUDGET = 3
"""How many times one add may send the call a provider keeps refusing with 401 or 403
insufficient_scope: the 3 attempts MCP's conformance suite allows (auth/scope-retry-limit)."""


@contextlib.contextmanager
def as_a_known_email(ctx: OrchestratorContext) -> Iterator[None]:
    """Sign the orchestrator's user in as someone the provider already has an account for,
    and back to a fresh user afterwards, so later checks are not sent down the consent path."""
    ctx.cli("init", "--new-user", "--email", EXISTING_EMAIL, "--accept-tos")
    try:
        yield
    finally:
        email = ctx.new_email()
        ctx.cli("init", "--new-user", "--email", email, "--accept-tos")


async def ask_for_consent(ctx: OrchestratorContext) -> tuple[CliCall, dict[str, Any], int]:
    """Within `as_a_known_email`: add a service; the CLI call, its envelope and the recorder
    mark before it. When the provider did not answer the account request with a 401 (it
    already links the orchestrator's identity to the account: an attestation whose sub is
    not a fresh opaque id per user, ORC-ATT-010), there is no consent path to judge."""
    mark = ctx.recorder.mark
    call, envelope = await ctx.add("free")
    asked = [
        raw
        for raw in ctx.received(mark, "/provisioning/account_requests")
        if (exchange := ctx.exchange(raw)) is not None and exchange.status == 401
    ]
    if not asked:
        raise Skipped(
            "the provider asked for no consent: it already links this orchestrator identity "
            "to the existing account (see ORC-ACC-001, ORC-ATT-010)"
        )
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


def with_query(url: str, **changes: str | None) -> str:
    """`url` with query parameters replaced (a value of None removes the parameter)."""
    parts = urlsplit(url)
    pairs = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in changes]
    pairs += [(k, v) for k, v in changes.items() if v is not None]
    return urlunsplit(parts._replace(query=urlencode(pairs)))


def gets(ctx: OrchestratorContext, since: int, path: str) -> list[RawRequest]:
    return [r for r in ctx.received(since) if r.method == "GET" and r.path == path]


DROP = object()
"""A value for `rewrite_json` that removes the member instead."""


def rewrite_json(change: dict[str, Any]) -> Tamper:
    def rule(
        status: int, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        document = json.loads(body)
        document.update(change)
        for name in [name for name, value in change.items() if value is DROP]:
            del document[name]
        return status, headers, json.dumps(document).encode()

    return rule


def serve_json(document: dict[str, Any]) -> Tamper:
    """Answer 200 with `document`, whatever the provider would have answered on that path."""

    def rule(
        status: int, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        return 200, {"content-type": "application/json"}, json.dumps(document).encode()

    return rule


def redirect_to(location: str) -> Tamper:
    def rule(
        status: int, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        return 302, {"location": location, "content-type": "text/plain"}, b""

    return rule


def challenge_naming(url: str) -> Tamper:
    """A consent_required 401 whose resource_metadata (header and body alike) names `url`."""

    def rule(
        status: int, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        if status != 401:
            return status, headers, body
        header = headers.get("www-authenticate", "")
        if "resource_metadata=" in header:
            header = re.sub(r'resource_metadata="[^"]*"', f'resource_metadata="{url}"', header)
        else:
            header = f'Bearer resource_metadata="{url}"'
        headers["www-authenticate"] = header
        try:
            document = json.loads(body)
        except ValueError:
            document = None
        if isinstance(document, dict) and "resource_metadata" in document:
            document["resource_metadata"] = url
            body = json.dumps(document).encode()
        return status, headers, body

    return rule


@contextlib.contextmanager
def tampering(ctx: OrchestratorContext, *rules: tuple[str, Tamper]) -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        for suffix, rule in rules:
            stack.enter_context(ctx.tampered(suffix, rule))
        yield


async def document_at(ctx: OrchestratorContext, url: str) -> dict[str, Any]:
    """One of the suite's provider's own metadata documents, as the provider serves it."""
    answer, _ = await ctx.get(url)
    document = answer.json() if answer.status_code == 200 else None
    if not isinstance(document, dict):
        raise Skipped(f"the suite's provider did not serve {url} ({answer.status_code})")
    return document


async def probe(
    ctx: OrchestratorContext, *rules: tuple[str, Tamper]
) -> tuple[CliCall, dict[str, Any], int]:
    """One consent attempt as a fresh user with a known email, under `rules`."""
    with tampering(ctx, *rules), as_a_known_email(ctx):
        return await ask_for_consent(ctx)


def handed_over(envelope: dict[str, Any], endpoint: str) -> bool:
    """Whether the agent got an authorization URL built on `endpoint`."""
    url = consent_url(envelope)
    return bool(url and endpoint and url.startswith(endpoint))


async def browse_to_the_redirect(ctx: OrchestratorContext, url: str) -> tuple[str, Exchange]:
    """Play the human: approve at the provider; where its redirect points, and the approval."""
    answer, approval = await ctx.get(url)
    location = answer.headers.get("location", "")
    if answer.status_code not in (302, 303) or not location:
        raise Skipped(f"the provider did not redirect the approval ({answer.status_code})")
    return location, approval


async def consent_to_the_redirect(ctx: OrchestratorContext) -> tuple[str, str, Exchange]:
    """Within `as_a_known_email`: the authorization URL handed over, where the approval
    redirects the browser, and the approval exchange."""
    _, envelope, _ = await ask_for_consent(ctx)
    url = consent_url(envelope)
    if not url:
        raise Skipped("the orchestrator handed over no consent URL (see ORC-CNS-005)")
    location, approval = await browse_to_the_redirect(ctx, url)
    return url, location, approval


def token_requests(ctx: OrchestratorContext, since: int) -> list[RawRequest]:
    return [r for r in ctx.received(since, "/oauth/token") if r.method == "POST"]


def form_of(raw: RawRequest) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(raw.body.decode("latin-1")).items()}


def is_loopback_or_https(url: str) -> bool:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    return parts.scheme == "https" or (parts.scheme == "http" and host in LOOPBACK_HOSTS)


class Refusing:
    """Answers every call with `status` `error` and a Bearer challenge, and with a plain 400
    once the call has come back twice the retry budget: a looping orchestrator is stopped
    and counted rather than left running."""

    def __init__(self, status: int, error: str, prm_url: str) -> None:
        self.status, self.error, self.prm_url = status, error, prm_url
        self.answered = 0

    def __call__(
        self, status: int, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        self.answered += 1
        json_type = {"content-type": "application/json"}
        if self.answered > 2 * RETRY_BUDGET:
            stop = {"status": "error", "error": {"code": "invalid_request", "message": "stop"}}
            return 400, json_type, json.dumps(stop).encode()
        challenge = (
            f'Bearer error="{self.error}", scope="provisioning", resource_metadata="{self.prm_url}"'
        )
        refusal = {"status": "error", "error": {"code": self.error, "message": "refused"}}
        return (
            self.status,
            {**json_type, "www-authenticate": challenge},
            json.dumps(refusal).encode(),
        )


def resource_variants(base: str) -> list[tuple[str, str]]:
    parts = urlsplit(base)
    return [
        (base.rstrip("/") if base.endswith("/") else base + "/", "a trailing slash"),
        (urlunsplit(parts._replace(path=parts.path.upper())), "the letter case of the path"),
        (urlunsplit(parts._replace(scheme=parts.scheme.upper())), "the letter case of the scheme"),
    ]


# --- parts of ORC-CNS-001 and -010 (consent.py) ----------------------------------------------


async def metadata_comes_from_the_challenge_url(ctx: OrchestratorContext) -> None:
    """ORC-CNS-001 where the challenge names a URL other than the well-known one: an
    orchestrator that builds the RFC 9728 well-known URL itself is caught only here."""
    provider = ctx.provider
    prm = await document_at(ctx, provider.prm_url)
    named = provider.base_url + "metadata/resource.json"
    call, _, mark = await probe(
        ctx,
        ("/provisioning/account_requests", challenge_naming(named)),
        (urlsplit(named).path, serve_json(prm)),
    )
    elsewhere = [
        r.path
        for r in ctx.received(mark)
        if r.method == "GET" and r.path.startswith("/.well-known/oauth-protected-resource")
    ]
    ctx.require(
        "ORC-CNS-001",
        bool(gets(ctx, mark, urlsplit(named).path)) and not elsewhere,
        f"with resource_metadata={named!r} in the challenge the orchestrator must fetch that "
        f"URL and no other PRM; it also fetched {elsewhere}",
        call,
    )


async def authorization_server_comes_from_the_prm(ctx: OrchestratorContext) -> None:
    """ORC-CNS-010 with a PRM naming a second authorization server: an orchestrator that
    assumes the authorization server sits at the resource is caught only here."""
    provider = ctx.provider
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(provider.base_url))
    issuer = origin + "/authorization/second"
    metadata = await document_at(ctx, provider.as_metadata_url)
    metadata_url = as_metadata_url(issuer)
    call, _, mark = await probe(
        ctx,
        (urlsplit(provider.prm_url).path, rewrite_json({"authorization_servers": [issuer]})),
        (urlsplit(metadata_url).path, serve_json({**metadata, "issuer": issuer})),
    )
    ctx.require(
        "ORC-CNS-010",
        bool(gets(ctx, mark, urlsplit(metadata_url).path)),
        f"with authorization_servers [{issuer!r}] in the PRM the orchestrator must fetch "
        f"{metadata_url}",
        call,
    )
