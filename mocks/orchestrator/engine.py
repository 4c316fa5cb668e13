"""The mock orchestrator acting for its signed-in user: accounts, consent, provisioning.

`Orchestrator` is what the agent-facing CLI drives. It holds one user (stable opaque id,
verified email, a payment method), the providers it knows, and custody of the credentials
it obtains. Every provider call is signed (0.1d HMAC or app-next `APP-Attestation`).
The consent path validates everything it is handed: `resource` in RFC 9728 metadata and
`issuer` in RFC 8414 metadata compare exactly to what was requested (no normalising),
every URL taken from a message passes the SSRF guard, and PKCE is S256.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from mocks._core.http import HTTPProblem
from mocks.orchestrator._answers import json_object
from mocks.orchestrator.catalog import fetch_services
from mocks.orchestrator.custody import bearer_call
from mocks.orchestrator.ledger import CapExceeded
from wire import jose, stripe_signature
from wire.attestation import (
    PAYMENT_TOKEN_TYP,
    attestation_claims,
    mint_attestation,
    payment_token_claims,
)
from wire.clock import iso_utc
from wire.pkce import pkce_pair
from wire.ssrf import SSRFError
from wire.urls import as_metadata_url, prm_url
from wire.www_authenticate import ChallengeError, parse

if TYPE_CHECKING:
    from mocks.orchestrator.app import OrchestratorMock

__all__ = ["AddOutcome", "Orchestrator", "ProviderRecord", "User", "stated_price"]

_PROVIDERS = "providers"
_CONNECTIONS = "connections"
_RESOURCES = "custody"
_USER = "user"
_PENDING = "consent_pending"
_STALE_REFRESH = "revoked_refresh_kept"
REDIRECT_URI = "/oauth/callback"


@dataclass(frozen=True)
class User:
    id: str
    email: str
    account: str
    payment_method: bool = True
    email_verified: bool = True


@dataclass(frozen=True)
class ProviderRecord:
    name: str
    base_url: str
    hmac_secret: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "base_url": self.base_url, "hmac_secret": self.hmac_secret}


@dataclass
class AddOutcome:
    """What `add` ended with; `status` is one of the CLI's `add` answers."""

    status: str
    message: str
    data: dict[str, Any]
    next_steps: list[str]


