"""Provisioning: resources (create, read, rotate credentials, change service, remove), deep
links into the provider's dashboard, and the provider API the credentials unlock.

Every provisioning call carries the provider access token the OAuth exchange issued
(`Authorization: Bearer`); a missing or invalid one answers 401 (app-next: with the RFC 6750
/ RFC 9728 challenge), one without the provisioning scope 403 `insufficient_scope`.
"""

from __future__ import annotations

import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

import mocks.provider.catalog as catalog
from mocks._core.http import HTTPProblem, json_response, parse_json_object
from mocks.provider._context import Caller, ProviderContext
from mocks.provider._payment import PaymentDesk
from mocks.provider._state import Resource, new_id
from wire.clock import iso_utc

__all__ = ["Provisioning"]

DEEP_LINK_LIFETIME = 600
PENDING_SECONDS = 5
"""How long an asynchronous resource (registrar:domain) stays pending."""

_RESOURCE_MEMBERS = frozenset(
    {"service_id", "project_id", "configuration", "label_prefix", "payment_credentials"}
)
"""The members resource_create_request models (what the crash-on-unknown-member fault's
typed model accepts)."""


class Provisioning:
    def __init__(self, ctx: ProviderContext, payment: PaymentDesk) -> None:
        self.ctx = ctx
        self.payment = payment
        self.faults = ctx.faults
        self.state = ctx.state

    # --- the bearer token -----------------------------------------------------------------
    def bearer_account(self, request: Request) -> str:
        """The account whose provisioning-scoped access token the request carries."""
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise self._unauthorized(None)
        record = self.state.access_token(token.strip())
        if record is None or int(record["exp"]) <= self.ctx.clock.timestamp():
            raise self._unauthorized("invalid_token", token.strip())
        if self.ctx.scope not in str(record["scope"]).split():
            status = 401 if self.faults.active("insufficient-scope-401") else 403
            raise HTTPProblem(
                status,
                "forbidden",
                "the token lacks the provisioning scope",
                headers={"WWW-Authenticate": self.ctx.challenge_header("insufficient_scope")},
            )
        return str(record["account"])

    def _unauthorized(self, error: str | None, presented: str | None = None) -> HTTPProblem:
        headers = {}
        if self.ctx.next:
            headers["WWW-Authenticate"] = self.ctx.challenge_header(
                error, metadata=not self.faults.active("unauthorized-without-metadata")
            )
        message = "a valid provider access token is required"
        if presented and self.faults.active("secret-in-error"):
            message += f" (got {presented})"
        return HTTPProblem(401, "unauthorized", message, headers=headers)

    async def resource_root(self, request: Request, raw: bytes, caller: Caller) -> Response:
        """app-next: the resource identifier itself, an RFC 6750 protected resource."""
        account = self.bearer_account(request)
        return json_response({"resource": self.ctx.resource_id, "account": account})

    # --- resources ------------------------------------------------------------------------
    async def create_resource(self, request: Request, raw: bytes, caller: Caller) -> Response:
        if "authorization" not in request.headers and self.faults.active("create-without-bearer"):
            account = "acct_unowned"  # the route forgot its auth dependency
        else:
            account = self.bearer_account(request)
        body = parse_json_object(raw)
        if self.faults.active("crash-on-unknown-member") and set(body) - _RESOURCE_MEMBERS:
            # `ResourceRequest(**body)` raises TypeError, which no handler maps to a 4xx
            return Response("Internal Server Error", status_code=500, media_type="text/plain")
        checked = body
        if self.faults.active("non-spt-credentials-accepted"):
            # the request model types payment_credentials as a free-form object
            checked = {name: value for name, value in body.items() if name != "payment_credentials"}
        self.ctx.validate("resource_create_request", checked)
        entry = catalog.service(str(body["service_id"]))
        if entry is None:
            status = 404 if self.faults.active("unknown-service-404") else 400
            raise HTTPProblem(
                status, "unknown_service", f"no service {str(body['service_id'])[:64]!r}"
            )
        project = body.get("project_id")
        if isinstance(project, str):
            known = self._project_resource(account, project, entry)
            if known is not None:
                return json_response(self._resource_view(known))
        resource_id = new_id("res")
        unpaid_allowed = self.faults.active("provision-without-payment")
        if entry.paid and not (unpaid_allowed and body.get("payment_credentials") is None):
            try:
                await self.payment.charge(
                    body.get("payment_credentials"), entry, resource_id, project, caller.subject
                )
            except HTTPProblem as refused:
                if self.faults.active("refused-payment-leaves-resource"):
                    # the resource was written before billing ran, and stays
                    self._leave_behind(account, entry, resource_id, body, refused)
                raise
        resource: Resource = {
            "id": resource_id,
            "account": account,
            "service_id": entry.id,
            "configuration": body.get("configuration") or {},
            "status": "complete",
            "api_key": None,
            "created": self.ctx.clock.timestamp(),
        }
        if entry.asynchronous:
            has_query = bool((body.get("configuration") or {}).get("domain_query"))
            resource["status"] = "pending" if has_query else "needs_information"
        if resource["status"] == "complete":
            resource["api_key"] = api_key = self.state.new_api_key(resource_id)
            if self.faults.active("initial-key-unregistered"):
                # the key answered at creation is minted but never stored; rotation stores its
                self.state.drop_api_key(api_key)
        self.state.save_resource(resource)
        if isinstance(project, str):
            self.state.bind_project(account, project, resource_id)
        # REST habit: 201 Created, where APP answers a new resource with 200
        status = 201 if self.faults.active("create-answers-201") else 200
        return json_response(self._resource_view(resource), status)

    def _project_resource(
        self, account: str, project: str, entry: catalog.Service
    ) -> Resource | None:
        """The resource `project` already names for this account and service (a repeated
        create answers it again), None for a new project, 409 for another's or another
        service's."""
        owner = self.state.project_owner(project)
        if owner is not None and owner[0] != account:
            held = self.state.resource(owner[1])
            if held is not None and self.faults.active("project-id-cross-account"):
                return held  # looked up without its owner
            raise HTTPProblem(409, "project_id_conflict", "project_id is bound to another account")
        existing_id = self.state.project_resource(account, project)
        if existing_id is not None and not self.faults.active("project-id-ignored"):
            existing = self.state.resource(existing_id)
            if existing is not None and existing["service_id"] == entry.id:
                return existing
            raise HTTPProblem(409, "project_id_conflict", "project_id is bound to another service")
        return None

    def _leave_behind(
        self,
        account: str,
        entry: catalog.Service,
        resource_id: str,
        body: dict[str, Any],
        refused: HTTPProblem,
    ) -> None:
        resource: Resource = {
            "id": resource_id,
            "account": account,
            "service_id": entry.id,
            "configuration": body.get("configuration") or {},
            "status": "complete",
            "api_key": self.state.new_api_key(resource_id),
            "created": self.ctx.clock.timestamp(),
        }
        self.state.save_resource(resource)
        refused.extra["id"] = resource_id

    def _owned(self, request: Request) -> Resource:
        account = self.bearer_account(request)
        resource_id = request.path_params["id"]
        resource = self.state.resource(resource_id)
        foreign = resource is not None and resource["account"] != account
        if foreign and self.faults.active("cross-account-access"):
            foreign = False
        if foreign and self.faults.active("foreign-resource-403"):
            raise HTTPProblem(403, "forbidden", "the resource belongs to another account")
        removed = resource is not None and resource["status"] == "removed"
        if removed and self.faults.active("removed-resource-still-served"):
            removed = False
        if resource is None or foreign or removed:
            raise HTTPProblem(404, "not_found", "no such resource for this account")
        return resource

    def _resource_view(self, resource: Resource) -> dict[str, Any]:
        status = resource["status"]
        view: dict[str, Any] = {
            "status": status,
            "id": resource["id"],
            "service_id": resource["service_id"],
        }
        if status == "complete":
            view["complete"] = {
                "access_configuration": {
                    "api_key": resource["api_key"],
                    "base_url": f"{self.ctx.base_url}api/",
                }
            }
            if self.faults.active("credential-values-not-strings"):
                # the provider's numeric project id, serialised as a number
                view["complete"]["access_configuration"]["project_id"] = 12345
            if self.faults.active("complete-expires-at-integer"):
                # a Unix timestamp where the schema wants an RFC 3339 date-time
                view["complete"]["expires_at"] = self.ctx.clock.timestamp() + 86400
        elif status == "pending":
            view["pending"] = {"message": "registering the domain"}
        elif status == "needs_information":
            view["needs_information"] = {
                "message": "which domain should be registered?",
                "schema": catalog.service(resource["service_id"]).configuration_schema,  # type: ignore[union-attr]
            }
        return view

    async def get_resource(self, request: Request, raw: bytes, caller: Caller) -> Response:
        resource = self._owned(request)
        if (
            resource["status"] == "pending"
            and self.ctx.clock.timestamp() - int(resource["created"]) >= PENDING_SECONDS
        ):
            resource["status"] = "complete"
            resource["api_key"] = self.state.new_api_key(resource["id"])
            self.state.save_resource(resource)
        return json_response(self._resource_view(resource))

    async def resource_action(self, request: Request, raw: bytes, caller: Caller) -> Response:
        action = request.path_params["action"]
        if action not in ("rotate_credentials", "update_service", "remove"):
            raise HTTPProblem(404, "not_found", f"unknown resource action {action[:40]!r}")
        resource = self._owned(request)
        body = parse_json_object(raw) if raw.strip() else {}
        self.ctx.validate(f"{action}_request", body)
        if action == "remove":
            return self._remove(resource)
        if action == "rotate_credentials":
            self._rotate(resource)
        else:
            await self._update_service(resource, body, caller)
        self.state.save_resource(resource)
        return json_response(self._resource_view(resource))

    def _rotate(self, resource: Resource) -> None:
        if resource["status"] != "complete":
            raise HTTPProblem(400, "invalid_request", "only a complete resource has credentials")
        if resource["api_key"] and not self.faults.active("rotation-keeps-old-key"):
            self.state.drop_api_key(resource["api_key"])
        resource["api_key"] = self.state.new_api_key(resource["id"])

    async def _update_service(
        self, resource: Resource, body: dict[str, Any], caller: Caller
    ) -> None:
        target = catalog.service(str(body.get("service_id")))
        current = catalog.service(resource["service_id"])
        if target is None or current is None:
            raise HTTPProblem(400, "unknown_service", "no such service")
        allowed = current.allowed_updates
        if self.faults.active("allowed-updates-not-honoured"):
            allowed = ()  # still listed in the catalog: false advertising
        if self.faults.active("allowed-updates-ignored"):
            allowed = tuple(entry.id for entry in catalog.SERVICES)
        if target.id != current.id and target.id not in allowed:
            raise HTTPProblem(400, "invalid_request", f"{current.id} cannot change to {target.id}")
        if target.paid and not self.faults.active("provision-without-payment"):
            await self.payment.charge(
                body.get("payment_credentials"), target, resource["id"], None, caller.subject
            )
        resource["service_id"] = target.id

    def _remove(self, resource: Resource) -> Response:
        removed = {"status": "removed", "id": resource["id"], "service_id": resource["service_id"]}
        if self.faults.active("removed-resource-still-served"):
            # answers "removed" but changes nothing: the resource keeps being served
            return json_response(removed)
        if resource["api_key"] and not self.faults.active("remove-keeps-credentials"):
            self.state.drop_api_key(resource["api_key"])
        resource["status"] = "removed"
        resource["api_key"] = None
        self.state.save_resource(resource)
        return json_response(removed)

    # --- deep links and the dashboard ---------------------------------------------------------
    async def deep_links(self, request: Request, raw: bytes, caller: Caller) -> Response:
        account = self.bearer_account(request)
        body = parse_json_object(raw)
        self.ctx.validate("deep_link_request", body)
        lifetime = 86400 if self.faults.active("deep-link-long-lived") else DEEP_LINK_LIFETIME
        expires = self.ctx.clock.timestamp() + lifetime
        login = secrets.token_urlsafe(16)
        self.state.save_deep_link(login, {"account": account, "exp": expires})
        url = f"{self.ctx.base_url}dashboard?login=" + login
        return json_response({"url": url, "expires_at": iso_utc(expires)})

    async def dashboard(self, request: Request) -> Response:
        """Where a deep link lands, in a browser: the login token signs in once (a session
        cookie, then the dashboard); used, expired or unknown, it goes to the login page."""
        base_url = self.ctx.base_url
        login = request.query_params.get("login", "")
        link = self.state.deep_link(login) if login else None
        if link is not None and not self.faults.active("deep-link-reusable"):
            self.state.drop_deep_link(login)
        if link is None or int(link["exp"]) <= self.ctx.clock.timestamp():
            return RedirectResponse(f"{base_url}dashboard/login?error=link_used", 302)
        answer = RedirectResponse(f"{base_url}dashboard/home", 302)
        answer.set_cookie("mock_session", secrets.token_urlsafe(16), httponly=True)
        return answer

    # --- the provider API the credentials unlock -------------------------------------------
    async def whoami(self, request: Request, raw: bytes, caller: Caller) -> Response:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        resource_id = (
            self.state.api_key_resource(key.strip()) if scheme.lower() == "bearer" else None
        )
        if resource_id is None:
            raise HTTPProblem(401, "unauthorized", "a valid API key is required")
        resource = self.state.resource(resource_id)
        assert resource is not None
        return json_response({"resource_id": resource_id, "service_id": resource["service_id"]})
