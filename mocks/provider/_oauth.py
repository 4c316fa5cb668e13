"""The mock provider's OAuth authorization server: authorize (a scripted consent), token
(authorization_code with PKCE, refresh_token with rotation) and RFC 7009 revocation.

* app-0.1d: the consent page the `requires_auth` URL opens; codes from account requests,
  exchanged with `Stripe-Signature` or PKCE.
* app-next: RFC 6749 authorize with PKCE S256 and RFC 8707 `resource`, RFC 9207 `iss` on
  the redirect; the token endpoint takes an `APP-Attestation` or a PKCE-bound code alone.
"""

from __future__ import annotations

import hmac
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from mocks._core.http import HTTPProblem, json_response, parse_form
from mocks.provider._accounts import issue_code
from mocks.provider._authentication import CallerAuthentication
from mocks.provider._context import Caller, ProviderContext
from wire.pkce import pkce_pair, s256

__all__ = ["ACCESS_LIFETIME", "OAuthServer"]

ACCESS_LIFETIME = 3600
_VERIFIER_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


class OAuthServer:
    def __init__(self, ctx: ProviderContext, authentication: CallerAuthentication) -> None:
        self.ctx = ctx
        self.authentication = authentication
        self.faults = ctx.faults
        self.state = ctx.state
        self.params = ctx.params

    # --- authorize ------------------------------------------------------------------------
    async def authorize(self, request: Request, raw: bytes, caller: Caller) -> Response:
        params = dict(request.query_params)
        if self.ctx.next:
            return self._authorize_next(params)
        pending = self.state.awaiting_consent(params.get("account_request", ""))
        if pending is None:
            raise HTTPProblem(400, "invalid_request", "unknown or used account_request")
        if request.method == "GET" and params.get("approve") != "1":
            return _consent_page(params)
        self.state.consented(params["account_request"])
        self.state.link(pending["identity"], pending["account"])
        challenge = pending["challenge"]
        if self.faults.active("consent-rebinds-pkce"):
            # the consent page starts a PKCE flow of its own and binds the code to it
            _, challenge = pkce_pair()
        code = issue_code(
            self.ctx,
            pending["account"],
            challenge=challenge,
            request_id=params["account_request"],
        )
        return json_response({"code": code, "account_request": params["account_request"]})

    def _authorize_next(self, params: dict[str, str]) -> Response:
        if params.get("response_type") != "code":
            raise HTTPProblem(400, "unsupported_response_type", "response_type must be code")
        redirect_uri = params.get("redirect_uri", "")
        if not redirect_uri.startswith(("http://", "https://")):
            raise HTTPProblem(
                400, "invalid_request", "redirect_uri must be an absolute http(s) URL"
            )
        method = params.get("code_challenge_method")
        challenge = params.get("code_challenge")
        # The suite's instrument provider (verify_requests off) lets a PKCE-less request
        # through, so the orchestrator's following token request can be observed too.
        lenient = not self.ctx.settings.verify_requests
        if not self.faults.active("authorize-without-pkce") and not lenient:
            if not challenge or not 43 <= len(challenge) <= 128:
                raise HTTPProblem(400, "invalid_request", "code_challenge is required (PKCE S256)")
            if method != "S256" and not (
                method == "plain" and self.faults.active("pkce-plain-accepted")
            ):
                raise HTTPProblem(400, "invalid_request", "code_challenge_method must be S256")
        resource = params.get("resource")
        if resource is not None and resource != self.ctx.resource_id:
            raise HTTPProblem(
                400, "invalid_target", "resource is not this provider's resource identifier"
            )
        hint = params.get("login_hint", "")
        account = self.state.account_by_email(hint) if hint else None
        if account is None:
            raise HTTPProblem(400, "invalid_request", "login_hint names no account here")
        code = issue_code(
            self.ctx,
            account["id"],
            challenge=challenge,
            request_id=params.get("state", ""),
            method=method or "S256",
            redirect_uri=redirect_uri,
            resource=resource,
            consented=True,
        )
        query = {"code": code, "iss": self.ctx.issuer}
        if self.faults.active("authorize-redirect-without-iss"):
            del query["iss"]
        if "state" in params:
            query["state"] = params["state"]
        separator = "&" if "?" in redirect_uri else "?"
        return RedirectResponse(redirect_uri + separator + urlencode(query), status_code=302)

    # --- token ----------------------------------------------------------------------------
    async def token(self, request: Request, raw: bytes, caller: Caller) -> Response:
        form = parse_form(raw)
        signed = False
        if self.ctx.next:
            if request.headers.get(self.params.attestation_header):
                claims = await self.authentication.verify_attestation(
                    request.headers.get(self.params.attestation_header), raw
                )
                caller = Caller(issuer=str(claims["iss"]), subject=str(claims["sub"]))
                signed = True
        elif request.headers.get(self.params.signature_header):
            self.authentication.verify_hmac(request, raw)
            signed = True
        grant = form.get("grant_type")
        if grant == "authorization_code":
            return self._grant_code(form, caller, signed)
        if grant == "refresh_token":
            if not signed:
                raise HTTPProblem(401, "invalid_client", "the refresh_token grant must be signed")
            return self._grant_refresh(form)
        raise HTTPProblem(
            400, "unsupported_grant_type", f"grant_type {str(grant)[:40]!r} is not supported"
        )

    def _grant_code(self, form: dict[str, str], caller: Caller, signed: bool) -> Response:
        code = form.get("code", "")
        # The code is used up only once every check passed (PRV-CNS-015): a refused attempt
        # leaves it to the client that holds the right verifier.
        early = self.faults.active("failed-exchange-consumes-code")
        record = self.state.take_code(code) if early else self.state.peek_code(code)
        if record is None or int(record["exp"]) <= self.ctx.clock.timestamp():
            raise HTTPProblem(400, "invalid_grant", "the code is unknown, used or expired")
        # RFC 8707 §2: any token request naming another resource is refused, whichever way
        # the code was obtained.
        resource = form.get("resource")
        if (
            resource is not None
            and resource != self.ctx.resource_id
            and not self.faults.active("token-resource-ignored")
        ):
            raise HTTPProblem(400, "invalid_target", "resource is not this provider's identifier")
        challenge = record.get("challenge")
        if challenge and not self.faults.active("pkce-not-enforced"):
            _check_verifier(form.get("code_verifier"), str(challenge), record.get("method"))
        elif not challenge and not signed:
            raise HTTPProblem(401, "invalid_client", "an unsigned token request needs a PKCE code")
        if record.get("consented") and (
            record.get("redirect_uri") and form.get("redirect_uri") != record["redirect_uri"]
        ):
            raise HTTPProblem(
                400, "invalid_grant", "redirect_uri differs from the authorization request"
            )
        if (
            not early
            and not self.faults.active("code-reuse")
            and self.state.take_code(code) is None
        ):
            raise HTTPProblem(400, "invalid_grant", "the code is unknown, used or expired")
        if record.get("consented") and self.ctx.next and caller.issuer and caller.subject:
            self.state.link(f"{caller.issuer}\x1f{caller.subject}", str(record["account"]))
        tokens = self.state.issue_tokens(
            str(record["account"]),
            self.ctx.granted_scope,
            expires_at=self.ctx.clock.timestamp() + ACCESS_LIFETIME,
        )
        return json_response(
            {
                "token_type": "bearer",
                **tokens,
                "expires_in": ACCESS_LIFETIME,
                "scope": self.ctx.granted_scope,
                "account": {"id": record["account"], "payment_credentials": "orchestrator"},
            },
            headers=self._token_headers(),
        )

    def _grant_refresh(self, form: dict[str, str]) -> Response:
        old = form.get("refresh_token", "")
        record = self.state.refresh_token(old)
        if record is None:
            raise HTTPProblem(400, "invalid_grant", "the refresh token is unknown or revoked")
        scope = str(record["scope"])
        wanted = form.get("scope")
        if wanted is not None:
            # RFC 6749 §6: a refresh may narrow the scope, never widen it.
            if not set(wanted.split()) <= set(scope.split()):
                raise HTTPProblem(400, "invalid_scope", "the scope exceeds the original grant")
            scope = wanted
        if not self.faults.active("refresh-no-rotation"):
            self.state.revoke_refresh(old)
        tokens = self.state.issue_tokens(
            str(record["account"]),
            scope,
            expires_at=self.ctx.clock.timestamp() + ACCESS_LIFETIME,
        )
        return json_response(
            {
                "token_type": "bearer",
                **tokens,
                "expires_in": ACCESS_LIFETIME,
                "scope": scope,
            },
            headers=self._token_headers(),
        )

    def _token_headers(self) -> dict[str, str]:
        return {} if self.faults.active("token-cacheable") else {"Cache-Control": "no-store"}

    # --- revoke ---------------------------------------------------------------------------
    async def revoke(self, request: Request, raw: bytes, caller: Caller) -> Response:
        if self.ctx.next:
            if not self.faults.active("revocation-unauthenticated"):
                await self.authentication.verify_attestation(
                    request.headers.get(self.params.attestation_header), raw
                )
        else:
            self.authentication.verify_hmac(request, raw)
        form = parse_form(raw)
        token = form.get("token")
        if not token:
            raise HTTPProblem(400, "invalid_request", "token is required (RFC 7009 §2.1)")
        known = self.state.access_token(token) or self.state.refresh_token(token)
        if not known and self.faults.active("revoke-unknown-token-400"):
            raise HTTPProblem(400, "invalid_token", "the token is unknown")
        if not self.faults.active("revocation-ignored"):
            hint = form.get("token_type_hint")
            if hint == "refresh_token":
                self.state.revoke_refresh(token) or self.state.revoke_access(token)
            else:
                self.state.revoke_access(token) or self.state.revoke_refresh(token)
        return Response(status_code=200)  # RFC 7009 §2.2: 200 even for an unknown token


def _check_verifier(verifier: str | None, challenge: str, method: object) -> None:
    """RFC 7636 §4.6: the code_verifier is present, well-formed and hashes to the challenge
    (or equals it, for a code issued under the pkce-plain-accepted fault)."""
    if verifier is None:
        raise HTTPProblem(401, "invalid_grant", "code_verifier is required for this code")
    if not (43 <= len(verifier) <= 128 and set(verifier) <= _VERIFIER_CHARS):
        raise HTTPProblem(400, "invalid_grant", "code_verifier is malformed (RFC 7636 §4.1)")
    computed = s256(verifier)
    plain_ok = method == "plain" and verifier == challenge
    if not hmac.compare_digest(computed, challenge) and not plain_ok:
        raise HTTPProblem(400, "invalid_grant", "code_verifier does not match the code_challenge")


def _consent_page(params: dict[str, str]) -> Response:
    action = "?" + urlencode({**params, "approve": "1"})
    return HTMLResponse(
        "<!doctype html><title>Consent</title><form method=post action='"
        + action.replace("'", "%27").replace("<", "%3C")
        + "'><p>Link this account to the orchestrator?</p><button>Allow</button></form>"
    )