class Orchestrator:
    def __init__(
        self, core: OrchestratorMock, http: httpx.AsyncClient, *, auto_consent: bool = True
    ) -> None:
        self.core = core
        self.http = http
        self.spec = core.spec
        self.params = core.params
        self.profile = core.spec.name
        self.family = core.spec.family
        """The built-in profile whose wire this orchestrator speaks (a draft's base)."""
        self.faults = core.faults
        self.store = core.store
        self.auto_consent = auto_consent
        self.strict_answers = False
        """True (the agent-facing CLI): refuse provider answers that do not belong to the
        request (ORC-ACC-009). The provider checks keep it off to reach further."""

    # --- who and with whom ----------------------------------------------------------------------
    def user(self) -> User:
        stored = self.store.get(_USER, "current")
        if stored is None:
            stored = {
                "id": "usr_" + secrets.token_hex(8),
                "email": "dev@example.com",
                "account": "acct_" + secrets.token_hex(8),
                "payment_method": True,
            }
            self.store.put(_USER, "current", stored)
        return User(**stored)

    def new_user(self, email: str) -> User:
        """Switch to a fresh user (new opaque id and account): each check starts clean."""
        user = User(
            id="usr_" + secrets.token_hex(8),
            email=email,
            account="acct_" + secrets.token_hex(8),
            payment_method=True,
        )
        self.store.put(_USER, "current", dict(user.__dict__))
        return user

    def set_user(
        self, email: str, *, payment_method: bool = True, email_verified: bool = True
    ) -> User:
        current = self.user()
        self.store.put(
            _USER,
            "current",
            {
                **current.__dict__,
                "email": email,
                "payment_method": payment_method,
                "email_verified": email_verified,
            },
        )
        return self.user()

    def add_provider(self, record: ProviderRecord) -> None:
        self.store.put(_PROVIDERS, record.name, record.as_json())

    def accept_tos(self, provider: ProviderRecord) -> None:
        """Record that the human accepted this provider's terms (once per user and provider)."""
        self.store.put("tos", f"{self.user().id}\x1f{provider.name}", True)

    def tos_accepted(self, provider: ProviderRecord) -> bool:
        return bool(self.store.get("tos", f"{self.user().id}\x1f{provider.name}"))

    def providers(self) -> list[ProviderRecord]:
        return [ProviderRecord(**value) for _, value in self.store.items(_PROVIDERS)]

    def provider(self, name: str) -> ProviderRecord:
        # ASCII case folding only: str.lower() maps lookalikes such as the Kelvin sign onto
        # ASCII letters (ORC-DSC-013).
        stored = self.store.get(_PROVIDERS, name.lower() if name.isascii() else name)
        if stored is None:
            known = ", ".join(record.name for record in self.providers()) or "none"
            raise HTTPProblem(
                404, "PROVIDER_NOT_FOUND", f"unknown provider {name!r}; known: {known}"
            )
        return ProviderRecord(**stored)

    # --- signed calls ---------------------------------------------------------------------------------
    async def call(
        self,
        provider: ProviderRecord,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        form: dict[str, str] | None = None,
        bearer: str | None = None,
        content: bytes | None = None,
        headers_override: dict[str, str] | None = None,
    ) -> httpx.Response:
        """A signed call. `content` sends raw bytes as JSON (how hostile bodies are sent);
        `headers_override` replaces or, with an empty value, removes headers after signing."""
        url = provider.base_url + path
        if content is not None:
            raw, content_type = content, "application/json"
        elif form is not None:
            raw = urlencode(form).encode()
            content_type = "application/x-www-form-urlencoded"
        elif body is not None:
            raw = json.dumps(body, separators=(",", ":")).encode()
            content_type = "application/json"
        else:
            raw, content_type = b"", ""
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        if not self.faults.active("missing-api-version"):
            headers[self.params.version_header] = self.params.api_version
        if bearer is None and self.faults.active("consent-token-sent-to-other-provider"):
            # a client-wide default Authorization header: another provider's token goes along
            bearer = self._someone_elses_token(provider)
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        now = self.core.clock.timestamp()
        if self.family == "app-0.1d":
            secret = provider.hmac_secret or ""
            if self.faults.active("hmac-wrong-secret"):
                secret = "whsec_wrong"
            stamp = now - 3600 if self.faults.active("hmac-stale-timestamp") else now
            headers[self.params.signature_header] = stripe_signature.sign(secret, raw, stamp)
        else:
            headers[self.params.attestation_header] = self.attestation(provider, raw)
        for name, value in (headers_override or {}).items():
            headers.pop(name, None)
            if value:
                headers[name] = value
        return await self.http.request(method, url, content=raw, headers=headers)

    def attestation(self, provider: ProviderRecord, raw: bytes) -> str:
        user = self.user()
        now = self.core.clock.timestamp()
        key = self.core.signing_key
        header: dict[str, Any] = {}
        if self.faults.active("attestation-wrong-key"):
            key = jose.generate_key("EdDSA", kid=key.kid)
        audience = provider.base_url
        if self.faults.active("attestation-wrong-aud"):
            audience = "https://other-provider.example/api/"
        subject = user.email if self.faults.active("attestation-email-as-sub") else user.id
        if self.faults.active("attestation-pairwise-sub"):
            pairwise = hashlib.sha256(f"{user.id}\x1f{provider.base_url}".encode()).hexdigest()
            subject = "ps_" + pairwise[:24]
        lifetime = (
            3600
            if self.faults.active("attestation-long-lived")
            else self.params.attestation_lifetime
        )
        body = b"{}" if self.faults.active("attestation-unbound-body") else raw
        claims: dict[str, Any] = {
            "email": user.email,
            "email_verified": user.email_verified or self.faults.active("email-verified-always"),
            "orchestrator_account": user.account,
        }
        if self.faults.active("attestation-no-orchestrator-account"):
            del claims["orchestrator_account"]
        if self.faults.active("attestation-iss-differs"):
            claims["iss"] = self.core.announced_issuer + "/"
        if self.faults.active("attestation-multi-aud"):
            claims["aud"] = [audience, "https://other-provider.example/api/"]
        if self.faults.active("attestation-carries-payment-token") and raw[:1] == b"{":
            sent = json.loads(raw)
            if isinstance(sent, dict) and "payment_credentials" in sent:
                claims["payment_credentials"] = sent["payment_credentials"]
        typ_jwt, alg_none = (
            self.faults.active("attestation-typ-jwt"),
            self.faults.active("attestation-alg-none"),
        )
        if typ_jwt or alg_none:
            payload = attestation_claims(
                issuer=self.core.announced_issuer,
                audience=audience,
                subject=subject,
                body=body,
                now=now,
                lifetime=lifetime,
                claims=claims,
            )
            if typ_jwt:
                return jose.sign(payload, key, typ="JWT")
            return jose.compact(
                {"alg": "none", "typ": "app-attestation+jwt", "kid": key.kid}, payload, b""
            )
        return mint_attestation(
            key,
            issuer=self.core.announced_issuer,
            audience=audience,
            subject=subject,
            body=body,
            now=now,
            lifetime=lifetime,
            claims=claims,
            header=header,
        )

    # --- payment tokens -----------------------------------------------------------------------------
    def mint_payment_token(
        self,
        provider: ProviderRecord,
        service_id: str,
        project_id: str,
        max_amount: int,
        *,
        plan: bool = False,
    ) -> str:
        """A payment token for one provider call, never above the remaining cap (DESIGN §2.5)."""
        if isinstance(max_amount, bool) or not isinstance(max_amount, int) or max_amount <= 0:
            raise ValueError("max_amount is a positive integer in minor units")
        user = self.user()
        state = self.core.ledger.state(user.id, provider.base_url)
        if max_amount > state.remaining and not self.faults.active("token-over-cap"):
            raise CapExceeded(state, max_amount)
        now = self.core.clock.timestamp()
        lifetime = (
            7200
            if self.faults.active("payment-token-long-lived")
            else self.params.payment_token_lifetime
        )
        audience = (
            "https://other-provider.example/api/"
            if self.faults.active("payment-token-wrong-aud")
            else provider.base_url
        )
        claims = payment_token_claims(
            issuer=self.core.announced_issuer,
            audience=audience,
            subject=user.id,
            now=now,
            lifetime=lifetime,
            max_amount=max_amount,
            currency="eur"
            if self.faults.active("payment-token-foreign-currency")
            else self.core.ledger.currency,
            service_id=service_id,
            project_id=project_id,
        )
        if self.faults.active("payment-token-decimal-amount"):
            claims["max_amount"] = max_amount / 100
        if self.faults.active("payment-token-project-mismatch"):
            claims["project_id"] = "proj_" + secrets.token_hex(6)
        if self.faults.active("payment-token-carries-card"):
            card = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "314"}
            claims["payment_method"] = {"type": "card", "card": card}
        key = self.core.signing_key
        if plan and self.faults.active("payment-token-unpublished-key"):
            key = self.core.unpublished_key()  # a "subscription key" never published
        self.core.minted(claims)
        return jose.sign(claims, key, typ=PAYMENT_TOKEN_TYP)

    # --- accounts and consent -------------------------------------------------------------------------
    def _someone_elses_token(self, provider: ProviderRecord) -> str | None:
        prefix = f"{self.user().id}\x1f"
        for key, record in self.store.items(_CONNECTIONS):
            if key.startswith(prefix) and key != prefix + provider.name:
                token = record.get("access_token") if isinstance(record, dict) else None
                if isinstance(token, str):
                    return token
        return None

    def connection(self, provider: ProviderRecord) -> dict[str, Any] | None:
        found = self.store.get(_CONNECTIONS, f"{self.user().id}\x1f{provider.name}")
        return dict(found) if found else None

    async def _retry_stale_refresh(self, provider: ProviderRecord) -> dict[str, Any] | None:
        """The revoked-refresh-token-retried fault: a refresh token kept past its revocation
        is tried once before connecting anew."""
        key = f"{self.user().id}\x1f{provider.name}"
        stale = self.store.get(_STALE_REFRESH, key)
        if not stale or not self.faults.active("revoked-refresh-token-retried"):
            return None
        self.store.delete(_STALE_REFRESH, key)
        form = {"grant_type": "refresh_token", "refresh_token": str(stale)}
        answer = await self.call(provider, "POST", "oauth/token", form=form)
        tokens = json_object(answer)
        if answer.status_code == 200 and "access_token" in tokens:
            return self._save_connection(provider, tokens)
        return None

    def _save_connection(self, provider: ProviderRecord, tokens: dict[str, Any]) -> dict[str, Any]:
        record = {
            "access_token": tokens["access_token"],
            "refresh_token": tokens.get("refresh_token"),
            "account": (tokens.get("account") or {}).get("id"),
        }
        self.store.put(_CONNECTIONS, f"{self.user().id}\x1f{provider.name}", record)
        return record

    async def connect(self, provider: ProviderRecord) -> AddOutcome | dict[str, Any]:
        """The provider connection, creating or linking the account; an outcome when a human must act."""
        existing = self.connection(provider)
        if existing is not None:
            return existing
        stale = await self._retry_stale_refresh(provider)
        if stale is not None:
            return stale
        user = self.user()
        verifier, challenge = pkce_pair()
        if self.faults.active("pkce-missing"):
            verifier = ""
        request_id = "acctreq_" + secrets.token_hex(8)
        body: dict[str, Any] = {
            "id": request_id,
            "object": "account_request",
            "email": user.email,
            "scopes": "provisioning"
            if self.faults.active("account-request-invalid")
            else ["provisioning"],
            "expires_at": iso_utc(
                self.core.clock.timestamp()
                + (86400 if self.faults.active("account-request-long-expiry") else 600)
            ),
            "orchestrator": {"type": "stripe", "stripe": {"account": user.account}},
        }
        if verifier:
            body |= {"code_challenge": challenge, "code_challenge_method": "S256"}
        answer = await self.call(provider, "POST", "provisioning/account_requests", body=body)
        document = json_object(answer)
        if (
            self.strict_answers
            and answer.status_code == 200
            and document.get("id") != request_id
            and not self.faults.active("account-answer-id-unchecked")
        ):
            raise HTTPProblem(
                502,
                "PROVIDER_ERROR",
                f"{provider.name} answered account request {request_id} with another id",
            )
        if answer.status_code == 200 and document.get("type") == "oauth":
            return await self._exchange(provider, str(document["oauth"]["code"]), verifier)
        if answer.status_code == 200 and document.get("type") == "requires_auth":
            requires = document.get("requires_auth")
            requires = requires if isinstance(requires, dict) else {}
            redirect = requires.get("redirect")
            url = str(requires.get("url") or "")
            # the older shape, {type: redirect, redirect: {url}} (ORC-ACC-006)
            older = not self.faults.active("requires-auth-redirect-ignored")
            if not url and older and isinstance(redirect, dict):
                url = str(redirect.get("url") or "")
            if not self.auto_consent:
                return _consent_outcome(provider, url)
            return await self._consent_0_1d(provider, url, verifier)
        if answer.status_code == 401 and self.family == "app-next":
            challenge_header = answer.headers.get("www-authenticate", "")
            authorize_url, pending = await self._prepare_consent(provider, challenge_header)
            if not self.auto_consent:
                # The human approves in a browser; the provider sends the browser back to our
                # redirect URI, whose handler finishes with `complete_consent`.
                self.store.put(_PENDING, pending["state"], pending)
                return _consent_outcome(provider, authorize_url)
            return await self._authorize_as_scripted_user(provider, authorize_url, pending)
        refusal, code = _error_text(document), _provider_code(document)
        if self.faults.active("account-error-code-dropped"):
            refusal, code = "the account request was refused", None
        raise HTTPProblem(
            502,
            "PROVIDER_ERROR",
            f"{provider.name} answered {answer.status_code}: {refusal}",
            extra=_details(code),
        )

    async def _exchange(
        self, provider: ProviderRecord, code: str, verifier: str, **extra: str
    ) -> dict[str, Any]:
        form = {"grant_type": "authorization_code", "code": code, **extra}
        if verifier:
            form["code_verifier"] = verifier
        answer = await self.call(provider, "POST", "oauth/token", form=form)
        tokens = json_object(answer)
        if self.faults.active("code-exchanged-twice") and answer.status_code == 200:
            await self.call(provider, "POST", "oauth/token", form=form)  # "to be sure"
        if answer.status_code != 200 or "access_token" not in tokens:
            raise HTTPProblem(
                502, "PROVIDER_ERROR", f"token exchange failed: {_error_text(tokens)}"
            )
        token_type = tokens.get("token_type")
        if not (
            isinstance(token_type, str) and token_type.lower() == "bearer"
        ) and not self.faults.active("token-type-unchecked"):
            # RFC 6749 §7.1: a token of a type the client does not understand is not used.
            raise HTTPProblem(
                502, "PROVIDER_ERROR", f"token_type {str(token_type)[:40]!r} is not bearer"
            )
        # The token stays opaque (RFC 9068 §6: a client does not read it); what binds it to
        # this provider is `resource` on the requests and where the token is sent afterwards.
        return self._save_connection(provider, tokens)

    async def _consent_0_1d(
        self, provider: ProviderRecord, url: str, verifier: str
    ) -> dict[str, Any]:
        # The scripted "user" approves on the provider's consent page.
        self._guard(url)
        separator = "&" if "?" in url else "?"
        answer = await self.http.post(url + separator + "approve=1")
        document = json_object(answer)
        if answer.status_code != 200 or "code" not in document:
            raise HTTPProblem(502, "PROVIDER_ERROR", f"consent failed: {_error_text(document)}")
        return await self._exchange(provider, str(document["code"]), verifier)

    async def _prepare_consent(
        self, provider: ProviderRecord, challenge_header: str
    ) -> tuple[str, dict[str, Any]]:
        """RFC 9728 and RFC 8414 discovery, validated, then the authorization request URL and
        what the token request will need (kept until the redirect comes back)."""
        metadata_url = _resource_metadata(challenge_header)
        if not metadata_url:
            raise HTTPProblem(
                502, "PROVIDER_ERROR", "401 without resource_metadata: cannot start consent"
            )
        if self.faults.active("prm-probed-at-root"):
            origin = "{0.scheme}://{0.netloc}".format(urlsplit(provider.base_url))
            await self.http.get(origin + "/.well-known/oauth-protected-resource")
        self._guard(metadata_url)
        prm = await self._metadata(metadata_url)
        trusted = self._prm_trusted(provider)
        if (
            not self._same_identifier(prm.get("resource"), provider.base_url)
            and not self.faults.active("prm-resource-not-validated")
            and not trusted
        ):
            raise HTTPProblem(
                502, "PROVIDER_ERROR", "protected resource metadata names another resource"
            )
        servers = prm.get("authorization_servers")
        if not isinstance(servers, list) or not servers or not isinstance(servers[0], str):
            raise HTTPProblem(
                502, "PROVIDER_ERROR", "protected resource metadata names no authorization server"
            )
        issuer = servers[0]
        if self.faults.active("as-assumed-at-resource"):
            issuer = provider.base_url.rstrip("/")
        as_url = as_metadata_url(issuer)
        self._guard(as_url)
        metadata = await self._metadata(as_url)
        if not self._same_identifier(metadata.get("issuer"), issuer) and not self.faults.active(
            "issuer-not-validated"
        ):
            raise HTTPProblem(
                502, "PROVIDER_ERROR", "authorization server metadata issuer mismatch"
            )
        if "S256" not in (
            metadata.get("code_challenge_methods_supported") or []
        ) and not self.faults.active("pkce-s256-not-required"):
            raise HTTPProblem(
                502, "PROVIDER_ERROR", "the authorization server does not offer PKCE S256"
            )
        authorize, token = metadata.get("authorization_endpoint"), metadata.get("token_endpoint")
        if not isinstance(authorize, str) or not isinstance(token, str):
            raise HTTPProblem(
                502, "PROVIDER_ERROR", "authorization server metadata lacks endpoints"
            )
        self._endpoint_guard(authorize)
        self._guard(token)
        self._endpoint_guard(token)
        verifier, challenge = pkce_pair()
        state = secrets.token_urlsafe(16)
        redirect_uri = self.core.issuer + REDIRECT_URI
        params = {
            "response_type": "token" if self.faults.active("consent-implicit-grant") else "code",
            "client_id": self.core.issuer,
            "redirect_uri": redirect_uri,
            "scope": "provisioning",
            "state": state,
            "login_hint": self.user().email,
        }
        if not self.faults.active("consent-without-pkce"):
            params |= {"code_challenge": challenge, "code_challenge_method": "S256"}
        if not self.faults.active("no-resource-indicator"):
            params["resource"] = provider.base_url
        pending = {
            "state": state,
            "provider": provider.name,
            "issuer": issuer,
            "verifier": "" if self.faults.active("consent-without-pkce") else verifier,
            "redirect_uri": redirect_uri,
            "user": self.user().id,
        }
        return authorize + "?" + urlencode(params), pending

    async def _authorize_as_scripted_user(
        self, provider: ProviderRecord, authorize_url: str, pending: dict[str, Any]
    ) -> dict[str, Any]:
        answer = await self.http.get(authorize_url)
        location = answer.headers.get("location", "")
        query = parse_qs(urlsplit(location).query)
        if answer.status_code not in (302, 303) or "code" not in query:
            raise HTTPProblem(502, "PROVIDER_ERROR", f"authorization failed ({answer.status_code})")
        return await self._finish_consent(provider, pending, query)

    async def complete_consent(self, query: dict[str, list[str]]) -> dict[str, Any]:
        """The redirect URI's handler: match the state, check iss, exchange the code."""
        state = (query.get("state") or [""])[0]
        pending = self.store.get(_PENDING, state) if state else None
        if pending is None and self.faults.active("consent-state-unchecked"):
            # "the" pending consent of the current user, whatever state came back
            user = self.user().id
            pending = next((p for _, p in self.store.items(_PENDING) if p["user"] == user), None)
        if pending is None:
            raise HTTPProblem(400, "invalid_request", "unknown or used state")
        self.store.delete(_PENDING, str(pending["state"]))
        return await self._finish_consent(self.provider(str(pending["provider"])), pending, query)

    async def _finish_consent(
        self, provider: ProviderRecord, pending: dict[str, Any], query: dict[str, list[str]]
    ) -> dict[str, Any]:
        lost = query.get("state") != [pending["state"]]
        if (lost and not self.faults.active("consent-state-unchecked")) or "code" not in query:
            raise HTTPProblem(502, "PROVIDER_ERROR", "the authorization response lost its state")
        if (
            "iss" in query
            and query["iss"] != [pending["issuer"]]
            and not self.faults.active("consent-iss-unchecked")
        ):
            raise HTTPProblem(502, "PROVIDER_ERROR", "the authorization response names another iss")
        redirect_uri = str(pending["redirect_uri"])
        if self.faults.active("token-redirect-uri-differs"):
            redirect_uri += "/"
        extra = {"redirect_uri": redirect_uri, "client_id": self.core.issuer}
        if not self.faults.active("no-resource-indicator"):
            extra["resource"] = provider.base_url
        return await self._exchange(provider, query["code"][0], str(pending["verifier"]), **extra)

    def _guard(self, url: str) -> None:
        if self.faults.active("ssrf-unguarded"):
            return
        try:
            self.core.settings.ssrf.check_url(url)
        except SSRFError as error:
            raise HTTPProblem(
                502, "UNSAFE_URL", f"refused to fetch {url[:200]!r}: {error}"
            ) from None

    def _endpoint_guard(self, url: str) -> None:
        """An OAuth endpoint the human's browser opens or the token request goes to: https
        (http on the run's loopback only), never javascript:, file: or data: (ORC-CNS-012)."""
        if self.faults.active("consent-endpoints-unchecked"):
            return
        try:
            self.core.settings.ssrf.check_url(url)
        except SSRFError as error:
            raise HTTPProblem(
                502, "UNSAFE_URL", f"refused the endpoint {url[:200]!r}: {error}"
            ) from None

    async def _metadata(self, url: str) -> dict[str, Any]:
        """A metadata document; redirects are not followed (each hop would need the guard)."""
        follow = self.faults.active("metadata-redirects-followed")
        return json_object(await self.http.get(url, follow_redirects=follow))

    def _same_identifier(self, found: Any, expected: str) -> bool:
        """RFC 9728 §3.3, RFC 8414 §3.3: identical, code point by code point."""
        if self.faults.active("consent-identifiers-case-insensitive"):
            return isinstance(found, str) and found.casefold() == expected.casefold()
        return isinstance(found, str) and found == expected

    def _prm_trusted(self, provider: ProviderRecord) -> bool:
        """The prm-revalidation-skipped fault: the first PRM for this user and provider is
        checked, later documents are not."""
        if not self.faults.active("prm-revalidation-skipped"):
            return False
        key = f"{self.user().id}\x1f{provider.name}"
        trusted = bool(self.store.get("prm_checked", key))
        self.store.put("prm_checked", key, True)
        return trusted

    # --- catalog, provisioning, custody -----------------------------------------------------------
    async def services(self, provider: ProviderRecord) -> list[dict[str, Any]]:
        """The provider's own catalog, read defensively (mocks/orchestrator/catalog.py)."""
        return await fetch_services(self, provider)

    async def add(
        self,
        provider_name: str,
        service_id: str,
        *,
        name: str | None = None,
        configuration: dict[str, Any] | None = None,
        confirm_paid: bool = False,
        accept_tos: bool = False,
        max_amount: int | None = None,
    ) -> AddOutcome:
        provider = self.provider(provider_name)
        entries = {str(entry.get("id")): entry for entry in await self.services(provider)}
        entry = entries.get(service_id)
        if entry is None:
            raise HTTPProblem(
                404, "SERVICE_NOT_FOUND", f"{provider.name} has no service {service_id!r}"
            )
        if accept_tos:
            self.accept_tos(provider)
        if not self.tos_accepted(provider):
            return AddOutcome(
                "tos_acceptance_required",
                f"accept {provider.name}'s terms of service first",
                {"provider": provider.name},
                ["Re-run with --accept-tos after reading the terms."],
            )
        paid = (entry.get("pricing") or {}).get("type") == "paid"
        user = self.user()
        unchecked = self.faults.active("payment-method-not-checked")
        if paid and not user.payment_method and not unchecked:
            return AddOutcome(
                "payment_method_required",
                "no payment method on file",
                {"provider": provider.name},
                [
                    "Ask the human to add a payment method: provspec orchestrator billing --add-payment-method"
                ],
            )
        if paid and not confirm_paid:
            return AddOutcome(
                "confirmation_required",
                f"{provider.name}/{service_id} is a paid service",
                {"provider": provider.name, "pricing": entry.get("pricing")},
                ["Ask the human to confirm the cost, then re-run with --confirm-paid-service."],
            )
        connection = await self.connect(provider)
        if isinstance(connection, AddOutcome):
            return connection
        project_id = "proj_" + secrets.token_hex(6)
        body: dict[str, Any] = {
            "service_id": service_id,
            "project_id": project_id,
            "configuration": configuration or {},
        }
        if not configuration and self.faults.active("resource-create-null-configuration"):
            body["configuration"] = None
        if name:
            body["label_prefix"] = name
        unpaid: CapExceeded | None = None
        price = stated_price(entry) if self.family == "app-next" else None
        if self.faults.active("cap-checked-only-when-empty"):
            price = None  # the price is read but not held against what is left
        if paid:
            try:
                body["payment_credentials"] = self._payment_credentials(
                    provider,
                    service_id,
                    project_id,
                    max_amount,
                    plan=entry.get("kind") == "plan",
                    price=price,
                )
            except CapExceeded as refused:
                if not self.faults.active("cap-refusal-after-creation"):
                    return self._capped(provider, refused.state.as_json(), at_mint=True)
                unpaid = refused  # the fault: the creation goes out anyway, without a token
            plan_unpaid = self.faults.active("paid-create-without-credentials")
            if plan_unpaid and entry.get("kind") == "plan":
                body.pop("payment_credentials", None)  # "a plan is billed elsewhere"
        answer = await bearer_call(
            self, provider, connection, "POST", "provisioning/resources", body=body
        )
        for _ in range(20 if self.faults.active("auth-retry-unbounded") else 0):
            if answer.status_code not in (401, 403):
                break
            answer = await bearer_call(
                self, provider, connection, "POST", "provisioning/resources", body=body
            )
        if unpaid is not None:
            return self._capped(provider, unpaid.state.as_json())
        document = json_object(answer, lenient=self.faults.active("lenient-resource-json"))
        error: dict[str, Any] = document["error"] if isinstance(document.get("error"), dict) else {}
        # Without a stated price the token's max_amount was the whole remaining cap: the
        # provider's amount_exceeds_token then says the price is above what is left.
        capped = paid and max_amount is None and price is None and self.family == "app-next"
        cap_refusal = self.params.error_codes.get("spend_cap_exceeded")  # app-next family only
        if (cap_refusal is not None and error.get("code") == cap_refusal.code) or (
            capped and error.get("code") == "amount_exceeds_token"
        ):
            # The token's max_amount was the whole remaining cap; a price above it is a cap refusal.
            return self._capped(
                provider,
                document.get("cap") or self.core.ledger.state(user.id, provider.base_url).as_json(),
            )
        if answer.status_code != 200 or document.get("status") not in (
            "complete",
            "pending",
            "needs_information",
        ):
            refusal, code = _error_text(document), _provider_code(document)
            if self.faults.active("resource-error-code-dropped"):
                refusal, code = "the provider could not create the resource", None
            raise HTTPProblem(
                502, "PROVIDER_ERROR", f"{provider.name} refused: {refusal}", extra=_details(code)
            )
        if (
            "service_id" in document
            and document["service_id"] != service_id
            and not self.faults.active("resource-answer-unchecked")
        ):
            # ORC-CRD-010: an answer about another resource hands over nobody's credentials.
            raise HTTPProblem(
                502,
                "PROVIDER_ERROR",
                f"{provider.name} answered for service {str(document.get('service_id'))[:64]!r}, "
                f"not {service_id!r}",
            )
        complete = document["status"] == "complete" or self.faults.active(
            "credentials-stored-for-pending"
        )
        resource = {
            "provider": provider.name,
            "service_id": service_id,
            "name": name or service_id,
            "id": document.get("id"),
            "status": document["status"],
            "credentials": ((document.get("complete") or {}).get("access_configuration") or {})
            if complete
            else {},
        }
        self.store.put(_RESOURCES, f"{provider.name}\x1f{resource['name']}", resource)
        status = "provisioned" if document["status"] == "complete" else document["status"]
        steps = [
            "Run `provspec orchestrator env --json` to see the variable names (values redacted)."
        ]
        if status != "provisioned":
            steps = [
                f"Check again with `provspec orchestrator status --json`: the resource is {status}."
            ]
        data: dict[str, Any] = {
            "service": {
                "provider": provider.name,
                "service_id": service_id,
                "name": resource["name"],
                "status": document["status"],
            }
        }
        needs = document.get("needs_information")
        if (
            status == "needs_information"
            and isinstance(needs, dict)
            and not self.faults.active("needs-information-schema-dropped")
        ):
            # ORC-PRO-009: what the provider wants to know, as it put it.
            data["needs_information_schema"] = needs.get("schema")
            data["message"] = needs.get("message")
            steps = [
                "Ask the human for the information needs_information_schema describes, then "
                "re-run add with it in --config."
            ]
        return AddOutcome(
            status, f"{provider.name}/{service_id} is {document['status']}", data, steps
        )

    def _payment_credentials(
        self,
        provider: ProviderRecord,
        service_id: str,
        project_id: str,
        max_amount: int | None,
        *,
        plan: bool = False,
        price: int | None = None,
    ) -> dict[str, Any]:
        """The payment credentials of one paid call. app-next (ORC-PAY-015, ORC-CAP-010):
        a price the catalog states in minor units is the token's max_amount, and a remaining
        cap below it mints nothing; a price stated only as text gets the remaining cap."""
        if self.family == "app-0.1d":
            # 0.1d charges through Stripe's shared payment token, whose usage limit the
            # orchestrator holds: a month with nothing left under the cap mints no token.
            state = self.core.ledger.state(self.user().id, provider.base_url)
            if state.remaining <= 0:
                raise CapExceeded(state, 1)
            legacy = plan and self.faults.active("spt-wrong-prefix")  # a card token for plans
            prefix = "tok_" if legacy else "spt_"
            shared = prefix + secrets.token_hex(12)
            if self.faults.active("spt-reused"):
                shared = self.store.get("spt_reused", self.user().id) or shared
                self.store.put("spt_reused", self.user().id, shared)
            return {"type": "stripe_payment_token", "stripe_payment_token": shared}
        state = self.core.ledger.state(self.user().id, provider.base_url)
        amount = max_amount if max_amount is not None else state.remaining
        if max_amount is None and price is not None:
            if price > state.remaining:
                raise CapExceeded(state, price)
            if self.store.get("config", "token_amount") != "remaining":
                amount = price  # least authority; "remaining" keeps the whole remaining cap
            if self.faults.active("payment-token-below-price"):
                amount = price - 1
        if max_amount is None and self.faults.active("token-over-cap"):
            amount = state.limit  # the whole cap, as if nothing had been spent this month
        if amount <= 0:
            raise CapExceeded(state, max(amount, 1))
        token = self.mint_payment_token(provider, service_id, project_id, amount, plan=plan)
        credentials = {"type": "app_payment_token", "app_payment_token": token}
        if self.faults.active("payment-credentials-with-spt"):
            credentials["stripe_payment_token"] = "spt_" + secrets.token_hex(12)
        return credentials

    def _capped(
        self, provider: ProviderRecord, cap: dict[str, Any], *, at_mint: bool = False
    ) -> AddOutcome:
        """The agent's answer to a cap refusal: the figures and a next step for the human."""
        outcome = _cap_outcome(provider, cap)
        if self.faults.active("cap-refusal-without-next-step"):
            outcome.data.pop("cap", None)
            outcome.next_steps = []
        if at_mint and self.faults.active("cap-raised-on-refusal"):
            # "helpfully" makes room for the retry: only the human may do this (ORC-CAP-008)
            limit = int(cap.get("limit") or 0) + self.params.default_cap.limit
            self.core.ledger.set_limit(self.user().id, provider.base_url, limit)
        return outcome

    def resources(self) -> list[dict[str, Any]]:
        return [value for _, value in self.store.items(_RESOURCES)]

    def env(self, *, reveal: bool = False) -> dict[str, str]:
        """Credentials as environment variables, `<NAME>_<KEY>` (wire-facts §1.3), redacted unless asked."""
        variables: dict[str, str] = {}
        for resource in self.resources():
            prefix = str(resource["name"]).upper().replace("-", "_").replace(":", "_")
            for key, value in sorted(resource["credentials"].items()):
                shown = value if reveal or self.faults.active("env-reveals-secrets") else "••••••••"
                variables[f"{prefix}_{key.upper()}"] = shown
        return variables

    async def revoke(self, provider_name: str) -> dict[str, Any]:
        provider = self.provider(provider_name)
        connection = self.connection(provider)
        if connection is None:
            raise HTTPProblem(404, "RESOURCE_NOT_FOUND", f"no connection to {provider.name}")
        if not self.faults.active("revocation-skipped"):
            held = [
                (connection["access_token"], "access_token"),
                (connection.get("refresh_token"), "refresh_token"),
            ]
            if self.faults.active("revocation-access-token-only"):
                held = held[:1]
            endpoint = await self._unvalidated_revocation_endpoint(provider)
            for token, hint in held:
                if token:
                    await self._revoke_one(provider, endpoint, str(token), hint)
        key = f"{self.user().id}\x1f{provider.name}"
        self.store.delete(_CONNECTIONS, key)
        if self.faults.active("revoked-refresh-token-retried") and connection.get("refresh_token"):
            self.store.put(_STALE_REFRESH, key, connection["refresh_token"])
        return {"provider": provider.name, "revoked": True}

    async def _revoke_one(
        self, provider: ProviderRecord, endpoint: str | None, token: str, hint: str
    ) -> None:
        """One RFC 7009 request, signed like every provider call; anything but 200 leaves
        the token unrevoked (RFC 7009 §2.2.1)."""
        form = {"token": token, "token_type_hint": hint}
        if self.faults.active("revocation-without-hint"):
            del form["token_type_hint"]
        path = "oauth/revoke"
        if endpoint is not None and not endpoint.startswith(provider.base_url):
            answer = await self.http.post(endpoint, data=form)
        else:
            path = endpoint[len(provider.base_url) :] if endpoint else path
            unsigned = {
                self.params.attestation_header: ""
                if self.faults.active("revocation-unsigned")
                else None,
                self.params.signature_header: ""
                if self.faults.active("revocation-hmac-unsigned")
                else None,
            }
            answer = await self.call(
                provider,
                "POST",
                path,
                form=form,
                headers_override={k: v for k, v in unsigned.items() if v is not None},
            )
        failed = answer.status_code != 200
        if self.faults.active("revocation-needs-body") and not answer.content:
            failed = True
        if failed and not self.faults.active("revocation-failure-ignored"):
            raise HTTPProblem(502, "PROVIDER_ERROR", f"revocation failed ({answer.status_code})")

    async def _unvalidated_revocation_endpoint(self, provider: ProviderRecord) -> str | None:
        """The revocation-endpoint-unvalidated fault: the revocation_endpoint of whatever AS
        metadata the provider's PRM leads to, its issuer and URL unchecked. Without the fault
        the orchestrator revokes at the provider's own oauth/revoke (ORC-REV-001, -009)."""
        if not self.faults.active("revocation-endpoint-unvalidated"):
            return None
        prm = json_object(await self.http.get(prm_url(provider.base_url)))
        servers = prm.get("authorization_servers") or [provider.base_url.rstrip("/")]
        as_url = as_metadata_url(str(servers[0]))
        endpoint = json_object(await self.http.get(as_url)).get("revocation_endpoint")
        return endpoint if isinstance(endpoint, str) else None

    async def revoke_all(self) -> list[dict[str, Any]]:
        """Revocation fan-out: every provider this user holds tokens for."""
        return [
            await self.revoke(record.name)
            for record in self.providers()
            if self.connection(record) is not None
        ]


