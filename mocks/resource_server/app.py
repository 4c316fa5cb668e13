"""The mock resource server: a protected resource and its authorization server, as one app.

What `provspec run --role resource-server` judges, done right (every fault off):

* the resource (`/mcp`, an MCP-style endpoint): a request without a token gets `401` with
  `Bearer resource_metadata="…", scope="mcp:tools"`; a token it cannot validate (unknown,
  expired, revoked, or issued for another resource: RFC 8707 audience) gets `401
  error="invalid_token"`; a valid token lacking `mcp:tools` gets `403
  error="insufficient_scope", scope="mcp:tools"`; a valid token gets `200`.
* its RFC 9728 metadata at `/.well-known/oauth-protected-resource/mcp`, naming the
  authorization server `{origin}/as`, whose RFC 8414 metadata is at
  `/.well-known/oauth-authorization-server/as`.
* the authorization server: RFC 7591 registration (public and confidential clients), the
  authorization endpoint with a scripted consent that approves at once (so a client reads
  the code from the `302`), PKCE S256 only, exact redirect URI matching, RFC 8707 `resource`
  binding, RFC 9207 `iss`; the token endpoint with single-use codes and refresh token
  rotation (a replayed refresh token revokes its grant, RFC 9700 §4.14.2); RFC 7009
  revocation (a refresh token takes its grant's access tokens with it).

Each named fault (`mocks/faults/resource-server.toml`) changes one of these at one place.
State is in memory; time comes from the injected clock.
"""

from __future__ import annotations

import base64
import hmac
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mocks._core.http import HTTPProblem, json_response, parse_form, parse_json_object, read_body
from mocks.faults import FaultSet
from wire.clock import Clock, SystemClock
from wire.envelopes import oauth_error
from wire.pkce import s256

__all__ = ["ResourceServerMock", "ResourceServerSettings"]

log = logging.getLogger("provspec.mock.resource_server")

_PKCE = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
"""RFC 7636 §4.1 / §4.2: a verifier or challenge is 43..128 unreserved characters."""
_LOOPBACK = ("127.0.0.1", "::1", "localhost")
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_AUTH_METHODS = ("none", "client_secret_basic", "client_secret_post")

Handler = Callable[[Request], Awaitable[Response]]


@dataclass
class ResourceServerSettings:
    origin: str = "http://127.0.0.1:8975"
    """Scheme, host and port the mock is reached at (no trailing slash)."""
    profile: str = "rfc9728"
    """Which resource-server profile the faults are drawn for."""
    resource_path: str = "/mcp"
    issuer_path: str = "/as"
    needed_scopes: tuple[str, ...] = ("mcp:tools",)
    """What a request to the resource needs."""
    other_scopes: tuple[str, ...] = ("mcp:read",)
    """Scopes the resource supports but does not need for this endpoint."""
    faults: Sequence[str] = ()
    clock: Clock = field(default_factory=SystemClock)
    access_token_lifetime: int = 3600
    code_lifetime: int = 60


@dataclass
class _Client:
    client_id: str
    secret: str | None
    redirect_uris: tuple[str, ...]
    grant_types: tuple[str, ...]
    scopes: tuple[str, ...] | None


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    redirect_given: bool
    challenge: str | None
    method: str | None
    resource: str | None
    scopes: tuple[str, ...]
    expires_at: int
    grant: str
    used: bool = False


@dataclass
class _Token:
    client_id: str
    scopes: tuple[str, ...]
    resource: str
    grant: str
    expires_at: int | None = None
    revoked: bool = False


def _new(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def _allowed_redirect(uri: Any) -> bool:
    """RFC 6749 §3.1.2 / RFC 8252 §7.3: absolute, no fragment, https or loopback http."""
    if not isinstance(uri, str):
        return False
    parts = urlsplit(uri)
    if parts.fragment or not parts.netloc:
        return False
    return parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK)


