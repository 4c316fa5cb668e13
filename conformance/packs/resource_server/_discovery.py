"""What a client finds before the flow, for the resource-server checks: the resource's
Bearer challenge, its Protected Resource Metadata (RFC 9728), its authorization server's
metadata (RFC 8414; for MCP 2025-11-25 also OpenID Connect Discovery and the root
well-known URI), and the `Authority` a run's flows use, kept per run.

Nothing here judges: it finds things, and says why (as `Skipped`) when it cannot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from conformance.adapters.resource_server import LOOPBACK, ResourceServerContext
from conformance.checks import Skipped
from conformance.recorder import Exchange
from spec.schemas import profile_family
from wire.urls import prm_url, resource_for_metadata_url
from wire.www_authenticate import Challenge, ChallengeError, parse

MCP_2025_11_25 = "mcp-2025-11-25"


def family(ctx: ResourceServerContext) -> str:
    return profile_family(ctx.profile)


# --- challenges and metadata -------------------------------------------------------------


def bearer_challenge(response: httpx.Response) -> tuple[Challenge | None, str]:
    """The Bearer challenge of a response and a parse problem, if any (RFC 9110 §11.6.1:
    several header lines are one comma-joined list)."""
    lines = response.headers.get_list("www-authenticate")
    if not lines:
        return None, "no WWW-Authenticate header"
    challenges: list[Challenge] = []
    for line in lines:
        try:
            challenges += parse(line)
        except ChallengeError as error:
            return None, f"WWW-Authenticate does not parse: {error}"
    for challenge in challenges:
        if challenge.is_scheme("Bearer"):
            return challenge, ""
    return None, f"no Bearer challenge among {[c.scheme for c in challenges]}"


async def bare(ctx: ResourceServerContext) -> tuple[httpx.Response, Exchange]:
    return await ctx.request_resource()


def usable(response: httpx.Response, document: Any) -> bool:
    return response.status_code == 200 and isinstance(document, dict)


@dataclass
class FoundMetadata:
    url: str
    named: bool
    """The URL came from the challenge's resource_metadata."""
    root_fallback: bool
    """MCP 2025-11-25: the path-inserted URL gave nothing, the root one was used."""
    response: httpx.Response
    exchange: Exchange
    document: Any


async def find_metadata(ctx: ResourceServerContext) -> FoundMetadata:
    """Where a client finds the Protected Resource Metadata, and what it gets there."""
    response, _ = await bare(ctx)
    challenge, _ = bearer_challenge(response)
    named = challenge.params.get("resource_metadata") if challenge else None
    url = named or prm_url(ctx.url)
    answer, exchange = await ctx.get(url, from_message=bool(named))
    document = ctx.json(answer)
    parts = urlsplit(ctx.url)
    root = f"{parts.scheme}://{parts.netloc}/.well-known/oauth-protected-resource"
    if not named and not usable(answer, document) and family(ctx) == MCP_2025_11_25 and url != root:
        fallback, fallback_exchange = await ctx.get(root, from_message=False)
        fallback_document = ctx.json(fallback)
        if usable(fallback, fallback_document):
            return FoundMetadata(root, False, True, fallback, fallback_exchange, fallback_document)
    return FoundMetadata(url, bool(named), False, answer, exchange, document)


async def metadata(ctx: ResourceServerContext) -> FoundMetadata:
    """The metadata, or Skipped when there is none to use (RSV-DSC-001 says why)."""
    found = await find_metadata(ctx)
    if not usable(found.response, found.document):
        raise Skipped(f"no usable Protected Resource Metadata at {found.url} (see RSV-DSC-001)")
    return found


def as_metadata_urls(ctx: ResourceServerContext, issuer: str) -> list[str]:
    """RFC 8414 §3.1 (path insertion); for MCP 2025-11-25 also OpenID Connect Discovery,
    inserted and appended, in the order an MCP client tries them."""
    parts = urlsplit(issuer)
    path = "" if parts.path in ("", "/") else parts.path
    origin = f"{parts.scheme}://{parts.netloc}"
    urls = [f"{origin}/.well-known/oauth-authorization-server{path}"]
    if family(ctx) == MCP_2025_11_25:
        urls.append(f"{origin}/.well-known/openid-configuration{path}")
        if path:
            urls.append(f"{issuer.rstrip('/')}/.well-known/openid-configuration")
    return urls


@dataclass
class AuthorizationServerMetadata:
    issuer: str
    url: str
    response: httpx.Response
    exchange: Exchange
    document: Any

    @property
    def ok(self) -> bool:
        return usable(self.response, self.document)

    @property
    def identical(self) -> bool:
        return self.ok and self.document.get("issuer") == self.issuer


async def as_metadata(ctx: ResourceServerContext, issuer: str) -> AuthorizationServerMetadata:
    """The first URL of `as_metadata_urls` that answers 200 with a JSON object (else the
    last answer)."""
    found: AuthorizationServerMetadata | None = None
    for url in as_metadata_urls(ctx, issuer):
        answer, exchange = await ctx.get(url)
        found = AuthorizationServerMetadata(issuer, url, answer, exchange, ctx.json(answer))
        if found.ok:
            break
    assert found is not None
    return found


