"""The suite's orchestrator side as a client of the provider under test.

It sends what a real orchestrator sends (wire-facts §1.5, PostHog's provider and tests): every
call with `Accept: application/json`, the profile's `API-Version`, and the request's
signature (app-0.1d `Stripe-Signature`, app-next `APP-Attestation`); account requests with
`id`, `object`, `email`, `name`, `orchestrator`, `scopes`, `client_capabilities`,
`expires_at` and a PKCE S256 challenge; token requests form-encoded. Checks build their
probes from these valid requests and change one thing.

Nothing here comes from the mocks: the mock orchestrator is a role under test elsewhere, and
the mock provider is judged by what this client sends.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import httpx

from conformance.client._identity import IdentityFactory, OrchestratorIdentity, User
from conformance.client._signing import attestation, stripe_signature
from spec.profiles import ProfileParameters
from wire import jose, strictjson
from wire.pkce import pkce_pair

__all__ = [
    "AccountAnswer",
    "ClientSettings",
    "ConnectFailed",
    "Connection",
    "ConsentNeeded",
    "OrchestratorClient",
]


@dataclass(frozen=True)
class ClientSettings:
    """What the suite puts in its requests beyond the protocol's fixed members."""

    orchestrator: OrchestratorIdentity = field(default_factory=OrchestratorIdentity)
    scopes: tuple[str, ...] = ()
    """Scopes asked for in account requests (empty: the member is left out and the provider
    grants its default set, as PostHog does)."""
    client_capabilities: tuple[str, ...] = ("browser",)
    account_configuration: Mapping[str, Any] = field(default_factory=dict)
    """Provider-specific `configuration` of account requests (e.g. region); empty: left out."""
    request_lifetime: int = 600
    """Seconds from now to an account request's `expires_at`."""


@dataclass(frozen=True)
class Connection:
    """Tokens the provider issued for the current user."""

    access_token: str
    refresh_token: str | None
    tokens: dict[str, Any]
    """The whole token response."""
    response: httpx.Response = field(repr=False, compare=False)
    """The token answer itself (its recorded exchange: `recorder.exchange_of`)."""


@dataclass(frozen=True)
class AccountAnswer:
    """An account request and what the provider answered."""

    body: dict[str, Any]
    verifier: str | None
    response: httpx.Response
    document: Any

    @property
    def kind(self) -> str | None:
        """oauth, requires_auth (0.1d consent), consent_required (app-next 401), or None."""
        if self.response.status_code == 401 and _code(self.document) == "consent_required":
            return "consent_required"
        if self.response.status_code == 200 and isinstance(self.document, dict):
            kind = self.document.get("type")
            return kind if kind in ("oauth", "requires_auth") else None
        return None

    @property
    def code(self) -> str | None:
        oauth = self.document.get("oauth") if isinstance(self.document, dict) else None
        code = oauth.get("code") if isinstance(oauth, dict) else None
        return code if isinstance(code, str) and code else None

    @property
    def consent_url(self) -> str | None:
        """The 0.1d `requires_auth` url (or the older `requires_auth.redirect.url`)."""
        answer = self.document.get("requires_auth") if isinstance(self.document, dict) else None
        if not isinstance(answer, dict):
            return None
        url = answer.get("url")
        if url is None and isinstance(answer.get("redirect"), dict):
            url = answer["redirect"].get("url")
        return url if isinstance(url, str) and url else None

    def describe(self) -> str:
        """The answer in a few words, for a reason or a message."""
        status = self.response.status_code
        code = _code(self.document)
        message = _message(self.document)
        text = f"{status}" + (f" {code}" if code else "") + (f" {message!r}" if message else "")
        if self.document is None and self.response.content:
            # An HTML page (a login wall, a proxy's error page) is the answer, not a blank.
            kind = self.response.headers.get("content-type", "").partition(";")[0].strip()
            text += f" with a {kind or 'untyped'} body, not JSON"
        return text if self.kind is None else f"{status} type {self.kind}"


class ConnectFailed(Exception):
    """The provider gave no tokens; the message says where the chain stopped and why."""


class ConsentNeeded(ConnectFailed):
    """The provider wants the human's consent before it issues tokens."""

    def __init__(self, message: str, answer: AccountAnswer) -> None:
        super().__init__(message)
        self.answer = answer


