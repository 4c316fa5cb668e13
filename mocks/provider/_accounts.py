"""Accounts: the orchestrator's account requests, answered with a code, a consent step or a
refusal.

* app-0.1d: accounts keyed by email; an account the orchestrator did not create answers
  `requires_auth` with the scripted consent page's URL (`_oauth.OAuthServer.authorize`).
* app-next: accounts keyed by the attestation's (`iss`, `sub`); an existing unlinked
  account answers the profile's `consent_required` (401 + `WWW-Authenticate` naming the
  RFC 9728 metadata), a new one needs a verified attested email.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Unpack
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from mocks._core.http import HTTPProblem, json_response, parse_json_object
from mocks.provider._context import Caller, ProviderContext
from mocks.provider._state import CodeBinding, new_id
from wire.formats import is_email

__all__ = ["CODE_LIFETIME", "Accounts", "issue_code"]

CODE_LIFETIME = 300


def issue_code(
    ctx: ProviderContext,
    account_id: str,
    *,
    challenge: Any,
    request_id: str,
    **binding: Unpack[CodeBinding],
) -> str:
    """A fresh authorization code for `account_id`, bound to its PKCE challenge (if any)."""
    return ctx.state.issue_code(
        account_id,
        challenge=challenge if isinstance(challenge, str) else None,
        exp=ctx.clock.timestamp() + CODE_LIFETIME,
        request=request_id,
        **binding,
    )


class Accounts:
    def __init__(self, ctx: ProviderContext) -> None:
        self.ctx = ctx
        self.faults = ctx.faults
        self.state = ctx.state

    def precheck(self, raw: bytes) -> None:
        """0.1d: a body that is no valid account request is refused before its signature."""
        body = parse_json_object(raw)
        if body.get("code_challenge_method") != "plain" or not self.faults.active(
            "account-request-accepts-plain"
        ):
            self.ctx.validate("account_request", body)

    async def account_requests(self, request: Request, raw: bytes, caller: Caller) -> Response:
        body = parse_json_object(raw)
        if "email" not in body and caller.email and self.faults.active("email-from-attestation"):
            body["email"] = caller.email  # fills the missing email in from the attestation
        checked = body
        if body.get("code_challenge_method") == "plain" and self.faults.active(
            "account-request-accepts-plain"
        ):
            checked = {**body, "code_challenge_method": "S256"}  # plain normalised, not refused
        self.ctx.validate("account_request", checked)
        request_id = str(body["id"]) if isinstance(body.get("id"), str) else new_id("acctreq")
        if self.faults.active("account-request-id-not-echoed"):
            request_id = new_id("acctreq")  # answers with its own id, not the request's
        email = str(body["email"])
        if not is_email(email):  # also when verify_requests is off: an account key, a mail header
            raise HTTPProblem(400, "invalid_request", "/email: not an RFC 5321 mailbox")
        expires = body.get("expires_at")
        deadline = _parse_time(expires) if isinstance(expires, str) else None
        if (
            deadline is not None
            and deadline <= self.ctx.clock.timestamp()
            and not self.faults.active("expires-at-ignored")
        ):
            raise HTTPProblem(400, "expired", "the account request has expired")
        challenge = body.get("code_challenge")
        if self.ctx.next:
            return await self._account_next(request_id, email, caller, challenge)
        return self._account_by_email(request_id, email, challenge)

    def _account_by_email(self, request_id: str, email: str, challenge: Any) -> Response:
        """app-0.1d: a linked account gets a code at once, any other one the consent URL."""
        account = self.state.account_by_email(email)
        identity = f"stripe\x1f{email.casefold()}"
        if account is None:
            account = self.state.create_account(email, origin="orchestrator")
            self.state.link(identity, account["id"])
        if self.state.linked_account(identity) == account["id"]:
            code = issue_code(self.ctx, account["id"], challenge=challenge, request_id=request_id)
            return json_response({"id": request_id, "type": "oauth", "oauth": {"code": code}})
        url = f"{self.ctx.base_url}oauth/authorize?" + urlencode(
            {"account_request": request_id, "login_hint": email}
        )
        self.state.await_consent(
            request_id, {"account": account["id"], "challenge": challenge, "identity": identity}
        )
        answer: dict[str, Any] = {"url": url}
        if self.faults.active("requires-auth-without-url"):
            answer = {}
        return json_response({"id": request_id, "type": "requires_auth", "requires_auth": answer})

    async def _account_next(
        self, request_id: str, email: str, caller: Caller, challenge: Any
    ) -> Response:
        identity = f"{caller.issuer}\x1f{caller.subject}"
        if self.faults.active("accounts-keyed-by-email"):
            identity = f"email\x1f{email.casefold()}"  # the email is taken as the stable key
        compare = not self.faults.active("attested-email-not-compared")
        if compare and caller.email is None:
            raise HTTPProblem(400, "invalid_request", "the attestation carries no email")
        if compare and caller.email is not None and caller.email.casefold() != email.casefold():
            raise HTTPProblem(
                400, "invalid_request", "the body's email differs from the attested email"
            )
        linked = self.state.linked_account(identity)
        if linked is None:
            existing = self.state.account_by_email(email)
            if existing is not None and not self.faults.active("auto-link-by-email"):
                raise self._consent_required(
                    "this email already has an account here; the user must consent to link it"
                )
            if existing is None:
                if not caller.email_verified and not self.faults.active("accept-unverified-email"):
                    raise HTTPProblem(400, "unverified_email", "the attested email is not verified")
                existing = self.state.create_account(email, origin="orchestrator")
            self.state.link(identity, existing["id"])
            linked = existing["id"]
        code = issue_code(self.ctx, linked, challenge=challenge, request_id=request_id)
        return json_response({"id": request_id, "type": "oauth", "oauth": {"code": code}})

    def _consent_required(self, message: str) -> HTTPProblem:
        consent = self.ctx.params.error("consent_required")
        return HTTPProblem(
            consent.status,
            consent.code,
            message,
            headers={
                "WWW-Authenticate": self.ctx.challenge_header(
                    metadata=not self.faults.active("no-resource-metadata")
                )
            },
            extra={"resource_metadata": self.ctx.prm_url},
        )


def _parse_time(value: str) -> int | None:
    try:
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return None