def stated_price(entry: dict[str, Any]) -> int | None:
    """The price a provider's catalog entry states in integer minor units (app-next
    `pricing.paid.amount`, service.schema.json), or None: free, a price in text only
    (freeform), or a component price, whose amount depends on the parent plan."""
    pricing = entry.get("pricing")
    paid = pricing.get("paid") if isinstance(pricing, dict) else None
    if not isinstance(pricing, dict) or pricing.get("type") != "paid" or not isinstance(paid, dict):
        return None
    amount = paid.get("amount")
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        return None
    return amount


def _consent_outcome(provider: ProviderRecord, url: str) -> AddOutcome:
    return AddOutcome(
        "consent_required",
        f"{provider.name} already has an account for this email; the human must approve linking it",
        {"provider": provider.name, "url": url},
        [f"Ask the human to open {url} and approve, then re-run the same command."],
    )


def _cap_outcome(provider: ProviderRecord, cap: dict[str, Any]) -> AddOutcome:
    return AddOutcome(
        "spend_cap_exceeded",
        f"the monthly spend cap for {provider.name} is reached",
        {"provider": provider.name, "cap": cap},
        [
            f"Ask the human to raise the limit: provspec orchestrator billing --provider {provider.name} --limit <minor units>. Do not retry before that."
        ],
    )


def _resource_metadata(header: str) -> str | None:
    try:
        for challenge in parse(header):
            if challenge.scheme.lower() == "bearer" and "resource_metadata" in challenge.params:
                return challenge.params["resource_metadata"]
    except ChallengeError:
        return None
    return None


def _provider_code(document: dict[str, Any]) -> str | None:
    """The provider's error code as it spelled it (typed, status or flat envelope)."""
    error = document.get("error")
    code = error.get("code") if isinstance(error, dict) else error
    return code[:128] if isinstance(code, str) and code else None


def _details(code: str | None) -> dict[str, Any]:
    """The CLI error's details: the provider's code verbatim (ORC-ACC-007, ORC-PRO-010)."""
    return {"details": {"provider_code": code}} if code else {}


def _error_text(document: dict[str, Any]) -> str:
    error = document.get("error")
    if isinstance(error, dict):
        return f"{error.get('code')}: {error.get('message')}"
    if isinstance(error, str):
        return f"{error}: {document.get('error_description', '')}"
    return str(document.get("detail") or document)[:200]
