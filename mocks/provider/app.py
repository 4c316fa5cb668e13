"""The mock provider: APP provisioning endpoints plus its own OAuth authorization server.

One ASGI app serves both profiles (`ProviderSettings.profile`):

* `app-0.1d` — the wire PostHog's provider implements (wire-facts §1.5): `API-Version: 0.1d`,
  `Stripe-Signature` HMAC on every call, accounts keyed by email, `requires_auth` for an
  existing account, `stripe_payment_token` accepted as opaque.
* `app-next` — DESIGN.md §2: `APP-Attestation` JWS verified against the orchestrator's JWKS,
  accounts keyed by (`iss`, `sub`), `401` + `WWW-Authenticate: Bearer resource_metadata=…`
  for an existing unlinked account, RFC 9728 / RFC 8414 metadata, PKCE S256 with RFC 8707
  `resource`, payment tokens verified and then redeemed at the orchestrator, RFC 7009
  revocation.

Every path is relative to `base_url` (which ends in `/`); the well-known documents live at
the RFC 9728 §3.1 / RFC 8414 §3 paths derived from it. Error answers use the 0.1d envelope
of the endpoint (typed for account requests, status for resources, oauth for the token
endpoint, flat for signature and version failures).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Literal
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mocks._core.http import HTTPProblem, json_response, read_body
from mocks.provider._accounts import Accounts
from mocks.provider._authentication import CallerAuthentication
from mocks.provider._context import Caller, ProviderContext, ProviderSettings
from mocks.provider._discovery import Discovery
from mocks.provider._oauth import OAuthServer
from mocks.provider._orchestrator import OrchestratorLink
from mocks.provider._payment import PaymentDesk
from mocks.provider._provisioning import Provisioning
from wire.envelopes import flat_error, oauth_error, status_error, typed_error

__all__ = ["ProviderMock", "ProviderSettings"]

log = logging.getLogger("provspec.mock.provider")

Handler = Callable[[Request, bytes, Caller], Awaitable[Response]]
Envelope = Literal["flat", "typed", "status", "oauth"]
"""The 0.1d error envelope an endpoint answers in (`wire.envelopes`)."""


class ProviderMock:
    """Build with settings; `app` is the ASGI application.

    The rooms behind the routes: `authentication` (who is calling), `accounts` and `oauth`
    (account requests, consent, codes and tokens), `provisioning` (resources, deep links),
    `payment` (payment tokens and their redemption), `discovery` (health, catalog,
    metadata), all over one `ProviderContext`.
    """

    def __init__(self, settings: ProviderSettings | None = None) -> None:
        self.settings = settings = settings or ProviderSettings()
        self.ctx = ctx = ProviderContext(settings)
        # the shared context's parts, as the suite and the tests read them
        self.spec = ctx.spec
        self.params = ctx.params
        self.profile = ctx.profile
        self.next = ctx.next
        self.faults = ctx.faults
        self.clock = ctx.clock
        self.state = ctx.state
        self.replay = ctx.replay
        self.base_url = ctx.base_url
        self.base_path = ctx.base_path
        self.resource_id = ctx.resource_id
        self.issuer = ctx.issuer
        self.prm_url = ctx.prm_url
        self.as_metadata_url = ctx.as_metadata_url
        self.scope = ctx.scope
        self.granted_scope = ctx.granted_scope
        self.currency = ctx.currency
        self.signing_key = ctx.signing_key
        # the rooms
        self.orchestrator = OrchestratorLink(ctx)
        self.authentication = CallerAuthentication(ctx, self.orchestrator)
        self.accounts = Accounts(ctx)
        self.oauth = OAuthServer(ctx, self.authentication)
        self.payment = PaymentDesk(ctx, self.orchestrator)
        self.provisioning = Provisioning(ctx, self.payment)
        self.discovery = Discovery(ctx)
        self.tokens: list[str] = self.payment.tokens
        """The app-next payment tokens accepted so far (kept unredeemed when
        `settings.redeem` is off)."""
        for email in settings.existing_emails:
            if self.state.account_by_email(email) is None:
                self.state.create_account(email, origin="signup")
        self.app = self._build()

    # --- the ASGI app -------------------------------------------------------------------
    def _build(self) -> Starlette:
        p = self.base_path
        accounts, oauth, provisioning = self.accounts, self.oauth, self.provisioning
        discovery = self.discovery
        routes = [
            Route(f"{p}provisioning/health", self._wrap(discovery.health, "flat"), methods=["GET"]),
            Route(
                f"{p}provisioning/services",
                self._wrap(discovery.services, "flat"),
                methods=["GET"],
            ),
            Route(
                f"{p}provisioning/account_requests",
                self._wrap(
                    accounts.account_requests,
                    "typed",
                    precheck=None if self.next else accounts.precheck,
                ),
                methods=["POST"],
            ),
            Route(
                f"{p}oauth/token", self._wrap(oauth.token, "oauth", signed=False), methods=["POST"]
            ),
            Route(
                f"{p}oauth/authorize",
                self._wrap(oauth.authorize, "oauth", signed=False),
                methods=["GET", "POST"],
            ),
            Route(
                f"{p}oauth/revoke",
                self._wrap(oauth.revoke, "oauth", signed=False),
                methods=["POST"],
            ),
            Route(
                f"{p}provisioning/resources",
                self._wrap(provisioning.create_resource, "status"),
                methods=["POST"],
            ),
            Route(
                f"{p}provisioning/resources/{{id}}",
                self._wrap(provisioning.get_resource, "status"),
                methods=["GET"],
            ),
            Route(
                f"{p}provisioning/resources/{{id}}/{{action}}",
                self._wrap(provisioning.resource_action, "status"),
                methods=["POST"],
            ),
            Route(
                f"{p}provisioning/deep_links",
                self._wrap(provisioning.deep_links, "flat"),
                methods=["POST"],
            ),
            Route(
                f"{p}api/whoami",
                self._wrap(provisioning.whoami, "flat", signed=False),
                methods=["GET"],
            ),
            Route(f"{p}dashboard", provisioning.dashboard, methods=["GET"]),
            Route(
                f"{p}jwks.json", self._wrap(discovery.jwks, "flat", signed=False), methods=["GET"]
            ),
        ]
        if self.next:
            routes += [
                # The resource identifier itself answers as an RFC 6750 protected resource, so
                # a generic OAuth client (and `provspec run --role resource-server`) can probe
                # the RFC 9728 discovery path without APP attestations; it changes nothing.
                Route(
                    p, self._wrap(provisioning.resource_root, "flat", signed=False), methods=["GET"]
                ),
                Route(
                    urlsplit(self.prm_url).path,
                    self._wrap(discovery.protected_resource_metadata, "flat", signed=False),
                    methods=["GET"],
                ),
                Route(
                    urlsplit(self.as_metadata_url).path,
                    self._wrap(discovery.authorization_server_metadata, "flat", signed=False),
                    methods=["GET"],
                ),
            ]
        handlers: dict[Any, Any] = {StarletteHTTPException: self._http_exception}
        return Starlette(routes=routes, exception_handlers=handlers)

    async def _http_exception(self, request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "invalid_request")
        return json_response(flat_error(code, str(exc.detail)), exc.status_code)

    def _wrap(
        self,
        handler: Handler,
        envelope: Envelope,
        *,
        signed: bool = True,
        precheck: Callable[[bytes], None] | None = None,
    ) -> Callable[[Request], Awaitable[Response]]:
        """`precheck` runs on the raw body before the signature is verified (PostHog's order
        for 0.1d account requests: the body's errors answer before a missing signature)."""
        faults, settings = self.faults, self.settings

        async def endpoint(request: Request) -> Response:
            resource_id = request.path_params.get("id", "")
            try:
                raw = await read_body(request)
                if faults.active("crash-on-malformed-json") and _not_a_json_object(request, raw):
                    return Response(
                        "Traceback (most recent call last):\n  ...\nJSONDecodeError",
                        status_code=500,
                    )
                caller = Caller()
                if (
                    precheck is not None
                    and settings.verify_requests
                    and not faults.active("signature-before-body")
                ):
                    try:
                        self.authentication.check_version(request)
                    except HTTPProblem as problem:
                        return _render(problem, "flat", resource_id)
                    precheck(raw)
                if signed:
                    try:
                        caller = await self.authentication.authenticate(request, raw)
                    except HTTPProblem as problem:
                        # PostHog exceptions.py: signature and version failures use the
                        # flat envelope on every endpoint.
                        return _render(problem, "flat", resource_id)
                return await handler(request, raw, caller)
            except HTTPProblem as problem:
                if problem.code == "body_too_large" and faults.active("body-limit-unhandled"):
                    # the size limit raises an error type the handlers do not map
                    return Response("Internal Server Error", status_code=500)
                return _render(problem, envelope, resource_id)
            except Exception:  # a bug in the mock must still answer in the envelope
                log.exception("mock provider failed on %s %s", request.method, request.url.path)
                return _render(
                    HTTPProblem(500, "server_error", "the mock provider failed; see its log"),
                    envelope,
                    resource_id,
                )

        return endpoint


def _not_a_json_object(request: Request, raw: bytes) -> bool:
    """What the crash-on-malformed-json fault trips on: a JSON body not starting with `{`."""
    json_body = request.headers.get("content-type", "").startswith("application/json")
    return json_body and raw[:1] != b"{"


def _render(problem: HTTPProblem, envelope: Envelope, resource_id: str) -> Response:
    body: dict[str, Any]
    if envelope == "typed":
        body = typed_error(problem.code, problem.message)
    elif envelope == "status":
        body = status_error(problem.code, problem.message, resource_id)
    elif envelope == "oauth":
        body = oauth_error(problem.code, problem.message)
    else:
        body = flat_error(problem.code, problem.message)
    body.update(problem.extra)
    return json_response(body, problem.status, problem.headers)