Clock = Callable[[], float]


class OrchestratorClient:
    """Signed calls to one provider, for one signed-in user at a time."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str,
        family: str,
        params: ProfileParameters,
        hmac_secret: str = "",
        attestation_key: jose.SigningKey | None = None,
        issuer: str = "",
        settings: ClientSettings | None = None,
        identities: IdentityFactory | None = None,
        clock: Clock = time.time,
    ) -> None:
        if family == "app-next" and attestation_key is None:
            raise ValueError("app-next calls are attested: give attestation_key and issuer")
        self.http = http
        self.base_url = base_url
        self.family = family
        self.params = params
        self.hmac_secret = hmac_secret
        self.attestation_key = attestation_key
        self.issuer = issuer
        self.settings = settings or ClientSettings()
        self.identities = identities or IdentityFactory()
        self.clock = clock
        self.user: User = self.identities.user()

    # --- who -------------------------------------------------------------------------------------
    def new_user(self, email: str | None = None, *, email_verified: bool = True) -> User:
        """Act for a fresh user from now on (`email` pins the address)."""
        self.user = self.identities.user(email, email_verified=email_verified)
        return self.user

    def now(self) -> int:
        return int(self.clock())

    # --- signing ------------------------------------------------------------------------------
    def signature(self, raw: bytes, *, timestamp: int | None = None) -> tuple[str, str]:
        """The (header name, value) that signs `raw` in this profile."""
        now = self.now() if timestamp is None else timestamp
        if self.family == "app-0.1d":
            return self.params.signature_header, stripe_signature(self.hmac_secret, raw, now)
        return self.params.attestation_header, self.attest(raw, now=now)

    def attest(self, raw: bytes, *, now: int | None = None, **claims: Any) -> str:
        """An attestation of `raw` for the current user; `claims` add or replace claims."""
        assert self.attestation_key is not None
        user = self.user
        return attestation(
            self.attestation_key,
            issuer=self.issuer,
            audience=self.base_url,
            subject=user.id,
            raw=raw,
            now=self.now() if now is None else now,
            lifetime=self.params.attestation_lifetime,
            claims={
                "email": user.email,
                "email_verified": user.email_verified,
                "orchestrator_account": self.settings.orchestrator.account or user.account,
                **claims,
            },
        )

    # --- calls ----------------------------------------------------------------------------------
    async def send(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        form: Mapping[str, str] | None = None,
        content: bytes | None = None,
        bearer: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """A signed call to `path` (relative to the base URL). `content` sends raw bytes as
        JSON; `headers` replace headers after signing, and an empty value removes one."""
        if content is not None:
            raw, content_type = content, "application/json"
        elif form is not None:
            raw, content_type = urlencode(dict(form)).encode(), "application/x-www-form-urlencoded"
        elif body is not None:
            raw, content_type = json.dumps(body, separators=(",", ":")).encode(), "application/json"
        else:
            raw, content_type = b"", ""
        sent = {"Accept": "application/json", self.params.version_header: self.params.api_version}
        if content_type:
            sent["Content-Type"] = content_type
        if bearer:
            sent["Authorization"] = f"Bearer {bearer}"
        name, value = self.signature(raw)
        sent[name] = value
        for key, replacement in (headers or {}).items():
            for existing in [k for k in sent if k.lower() == key.lower()]:
                del sent[existing]
            if replacement:
                sent[key] = replacement
        return await self.http.request(method, self.base_url + path, content=raw, headers=sent)

    # --- accounts and tokens -----------------------------------------------------------------------
    def account_request(self, *, challenge: str | None, **changes: Any) -> dict[str, Any]:
        """A complete account request for the current user; `changes` replace members, and a
        change to None leaves the member out."""
        user = self.user
        expires = datetime.fromtimestamp(self.now() + self.settings.request_lifetime, UTC)
        body: dict[str, Any] = {
            "id": "acctreq_" + secrets.token_hex(8),
            "object": "account_request",
            "email": user.email,
            "name": user.name,
            "orchestrator": self.settings.orchestrator.block(user),
            "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        if self.settings.scopes:
            body["scopes"] = list(self.settings.scopes)
        if self.settings.client_capabilities:
            body["client_capabilities"] = list(self.settings.client_capabilities)
        if self.settings.account_configuration:
            body["configuration"] = dict(self.settings.account_configuration)
        if challenge is not None:
            body |= {"code_challenge": challenge, "code_challenge_method": "S256"}
        body.update(changes)
        return {name: value for name, value in body.items() if value is not None}

    async def request_account(
        self, *, pkce: bool = True, scopes: Sequence[str] | None = None, **changes: Any
    ) -> AccountAnswer:
        """POST provisioning/account_requests for the current user (`scopes` replaces the
        configured ones)."""
        verifier, challenge = pkce_pair() if pkce else (None, None)
        if scopes is not None:
            changes["scopes"] = list(scopes)
        body = self.account_request(challenge=challenge, **changes)
        response = await self.send("POST", "provisioning/account_requests", body=body)
        return AccountAnswer(body, verifier, response, _json(response))

    async def exchange_code(self, code: str, verifier: str | None, **extra: str) -> httpx.Response:
        """POST oauth/token with grant_type authorization_code."""
        form = {"grant_type": "authorization_code", "code": code, **extra}
        if verifier:
            form["code_verifier"] = verifier
        return await self.send("POST", "oauth/token", form=form)

    async def refresh(self, refresh_token: str) -> httpx.Response:
        return await self.send(
            "POST",
            "oauth/token",
            form={"grant_type": "refresh_token", "refresh_token": refresh_token},
        )

    async def connect(
        self, *, scripted_consent: bool = False, scopes: Sequence[str] | None = None
    ) -> Connection:
        """An account and tokens for the current user, or `ConnectFailed` saying why not.

        A `requires_auth` answer is consent: with `scripted_consent` the client approves it
        the way provspec's mock provider and test providers that copy it allow (POST to the
        url with `approve=1`, answered `{"code": …}`); otherwise `ConsentNeeded`."""
        answer = await self.request_account(scopes=scopes)
        kind = answer.kind
        if kind == "oauth" and answer.code:
            return await self._tokens(answer.code, answer.verifier, "the account request's code")
        if kind == "requires_auth" and answer.consent_url and scripted_consent:
            code = await self.approve(answer.consent_url)
            return await self._tokens(code, answer.verifier, "the code from the consent step")
        if kind in ("requires_auth", "consent_required"):
            raise ConsentNeeded(
                f"the account request was answered {answer.describe()}: the human must consent",
                answer,
            )
        raise ConnectFailed(f"the account request was answered {answer.describe()}")

    async def approve(self, url: str) -> str:
        """The scripted consent step: approve on the consent page, get the code."""
        separator = "&" if "?" in url else "?"
        response = await self.http.post(url + separator + "approve=1")
        document = _json(response)
        code = document.get("code") if isinstance(document, dict) else None
        if response.status_code != 200 or not isinstance(code, str):
            raise ConnectFailed(
                f"approving the consent page answered {response.status_code} {_code(document) or ''}"
            )
        return code

    async def _tokens(self, code: str, verifier: str | None, what: str) -> Connection:
        response = await self.exchange_code(code, verifier)
        tokens = _json(response)
        access = tokens.get("access_token") if isinstance(tokens, dict) else None
        if response.status_code != 200 or not isinstance(access, str) or not access:
            raise ConnectFailed(
                f"exchanging {what} at oauth/token was answered {response.status_code} "
                f"{_code(tokens) or ''}".rstrip()
            )
        assert isinstance(tokens, dict)
        refresh = tokens.get("refresh_token")
        return Connection(access, refresh if isinstance(refresh, str) else None, tokens, response)


def _json(response: httpx.Response) -> Any:
    try:
        return strictjson.loads(response.content) if response.content else None
    except strictjson.StrictJSONError:
        return None


def _code(document: Any) -> str | None:
    """The error code of any of the profile's envelopes (typed, status, flat, oauth)."""
    if not isinstance(document, dict):
        return None
    error = document.get("error")
    if isinstance(error, dict) and isinstance(error.get("code"), str):
        return str(error["code"])
    if isinstance(error, str):
        return error
    code = document.get("code")
    return code if isinstance(code, str) else None


def _message(document: Any) -> str | None:
    if not isinstance(document, dict):
        return None
    error = document.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])[:120]
    for key in ("error_description", "detail"):
        if isinstance(document.get(key), str):
            return str(document[key])[:120]
    return None
