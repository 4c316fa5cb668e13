"""The client's session: the signed-in user, the providers it knows, the connections it
holds, and the signed call every provider request goes through.

Every provider call is signed: HMAC `Stripe-Signature` on app-0.1d, an `APP-Attestation`
on app-next (a JWS binding the body to this user and provider).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import Any
from urllib.parse import urlencode

import httpx

from mocks._core.http import HTTPProblem
from mocks.orchestrator.client._records import (
    CONNECTIONS,
    PROVIDERS,
    USER,
    ProviderRecord,
    User,
    connection_key,
)
from mocks.orchestrator.client._server import OrchestratorServer
from wire import jose, stripe_signature
from wire.attestation import attestation_claims, mint_attestation

__all__ = ["Session"]

_OTHER_AUDIENCE = "https://other-provider.example/api/"


class Session:
    def __init__(self, core: OrchestratorServer, http: httpx.AsyncClient) -> None:
        self.core = core
        self.http = http
        self.store = core.store
        self.faults = core.faults
        self.params = core.params
        self.family = core.spec.family
        self.strict_answers = False
        """True (the agent-facing CLI): refuse provider answers that do not belong to the
        request (ORC-ACC-009). The provider checks keep it off to reach further."""

    # --- who --------------------------------------------------------------------------------
    def user(self) -> User:
        stored = self.store.get(USER, "current")
        if stored is None:
            stored = {
                "id": "usr_" + secrets.token_hex(8),
                "email": "dev@example.com",
                "account": "acct_" + secrets.token_hex(8),
                "payment_method": True,
            }
            self.store.put(USER, "current", stored)
        return User(**stored)

    def new_user(self, email: str) -> User:
        """Switch to a fresh user (new opaque id and account): each check starts clean."""
        user = User(
            id="usr_" + secrets.token_hex(8),
            email=email,
            account="acct_" + secrets.token_hex(8),
            payment_method=True,
        )
        self.store.put(USER, "current", dict(user.__dict__))
        return user

    def set_user(
        self, email: str, *, payment_method: bool = True, email_verified: bool = True
    ) -> User:
        current = self.user()
        self.store.put(
            USER,
            "current",
            {
                **current.__dict__,
                "email": email,
                "payment_method": payment_method,
                "email_verified": email_verified,
            },
        )
        return self.user()

    def key(self, provider: ProviderRecord) -> str:
        """The current user's row key for `provider` (connections, terms, trusted PRMs)."""
        return connection_key(self.user().id, provider.name)

    # --- with whom --------------------------------------------------------------------------
    def add_provider(self, record: ProviderRecord) -> None:
        self.store.put(PROVIDERS, record.name, record.as_json())

    def accept_tos(self, provider: ProviderRecord) -> None:
        """Record that the human accepted this provider's terms (once per user and provider)."""
        self.store.put("tos", self.key(provider), True)

    def tos_accepted(self, provider: ProviderRecord) -> bool:
        return bool(self.store.get("tos", self.key(provider)))

    def providers(self) -> list[ProviderRecord]:
        return [ProviderRecord(**value) for _, value in self.store.items(PROVIDERS)]

    def provider(self, name: str) -> ProviderRecord:
        # ASCII case folding only: str.lower() maps lookalikes such as the Kelvin sign onto
        # ASCII letters (ORC-DSC-013).
        stored = self.store.get(PROVIDERS, name.lower() if name.isascii() else name)
        if stored is None:
            known = ", ".join(record.name for record in self.providers()) or "none"
            raise HTTPProblem(
                404, "PROVIDER_NOT_FOUND", f"unknown provider {name!r}; known: {known}"
            )
        return ProviderRecord(**stored)

    # --- connections ------------------------------------------------------------------------
    def connection(self, provider: ProviderRecord) -> dict[str, Any] | None:
        found = self.store.get(CONNECTIONS, self.key(provider))
        return dict(found) if found else None

    def save_connection(self, provider: ProviderRecord, tokens: dict[str, Any]) -> dict[str, Any]:
        """Keep a token answer as the connection to `provider`; the stored record."""
        record = {
            "access_token": tokens["access_token"],
            "refresh_token": tokens.get("refresh_token"),
            "account": (tokens.get("account") or {}).get("id"),
        }
        self.store.put(CONNECTIONS, self.key(provider), record)
        return record

    def drop_connection(self, provider: ProviderRecord) -> None:
        self.store.delete(CONNECTIONS, self.key(provider))

    def held_tokens(self) -> list[str]:
        """Every access token the current user holds, provider by provider."""
        held = [self.connection(record) for record in self.providers()]
        return [str(connection["access_token"]) for connection in held if connection]

    def _someone_elses_token(self, provider: ProviderRecord) -> str | None:
        prefix = connection_key(self.user().id, "")
        for key, record in self.store.items(CONNECTIONS):
            if key.startswith(prefix) and key != prefix + provider.name:
                token = record.get("access_token") if isinstance(record, dict) else None
                if isinstance(token, str):
                    return token
        return None

    # --- signed calls -----------------------------------------------------------------------
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
        if self.family == "app-0.1d":
            headers[self.params.signature_header] = self._hmac_signature(provider, raw)
        else:
            headers[self.params.attestation_header] = self.attestation(provider, raw)
        for name, value in (headers_override or {}).items():
            headers.pop(name, None)
            if value:
                headers[name] = value
        return await self.http.request(method, url, content=raw, headers=headers)

    def _hmac_signature(self, provider: ProviderRecord, raw: bytes) -> str:
        now = self.core.clock.timestamp()
        secret = provider.hmac_secret or ""
        if self.faults.active("hmac-wrong-secret"):
            secret = "whsec_wrong"
        stamp = now - 3600 if self.faults.active("hmac-stale-timestamp") else now
        return stripe_signature.sign(secret, raw, stamp)

    def attestation(self, provider: ProviderRecord, raw: bytes) -> str:
        """The `APP-Attestation` for one request to `provider` carrying `raw`."""
        key = self.core.signing_key
        if self.faults.active("attestation-wrong-key"):
            key = jose.generate_key("EdDSA", kid=key.kid)
        audience = _OTHER_AUDIENCE if self.faults.active("attestation-wrong-aud") else None
        audience = audience or provider.base_url
        lifetime = (
            3600
            if self.faults.active("attestation-long-lived")
            else self.params.attestation_lifetime
        )
        issuer, subject = self.core.announced_issuer, self._subject(provider)
        body = b"{}" if self.faults.active("attestation-unbound-body") else raw
        now, claims = self.core.clock.timestamp(), self._claims(audience, raw)
        if self.faults.active("attestation-typ-jwt") or self.faults.active("attestation-alg-none"):
            payload = attestation_claims(
                issuer=issuer,
                audience=audience,
                subject=subject,
                body=body,
                now=now,
                lifetime=lifetime,
                claims=claims,
            )
            if self.faults.active("attestation-typ-jwt"):
                return jose.sign(payload, key, typ="JWT")
            header = {"alg": "none", "typ": "app-attestation+jwt", "kid": key.kid}
            return jose.compact(header, payload, b"")
        return mint_attestation(
            key,
            issuer=issuer,
            audience=audience,
            subject=subject,
            body=body,
            now=now,
            lifetime=lifetime,
            claims=claims,
            header={},
        )

    def _subject(self, provider: ProviderRecord) -> str:
        user = self.user()
        if self.faults.active("attestation-pairwise-sub"):
            pairwise = hashlib.sha256(f"{user.id}\x1f{provider.base_url}".encode()).hexdigest()
            return "ps_" + pairwise[:24]
        return user.email if self.faults.active("attestation-email-as-sub") else user.id

    def _claims(self, audience: str, raw: bytes) -> dict[str, Any]:
        """The attestation's claims beyond the registered ones."""
        user = self.user()
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
            claims["aud"] = [audience, _OTHER_AUDIENCE]
        if self.faults.active("attestation-carries-payment-token") and raw[:1] == b"{":
            sent = json.loads(raw)
            if isinstance(sent, dict) and "payment_credentials" in sent:
                claims["payment_credentials"] = sent["payment_credentials"]
        return claims
