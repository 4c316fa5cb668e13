"""An app-next provider written from the published draft only (issue 14: a second reading).

Sources: ../shared/DESIGN.md §2 app-next items 1-6, schemas/app-next/*, the app-0.1d schemas it
inherits, spec/requirements/provider.toml (app-next entries), docs/decisions/*.md and
the RFCs they cite. The reference mock (mocks/) and the suite's probes were not read. Where
the draft left a choice open, the choice is marked `# draft:` and listed in this package's
README.md.

The surface, relative to the base URL (`http://127.0.0.1:<port>/api/app/`):
    provisioning/health, services, account_requests, resources[/{id}[/{action}]], deep_links
    oauth/authorize (scripted consent), oauth/token, oauth/revoke, jwks.json
    v1/whoami          the API the issued credentials unlock: `Authorization: Bearer {api_key}`
    dashboard/login    where deep links land (single use)
and at the host root the RFC 9728 and RFC 8414 well-known documents for that base URL.

`AppNextProvider(..., fault=NAME)` builds a one-bug variant; FAULTS maps each name to the
requirement it breaks.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.independent._http import (
    BodyTooLarge,
    flat_error,
    oauth_error,
    parse_form,
    parse_json_object,
    read_body,
    status_error,
    typed_error,
)
from tests.independent._jws import (
    JoseError,
    KeysUnavailable,
    OrchestratorTrust,
    SigningKey,
    b64url_sha256,
)

__all__ = ["FAULTS", "SERVICES", "AppNextProvider"]

API_VERSION = "next"
SCOPE = "provisioning"  # decisions#scopes: the one scope every provisioning call needs
OTHER_SCOPE = "profile"  # advertised so that a token without SCOPE can exist (PRV-CNS-011)
ACCESS_TTL = 3600
CODE_TTL = 300
LINK_TTL = 600
ATTESTATION_CLAIMS = ("iss", "sub", "aud", "iat", "exp", "jti", "body_sha256")
PAYMENT_CLAIMS = (
    *("iss", "aud", "sub", "jti", "iat", "exp"),
    *("max_amount", "currency", "service_id", "project_id"),
)
_CHALLENGE_RE = re.compile(r"^[A-Za-z0-9_-]{43,128}$")
_VERIFIER_RE = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
_EMAIL_RE = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")

# Each one-bug variant and the requirement whose rule it breaks.
FAULTS: dict[str, str] = {
    "no-project-check": "PRV-PAY-011",
    "no-service-check": "PRV-PAY-007",
    "no-currency-check": "PRV-PAY-012",
    "no-max-amount-check": "PRV-PAY-009",
    "foreign-payment-aud": "PRV-PAY-004",
    "trust-jku-payment": "PRV-PAY-013",
    "no-redeem": "PRV-PAY-008",
    "one-idempotency-key": "PRV-RED-009",
    "redeem-above-max": "PRV-RED-004",
    "ignore-cap-refusal": "PRV-CAP-001",
    "cap-refusal-as-problem": "PRV-CAP-002",
    "retry-with-new-key": "PRV-RED-006",
    "trust-jku": "PRV-ATT-014",
    "typ-unchecked": "PRV-ATT-020",
    "jti-replay": "PRV-ATT-022",
    "body-not-bound": "PRV-ATT-023",
    "link-by-email": "PRV-ACC-007",
    "no-resource-metadata": "PRV-CNS-010",
    "refresh-reuse": "PRV-REV-005",
    "revoke-unauthenticated": "PRV-REV-006",
}

SERVICES: list[dict[str, Any]] = [
    {
        "id": "starter",
        "description": "A free analytics workspace.",
        "categories": ["analytics"],
        "kind": "deployable",
        "pricing": {"type": "free"},
        "allowed_updates": ["pro"],
    },
    {
        "id": "pro",
        "description": "The analytics workspace with longer retention.",
        "categories": ["analytics"],
        "kind": "deployable",
        "pricing": {
            "type": "paid",
            "paid": {"type": "freeform", "freeform": "$20.00", "amount": 2000, "currency": "usd"},
        },
        "allowed_updates": ["starter"],
    },
    {
        "id": "archive",
        "description": "Cold storage for old events; reached only from a fresh project.",
        "categories": ["storage"],
        "kind": "deployable",
        "pricing": {"type": "free"},
        "allowed_updates": [],
    },
]
_BY_ID = {service["id"]: service for service in SERVICES}


def _price(service: dict[str, Any]) -> tuple[int, str] | None:
    """(amount, currency) of a paid service; None for a free one."""
    pricing = service["pricing"]
    if pricing["type"] != "paid":
        return None
    return pricing["paid"]["amount"], pricing["paid"]["currency"]


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _now() -> int:
    return int(time.time())


@dataclass
class Account:
    id: str
    email: str


@dataclass
class Code:
    account_id: str
    challenge: str
    scope: frozenset[str]
    expires: int
    identity: tuple[str, str] | None = None  # bound to the attested (iss, sub) that asked
    redirect_uri: str | None = None  # consent codes only
    client_id: str | None = None
    consent: bool = False  # exchanging it links the attested identity (decisions#linking)


@dataclass
class Grant:
    account_id: str
    scope: frozenset[str]
    family: str
    issuer: str
    expires: int = 0


@dataclass
class Refresh:
    account_id: str
    scope: frozenset[str]
    family: str
    issuer: str
    active: bool = True


@dataclass
class Resource:
    id: str
    account_id: str
    service_id: str
    project_id: str | None
    api_key: str
    removed: bool = False


@dataclass
class State:
    accounts: dict[str, Account] = field(default_factory=dict)
    by_email: dict[str, str] = field(default_factory=dict)  # lower-cased email -> account
    identities: dict[tuple[str, str], str] = field(default_factory=dict)  # (iss, sub) -> account
    codes: dict[str, Code] = field(default_factory=dict)
    access: dict[str, Grant] = field(default_factory=dict)
    refresh: dict[str, Refresh] = field(default_factory=dict)
    resources: dict[str, Resource] = field(default_factory=dict)
    projects: dict[str, str] = field(default_factory=dict)  # project_id -> resource id
    api_keys: dict[str, str] = field(default_factory=dict)  # api key -> resource id
    links: dict[str, tuple[str, int]] = field(default_factory=dict)  # deep link -> (acct, exp)
    sessions: dict[str, str] = field(default_factory=dict)  # dashboard session -> account
    redemptions: list[dict[str, Any]] = field(default_factory=list)  # what was sent, for tests


Envelope = Callable[..., Response]


class AppNextProvider:
    def __init__(
        self,
        base_url: str,
        orchestrator_issuer: str,
        *,
        existing_emails: tuple[str, ...] = ("existing@example.com",),
        allow_loopback: bool = True,
        fault: str | None = None,
    ) -> None:
        if fault is not None and fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}")
        if not base_url.endswith("/"):
            raise ValueError("the base URL ends with /")
        self.base_url = base_url
        self.fault = fault
        self.trust = OrchestratorTrust(orchestrator_issuer, allow_loopback=allow_loopback)
        self.signing = SigningKey()
        self.state = State()
        self._project_locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._fixed_key = str(uuid.uuid4())
        for email in existing_emails:
            self._new_account(email)

        parts = urlsplit(base_url)
        origin = f"{parts.scheme}://{parts.netloc}"
        self.prefix = parts.path.rstrip("/")  # "/api/app"
        # RFC 9728 §3.1: the well-known segment between the host and the base URL's path.
        self.prm_path = "/.well-known/oauth-protected-resource" + parts.path
        self.prm_url = origin + self.prm_path
        # draft: the authorization server's issuer is the base URL without its final slash.
        self.as_issuer = base_url.rstrip("/")
        self.as_metadata_path = "/.well-known/oauth-authorization-server" + self.prefix

        p = self.prefix
        routes = [
            Route(self.prm_path, self.protected_resource_metadata),
            Route(self.as_metadata_path, self.authorization_server_metadata),
            Route(p + "/jwks.json", self.jwks),
            Route(p + "/provisioning/health", self.health),
            Route(p + "/provisioning/services", self.services),
            Route(p + "/provisioning/account_requests", self.account_requests, methods=["POST"]),
            Route(p + "/provisioning/resources", self.create_resource, methods=["POST"]),
            Route(p + "/provisioning/resources/{rid}", self.read_resource),
            Route(p + "/provisioning/resources/{rid}/{action}", self.act, methods=["POST"]),
            Route(p + "/provisioning/deep_links", self.deep_links, methods=["POST"]),
            Route(p + "/oauth/authorize", self.authorize),
            Route(p + "/oauth/token", self.token, methods=["POST"]),
            Route(p + "/oauth/revoke", self.revoke, methods=["POST"]),
            Route(p + "/v1/whoami", self.whoami),
            Route(p + "/dashboard/login", self.dashboard_login),
        ]
        self.app = Starlette(routes=routes)

    # ---------------------------------------------------------------- accounts and tokens

    def _new_account(self, email: str) -> Account:
        account = Account(id="acct_" + secrets.token_hex(8), email=email)
        self.state.accounts[account.id] = account
        self.state.by_email.setdefault(email.lower(), account.id)
        return account

    def _issue_code(self, code: Code) -> str:
        value = "code_" + secrets.token_urlsafe(24)
        self.state.codes[value] = code
        return value

    def _issue_tokens(
        self, account_id: str, scope: frozenset[str], issuer: str, family: str | None = None
    ) -> dict[str, Any]:
        family = family or secrets.token_hex(8)
        access = "at_" + secrets.token_urlsafe(24)
        refresh = "rt_" + secrets.token_urlsafe(24)
        self.state.access[access] = Grant(account_id, scope, family, issuer, _now() + ACCESS_TTL)
        self.state.refresh[refresh] = Refresh(account_id, scope, family, issuer)
        return {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": ACCESS_TTL,
            "refresh_token": refresh,
            "scope": " ".join(sorted(scope)),
            "account": {"id": account_id, "payment_credentials": "orchestrator"},
        }

    def _revoke_family(self, family: str) -> None:
        for token, grant in list(self.state.access.items()):
            if grant.family == family:
                del self.state.access[token]

    # ----------------------------------------------------------------------- gates

    def _challenge(self, error: str | None = None) -> dict[str, str]:
        params = (
            [] if self.fault == "no-resource-metadata" else [f'resource_metadata="{self.prm_url}"']
        )
        params.append(f'scope="{SCOPE}"')
        if error:
            params.append(f'error="{error}"')
        return {"WWW-Authenticate": "Bearer " + ", ".join(params)}

    async def _attestation(self, request: Request, body: bytes) -> dict[str, Any] | str:
        """The verified attestation claims, or why it was refused (KeysUnavailable raises)."""
        values = request.headers.getlist("app-attestation")
        if len(values) != 1 or not values[0]:
            return "an APP-Attestation header is required"
        try:
            claims = await self.trust.verify(
                values[0].strip(),
                typ="" if self.fault == "typ-unchecked" else "app-attestation+jwt",
                audience=self.base_url,
                max_lifetime=300,
                required=ATTESTATION_CLAIMS,
                trust_jku=self.fault == "trust-jku",
            )
        except JoseError as exc:
            return f"the attestation does not verify: {exc}"
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            return "the attestation names no sub"
        if self.fault != "body-not-bound" and claims["body_sha256"] != b64url_sha256(body):
            return "body_sha256 does not match the body"
        if self.fault != "jti-replay" and not self.trust.use_jti(claims["jti"], claims["exp"]):
            return "the attestation was used before"
        return claims

    async def _gate(
        self, request: Request, envelope: Envelope, *, challenge: bool
    ) -> tuple[bytes, dict[str, Any]] | Response:
        """Body within limits, API-Version, APP-Attestation: in the endpoint's envelope."""
        try:
            body = await read_body(request)
        except BodyTooLarge:
            return envelope(413, "request_too_large", "the body exceeds 1 MiB")
        if request.headers.get("api-version") != API_VERSION:
            return envelope(400, "invalid_api_version", f"API-Version must be {API_VERSION}")
        try:
            claims = await self._attestation(request, body)
        except KeysUnavailable:
            # decisions#unavailable-keys: 503 with Retry-After while the keys cannot be had.
            return envelope(
                503,
                "orchestrator_unavailable",
                "the orchestrator's keys cannot be fetched",
                headers={"Retry-After": "5"},
            )
        if isinstance(claims, str):
            return envelope(
                401, "invalid_signature", claims, headers=self._challenge() if challenge else None
            )
        return body, claims

    def _bearer(self, request: Request) -> Grant | Response:
        authorization = request.headers.get("authorization", "")
        if not authorization:
            return status_error(
                401, "unauthorized", "a bearer token is required", headers=self._challenge()
            )
        scheme, _, token = authorization.partition(" ")
        grant = self.state.access.get(token.strip()) if scheme.lower() == "bearer" else None
        if grant is None or grant.expires < _now():
            return status_error(
                401,
                "invalid_token",
                "the access token is not valid",
                headers=self._challenge("invalid_token"),
            )
        if SCOPE not in grant.scope:
            return status_error(
                403,
                "insufficient_scope",
                f"the token lacks the {SCOPE} scope",
                headers=self._challenge("insufficient_scope"),
            )
        return grant

    async def _resource_gate(
        self, request: Request
    ) -> tuple[dict[str, Any], dict[str, Any], Grant] | Response:
        gate = await self._gate(request, status_error, challenge=True)
        if isinstance(gate, Response):
            return gate
        body, claims = gate
        grant = self._bearer(request)
        if isinstance(grant, Response):
            return grant
        data = parse_json_object(body) if body.strip() else {}
        if data is None:
            return status_error(400, "invalid_request", "the body is not a JSON object")
        return data, claims, grant

    # ---------------------------------------------------------------- well-known, catalog

    async def protected_resource_metadata(self, request: Request) -> Response:
        return JSONResponse(
            {
                "resource": self.base_url,
                "authorization_servers": [self.as_issuer],
                "jwks_uri": self.base_url + "jwks.json",
                "scopes_supported": [SCOPE, OTHER_SCOPE],
                "bearer_methods_supported": ["header"],
                "resource_name": "Independent app-next provider",
            }
        )

    async def authorization_server_metadata(self, request: Request) -> Response:
        return JSONResponse(
            {
                "issuer": self.as_issuer,
                "authorization_endpoint": self.base_url + "oauth/authorize",
                "token_endpoint": self.base_url + "oauth/token",
                "revocation_endpoint": self.base_url + "oauth/revoke",
                "scopes_supported": [SCOPE, OTHER_SCOPE],
                "response_types_supported": ["code"],
                "response_modes_supported": ["query"],
                "grant_types_supported": ["authorization_code", "refresh_token"],
                "code_challenge_methods_supported": ["S256"],
                # decisions#token-endpoint-authentication
                "token_endpoint_auth_methods_supported": ["app_attestation"],
                "revocation_endpoint_auth_methods_supported": ["app_attestation"],
                "authorization_response_iss_parameter_supported": True,
            }
        )

    async def jwks(self, request: Request) -> Response:
        return JSONResponse(self.signing.jwks())

    async def health(self, request: Request) -> Response:
        gate = await self._gate(request, flat_error, challenge=False)
        if isinstance(gate, Response):
            return gate
        return JSONResponse({"supported_versions": [API_VERSION], "status": "ok"})

    async def services(self, request: Request) -> Response:
        gate = await self._gate(request, flat_error, challenge=False)
        if isinstance(gate, Response):
            return gate
        return JSONResponse({"data": SERVICES})

    # ---------------------------------------------------------------------- accounts

    async def account_requests(self, request: Request) -> Response:
        gate = await self._gate(request, typed_error, challenge=True)
        if isinstance(gate, Response):
            return gate
        body, claims = gate
        data = parse_json_object(body)
        if data is None:
            return typed_error(400, "invalid_request", "the body is not a JSON object")
        rid = data.get("id") if isinstance(data.get("id"), str) and data["id"] else None

        def refuse(code: str, message: str) -> Response:
            return typed_error(400, code, message, rid)

        if rid is None:
            return refuse("invalid_request", "id is required")
        email = data.get("email")
        if not isinstance(email, str) or not email:
            return refuse("invalid_request", "email is required")
        if not _EMAIL_RE.match(email) or len(email) > 254:
            return refuse("invalid_request", "email is not an address")
        attested = claims.get("email")
        if not isinstance(attested, str):  # PRV-ACC-013
            return refuse("invalid_request", "the attestation carries no email")
        # draft: "differs" read as differing beyond letter case (PRV-ACC-011 treats case
        # variants as one address).
        if attested.lower() != email.lower():
            return refuse("invalid_request", "the body email differs from the attested one")
        challenge = data.get("code_challenge")
        if data.get("code_challenge_method") != "S256":
            return refuse("invalid_request", "code_challenge_method must be S256")
        if not isinstance(challenge, str) or not _CHALLENGE_RE.match(challenge):
            return refuse("invalid_request", "code_challenge is required")
        expires_at = data.get("expires_at")
        if expires_at is not None:
            try:
                when = datetime.fromisoformat(str(expires_at).replace("Z", "+00:00"))
                if when.tzinfo is None:
                    raise ValueError("no offset")
            except ValueError:
                return refuse("invalid_request", "expires_at is not a date-time")
            if when < datetime.now(UTC):
                return refuse("expired", "the account request has expired")
        scopes = data.get("scopes")
        granted = (
            frozenset(s for s in scopes if s in (SCOPE, OTHER_SCOPE))
            if isinstance(scopes, list)
            else frozenset()
        )

        identity = (claims["iss"], claims["sub"])
        account_id = self.state.identities.get(identity)
        if account_id is None:
            existing = self.state.by_email.get(email.lower())
            if existing is not None and self.fault == "link-by-email":
                self.state.identities[identity] = account_id = existing
            elif existing is not None:
                # PRV-ACC-007 / -009 / -015: never linked by email; the human consents.
                return typed_error(
                    401,
                    "consent_required",
                    "an account with this email exists; the user must consent to link it",
                    rid,
                    headers=self._challenge(),
                    resource_metadata=self.prm_url,
                )
            elif claims.get("email_verified") is not True:  # PRV-ACC-008
                return refuse("unverified_email", "the attested email is not verified")
            else:
                account_id = self._new_account(attested).id
                self.state.identities[identity] = account_id
        code = self._issue_code(
            Code(account_id, challenge, granted or frozenset({SCOPE}), _now() + CODE_TTL, identity)
        )
        return JSONResponse({"id": rid, "type": "oauth", "oauth": {"code": code}})

    # ------------------------------------------------------------------ authorization server

    async def authorize(self, request: Request) -> Response:
        """Scripted consent: the human signed in as the account `login_hint` names approves."""
        params: dict[str, str] = {}
        for key, value in request.query_params.multi_items():
            if key in params:
                return oauth_error(400, "invalid_request", f"{key} appears twice")
            params[key] = value
        redirect_uri = params.get("redirect_uri", "")
        target = urlsplit(redirect_uri)
        if (
            not params.get("client_id")
            or target.scheme not in ("http", "https")
            or not target.netloc
            or target.fragment
        ):
            # RFC 6749 §4.1.2.1: no redirect to a URI that cannot be trusted.
            return oauth_error(
                400, "invalid_request", "client_id and an absolute redirect_uri are required"
            )

        def back(**answer: str) -> Response:
            if "state" in params:
                answer["state"] = params["state"]
            answer["iss"] = self.as_issuer  # RFC 9207
            sep = "&" if target.query else "?"
            return RedirectResponse(redirect_uri + sep + urlencode(answer), status_code=302)

        if params.get("response_type") != "code":
            return back(error="unsupported_response_type")
        challenge = params.get("code_challenge", "")
        if params.get("code_challenge_method") != "S256" or not _CHALLENGE_RE.match(challenge):
            return back(error="invalid_request", error_description="PKCE S256 is required")
        if params.get("resource", self.base_url) != self.base_url:
            return back(error="invalid_target")
        scope = frozenset(params.get("scope", SCOPE).split())
        if not scope or not scope <= {SCOPE, OTHER_SCOPE}:
            return back(error="invalid_scope")
        account_id = self.state.by_email.get(params.get("login_hint", "").lower())
        if account_id is None:
            return back(error="access_denied", error_description="no such account signed in")
        code = self._issue_code(
            Code(
                account_id,
                challenge,
                scope,
                _now() + CODE_TTL,
                redirect_uri=redirect_uri,
                client_id=params["client_id"],
                consent=True,
            )
        )
        return back(code=code)

    async def token(self, request: Request) -> Response:
        try:
            body = await read_body(request)
        except BodyTooLarge:
            return oauth_error(413, "invalid_request", "the body is too large")
        try:
            claims = await self._attestation(request, body)
        except KeysUnavailable:
            return oauth_error(
                503,
                "temporarily_unavailable",
                "the orchestrator's keys cannot be fetched",
                {"Retry-After": "5"},
            )
        if isinstance(claims, str):
            return oauth_error(401, "invalid_client", claims)
        if not request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"
        ):
            return oauth_error(400, "invalid_request", "the body must be form-encoded")
        form = parse_form(body)
        if form is None:
            return oauth_error(400, "invalid_request", "a parameter is repeated or unreadable")
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            return self._exchange_code(form, claims)
        if grant_type == "refresh_token":
            return self._refresh(form, claims)
        if grant_type is None:
            return oauth_error(400, "invalid_request", "grant_type is required")
        return oauth_error(400, "unsupported_grant_type", "authorization_code or refresh_token")

    def _exchange_code(self, form: dict[str, str], claims: dict[str, Any]) -> Response:
        value = form.get("code", "")
        code = self.state.codes.get(value)
        if code is None or code.expires < _now():
            return oauth_error(400, "invalid_grant", "unknown, used or expired code")
        verifier = form.get("code_verifier")
        if not verifier:  # decisions#pkce: 400 invalid_grant
            return oauth_error(400, "invalid_grant", "code_verifier is required")
        # A refused attempt leaves the code usable (PRV-CNS-015).
        if not _VERIFIER_RE.match(verifier) or not hmac.compare_digest(
            _s256(verifier), code.challenge
        ):
            return oauth_error(400, "invalid_grant", "code_verifier does not match")
        identity = (claims["iss"], claims["sub"])
        if code.identity is not None and code.identity != identity:
            return oauth_error(400, "invalid_grant", "the code was issued to another identity")
        if code.redirect_uri is not None and form.get("redirect_uri") != code.redirect_uri:
            return oauth_error(400, "invalid_grant", "redirect_uri does not match")
        if code.client_id is not None and form.get("client_id", code.client_id) != code.client_id:
            return oauth_error(400, "invalid_grant", "client_id does not match")
        if form.get("resource", self.base_url) != self.base_url:
            return oauth_error(400, "invalid_target", "resource is not this provider")
        linked = self.state.identities.get(identity)
        if code.consent and linked not in (None, code.account_id):
            return oauth_error(400, "invalid_grant", "this identity is linked to another account")
        del self.state.codes[value]
        if code.consent:  # decisions#linking-after-consent
            self.state.identities[identity] = code.account_id
        return self._token_answer(self._issue_tokens(code.account_id, code.scope, claims["iss"]))

    def _refresh(self, form: dict[str, str], claims: dict[str, Any]) -> Response:
        value = form.get("refresh_token", "")
        refresh = self.state.refresh.get(value)
        if refresh is None or not refresh.active or refresh.issuer != claims["iss"]:
            return oauth_error(400, "invalid_grant", "unknown, rotated or revoked refresh token")
        if form.get("resource", self.base_url) != self.base_url:
            return oauth_error(400, "invalid_target", "resource is not this provider")
        requested = frozenset(form["scope"].split()) if form.get("scope") else refresh.scope
        if not requested or not requested <= refresh.scope:
            return oauth_error(400, "invalid_scope", "broader than the grant")
        if self.fault != "refresh-reuse":
            refresh.active = False
        self._revoke_family(refresh.family)  # PRV-REV-004: the replaced access token stops
        answer = self._issue_tokens(
            refresh.account_id, refresh.scope, refresh.issuer, refresh.family
        )
        # RFC 6749 §6: a narrower access token; the new refresh token keeps the grant's scope.
        self.state.access[answer["access_token"]].scope = requested
        answer["scope"] = " ".join(sorted(requested))
        return self._token_answer(answer)

    @staticmethod
    def _token_answer(answer: dict[str, Any]) -> Response:
        return JSONResponse(answer, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    async def revoke(self, request: Request) -> Response:
        try:
            body = await read_body(request)
        except BodyTooLarge:
            return oauth_error(413, "invalid_request", "the body is too large")
        issuer: str | None = None
        if self.fault != "revoke-unauthenticated":
            try:
                claims = await self._attestation(request, body)
            except KeysUnavailable:
                return oauth_error(
                    503, "temporarily_unavailable", "keys unavailable", {"Retry-After": "5"}
                )
            if isinstance(claims, str):
                return oauth_error(401, "invalid_client", claims)
            issuer = claims["iss"]
        form = parse_form(body)
        if form is None or not form.get("token"):
            return oauth_error(400, "invalid_request", "token is required")
        token = form["token"]
        grant = self.state.access.get(token)
        if grant is not None and issuer in (None, grant.issuer):
            del self.state.access[token]
        refresh = self.state.refresh.get(token)
        if refresh is not None and issuer in (None, refresh.issuer):
            refresh.active = False
            self._revoke_family(refresh.family)  # PRV-REV-003
        return Response(status_code=200, headers={"Cache-Control": "no-store"})

    # --------------------------------------------------------------------- resources

    def _answer(self, resource: Resource) -> Response:
        if resource.removed:
            return JSONResponse(
                {"status": "removed", "id": resource.id, "service_id": resource.service_id}
            )
        access = {"api_key": resource.api_key, "api_url": self.base_url + "v1"}
        return JSONResponse(
            {
                "status": "complete",
                "id": resource.id,
                "service_id": resource.service_id,
                "complete": {"access_configuration": access},
            }
        )

    def _owned(self, rid: str, grant: Grant) -> Resource | None:
        resource = self.state.resources.get(rid)
        # PRV-PRO-018: another account's resource is answered as an unknown id.
        return (
            resource if resource is not None and resource.account_id == grant.account_id else None
        )

    async def create_resource(self, request: Request) -> Response:
        gate = await self._resource_gate(request)
        if isinstance(gate, Response):
            return gate
        data, claims, grant = gate
        service = _BY_ID.get(data.get("service_id"))
        if service is None:
            return status_error(400, "unknown_service", "no such service")
        project_id = data.get("project_id")
        if project_id is not None and (not isinstance(project_id, str) or not project_id):
            return status_error(400, "invalid_request", "project_id must be a string")
        lock = self._project_locks.setdefault((grant.account_id, project_id or ""), asyncio.Lock())
        async with lock:
            if project_id is not None and project_id in self.state.projects:
                existing = self.state.resources[self.state.projects[project_id]]
                if existing.account_id != grant.account_id:  # PRV-PRO-006
                    return status_error(
                        409, "project_id_conflict", "project_id belongs to another account"
                    )
                return self._answer(existing)  # PRV-PRO-005: the same resource, no new charge
            rid = "res_" + secrets.token_hex(8)
            refusal = await self._pay(data, service, project_id, rid, claims.get("sub"))
            if refusal is not None:
                return refusal
            resource = Resource(
                rid, grant.account_id, service["id"], project_id, self._new_key(rid)
            )
            self.state.resources[rid] = resource
            if project_id is not None:
                self.state.projects[project_id] = rid
            return self._answer(resource)

    def _new_key(self, rid: str) -> str:
        key = "ak_" + secrets.token_urlsafe(24)
        self.state.api_keys[key] = rid
        return key

    async def read_resource(self, request: Request) -> Response:
        gate = await self._resource_gate(request)
        if isinstance(gate, Response):
            return gate
        _, _, grant = gate
        resource = self._owned(request.path_params["rid"], grant)
        if resource is None:
            return status_error(404, "not_found", "no such resource")
        return self._answer(resource)

    async def act(self, request: Request) -> Response:
        gate = await self._resource_gate(request)
        if isinstance(gate, Response):
            return gate
        data, claims, grant = gate
        action = request.path_params["action"]
        resource = self._owned(request.path_params["rid"], grant)
        if resource is None or action not in ("rotate_credentials", "update_service", "remove"):
            return status_error(404, "not_found", "no such resource")
        if action == "remove":
            if not resource.removed:  # PRV-PRO-019: the credentials end with the resource
                resource.removed = True
                self.state.api_keys.pop(resource.api_key, None)
            return self._answer(resource)
        if resource.removed:
            return status_error(404, "not_found", "the resource was removed", resource.id)
        if action == "rotate_credentials":
            self.state.api_keys.pop(resource.api_key, None)
            resource.api_key = self._new_key(resource.id)
            return self._answer(resource)
        target = _BY_ID.get(data.get("service_id"))
        if target is None:
            return status_error(400, "unknown_service", "no such service", resource.id)
        if target["id"] != resource.service_id:
            if target["id"] not in _BY_ID[resource.service_id].get("allowed_updates", []):
                return status_error(400, "invalid_request", "not an allowed update", resource.id)
            # draft: update_service carries no project_id; the token binds the resource's.
            refusal = await self._pay(
                data, target, resource.project_id, resource.id, claims.get("sub")
            )
            if refusal is not None:
                return refusal
            resource.service_id = target["id"]
        return self._answer(resource)

    async def deep_links(self, request: Request) -> Response:
        gate = await self._resource_gate(request)
        if isinstance(gate, Response):
            return gate
        data, _, grant = gate
        if data.get("purpose") != "dashboard":
            return status_error(400, "invalid_request", "purpose must be dashboard")
        link = secrets.token_urlsafe(24)
        expires = _now() + LINK_TTL
        self.state.links[link] = (grant.account_id, expires)
        when = datetime.fromtimestamp(expires, UTC).isoformat().replace("+00:00", "Z")
        return JSONResponse(
            {"url": f"{self.base_url}dashboard/login?token={link}", "expires_at": when}
        )

    async def dashboard_login(self, request: Request) -> Response:
        entry = self.state.links.pop(request.query_params.get("token", ""), None)  # single use
        if entry is None or entry[1] < _now():
            return flat_error(400, "expired_or_invalid_token", "this link was used or has expired")
        response = RedirectResponse(self.base_url + "dashboard/", status_code=302)
        session = secrets.token_urlsafe(24)
        self.state.sessions[session] = entry[0]
        response.set_cookie("session", session, httponly=True, samesite="lax")
        return response

    async def whoami(self, request: Request) -> Response:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        rid = self.state.api_keys.get(key.strip()) if scheme.lower() == "bearer" else None
        if rid is None:
            return flat_error(401, "invalid_api_key", "the API key is not valid")
        resource = self.state.resources[rid]
        return JSONResponse({"resource_id": rid, "service_id": resource.service_id})

    # ------------------------------------------------------------------ payment

    async def _pay(
        self,
        data: dict[str, Any],
        service: dict[str, Any],
        project_id: str | None,
        rid: str,
        attested_sub: Any,
    ) -> Response | None:
        """None when the service is free or its price was redeemed; else the refusal."""
        price = _price(service)
        if price is None:
            return None
        amount, currency = price
        credentials = data.get("payment_credentials")
        if credentials is None:
            return status_error(
                400, "requires_payment_credentials", "a paid service needs payment_credentials"
            )
        if not isinstance(credentials, dict) or credentials.get("type") != "app_payment_token":
            return status_error(
                400, "invalid_payment_token", "payment_credentials must carry an app_payment_token"
            )
        token = credentials.get("app_payment_token")
        if not isinstance(token, str):
            return status_error(
                400, "invalid_payment_token", "payment_credentials must carry an app_payment_token"
            )
        try:
            claims = await self.trust.verify(
                token,
                typ="app-payment+jwt",
                audience=self.base_url,
                max_lifetime=900,
                required=PAYMENT_CLAIMS,
                check_audience=self.fault != "foreign-payment-aud",
                trust_jku=self.fault == "trust-jku-payment",
            )
        except JoseError as exc:
            return status_error(
                400, "invalid_payment_token", f"the payment token does not verify: {exc}"
            )
        except KeysUnavailable:
            return status_error(
                503, "orchestrator_unavailable", "keys unavailable", headers={"Retry-After": "5"}
            )
        max_amount = claims["max_amount"]
        if not isinstance(max_amount, int) or isinstance(max_amount, bool) or max_amount < 1:
            return status_error(
                400, "invalid_payment_token", "max_amount is not a positive integer"
            )
        # decisions#token-bindings: the token pays for the attested caller only.
        if claims["sub"] != attested_sub:
            return status_error(
                400, "invalid_payment_token", "the token was minted for another user"
            )
        if self.fault != "no-service-check" and claims["service_id"] != service["id"]:
            return status_error(
                400, "invalid_payment_token", "the token was minted for another service"
            )
        # draft: project_id is optional in resource_create_request and absent from update_service
        # (the resource's is used); a token always names one, so a request without one is refused.
        if self.fault != "no-project-check" and claims["project_id"] != project_id:
            return status_error(
                400, "invalid_payment_token", "the token was minted for another project"
            )
        if self.fault != "no-currency-check" and claims["currency"] != currency:
            return status_error(400, "invalid_payment_token", "the token is in another currency")
        if self.fault != "no-max-amount-check" and max_amount < amount:
            return status_error(
                402, "amount_exceeds_token", "the price exceeds the token's max_amount"
            )
        if self.fault == "no-redeem":
            return None
        charge = max_amount + 1 if self.fault == "redeem-above-max" else amount
        return await self._redeem(token, claims, charge, claims["currency"], service, rid)

    async def _redeem(
        self,
        token: str,
        claims: dict[str, Any],
        amount: int,
        currency: str,
        service: dict[str, Any],
        rid: str,
    ) -> Response | None:
        try:
            endpoint = (await self.trust.metadata())["redemption_endpoint"]
        except KeysUnavailable:
            return status_error(
                503,
                "orchestrator_unavailable",
                "metadata unavailable",
                headers={"Retry-After": "5"},
            )
        body = json.dumps(
            {
                "payment_token": token,
                "amount": amount,
                "currency": currency,
                "description": f"{service['id']} for resource {rid}",
                "resource_id": rid,
            }
        ).encode()
        key = self._fixed_key if self.fault == "one-idempotency-key" else str(uuid.uuid4())
        self.state.redemptions.append({"key": key, "amount": amount, "resource_id": rid})
        answer: httpx.Response | None = None
        async with httpx.AsyncClient(timeout=10.0, follow_redirects=False) as client:
            for _ in range(2):  # PRV-RED-006: one retry, with the same key
                if answer is not None and self.fault == "retry-with-new-key":
                    key = str(uuid.uuid4())
                headers = {
                    "Content-Type": "application/json",
                    "Idempotency-Key": key,
                    # decisions#redeeming: iss our resource identifier, sub the token's user.
                    "APP-Attestation": self.signing.attest(
                        iss=self.base_url, sub=claims["sub"], aud=self.trust.issuer, body=body
                    ),
                }
                try:
                    answer = await client.post(endpoint, content=body, headers=headers)
                except httpx.TransportError:
                    answer = None
                    continue
                if answer.status_code < 500:
                    break
        if answer is None or answer.status_code >= 500:
            return status_error(
                503,
                "redemption_unavailable",
                "the orchestrator could not redeem",
                headers={"Retry-After": "5"},
            )
        if answer.status_code == 201:
            return None
        try:
            problem = answer.json()
        except ValueError:
            problem = {}
        code = problem.get("code") if isinstance(problem, dict) else None
        if code == "spend_cap_exceeded":
            if self.fault == "ignore-cap-refusal":
                return None
            if self.fault == "cap-refusal-as-problem":  # the orchestrator's envelope, passed on
                return JSONResponse(problem, status_code=402, media_type="application/problem+json")
            extra = {"cap": problem["cap"]} if isinstance(problem.get("cap"), dict) else {}
            return status_error(
                402, "spend_cap_exceeded", "the user's spend cap would be exceeded", **extra
            )
        # draft: other refusals are not specified beyond "an error in the status envelope".
        relayed = code if isinstance(code, str) and code else "payment_refused"
        return status_error(402, relayed, "the orchestrator refused the payment")
