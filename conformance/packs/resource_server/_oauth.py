"""The OAuth client the resource-server checks share: a client, the flow, tokens; and, re-
exported from `_discovery`, what a client finds before the flow.

Discovery is walked per profile: RFC 9728 and RFC 8414 as the RFCs say, plus what MCP
2025-11-25 lets a server rely on (the root well-known URI for its metadata, OpenID Connect
Discovery for its authorization server). What a whole run needs once — the authorization
server a client would use, the client, a flow that works — is kept per run
(`ResourceServerTarget.memo`), so every check cites the same exchanges.

Nothing here judges: it finds things, and says why (as `Skipped`) when it cannot.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urljoin, urlsplit

import httpx

from conformance.adapters.resource_server import ResourceServerContext
from conformance.checks import NotApplicable, Skipped
from conformance.packs.resource_server._discovery import (
    Authority,
    as_metadata,
    authority,
    bare,
    bearer_challenge,
    find_metadata,
    issuers,
    limited_scope,
    metadata,
    presumed_scopes,
    request_scope,
    scopes_of,
    secure_url,
    usable,
)
from conformance.recorder import CliCall, Exchange
from wire.pkce import pkce_pair

__all__ = [
    # before the flow (_discovery)
    "Authority",
    "as_metadata",
    "authority",
    "bare",
    "bearer_challenge",
    "find_metadata",
    "issuers",
    "limited_scope",
    "metadata",
    "presumed_scopes",
    "request_scope",
    "scopes_of",
    "secure_url",
    "usable",
    # the client, the flow, the tokens
    "Accepted",
    "Authorization",
    "Client",
    "Registration",
    "TokenAnswer",
    "Tokens",
    "accepted_tokens",
    "authorize",
    "call_resource",
    "client",
    "client_auth",
    "confidential_client",
    "exchange_code",
    "obtain",
    "other_resource",
    "refresh",
    "refused",
    "registration",
    "revocation_client",
    "token_request",
    "working_authorization",
]

MAX_HOPS = 6
"""Redirects the scripted consent follows on the authorization server's side."""


# --- the client ---------------------------------------------------------------------------


@dataclass
class Client:
    client_id: str
    secret: str | None
    auth_method: str
    redirect_uri: str
    registered: bool

    @property
    def public(self) -> bool:
        return self.secret is None


@dataclass
class Registration:
    response: httpx.Response
    exchange: Exchange
    document: Any


async def registration(ctx: ResourceServerContext) -> Registration:
    """The RFC 7591 registration of a public client (once per run); Skipped when the
    config names a client or the authorization server offers no registration."""
    auth = await authority(ctx)
    if ctx.config.client_id:
        raise Skipped("the config names a client; the suite registers none")
    endpoint = auth.endpoint("registration_endpoint")
    if endpoint is None:
        raise Skipped(
            "the authorization server offers no registration_endpoint and [resource_server] "
            "client_id is not set: there is no client to run the flow with"
        )
    return await ctx.target.memo("registration", lambda: _register(ctx, auth, endpoint))


async def _register(
    ctx: ResourceServerContext, auth: Authority, endpoint: str, method: str = "none"
) -> Registration:
    scopes = [*(request_scope(ctx, auth) or "").split()]
    limited = limited_scope(ctx, auth)
    if limited:
        scopes += limited.split()
    body: dict[str, Any] = {
        "redirect_uris": [ctx.config.redirect_uri],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": method,
        "client_name": "provspec conformance suite",
    }
    if scopes:
        body["scope"] = " ".join(dict.fromkeys(scopes))
    response, exchange = await ctx.post(endpoint, json=body)
    return Registration(response, exchange, ctx.json(response))


