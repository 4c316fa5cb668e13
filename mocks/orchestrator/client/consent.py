"""Consent: connecting the user to a provider — creating or linking the account, and the
OAuth authorization a human approves — and keeping the tokens that come back.

Everything the consent path is handed is validated: `resource` in RFC 9728 metadata and
`issuer` in RFC 8414 metadata compare exactly to what was requested (no normalising), every
URL taken from a message passes the SSRF guard, and PKCE is S256.
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from mocks._core.http import HTTPProblem
from mocks.orchestrator.client._answers import json_object
from mocks.orchestrator.client._records import (
    PENDING,
    REDIRECT_URI,
    STALE_REFRESH,
    AddOutcome,
    ProviderRecord,
    consent_outcome,
    error_details,
    error_text,
    provider_code,
    resource_metadata,
)
from mocks.orchestrator.client.session import Session
from wire.clock import iso_utc
from wire.pkce import pkce_pair
from wire.ssrf import SSRFError
from wire.urls import as_metadata_url

__all__ = ["Consent"]


class Consent:
    def __init__(self, session: Session, *, auto_consent: bool = True) -> None:
        self.session = session
        self.core = session.core
        self.faults = session.faults
        self.store = session.store
        self.auto_consent = auto_consent
        """True: a scripted user approves at once; False: a human must (an outcome says so)."""

    async def connect(self, provider: ProviderRecord) -> AddOutcome | dict[str, Any]:
        """The provider connection, creating or linking the account; an outcome when a human must act."""
        existing = self.session.connection(provider)
        if existing is not None:
            return existing
        stale = await self._retry_stale_refresh(provider)
        if stale is not None:
            return stale
        verifier, challenge = pkce_pair()
        if self.faults.active("pkce-missing"):
            verifier = ""
        request_id = "acctreq_" + secrets.token_hex(8)
        body = self._account_request(request_id)
        if verifier:
            body |= {"code_challenge": challenge, "code_challenge_method": "S256"}
        answer = await self.session.call(
            provider, "POST", "provisioning/account_requests", body=body
        )
        document = json_object(answer)
        if (
            self.session.strict_answers
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
            return await self._requires_auth(provider, document, verifier)
        if answer.status_code == 401 and self.session.family == "app-next":
            return await self._authorize(provider, answer.headers.get("www-authenticate", ""))
        refusal, code = error_text(document), provider_code(document)
        if self.faults.active("account-error-code-dropped"):
            refusal, code = "the account request was refused", None
        raise HTTPProblem(
            502,
            "PROVIDER_ERROR",
            f"{provider.name} answered {answer.status_code}: {refusal}",
            extra=error_details(code),
        )

    def _account_request(self, request_id: str) -> dict[str, Any]:
        user = self.session.user()
        lifetime = 86400 if self.faults.active("account-request-long-expiry") else 600
        return {
            "id": request_id,
            "object": "account_request",
            "email": user.email,
            "scopes": "provisioning"
            if self.faults.active("account-request-invalid")
            else ["provisioning"],
            "expires_at": iso_utc(self.core.clock.timestamp() + lifetime),
            "orchestrator": {"type": "stripe", "stripe": {"account": user.account}},
        }

    async def _requires_auth(
        self, provider: ProviderRecord, document: dict[str, Any], verifier: str
    ) -> AddOutcome | dict[str, Any]:
        """app-0.1d: the account exists; the human approves linking it at `requires_auth.url`."""
        requires = document.get("requires_auth")
        requires = requires if isinstance(requires, dict) else {}
        redirect = requires.get("redirect")
        url = str(requires.get("url") or "")
        # the older shape, {type: redirect, redirect: {url}} (ORC-ACC-006)
        older = not self.faults.active("requires-auth-redirect-ignored")
        if not url and older and isinstance(redirect, dict):
            url = str(redirect.get("url") or "")
        if not self.auto_consent:
            return consent_outcome(provider, url)
        return await self._consent_0_1d(provider, url, verifier)

    async def _authorize(
        self, provider: ProviderRecord, challenge_header: str
    ) -> AddOutcome | dict[str, Any]:
        """app-next: a 401 with RFC 9728 discovery starts an OAuth authorization."""
        authorize_url, pending = await self._prepare_consent(provider, challenge_header)
        if not self.auto_consent:
            # The human approves in a browser; the provider sends the browser back to our
            # redirect URI, whose handler finishes with `complete_consent`.
            self.store.put(PENDING, pending["state"], pending)
            return consent_outcome(provider, authorize_url)
        return await self._authorize_as_scripted_user(provider, authorize_url, pending)

    async def _retry_stale_refresh(self, provider: ProviderRecord) -> dict[str, Any] | None:
        """The revoked-refresh-token-retried fault: a refresh token kept past its revocation
        is tried once before connecting anew."""
        key = self.session.key(provider)
        stale = self.store.get(STALE_REFRESH, key)
        if not stale or not self.faults.active("revoked-refresh-token-retried"):
            return None
        self.store.delete(STALE_REFRESH, key)
        form = {"grant_type": "refresh_token", "refresh_token": str(stale)}
        answer = await self.session.call(provider, "POST", "oauth/token", form=form)
        tokens = json_object(answer)
        if answer.status_code == 200 and "access_token" in tokens:
            return self.session.save_connection(provider, tokens)
        return None

    async def _exchange(
        self, provider: ProviderRecord, code: str, verifier: str, **extra: str
    ) -> dict[str, Any]:
        form = {"grant_type": "authorization_code", "code": code, **extra}
        if verifier:
            form["code_verifier"] = verifier
        answer = await self.session.call(provider, "POST", "oauth/token", form=form)
        tokens = json_object(answer)
        if self.faults.active("code-exchanged-twice") and answer.status_code == 200:
            await self.session.call(provider, "POST", "oauth/token", form=form)  # "to be sure"
        if answer.status_code != 200 or "access_token" not in tokens:
            raise HTTPProblem(502, "PROVIDER_ERROR", f"token exchange failed: {error_text(tokens)}")
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
        return self.session.save_connection(provider, tokens)

    async def _consent_0_1d(
        self, provider: ProviderRecord, url: str, verifier: str
    ) -> dict[str, Any]:
        # The scripted "user" approves on the provider's consent page.
        self._guard(url)
        separator = "&" if "?" in url else "?"
        answer = await self.session.http.post(url + separator + "approve=1")
        document = json_object(answer)
        if answer.status_code != 200 or "code" not in document:
            raise HTTPProblem(502, "PROVIDER_ERROR", f"consent failed: {error_text(document)}")
        return await self._exchange(provider, str(document["code"]), verifier)

    async def _prepare_consent(
        self, provider: ProviderRecord, challenge_header: str
    ) -> tuple[str, dict[str, Any]]:
        """RFC 9728 and RFC 8414 discovery, validated, then the authorization request URL and
        what the token request will need (kept until the redirect comes back)."""
        issuer = await self._authorization_server(provider, challenge_header)
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
        return self._authorization_request(provider, authorize, issuer)

    async def _authorization_server(self, provider: ProviderRecord, challenge_header: str) -> str:
        """The issuer of the authorization server the provider's RFC 9728 metadata names."""
        metadata_url = resource_metadata(challenge_header)
        if not metadata_url:
            raise HTTPProblem(
                502, "PROVIDER_ERROR", "401 without resource_metadata: cannot start consent"
            )
        if self.faults.active("prm-probed-at-root"):
            origin = "{0.scheme}://{0.netloc}".format(urlsplit(provider.base_url))
            await self.session.http.get(origin + "/.well-known/oauth-protected-resource")
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
        if self.faults.active("as-assumed-at-resource"):
            return provider.base_url.rstrip("/")
        return servers[0]

    def _authorization_request(
        self, provider: ProviderRecord, authorize: str, issuer: str
    ) -> tuple[str, dict[str, Any]]:
        verifier, challenge = pkce_pair()
        state = secrets.token_urlsafe(16)
        redirect_uri = self.core.issuer + REDIRECT_URI
        params = {
            "response_type": "token" if self.faults.active("consent-implicit-grant") else "code",
            "client_id": self.core.issuer,
            "redirect_uri": redirect_uri,
            "scope": "provisioning",
            "state": state,
            "login_hint": self.session.user().email,
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
            "user": self.session.user().id,
        }
        return authorize + "?" + urlencode(params), pending

    async def _authorize_as_scripted_user(
        self, provider: ProviderRecord, authorize_url: str, pending: dict[str, Any]
    ) -> dict[str, Any]:
        answer = await self.session.http.get(authorize_url)
        location = answer.headers.get("location", "")
        query = parse_qs(urlsplit(location).query)
        if answer.status_code not in (302, 303) or "code" not in query:
            raise HTTPProblem(502, "PROVIDER_ERROR", f"authorization failed ({answer.status_code})")
        return await self._finish_consent(provider, pending, query)

    async def complete_consent(self, query: dict[str, list[str]]) -> dict[str, Any]:
        """The redirect URI's handler: match the state, check iss, exchange the code."""
        state = (query.get("state") or [""])[0]
        pending = self.store.get(PENDING, state) if state else None
        if pending is None and self.faults.active("consent-state-unchecked"):
            # "the" pending consent of the current user, whatever state came back
            user = self.session.user().id
            pending = next((p for _, p in self.store.items(PENDING) if p["user"] == user), None)
        if pending is None:
            raise HTTPProblem(400, "invalid_request", "unknown or used state")
        self.store.delete(PENDING, str(pending["state"]))
        provider = self.session.provider(str(pending["provider"]))
        return await self._finish_consent(provider, pending, query)

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

    # --- what the consent path trusts -------------------------------------------------------
    def _guard(self, url: str) -> None:
        """A URL the consent path fetches (metadata named in an answer): the SSRF guard."""
        if not self.faults.active("ssrf-unguarded"):
            self._checked(url, f"refused to fetch {url[:200]!r}")

    def _endpoint_guard(self, url: str) -> None:
        """An OAuth endpoint the human's browser opens or the token request goes to: https
        (http on the run's loopback only), never javascript:, file: or data: (ORC-CNS-012)."""
        if not self.faults.active("consent-endpoints-unchecked"):
            self._checked(url, f"refused the endpoint {url[:200]!r}")

    def _checked(self, url: str, refusal: str) -> None:
        try:
            self.core.ssrf.check_url(url)
        except SSRFError as error:
            raise HTTPProblem(502, "UNSAFE_URL", f"{refusal}: {error}") from None

    async def _metadata(self, url: str) -> dict[str, Any]:
        """A metadata document; redirects are not followed (each hop would need the guard)."""
        follow = self.faults.active("metadata-redirects-followed")
        return json_object(await self.session.http.get(url, follow_redirects=follow))

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
        key = self.session.key(provider)
        trusted = bool(self.store.get("prm_checked", key))
        self.store.put("prm_checked", key, True)
        return trusted