def issuers(document: dict[str, Any]) -> list[str]:
    servers = document.get("authorization_servers")
    if isinstance(servers, list):
        return [item for item in servers if isinstance(item, str)]
    return []


def scopes_of(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(value.split())
    if isinstance(value, list):
        return tuple(item for item in value if isinstance(item, str))
    return ()


# --- what a client knows before the flow -------------------------------------------------


@dataclass
class Authority:
    issuer: str
    metadata: dict[str, Any]
    metadata_exchange: Exchange
    resource_metadata: dict[str, Any]
    challenge_scope: tuple[str, ...]
    """The scope the 401 challenge named (empty: none)."""

    def endpoint(self, name: str) -> str | None:
        value = self.metadata.get(name)
        return value if isinstance(value, str) and value else None

    @property
    def resource(self) -> str:
        """The resource identifier to ask tokens for (RFC 8707; MCP's canonical URI): the
        metadata's resource."""
        value = self.resource_metadata.get("resource")
        assert isinstance(value, str)  # _authority refuses metadata without one
        return value

    @property
    def supported_scopes(self) -> tuple[str, ...]:
        both = scopes_of(self.resource_metadata.get("scopes_supported")) + scopes_of(
            self.metadata.get("scopes_supported")
        )
        return tuple(dict.fromkeys(both))


async def authority(ctx: ResourceServerContext) -> Authority:
    """The authorization server a client would use for the flow (per run)."""
    refused = ctx.target.flows_refused()
    if refused:
        raise Skipped(f"the authorization code flow is not run: {refused}")
    return await ctx.target.memo("authority", lambda: _authority(ctx))


async def _authority(ctx: ResourceServerContext) -> Authority:
    response, _ = await bare(ctx)
    challenge, _ = bearer_challenge(response)
    challenge_scope = scopes_of(challenge.params.get("scope")) if challenge else ()
    found = await metadata(ctx)
    resource = found.document.get("resource")
    if not isinstance(resource, str):
        raise Skipped("the metadata names no resource to ask tokens for (see RSV-DSC-002)")
    built = resource_for_metadata_url(found.url)
    if resource != ctx.url and (
        found.named or built is None or resource not in (built, built + "/")
    ):
        raise Skipped(
            f"the metadata's resource {resource!r} is not the requested URL (see RSV-DSC-003, "
            "RSV-DSC-004): a client must not use it (RFC 9728 §3.3)"
        )
    servers = issuers(found.document)
    if not servers:
        raise Skipped("the metadata names no authorization server to run the flow against")
    server = await as_metadata(ctx, servers[0])
    if not server.identical:
        raise Skipped(
            f"no usable metadata for authorization server {servers[0]!r} (see RSV-DSC-008 / "
            "RSV-DSC-012): a client must not use it"
        )
    document: dict[str, Any] = server.document
    for name in ("authorization_endpoint", "token_endpoint"):
        if not isinstance(document.get(name), str):
            raise Skipped(f"the authorization server's metadata names no {name} (RSV-DSC-009)")
    return Authority(servers[0], document, server.exchange, found.document, challenge_scope)


def needed_scopes(ctx: ResourceServerContext, auth: Authority) -> tuple[str, ...]:
    """What the resource needs: configured, else what its 401 challenge named."""
    if ctx.config.scope:
        return tuple(ctx.config.scope.split())
    return auth.challenge_scope


def presumed_scopes(ctx: ResourceServerContext, auth: Authority) -> tuple[tuple[str, ...], bool]:
    """(what the resource presumably needs, whether that is known): configured or named by
    its challenge (known), else the scopes_supported of its metadata (presumed: it may need
    fewer, or none)."""
    needed = needed_scopes(ctx, auth)
    if needed:
        return needed, True
    return scopes_of(auth.resource_metadata.get("scopes_supported")), False


def request_scope(ctx: ResourceServerContext, auth: Authority) -> str | None:
    """What the suite asks for in a normal flow (MCP's scope selection: the challenge's
    scope, else scopes_supported of the resource metadata)."""
    scopes = needed_scopes(ctx, auth) or scopes_of(auth.resource_metadata.get("scopes_supported"))
    return " ".join(scopes) or None


def limited_scope(ctx: ResourceServerContext, auth: Authority) -> str | None:
    """A scope that does not satisfy the resource, for the insufficient_scope probe."""
    if ctx.config.limited_scope:
        return ctx.config.limited_scope
    needed, _ = presumed_scopes(ctx, auth)
    if not needed:
        return None
    return next((scope for scope in auth.supported_scopes if scope not in needed), None)


def secure_url(url: Any) -> bool:
    """https, or http on loopback (a test target); no fragment, a host."""
    if not isinstance(url, str):
        return False
    parts = urlsplit(url)
    if parts.fragment or not parts.netloc:
        return False
    return parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK)