async def client(ctx: ResourceServerContext) -> Client:
    """The client of the flow: configured, or registered (RFC 7591) as a public client, or
    as a confidential one where the registration of a public client is refused."""
    config = ctx.config
    if config.client_id:
        method = config.client_auth or ("client_secret_basic" if config.client_secret else "none")
        return Client(config.client_id, config.client_secret, method, config.redirect_uri, False)
    done = await registration(ctx)
    if done.response.status_code == 400:
        auth = await authority(ctx)
        endpoint = auth.endpoint("registration_endpoint") or ""

        async def confidential() -> Client:
            again = await _register(ctx, auth, endpoint, "client_secret_basic")
            return _registered_client(again, ctx.config.redirect_uri)

        return await ctx.target.memo("client client_secret_basic", confidential)
    return _registered_client(done, ctx.config.redirect_uri)


def _registered_client(done: Registration, redirect_uri: str) -> Client:
    document = done.document
    # 201 is what RFC 7591 says (RSV-CNS-005 judges it); a client goes on with a 200 as well
    if done.response.status_code not in (200, 201) or not isinstance(document, dict):
        raise Skipped(
            f"the registration was not accepted ({done.response.status_code}): no client to "
            "run the flow with (see RSV-CNS-005)"
        )
    client_id = document.get("client_id")
    if not isinstance(client_id, str) or not client_id:
        raise Skipped("the registration answer holds no client_id (see RSV-CNS-005)")
    secret = document.get("client_secret")
    secret = secret if isinstance(secret, str) and secret else None
    method = document.get("token_endpoint_auth_method")
    if not isinstance(method, str):
        method = "none" if secret is None else "client_secret_basic"
    return Client(client_id, secret, method, redirect_uri, True)


async def revocation_client(ctx: ResourceServerContext, auth: Authority, who: Client) -> Client:
    """A client the revocation endpoint admits: `who`, unless the metadata's
    revocation_endpoint_auth_methods_supported leaves its method out; then a confidential
    client registered for the purpose."""
    methods = auth.metadata.get("revocation_endpoint_auth_methods_supported")
    if not isinstance(methods, list) or who.auth_method in methods:
        return who
    return await confidential_client(ctx, auth, methods)


async def confidential_client(
    ctx: ResourceServerContext, auth: Authority, methods: list[Any]
) -> Client:
    """A confidential client registered with the first of client_secret_basic and
    client_secret_post that `methods` names (once per run); NotApplicable if none can be."""
    choice = next((m for m in ("client_secret_basic", "client_secret_post") if m in methods), None)
    endpoint = auth.endpoint("registration_endpoint")
    if choice is None or endpoint is None or ctx.config.client_id:
        raise NotApplicable(
            f"the revocation endpoint admits clients authenticating with {methods}, and the "
            "suite has no such client"
        )

    async def register() -> Client:
        done = await _register(ctx, auth, endpoint, choice)
        return _registered_client(done, ctx.config.redirect_uri)

    return await ctx.target.memo(f"client {choice}", register)