class ResourceServerMock:
    """One ASGI app: the protected resource, its metadata and its authorization server."""

    def __init__(self, settings: ResourceServerSettings | None = None) -> None:
        self.settings = settings or ResourceServerSettings()
        self.faults = FaultSet("resource-server", self.settings.profile, self.settings.faults)
        self.clock = self.settings.clock
        origin = self.settings.origin.rstrip("/")
        self.origin = origin
        self.resource_url = origin + self.settings.resource_path
        self.other_resource_url = self.resource_url + "-other"
        self.prm_url = (
            origin + "/.well-known/oauth-protected-resource" + self.settings.resource_path
        )
        self.other_prm_url = self.prm_url + "-other"
        self.issuer = origin + self.settings.issuer_path
        self.as_metadata_url = (
            origin + "/.well-known/oauth-authorization-server" + self.settings.issuer_path
        )
        self.scopes = (*self.settings.needed_scopes, *self.settings.other_scopes)
        self.clients: dict[str, _Client] = {}
        self.codes: dict[str, _Code] = {}
        self.access_tokens: dict[str, _Token] = {}
        self.refresh_tokens: dict[str, _Token] = {}
        issuer_path = self.settings.issuer_path
        routes = [
            Route(self.settings.resource_path, self._guarded(self._resource), methods=["GET", "POST"]),
            Route(urlsplit(self.prm_url).path, self._guarded(self._metadata)),
            Route(urlsplit(self.other_prm_url).path, self._guarded(self._other_metadata)),
            Route(urlsplit(self.as_metadata_url).path, self._guarded(self._as_metadata)),
            Route(issuer_path + "/authorize", self._guarded(self._authorize), methods=["GET", "POST"]),
            Route(issuer_path + "/token", self._guarded(self._token), methods=["POST"]),
            Route(issuer_path + "/register", self._guarded(self._register), methods=["POST"]),
            Route(issuer_path + "/revoke", self._guarded(self._revoke), methods=["POST"]),
        ]  # fmt: skip
        self.app = Starlette(routes=routes)

    # --- plumbing ------------------------------------------------------------------------

    def _guarded(self, handler: Handler) -> Handler:
        """Malformed input becomes an OAuth error answer, never a 500 or a state change."""

        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)
            except HTTPProblem as problem:
                headers = {**_NO_STORE, **problem.headers}
                return json_response(
                    oauth_error(problem.code, problem.message), problem.status, headers
                )
            except Exception:
                log.exception("the mock resource server failed on %s", request.url.path)
                return json_response(
                    oauth_error("server_error", "the mock failed; see its log"), 500, _NO_STORE
                )

        return endpoint

    def _now(self) -> int:
        return self.clock.timestamp()

    # --- the protected resource ----------------------------------------------------------

    def _challenge(self, *extra: tuple[str, str]) -> str:
        metadata = self.prm_url
        if self.faults.active("challenge-names-other-metadata"):
            metadata = self.other_prm_url
        params: list[tuple[str, str]] = list(extra)
        if not self.faults.active("challenge-no-resource-metadata"):
            params.append(("resource_metadata", metadata))
        return "Bearer " + ", ".join(f'{name}="{value}"' for name, value in params)

    def _refuse(self, status: int, error: str, description: str) -> Response:
        header = self._challenge(("error", error), ("error_description", description))
        return json_response(oauth_error(error, description), status, {"WWW-Authenticate": header})

    async def _resource(self, request: Request) -> Response:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return self._bare_challenge()
        token = self.access_tokens.get(value.strip())
        if token is None:
            if self.faults.active("unknown-token-403"):
                return self._refuse(403, "invalid_token", "the access token is not known here")
            return self._refuse(401, "invalid_token", "the access token is not known here")
        if self.faults.active("rs-refuses-valid-token"):
            return self._refuse(401, "invalid_token", "the access token is not accepted")
        if token.expires_at is not None and token.expires_at <= self._now():
            return self._refuse(401, "invalid_token", "the access token has expired")
        if token.revoked and not self.faults.active("rs-accepts-revoked-token"):
            return self._refuse(401, "invalid_token", "the access token was revoked")
        if token.resource != self.resource_url and not self.faults.active("rs-ignores-audience"):
            return self._refuse(401, "invalid_token", "the access token is for another resource")
        missing = [scope for scope in self.settings.needed_scopes if scope not in token.scopes]
        if missing:
            return self._insufficient(missing)
        return json_response(
            {"ok": True, "resource": self.resource_url, "scope": " ".join(token.scopes)}
        )

    def _bare_challenge(self) -> Response:
        body = oauth_error("unauthorized", "this resource needs an access token")
        if self.faults.active("bare-request-no-challenge"):
            return json_response(body, 401)
        params: list[tuple[str, str]] = []
        if self.faults.active("challenge-error-without-token"):
            params.append(("error", "invalid_request"))
        if not self.faults.active("challenge-no-scope"):
            params.append(("scope", " ".join(self.settings.needed_scopes)))
        return json_response(body, 401, {"WWW-Authenticate": self._challenge(*params)})

    def _insufficient(self, missing: list[str]) -> Response:
        description = f"this request needs {' '.join(missing)}"
        if self.faults.active("insufficient-scope-as-invalid-token"):
            return self._refuse(401, "invalid_token", description)
        if self.faults.active("insufficient-scope-no-challenge"):
            return json_response(oauth_error("insufficient_scope", description), 403)
        params = [("error", "insufficient_scope"), ("error_description", description)]
        if not self.faults.active("insufficient-scope-unnamed"):
            params.append(("scope", " ".join(self.settings.needed_scopes)))
        return json_response(
            oauth_error("insufficient_scope", description),
            403,
            {"WWW-Authenticate": self._challenge(*params)},
        )

    # --- metadata ------------------------------------------------------------------------

    async def _metadata(self, request: Request) -> Response:
        document: dict[str, Any] = {
            "resource": self.resource_url,
            "authorization_servers": [self.issuer],
            "scopes_supported": list(self.scopes),
            "bearer_methods_supported": ["header"],
            "resource_name": "provspec mock resource server",
        }
        if self.faults.active("prm-no-resource"):
            del document["resource"]
        if self.faults.active("prm-resource-trailing-slash"):
            document["resource"] = self.resource_url + "/"
        if self.faults.active("prm-empty-member"):
            document["bearer_methods_supported"] = []
        if self.faults.active("prm-jwks-uri-http"):
            document["jwks_uri"] = "http://keys.provspec.example/jwks.json"
        if self.faults.active("prm-authorization-servers-string"):
            document["authorization_servers"] = self.issuer
        if self.faults.active("prm-lists-no-authorization-server"):
            del document["authorization_servers"]
        media_type = "text/plain" if self.faults.active("prm-not-json") else "application/json"
        return json_response(document, media_type=media_type)

    async def _other_metadata(self, request: Request) -> Response:
        """The metadata of a sibling resource (`/mcp-other`), correct for that resource."""
        return json_response(
            {"resource": self.other_resource_url, "authorization_servers": [self.issuer]}
        )

    async def _as_metadata(self, request: Request) -> Response:
        issuer = self.issuer
        document: dict[str, Any] = {
            "issuer": issuer + "/" if self.faults.active("as-issuer-trailing-slash") else issuer,
            "authorization_endpoint": issuer + "/authorize",
            "token_endpoint": issuer + "/token",
            "registration_endpoint": issuer + "/register",
            "revocation_endpoint": issuer + "/revoke",
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": list(_AUTH_METHODS),
            "revocation_endpoint_auth_methods_supported": list(_AUTH_METHODS),
            "scopes_supported": list(self.scopes),
            "authorization_response_iss_parameter_supported": True,
        }
        if self.faults.active("as-no-registration"):
            del document["registration_endpoint"]
        if self.faults.active("as-metadata-no-response-types"):
            del document["response_types_supported"]
        if self.faults.active("as-metadata-no-pkce-methods"):
            del document["code_challenge_methods_supported"]
        if self.faults.active("as-introspection-endpoint-http"):
            document["introspection_endpoint"] = "http://as.provspec.example/introspect"
        return json_response(document)

    # --- registration (RFC 7591) ---------------------------------------------------------

    async def _register(self, request: Request) -> Response:
        document = parse_json_object(await read_body(request))
        uris = document.get("redirect_uris")
        if not isinstance(uris, list) or not uris or not all(map(_allowed_redirect, uris)):
            raise HTTPProblem(
                400,
                "invalid_redirect_uri",
                "redirect_uris must be absolute https (or loopback http) URIs without a fragment",
            )
        method = document.get("token_endpoint_auth_method", "client_secret_basic")
        grants = document.get("grant_types", ["authorization_code"])
        responses = document.get("response_types", ["code"])
        scope = document.get("scope")
        problems = []
        if method not in _AUTH_METHODS:
            problems.append(f"token_endpoint_auth_method must be one of {list(_AUTH_METHODS)}")
        if not isinstance(grants, list) or not set(grants) <= {
            "authorization_code",
            "refresh_token",
        }:
            problems.append("grant_types may hold authorization_code and refresh_token only")
        if responses != ["code"]:
            problems.append('response_types must be ["code"]')
        scopes: tuple[str, ...] | None = None
        if scope is not None:
            if not isinstance(scope, str) or not set(scope.split()) <= set(self.scopes):
                problems.append(f"scope must be drawn from {' '.join(self.scopes)}")
            else:
                scopes = tuple(scope.split())
        if problems:
            raise HTTPProblem(400, "invalid_client_metadata", "; ".join(problems))
        client = _Client(
            client_id=_new("rsc_"),
            secret=None if method == "none" else _new("rss_"),
            redirect_uris=tuple(uris),
            grant_types=tuple(grants),
            scopes=scopes,
        )
        self.clients[client.client_id] = client
        answer: dict[str, Any] = {
            "client_id": client.client_id,
            "client_id_issued_at": self._now(),
            "redirect_uris": list(client.redirect_uris),
            "grant_types": list(client.grant_types),
            "response_types": ["code"],
            "token_endpoint_auth_method": method,
        }
        if client.secret is not None:
            answer |= {"client_secret": client.secret, "client_secret_expires_at": 0}
        if scopes is not None:
            answer["scope"] = " ".join(scopes)
        if isinstance(document.get("client_name"), str):
            answer["client_name"] = document["client_name"]
        if self.faults.active("register-no-client-id"):
            del answer["client_id"]
        return json_response(answer, 201, _NO_STORE)

    # --- authorization endpoint (RFC 6749 §4.1.1, RFC 7636, RFC 8707, RFC 9207) -----------

    async def _authorize(self, request: Request) -> Response:
        if request.method == "POST":
            params = parse_form(await read_body(request))
        else:
            params = {}
            for name, value in parse_qsl(request.url.query, keep_blank_values=True):
                if name in params:  # RFC 6749 §3.1: no parameter more than once
                    raise HTTPProblem(400, "invalid_request", f"parameter {name!r} is repeated")
                params[name] = value
        client = self.clients.get(params.get("client_id", ""))
        if client is None:
            raise HTTPProblem(400, "invalid_request", "unknown client_id")
        redirect_uri = self._redirect_uri(client, params.get("redirect_uri"))
        state = params.get("state")

        def refuse(error: str, description: str) -> Response:
            # RFC 6749 §4.1.2.1: with a valid redirect URI, errors go back to the client.
            answer = {"error": error, "error_description": description}
            return self._redirect(redirect_uri, answer, state)

        if params.get("response_type") != "code":
            return refuse("unsupported_response_type", "response_type must be code")
        challenge = params.get("code_challenge")
        method = params.get("code_challenge_method", "plain") if challenge else None
        if challenge is None and not self.faults.active("authorize-pkce-optional"):
            return refuse("invalid_request", "code_challenge is required (PKCE)")
        if challenge is not None:
            plain_ok = method == "plain" and self.faults.active("authorize-accepts-plain")
            if method != "S256" and not plain_ok:
                return refuse("invalid_request", "transform algorithm not supported; use S256")
            if not _PKCE.fullmatch(challenge):
                return refuse("invalid_request", "code_challenge is malformed")
        resource = params.get("resource")
        if resource is not None:
            parts = urlsplit(resource)
            if not parts.scheme or not parts.netloc or parts.fragment:
                return refuse("invalid_target", "resource must be an absolute URI without fragment")
        allowed = client.scopes if client.scopes is not None else self.scopes
        requested = tuple(params["scope"].split()) if params.get("scope") else allowed
        if not set(requested) <= set(allowed):
            return refuse("invalid_scope", f"scope must be drawn from {' '.join(allowed)}")
        code = _new("rsa_")
        self.codes[code] = _Code(
            client_id=client.client_id,
            redirect_uri=redirect_uri,
            redirect_given="redirect_uri" in params,
            challenge=challenge,
            method=method,
            resource=resource,
            scopes=requested,
            expires_at=self._now() + self.settings.code_lifetime,
            grant=_new("g_"),
        )
        # The scripted resource owner approves at once.
        if self.faults.active("authorize-drops-state"):
            state = None
        return self._redirect(redirect_uri, {"code": code}, state)

    def _redirect_uri(self, client: _Client, given: str | None) -> str:
        """RFC 6749 §3.1.2.3 with exact matching (RFC 9700 §2.1); a mismatch is answered
        directly, never by redirecting to the unregistered URI (§4.1.2.1)."""
        if given is None:
            if len(client.redirect_uris) == 1:
                return client.redirect_uris[0]
            raise HTTPProblem(400, "invalid_request", "redirect_uri is required")
        if given in client.redirect_uris:
            return given
        if self.faults.active("authorize-redirect-prefix-match") and any(
            given.startswith(registered) for registered in client.redirect_uris
        ):
            return given
        raise HTTPProblem(400, "invalid_request", "redirect_uri is not registered for this client")

    def _redirect(self, redirect_uri: str, answer: dict[str, str], state: str | None) -> Response:
        if state is not None:
            answer["state"] = state
        issuer = self.issuer + "/" if self.faults.active("authorize-iss-mismatch") else self.issuer
        answer["iss"] = issuer
        separator = "&" if "?" in redirect_uri else "?"
        location = redirect_uri + separator + urlencode(answer)
        return Response(status_code=302, headers={"Location": location, **_NO_STORE})

    # --- token endpoint ------------------------------------------------------------------

    def _authenticate(self, request: Request, form: dict[str, str]) -> _Client:
        """RFC 6749 §2.3.1: HTTP Basic or client_secret in the body; a public client names
        itself with client_id."""
        header = request.headers.get("authorization", "")
        unauthorized = HTTPProblem(
            401,
            "invalid_client",
            "client authentication failed",
            headers={"WWW-Authenticate": "Basic"},
        )
        if header[:6].lower() == "basic ":
            try:
                decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
            except (ValueError, UnicodeDecodeError):
                raise unauthorized from None
            client_id, _, secret = decoded.partition(":")
            client = self.clients.get(unquote(client_id))
            if client is None or client.secret is None:
                raise unauthorized
            if not hmac.compare_digest(client.secret.encode(), unquote(secret).encode()):
                raise unauthorized
            return client
        client = self.clients.get(form.get("client_id", ""))
        if client is None:
            raise unauthorized
        if client.secret is not None and not hmac.compare_digest(
            client.secret.encode(), form.get("client_secret", "").encode()
        ):
            raise unauthorized
        return client

    async def _token(self, request: Request) -> Response:
        form = parse_form(await read_body(request))
        client = self._authenticate(request, form)
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            return self._issue(*self._redeem_code(client, form))
        if grant_type == "refresh_token":
            return self._issue(*self._redeem_refresh_token(client, form))
        raise HTTPProblem(
            400, "unsupported_grant_type", "grant_type must be authorization_code or refresh_token"
        )

    def _redeem_code(
        self, client: _Client, form: dict[str, str]
    ) -> tuple[_Client, tuple[str, ...], str, str, str | None]:
        record = self.codes.get(form.get("code", ""))
        if record is None or record.client_id != client.client_id:
            raise HTTPProblem(400, "invalid_grant", "unknown authorization code")
        if record.expires_at <= self._now():
            raise HTTPProblem(400, "invalid_grant", "the authorization code has expired")
        if record.used and not self.faults.active("token-code-reusable"):
            self._revoke_grant(record.grant)  # RFC 6749 §4.1.2: SHOULD revoke its tokens
            raise HTTPProblem(400, "invalid_grant", "the authorization code was already used")
        if record.redirect_given and form.get("redirect_uri") != record.redirect_uri:
            raise HTTPProblem(
                400, "invalid_grant", "redirect_uri differs from the authorization request's"
            )
        verifier = form.get("code_verifier")
        if record.challenge is None:
            if verifier is not None:  # RFC 9700 §2.1.1: PKCE downgrade
                raise HTTPProblem(400, "invalid_grant", "code_verifier without a code_challenge")
        elif not self.faults.active("token-verifier-unchecked"):
            if verifier is None or not _PKCE.fullmatch(verifier):
                raise HTTPProblem(400, "invalid_grant", "code_verifier is missing or malformed")
            expected = s256(verifier) if record.method == "S256" else verifier
            if not hmac.compare_digest(expected, record.challenge):
                raise HTTPProblem(400, "invalid_grant", "code_verifier does not match")
        resource = form.get("resource")
        if resource is not None and record.resource is not None and resource != record.resource:
            raise HTTPProblem(
                400, "invalid_target", "resource differs from the authorization request's"
            )
        record.used = True
        audience = resource or record.resource or self.resource_url
        return client, record.scopes, audience, record.grant, None

    def _redeem_refresh_token(
        self, client: _Client, form: dict[str, str]
    ) -> tuple[_Client, tuple[str, ...], str, str, str | None]:
        if "refresh_token" not in client.grant_types:
            raise HTTPProblem(400, "unauthorized_client", "this client may not refresh")
        value = form.get("refresh_token", "")
        record = self.refresh_tokens.get(value)
        if record is None or record.client_id != client.client_id:
            raise HTTPProblem(400, "invalid_grant", "unknown refresh token")
        if record.revoked:
            # A rotated-out token used again: someone holds a copy (RFC 9700 §4.14.2).
            self._revoke_grant(record.grant)
            raise HTTPProblem(400, "invalid_grant", "the refresh token is no longer valid")
        scopes = tuple(form["scope"].split()) if form.get("scope") else record.scopes
        if not set(scopes) <= set(record.scopes):
            raise HTTPProblem(400, "invalid_scope", "a refresh cannot widen the scope")
        resource = form.get("resource")
        if resource is not None and resource != record.resource:
            raise HTTPProblem(400, "invalid_target", "resource differs from the grant's")
        keep = value if self.faults.active("refresh-not-rotated") else None
        if keep is None:
            record.revoked = True
        return client, scopes, record.resource, record.grant, keep

    def _issue(
        self,
        client: _Client,
        scopes: tuple[str, ...],
        audience: str,
        grant: str,
        keep_refresh: str | None,
    ) -> Response:
        access = _new("rsat_")
        lifetime = self.settings.access_token_lifetime
        self.access_tokens[access] = _Token(
            client.client_id, scopes, audience, grant, self._now() + lifetime
        )
        answer: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": lifetime,
            "scope": " ".join(scopes),
        }
        if "refresh_token" in client.grant_types:
            refresh = keep_refresh or _new("rsrt_")
            if keep_refresh is None:
                self.refresh_tokens[refresh] = _Token(client.client_id, scopes, audience, grant)
            answer["refresh_token"] = refresh
        headers = {} if self.faults.active("token-response-cacheable") else _NO_STORE
        return json_response(answer, 200, headers)

    def _revoke_grant(self, grant: str) -> None:
        for token in (*self.access_tokens.values(), *self.refresh_tokens.values()):
            if token.grant == grant:
                token.revoked = True

    # --- revocation (RFC 7009) -----------------------------------------------------------

    async def _revoke(self, request: Request) -> Response:
        form = parse_form(await read_body(request))
        client = self._authenticate(request, form)
        value = form.get("token")
        if not value:
            raise HTTPProblem(400, "invalid_request", "token is required")
        if self.faults.active("revoke-refuses"):
            raise HTTPProblem(400, "invalid_request", "revocation is not available right now")
        access = self.access_tokens.get(value)
        if access is not None and access.client_id == client.client_id:
            access.revoked = True
        refresh = self.refresh_tokens.get(value)
        if (
            refresh is not None
            and refresh.client_id == client.client_id
            and not self.faults.active("revoke-refresh-token-ignored")
        ):
            # RFC 7009 §2.1: revoking a refresh token SHOULD take its access tokens along.
            self._revoke_grant(refresh.grant)
        # §2.2: 200 whether or not the token was known.
        return Response(status_code=200, headers=_NO_STORE)
