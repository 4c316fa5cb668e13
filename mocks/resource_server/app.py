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

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mocks._core.http import HTTPProblem, json_response
from mocks.faults import FaultSet
from mocks.resource_server._authorization import AUTH_METHODS, NO_STORE, AuthorizationServer
from wire.clock import Clock, SystemClock
from wire.envelopes import oauth_error

__all__ = ["ResourceServerMock", "ResourceServerSettings"]

log = logging.getLogger("provspec.mock.resource_server")


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
        self.authorization = authorization = AuthorizationServer(
            self.faults,
            self.clock,
            issuer=self.issuer,
            resource_url=self.resource_url,
            scopes=self.scopes,
            code_lifetime=self.settings.code_lifetime,
            access_token_lifetime=self.settings.access_token_lifetime,
        )
        # the authorization server's records, as the tests read them
        self.clients = authorization.clients
        self.codes = authorization.codes
        self.access_tokens = authorization.access_tokens
        self.refresh_tokens = authorization.refresh_tokens
        issuer_path = self.settings.issuer_path
        routes = [
            Route(self.settings.resource_path, self._guarded(self._resource), methods=["GET", "POST"]),
            Route(urlsplit(self.prm_url).path, self._guarded(self._metadata)),
            Route(urlsplit(self.other_prm_url).path, self._guarded(self._other_metadata)),
            Route(urlsplit(self.as_metadata_url).path, self._guarded(self._as_metadata)),
            Route(issuer_path + "/authorize", self._guarded(authorization.authorize), methods=["GET", "POST"]),
            Route(issuer_path + "/token", self._guarded(authorization.token), methods=["POST"]),
            Route(issuer_path + "/register", self._guarded(authorization.register), methods=["POST"]),
            Route(issuer_path + "/revoke", self._guarded(authorization.revoke), methods=["POST"]),
        ]  # fmt: skip
        self.app = Starlette(routes=routes)

    # --- plumbing ------------------------------------------------------------------------

    def _guarded(self, handler: Handler) -> Handler:
        """Malformed input becomes an OAuth error answer, never a 500 or a state change."""

        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)
            except HTTPProblem as problem:
                headers = {**NO_STORE, **problem.headers}
                return json_response(
                    oauth_error(problem.code, problem.message), problem.status, headers
                )
            except Exception:
                log.exception("the mock resource server failed on %s", request.url.path)
                return json_response(
                    oauth_error("server_error", "the mock failed; see its log"), 500, NO_STORE
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
            "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
            "revocation_endpoint_auth_methods_supported": list(AUTH_METHODS),
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