def client_auth(who: Client, form: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """The form and headers of a token or revocation request from `who` (RFC 6749 §2.3.1)."""
    # client_id goes in the body with HTTP Basic too (RFC 6749 §3.2.1 lets a client name
    # itself so; some servers, the MCP SDK among them, require it).
    form = {**form, "client_id": who.client_id}
    if who.secret is not None and who.auth_method == "client_secret_basic":
        pair = f"{quote(who.client_id, safe='')}:{quote(who.secret, safe='')}"
        basic = base64.b64encode(pair.encode()).decode()
        return form, {"Authorization": f"Basic {basic}"}
    if who.secret is not None:
        form["client_secret"] = who.secret
    return form, {}


# --- the authorization request ------------------------------------------------------------


def _same_endpoint(url: str, target: str) -> bool:
    a, b = urlsplit(url), urlsplit(target)
    return (a.scheme.lower(), a.netloc.lower(), a.path) == (
        b.scheme.lower(),
        b.netloc.lower(),
        b.path,
    )


@dataclass
class Authorization:
    """One authorization request and where the user agent ended up."""

    state: str
    verifier: str | None
    redirect_uri: str
    redirect: str | None
    """The URL the authorization server sent the user agent to at the client, if any."""
    params: dict[str, str] = field(default_factory=dict)
    evidence: list[Exchange | CliCall] = field(default_factory=list)
    detail: str = ""
    """Why there is no redirect (the last answer)."""

    @property
    def code(self) -> str | None:
        return self.params.get("code")

    @property
    def landed_at(self) -> str:
        return self.redirect.split("?", 1)[0] if self.redirect else ""


async def authorize(
    ctx: ResourceServerContext,
    auth: Authority,
    who: Client,
    *,
    pkce: str | None = "S256",
    resource: str | None = None,
    scope: str | None = None,
    redirect_uri: str | None = None,
) -> Authorization:
    """Send one authorization request and drive the consent; never raises for a refusal."""
    verifier: str | None = None
    params: dict[str, str] = {
        "response_type": "code",
        "client_id": who.client_id,
        "redirect_uri": redirect_uri or who.redirect_uri,
        "state": secrets.token_urlsafe(16),
        "resource": resource or auth.resource,
    }
    if pkce == "S256":
        verifier, params["code_challenge"] = pkce_pair()
        params["code_challenge_method"] = "S256"
    elif pkce == "plain":
        verifier = secrets.token_urlsafe(48)
        params |= {"code_challenge": verifier, "code_challenge_method": "plain"}
    chosen = scope if scope is not None else request_scope(ctx, auth)
    if chosen:
        params["scope"] = chosen
    endpoint = auth.endpoint("authorization_endpoint") or ""
    url = endpoint + ("&" if "?" in endpoint else "?") + urlencode(params)
    targets = [params["redirect_uri"], who.redirect_uri]
    result = Authorization(params["state"], verifier, params["redirect_uri"], None)
    if ctx.config.consent == "command":
        ctx.check_url(url)  # the command fetches a URL taken from metadata: the guard first
        printed, call = await ctx.run_consent_command(url)
        result.evidence.append(call)
        if printed and any(_same_endpoint(printed, target) for target in targets):
            result.redirect = printed
        else:
            result.detail = "consent_command printed no URL at the client's redirect URI"
    else:
        await _follow(ctx, url, targets, result)
    if result.redirect:
        query = urlsplit(result.redirect).query
        result.params = dict(parse_qsl(query, keep_blank_values=True))
    return result


async def _follow(
    ctx: ResourceServerContext, url: str, targets: list[str], result: Authorization
) -> None:
    """Scripted consent: follow the authorization server's redirects until one leads to the
    client (each hop through the SSRF guard)."""
    for _ in range(MAX_HOPS):
        answer, exchange = await ctx.get(url)
        result.evidence.append(exchange)
        location = answer.headers.get("location")
        if not answer.is_redirect or not location:
            result.detail = (
                f"the authorization server answered {answer.status_code} instead of sending "
                "the user agent back to the client (a consent that needs a human: set "
                '[resource_server] consent = "command")'
            )
            return
        location = urljoin(url, location)
        if any(_same_endpoint(location, target) for target in targets):
            result.redirect = location
            return
        url = location
    result.detail = f"more than {MAX_HOPS} redirects without coming back to the client"


async def working_authorization(
    ctx: ResourceServerContext, auth: Authority, who: Client
) -> Authorization:
    """A correct authorization request that ends with a code (per run): proof that the
    consent means work, before a refusal can be read as the server's doing."""

    async def attempt() -> Authorization:
        done = await authorize(ctx, auth, who)
        if done.redirect is None:
            raise Skipped(f"no authorization response for a correct request: {done.detail}")
        if "error" in done.params:
            raise Skipped(
                f"the authorization server refused a correct request: error="
                f"{done.params['error']!r} {done.params.get('error_description', '')[:200]}"
            )
        if not done.code:
            raise Skipped("the authorization response to a correct request holds no code")
        return done

    return await ctx.target.memo(f"working-authorization {who.client_id}", attempt)


# --- tokens --------------------------------------------------------------------------------


@dataclass
class TokenAnswer:
    response: httpx.Response
    exchange: Exchange
    document: Any

    @property
    def access_token(self) -> str | None:
        if self.response.status_code != 200 or not isinstance(self.document, dict):
            return None
        value = self.document.get("access_token")
        return value if isinstance(value, str) and value else None

    @property
    def refresh_token(self) -> str | None:
        if self.access_token is None:
            return None
        value = self.document.get("refresh_token")
        return value if isinstance(value, str) and value else None


async def token_request(
    ctx: ResourceServerContext, auth: Authority, who: Client, form: dict[str, str]
) -> TokenAnswer:
    body, headers = client_auth(who, form)
    response, exchange = await ctx.post(
        auth.endpoint("token_endpoint") or "", data=body, headers=headers
    )
    return TokenAnswer(response, exchange, ctx.json(response))


async def exchange_code(
    ctx: ResourceServerContext,
    auth: Authority,
    who: Client,
    done: Authorization,
    *,
    verifier: str | None = None,
    resource: str | None = None,
) -> TokenAnswer:
    form = {
        "grant_type": "authorization_code",
        "code": done.code or "",
        "redirect_uri": done.redirect_uri,
        "resource": resource or auth.resource,
    }
    chosen = verifier if verifier is not None else done.verifier
    if chosen is not None:
        form["code_verifier"] = chosen
    return await token_request(ctx, auth, who, form)


async def refresh(
    ctx: ResourceServerContext, auth: Authority, who: Client, token: str, resource: str
) -> TokenAnswer:
    form = {"grant_type": "refresh_token", "refresh_token": token, "resource": resource}
    return await token_request(ctx, auth, who, form)


@dataclass
class Tokens:
    access_token: str
    refresh_token: str | None
    answer: TokenAnswer
    authorization: Authorization


async def obtain(
    ctx: ResourceServerContext,
    auth: Authority,
    who: Client,
    *,
    resource: str | None = None,
    scope: str | None = None,
) -> Tokens:
    """A token set for `resource` (default: the target) by the whole flow, or Skipped."""
    await working_authorization(ctx, auth, who)
    done = await authorize(ctx, auth, who, resource=resource, scope=scope)
    if done.redirect is None:
        raise Skipped(f"no authorization response: {done.detail}")
    if "error" in done.params:
        raise Skipped(
            f"the authorization server refused: error={done.params['error']!r} "
            f"{done.params.get('error_description', '')[:200]}"
        )
    if done.params.get("state") != done.state:
        raise Skipped("the authorization response's state is not the request's (RSV-CNS-006)")
    if not done.code:
        raise Skipped("the authorization response holds no code (see RSV-CNS-006)")
    answer = await exchange_code(ctx, auth, who, done, resource=resource)
    if answer.access_token is None:
        raise Skipped(
            f"the token endpoint issued no access token ({answer.response.status_code}; see "
            "RSV-CNS-007)"
        )
    return Tokens(answer.access_token, answer.refresh_token, answer, done)


async def call_resource(ctx: ResourceServerContext, token: str) -> tuple[httpx.Response, Exchange]:
    return await ctx.request_resource(token)


def refused(response: httpx.Response) -> bool:
    return response.status_code in (401, 403)


@dataclass
class Accepted:
    """A token set the resource accepted (per run): the premise of every probe that
    expects a refusal, so a resource that refuses everything passes none of them."""

    tokens: Tokens
    response: httpx.Response
    exchange: Exchange


async def accepted_tokens(ctx: ResourceServerContext, auth: Authority, who: Client) -> Accepted:
    async def make() -> Accepted:
        tokens = await obtain(ctx, auth, who)
        response, exchange = await call_resource(ctx, tokens.access_token)
        return Accepted(tokens, response, exchange)

    found = await ctx.target.memo(f"accepted {who.client_id}", make)
    if refused(found.response):
        raise Skipped(
            f"the resource refuses even a token just issued for it ({found.response.status_code}; "
            "see RSV-CNS-008)"
        )
    return found


def other_resource(ctx: ResourceServerContext) -> str:
    if ctx.config.other_resource:
        return ctx.config.other_resource
    parts = urlsplit(ctx.url)
    return f"{parts.scheme}://{parts.netloc}/provspec-other-resource"
