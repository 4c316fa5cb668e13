"""The mock resource server's authorization server: RFC 7591 registration, the authorization
endpoint (scripted consent, PKCE S256, exact redirect URIs, RFC 8707 `resource`, RFC 9207
`iss`), the token endpoint (single-use codes, refresh token rotation with reuse detection,
RFC 9700 §4.14.2) and RFC 7009 revocation. Tokens live in memory, read by the resource
(`app.py`); time comes from the injected clock."""

from __future__ import annotations

import base64
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import Response

from mocks._core.http import HTTPProblem, json_response, parse_form, parse_json_object, read_body
from mocks.faults import FaultSet
from wire.clock import Clock
from wire.pkce import s256

__all__ = ["AUTH_METHODS", "NO_STORE", "AuthorizationServer"]

_PKCE = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
"""RFC 7636 §4.1 / §4.2: a verifier or challenge is 43..128 unreserved characters."""
_LOOPBACK = ("127.0.0.1", "::1", "localhost")
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
AUTH_METHODS = ("none", "client_secret_basic", "client_secret_post")


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


class AuthorizationServer:
    """The registered clients, the codes and the tokens, and the endpoints that make them."""

    def __init__(
        self,
        faults: FaultSet,
        clock: Clock,
        *,
        issuer: str,
        resource_url: str,
        scopes: tuple[str, ...],
        code_lifetime: int,
        access_token_lifetime: int,
    ) -> None:
        self.code_lifetime = code_lifetime
        self.access_token_lifetime = access_token_lifetime
        self.faults = faults
        self.clock = clock
        self.issuer = issuer
        self.resource_url = resource_url
        self.scopes = scopes
        self.clients: dict[str, _Client] = {}
        self.codes: dict[str, _Code] = {}
        self.access_tokens: dict[str, _Token] = {}
        self.refresh_tokens: dict[str, _Token] = {}

    def _now(self) -> int:
        return self.clock.timestamp()

    # --- registration (RFC 7591) ---------------------------------------------------------

    async def register(self, request: Request) -> Response:
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
        if method not in AUTH_METHODS:
            problems.append(f"token_endpoint_auth_method must be one of {list(AUTH_METHODS)}")
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
        return json_response(answer, 201, NO_STORE)

    # --- authorization endpoint (RFC 6749 §4.1.1, RFC 7636, RFC 8707, RFC 9207) -----------

    async def authorize(self, request: Request) -> Response:
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
            expires_at=self._now() + self.code_lifetime,
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
        return Response(status_code=302, headers={"Location": location, **NO_STORE})

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

    async def token(self, request: Request) -> Response:
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
        lifetime = self.access_token_lifetime
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
        headers = {} if self.faults.active("token-response-cacheable") else NO_STORE
        return json_response(answer, 200, headers)

    def _revoke_grant(self, grant: str) -> None:
        for token in (*self.access_tokens.values(), *self.refresh_tokens.values()):
            if token.grant == grant:
                token.revoked = True

    # --- revocation (RFC 7009) -----------------------------------------------------------

    async def revoke(self, request: Request) -> Response:
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
        return Response(status_code=200, headers=NO_STORE)
