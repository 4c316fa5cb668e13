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

import hashlib
import hmac
import json
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
from cryptography.hazmat.primitives.asymmetric import ed25519
from starlette.applications import Starlette
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

import mocks.provider.catalog as catalog
from mocks._core.http import HTTPProblem, json_response, parse_form, parse_json_object, read_body
from mocks._core.network import DEFAULT_TIMEOUT
from mocks._core.replay import ReplayCache
from mocks._core.store import MemoryStore, Store
from mocks.faults import FaultName, FaultSet
from mocks.provider._state import ProviderState, new_id
from spec.profiles import Profile, ProfileParameters
from spec.schemas import default_store
from wire import jose, stripe_signature
from wire.attestation import (
    PAYMENT_TOKEN_CLAIMS,
    PAYMENT_TOKEN_TYP,
    REQUIRED_CLAIMS,
    mint_attestation,
    verify_attestation,
)
from wire.clock import Clock, SystemClock, iso_utc
from wire.envelopes import flat_error, oauth_error, status_error, typed_error
from wire.formats import is_email
from wire.pkce import pkce_pair, s256
from wire.ssrf import SSRFError, SSRFGuard
from wire.tls import tls_context
from wire.urls import as_metadata_url, orchestrator_metadata_url, prm_url

# The sandbox's stand-in for Stripe activating a shared payment token: the tokens the mock
# orchestrator mints (spt_ + 24 hex digits) activate, anything else does not.
_SHARED_PAYMENT_TOKEN = re.compile(r"spt_[0-9a-f]{24}")

__all__ = ["ProviderMock", "ProviderSettings"]

log = logging.getLogger("provspec.mock.provider")

PROFILE_SCOPE = "profile"
"""Granted with the profile's provisioning scope; a refresh may narrow a token to it alone
(RFC 6749 §6), which then lacks what provisioning calls need."""
CODE_LIFETIME = 300
ACCESS_LIFETIME = 3600
DEEP_LINK_LIFETIME = 600
DEEP_LINKS = "deep_links"
PENDING_SECONDS = 5
_VERIFIER_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
SIGNATURE_FAULTS: tuple[FaultName, ...] = (
    "empty-signature-accepted",
    "signature-result-ignored",
    "attestation-hs256-accepted",
    "psychic-signature-accepted",
    "jwk-header-honoured",
    "typ-not-checked",
    "crit-ignored",
    "duplicate-claims-last-wins",
    "typ-compared-exactly",
)
"""Faults of the attestation signature step; any of them swaps in `_attestation_signature`."""


@dataclass
class ProviderSettings:
    """What a mock provider needs to know; every default suits an in-process test."""

    profile: Profile | str = "app-0.1d"
    """The profile object (a name or a draft's path is resolved on construction): header
    names, lifetimes, algorithms and error codes come from its parameters."""
    base_url: str = "http://provider.mock/api/app/"
    name: str = "Mockbase"
    hmac_secret: str = field(default_factory=lambda: "whsec_" + secrets.token_hex(16))
    orchestrator_issuer: str = "http://orchestrator.mock"
    existing_emails: tuple[str, ...] = ("existing@example.com",)
    faults: tuple[str, ...] = ()
    clock: Clock = field(default_factory=SystemClock)
    store: Store = field(default_factory=MemoryStore)
    http: Callable[[], httpx.AsyncClient] | None = None
    """Makes the client the provider uses to reach the orchestrator (transport seam)."""
    ssrf: SSRFGuard = field(default_factory=lambda: SSRFGuard(allow_loopback=True))
    redeem: bool = True
    verify_requests: bool = True
    """False: the suite's instrument when it tests an orchestrator. It accepts and records
    every request (reading attestation claims unverified) so that the checks, not this mock,
    judge the orchestrator's signatures, one requirement at a time."""
    """False: keep payment tokens unredeemed (the suite, testing an orchestrator, redeems them
    itself to probe the redemption endpoint). Tokens are kept in `ProviderMock.tokens`."""

    def __post_init__(self) -> None:
        self.spec: Profile = (
            default_store().profile(self.profile) if isinstance(self.profile, str) else self.profile
        )
        self.params: ProfileParameters = self.spec.params  # complete, or a ProvspecError
        parts = urlsplit(self.base_url)
        if (
            parts.scheme not in ("http", "https")
            or not parts.netloc
            or not parts.path.endswith("/")
        ):
            raise ValueError(
                f"base_url must be an absolute http(s) URL ending in '/': {self.base_url!r}"
            )
        if parts.query or parts.fragment:
            raise ValueError("base_url must not carry a query or fragment")


@dataclass
class _Caller:
    issuer: str | None = None
    subject: str | None = None
    email: str | None = None
    email_verified: bool = False


Handler = Callable[[Request, bytes, "_Caller"], Awaitable[Response]]


class ProviderMock:
    """Build with settings; `app` is the ASGI application."""

    def __init__(self, settings: ProviderSettings | None = None) -> None:
        self.settings = settings = settings or ProviderSettings()
        self.spec = settings.spec
        self.params = settings.spec.params
        self.profile = settings.spec.name
        self.next = settings.spec.family == "app-next"
        self.faults = FaultSet("provider", settings.spec.family, settings.faults)
        self.clock = settings.clock
        self.state = ProviderState(settings.store)
        self.replay = ReplayCache(settings.store)
        self.base_url = settings.base_url
        self.base_path = urlsplit(settings.base_url).path
        self.resource_id = settings.base_url
        self.issuer = settings.base_url.rstrip("/")
        self.prm_url = prm_url(settings.base_url)
        if self.faults.active("prm-wrong-location"):
            self.prm_url = prm_url(settings.base_url).replace(
                "/.well-known/oauth-protected-resource", "/oauth-protected-resource"
            )
        self.as_metadata_url = as_metadata_url(self.issuer)
        self.scope = self.params.provisioning_scope
        self.granted_scope = f"{self.scope} {PROFILE_SCOPE}"
        self.currency = self.params.default_cap.currency
        """The currency of every price in the catalog (the profile's cap currency)."""
        self.signing_key = jose.generate_key("EdDSA")
        self._retired_key = jose.generate_key("EdDSA")
        self.tokens: list[str] = []
        self._orchestrator: dict[str, Any] | None = None
        self._schemas = default_store()
        for email in settings.existing_emails:
            if self.state.account_by_email(email) is None:
                self.state.create_account(email, origin="signup")
        self.app = self._build()

    # --- the ASGI app -------------------------------------------------------------------
    def _build(self) -> Starlette:
        p = self.base_path
        routes = [
            Route(f"{p}provisioning/health", self._wrap(self.health, "flat"), methods=["GET"]),
            Route(f"{p}provisioning/services", self._wrap(self.services, "flat"), methods=["GET"]),
            Route(
                f"{p}provisioning/account_requests",
                self._wrap(
                    self.account_requests,
                    "typed",
                    precheck=None if self.next else self._account_request_precheck,
                ),
                methods=["POST"],
            ),
            Route(
                f"{p}oauth/token", self._wrap(self.token, "oauth", signed=False), methods=["POST"]
            ),
            Route(
                f"{p}oauth/authorize",
                self._wrap(self.authorize, "oauth", signed=False),
                methods=["GET", "POST"],
            ),
            Route(
                f"{p}oauth/revoke", self._wrap(self.revoke, "oauth", signed=False), methods=["POST"]
            ),
            Route(
                f"{p}provisioning/resources",
                self._wrap(self.create_resource, "status"),
                methods=["POST"],
            ),
            Route(
                f"{p}provisioning/resources/{{id}}",
                self._wrap(self.get_resource, "status"),
                methods=["GET"],
            ),
            Route(
                f"{p}provisioning/resources/{{id}}/{{action}}",
                self._wrap(self.resource_action, "status"),
                methods=["POST"],
            ),
            Route(
                f"{p}provisioning/deep_links", self._wrap(self.deep_links, "flat"), methods=["POST"]
            ),
            Route(f"{p}api/whoami", self._wrap(self.whoami, "flat", signed=False), methods=["GET"]),
            Route(f"{p}dashboard", self.dashboard, methods=["GET"]),
            Route(f"{p}jwks.json", self._wrap(self.jwks, "flat", signed=False), methods=["GET"]),
        ]
        if self.next:
            routes += [
                # The resource identifier itself answers as an RFC 6750 protected resource, so
                # a generic OAuth client (and `provspec run --role resource-server`) can probe
                # the RFC 9728 discovery path without APP attestations; it changes nothing.
                Route(p, self._wrap(self.resource_root, "flat", signed=False), methods=["GET"]),
                Route(
                    urlsplit(self.prm_url).path,
                    self._wrap(self.protected_resource_metadata, "flat", signed=False),
                    methods=["GET"],
                ),
                Route(
                    urlsplit(self.as_metadata_url).path,
                    self._wrap(self.authorization_server_metadata, "flat", signed=False),
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
        envelope: str,
        *,
        signed: bool = True,
        precheck: Callable[[bytes], None] | None = None,
    ) -> Callable[[Request], Awaitable[Response]]:
        """`precheck` runs on the raw body before the signature is verified (PostHog's order
        for 0.1d account requests: the body's errors answer before a missing signature)."""

        async def endpoint(request: Request) -> Response:
            resource_id = request.path_params.get("id", "")
            try:
                raw = await read_body(request)
                json_body = request.headers.get("content-type", "").startswith("application/json")
                if self.faults.active("crash-on-malformed-json") and json_body and raw[:1] != b"{":
                    return Response(
                        "Traceback (most recent call last):\n  ...\nJSONDecodeError",
                        status_code=500,
                    )
                caller = _Caller()
                if (
                    precheck is not None
                    and self.settings.verify_requests
                    and not self.faults.active("signature-before-body")
                ):
                    try:
                        self._check_version(request)
                    except HTTPProblem as problem:
                        return self._render(problem, "flat", resource_id)
                    precheck(raw)
                if signed:
                    try:
                        caller = await self._authenticate(request, raw)
                    except HTTPProblem as problem:
                        # PostHog exceptions.py: signature and version failures use the
                        # flat envelope on every endpoint.
                        return self._render(problem, "flat", resource_id)
                return await handler(request, raw, caller)
            except HTTPProblem as problem:
                if problem.code == "body_too_large" and self.faults.active("body-limit-unhandled"):
                    # the size limit raises an error type the handlers do not map
                    return Response("Internal Server Error", status_code=500)
                return self._render(problem, envelope, resource_id)
            except Exception:  # a bug in the mock must still answer in the envelope
                log.exception("mock provider failed on %s %s", request.method, request.url.path)
                return self._render(
                    HTTPProblem(500, "server_error", "the mock provider failed; see its log"),
                    envelope,
                    resource_id,
                )

        return endpoint

    def _render(self, problem: HTTPProblem, envelope: str, resource_id: str) -> Response:
        if (
            problem.status in (400, 401, 403, 413)
            and problem.code.startswith("invalid_")
            and envelope == "status"
        ):
            pass
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

    # --- request authentication -----------------------------------------------------------
    async def _authenticate(self, request: Request, raw: bytes) -> _Caller:
        if not self.settings.verify_requests:
            return self._unverified_caller(request.headers.get(self.params.attestation_header))
        self._check_version(request)
        if not self.next:
            signature = request.headers.get(self.params.signature_header)
            if signature is None and self.faults.active("signature-optional"):
                return _Caller()  # verifies a signature only when one is sent
            if self.faults.active("bearer-skips-signature") and "authorization" in request.headers:
                return _Caller()  # takes the bearer token as enough authentication
            self._verify_hmac(request, raw)
            return _Caller()
        token = request.headers.get(self.params.attestation_header)
        if token is None and self.faults.active("attestation-optional"):
            return _Caller()  # the middleware verifies an attestation only when one is sent
        claims = await self._verify_attestation(token, raw)
        return _Caller(
            issuer=str(claims["iss"]),
            subject=str(claims["sub"]),
            email=claims.get("email") if isinstance(claims.get("email"), str) else None,
            email_verified=claims.get("email_verified") is True,
        )

    def _check_version(self, request: Request) -> None:
        expected = self.params.api_version
        version = request.headers.get(self.params.version_header)
        if version != expected and not self.faults.active("ignore-api-version"):
            error = self.params.error("invalid_api_version")
            raise HTTPProblem(
                error.status, error.code, f"Supported {self.params.version_header}s: {expected}"
            )

    @staticmethod
    def _unverified_caller(token: str | None) -> _Caller:
        try:
            _, claims, _ = jose.unverified_parts(token or "")
        except jose.JOSEError:
            return _Caller()
        email = claims.get("email")
        return _Caller(
            issuer=str(claims.get("iss")),
            subject=str(claims.get("sub")),
            email=email if isinstance(email, str) else None,
            email_verified=claims.get("email_verified") is True,
        )

    def _verify_hmac(self, request: Request, raw: bytes) -> None:
        if not self.settings.verify_requests:
            return
        tolerance = (
            10**9 if self.faults.active("accept-stale-signature") else self.params.hmac_tolerance
        )
        header = request.headers.get(self.params.signature_header)
        if header and self.faults.active("crash-on-malformed-signature"):
            # a hand-rolled parser: `garbage` or `t=abc` raises, and the error escapes to the
            # framework's 500 handler
            try:
                elements = dict(item.split("=", 1) for item in header.split(","))
                int(elements["t"]), elements["v1"]
            except (ValueError, KeyError):
                raise HTTPProblem(500, "server_error", "internal server error") from None
        if header and self.faults.active("first-v1-only"):
            # compares the first v1 it finds and drops the rest (secret rotation breaks)
            parts = header.split(",")
            signatures = [part for part in parts if part.strip().startswith("v1=")]
            header = ",".join(
                [part for part in parts if not part.strip().startswith("v1=")] + signatures[:1]
            )
        try:
            stripe_signature.verify(
                header,
                raw,
                self.settings.hmac_secret,
                now=self.clock.timestamp(),
                tolerance=tolerance,
            )
        except stripe_signature.SignatureError as error:
            if error.reason == "mismatch" and self.faults.active("accept-bad-signature"):
                return
            error_code = self.params.error("invalid_signature")
            raise HTTPProblem(error_code.status, error_code.code, str(error)) from None

    async def _verify_attestation(self, token: str | None, raw: bytes) -> dict[str, Any]:
        if not self.settings.verify_requests:
            try:
                return jose.unverified_parts(token or "")[1]
            except jose.JOSEError:
                return {"iss": "", "sub": ""}
        if token and self.faults.active("accept-alg-none"):
            try:
                header, claims, _ = jose.unverified_parts(token)
            except jose.JOSEError:
                header, claims = {}, {}
            if str(header.get("alg", "")).lower() == "none":
                return claims
        for attempt in range(2):
            keys = await self._keys_to_verify(
                token,
                refresh=attempt == 1,
                trust_header_keys=self.faults.active("jku-header-honoured"),
            )
            try:
                return verify_attestation(
                    token,
                    keys=keys,
                    issuer=self.settings.orchestrator_issuer,
                    audience=self.resource_id,
                    body=raw,
                    now=self.clock.timestamp(),
                    replay=None
                    if self.faults.active("accept-replayed-attestation")
                    else self.replay,
                    check_body=not self.faults.active("skip-body-binding"),
                    check_audience=not self.faults.active("accept-wrong-aud"),
                    verify_signature=self._attestation_signature,
                    same_issuer=self._same_issuer
                    if self.faults.active("issuer-normalised")
                    else None,
                    # .NET's default clock skew: five minutes, where APP allows at most 60 s
                    leeway=300 if self.faults.active("five-minute-leeway") else 30,
                    max_lifetime=86400
                    if self.faults.active("attestation-lifetime-unchecked")
                    else self.params.attestation_lifetime,
                    # PyJWT's default: exp is checked when present, never required
                    require=tuple(c for c in REQUIRED_CLAIMS if c != "exp")
                    if self.faults.active("exp-not-required")
                    else REQUIRED_CLAIMS,
                    algorithms=self.params.algorithms,
                    header_name=self.params.attestation_header,
                )
            except jose.JOSEError as error:
                if error.reason == "unknown_kid" and attempt == 0:
                    continue  # the orchestrator may have rotated its keys: refetch once
                refused = self.params.error("invalid_signature")
                raise HTTPProblem(
                    refused.status, refused.code, f"attestation refused: {error}"
                ) from None
        raise AssertionError("unreachable")

    def _same_issuer(self, iss: Any) -> bool:
        """The issuer-normalised fault: iss compared after stripping '/' and case-folding."""
        trusted = self.settings.orchestrator_issuer.rstrip("/").casefold()
        return isinstance(iss, str) and iss.rstrip("/").casefold() == trusted

    def _attestation_signature(
        self,
        token: str,
        *,
        keys: Mapping[str, jose.PublicKey],
        algorithms: Sequence[str],
        typ: str,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The attestation signature step: `jose.verify_signature` in the reference mock.

        Under a signature fault, a hand-rolled copy of it runs instead, with the one mistake
        the fault names; every other rule stays as jose enforces it.
        """
        if not any(self.faults.active(name) for name in SIGNATURE_FAULTS):
            return jose.verify_signature(token, keys=keys, algorithms=algorithms, typ=typ)
        if self.faults.active("duplicate-claims-last-wins"):
            header, claims, signature = _lenient_parts(token)
        else:
            header, claims, signature = jose.unverified_parts(token)
        head, body, _ = token.split(".")
        signing_input = f"{head}.{body}".encode("ascii")
        alg, kid = header.get("alg"), header.get("kid")
        if self.faults.active("jwk-header-honoured") and isinstance(header.get("jwk"), dict):
            # CVE-2018-0114: the key embedded in the token's own header is trusted
            keys = {**keys, **jose.parse_jwks({"keys": [header["jwk"]]})}
        if self.faults.active("attestation-hs256-accepted") and alg == "HS256" and kid in keys:
            # algorithm confusion: the header picks HMAC, keyed with the public key's text
            public = keys[str(kid)].key
            if isinstance(public, ed25519.Ed25519PublicKey):
                secret = jose.b64url_encode(public.public_bytes_raw()).encode()
                mac = hmac.new(secret, signing_input, hashlib.sha256).digest()
                if hmac.compare_digest(mac, signature):
                    return header, claims
        if not isinstance(alg, str) or alg not in algorithms:
            raise jose.JOSEError("alg_not_allowed", f"alg {alg!r} is not allowed")
        if "crit" in header and not self.faults.active("crit-ignored"):
            raise jose.JOSEError("crit_not_understood", "crit names unknown extensions")
        header_typ = header.get("typ")
        typ_ok = isinstance(header_typ, str) and (
            header_typ == typ
            if self.faults.active("typ-compared-exactly")
            else header_typ.lower().removeprefix("application/") == typ.lower()
        )
        if not typ_ok and not self.faults.active("typ-not-checked"):
            raise jose.JOSEError("wrong_typ", f"typ {header_typ!r} is not {typ!r}")
        if not isinstance(kid, str) or kid not in keys:
            raise jose.JOSEError("unknown_kid", f"kid {str(kid)[:64]!r} is not trusted")
        key = keys[kid]
        r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        psychic = alg == "ES256" and len(signature) == 64 and (not r or not s)
        if psychic and self.faults.active("psychic-signature-accepted"):
            # CVE-2022-21449: the verifier follows the header's alg and never range-checks
            # r and s, so r = s = 0 satisfies its equation for any key
            return header, claims
        if key.alg != alg:
            raise jose.JOSEError("alg_not_allowed", f"key {kid!r} is for {key.alg}, not {alg}")
        if not signature and self.faults.active("empty-signature-accepted"):
            return header, claims  # `if signature: verify(...)`: nothing to verify, so valid
        try:
            key.verify(signature, signing_input)
        except jose.JOSEError:
            # a verify() that answers False instead of raising, its result never read; only
            # the signature's length is checked
            if not (self.faults.active("signature-result-ignored") and len(signature) == 64):
                raise
        return header, claims

    def _client(self) -> httpx.AsyncClient:
        if self.settings.http is not None:
            return self.settings.http()
        return httpx.AsyncClient(
            timeout=DEFAULT_TIMEOUT, follow_redirects=False, verify=tls_context()
        )

    async def _get_json(
        self, client: httpx.AsyncClient, url: str, *, guard: bool = True
    ) -> dict[str, Any]:
        try:
            if guard:
                self.settings.ssrf.check_url(url)
            answer = await client.get(url, headers={"Accept": "application/json"})
        except SSRFError as error:
            raise HTTPProblem(
                502, "orchestrator_unreachable", f"refused to fetch {url}: {error}"
            ) from None
        except httpx.HTTPError as error:
            raise HTTPProblem(
                502, "orchestrator_unreachable", f"GET {url} failed: {error}"
            ) from None
        if answer.status_code != 200:
            raise HTTPProblem(
                502, "orchestrator_unreachable", f"GET {url} answered {answer.status_code}"
            )
        return parse_json_object(answer.content)

    async def _orchestrator_meta(self, *, refresh: bool = False) -> dict[str, Any]:
        if refresh and self.faults.active("jwks-never-refetched"):
            refresh = False  # fetched once at first use, kept until a restart
        if self._orchestrator is None or refresh:
            issuer = self.settings.orchestrator_issuer
            async with self._client() as client:
                # OpenID Connect Discovery §4's rule: a terminating "/" goes before the suffix
                url = orchestrator_metadata_url(issuer)
                metadata = await self._get_json(client, url)
                announced = metadata.get("issuer")
                if self.faults.active("metadata-issuer-normalised"):
                    announced = str(announced).rstrip("/")
                    issuer = issuer.rstrip("/")
                if announced != issuer:  # exact, never normalised
                    raise HTTPProblem(
                        502, "orchestrator_unreachable", "orchestrator metadata issuer mismatch"
                    )
                jwks_uri = metadata.get("jwks_uri")
                if not isinstance(jwks_uri, str):
                    raise HTTPProblem(502, "orchestrator_unreachable", "metadata has no jwks_uri")
                # The metadata came from the trusted issuer's URL; what it names is not trusted
                # by that, so jwks_uri passes the SSRF guard like any URL taken from a message.
                guard = not self.faults.active("jwks-uri-unguarded")
                try:
                    keys = jose.parse_jwks(await self._get_json(client, jwks_uri, guard=guard))
                except jose.JOSEError as error:
                    raise HTTPProblem(
                        502, "orchestrator_unreachable", f"the orchestrator's JWKS: {error}"
                    ) from None
            self._orchestrator = {"metadata": metadata, "keys": keys}
        return self._orchestrator

    async def _orchestrator_keys(self, *, refresh: bool = False) -> dict[str, jose.PublicKey]:
        keys: dict[str, jose.PublicKey] = (await self._orchestrator_meta(refresh=refresh))["keys"]
        return keys

    async def _keys_to_verify(
        self, token: str | None, *, refresh: bool, trust_header_keys: bool = False
    ) -> dict[str, jose.PublicKey]:
        """The orchestrator's keys for an incoming token. Keys that cannot be had make the
        token unverifiable: 503 (try again), never a 502 or a pass (PRV-ATT-029)."""
        try:
            keys = await self._orchestrator_keys(refresh=refresh)
        except HTTPProblem as unavailable:
            if self.faults.active("metadata-failure-500"):
                raise HTTPProblem(500, "server_error", "internal server error") from None
            raise HTTPProblem(
                503,
                "orchestrator_unavailable",
                f"the orchestrator's keys cannot be had now: {unavailable.message}",
                headers={"Retry-After": "30"},
            ) from None
        if trust_header_keys and token:
            keys = {**keys, **await self._keys_named_by(token)}
        return keys

    async def _keys_named_by(self, token: str) -> dict[str, jose.PublicKey]:
        """The fault: keys a token names (jku) or carries (jwk) in its own header, trusted."""
        try:
            header = jose.unverified_parts(token)[0]
        except jose.JOSEError:
            return {}
        named: dict[str, jose.PublicKey] = {}
        if isinstance(header.get("jwk"), dict):
            named |= jose.parse_jwks({"keys": [header["jwk"]]})
        if isinstance(header.get("jku"), str):
            try:
                async with self._client() as client:
                    named |= jose.parse_jwks(await self._get_json(client, header["jku"]))
            except HTTPProblem:
                pass
        return named

    # --- discovery ------------------------------------------------------------------------------
    async def health(self, request: Request, raw: bytes, caller: _Caller) -> Response:
        versions = [self.params.api_version]
        if self.faults.active("health-wrong-versions"):
            versions = []
        return json_response({"supported_versions": versions, "status": "ok"})

    async def services(self, request: Request, raw: bytes, caller: _Caller) -> Response:
        entries = [
            entry.as_json(structured_price=self.next, currency=self.currency)
            for entry in catalog.SERVICES
        ]
        if self.faults.active("catalog-bad-pricing"):
            entries[1]["pricing"] = {"type": "expensive"}
        if self.faults.active("duplicate-service-ids"):
            # a legacy plan left in the catalog under the id of its successor
            entries.append({**entries[0], "description": "The legacy free plan."})
        if self.faults.active("catalog-duplicate-member"):
            # a template writes "id" first, then splices in the serialised entry, id included
            rendered = ",".join(
                '{"id":' + json.dumps(entry["id"]) + "," + json.dumps(entry)[1:]
                for entry in entries
            )
            return Response('{"data":[' + rendered + "]}", media_type="application/json")
        return json_response({"data": entries})

    async def jwks(self, request: Request, raw: bytes, caller: _Caller) -> Response:
        document = jose.jwks([self.signing_key])
        if self.faults.active("jwks-leaks-private-key"):
            # the rotated-out key is serialised whole, private half (d) included
            retired = self._retired_key.private
            assert isinstance(retired, ed25519.Ed25519PrivateKey)
            private = jose.b64url_encode(retired.private_bytes_raw())
            document["keys"].append({**self._retired_key.public_jwk(), "d": private})
        return json_response(document)

    async def resource_root(self, request: Request, raw: bytes, caller: _Caller) -> Response:
        account = self._bearer_account(request)
        return json_response({"resource": self.resource_id, "account": account})

    async def protected_resource_metadata(
        self, request: Request, raw: bytes, caller: _Caller
    ) -> Response:
        resource = self.resource_id
        if self.faults.active("prm-resource-mismatch"):
            resource = resource.rstrip("/") + "/other/"
        if self.faults.active("prm-resource-slash-differs"):
            # The classic near-miss: the same URL but for the trailing slash.
            resource = resource.rstrip("/") if resource.endswith("/") else resource + "/"
        document: dict[str, Any] = {
            "resource": resource,
            "authorization_servers": [self.issuer],
            "scopes_supported": self.granted_scope.split(),
            "bearer_methods_supported": ["header"],
            "jwks_uri": f"{self.base_url}jwks.json",
            "resource_name": self.settings.name,
        }
        if self.faults.active("prm-no-authorization-servers"):
            del document["authorization_servers"]
        if self.faults.active("prm-nulls-not-omitted"):
            # a metadata model dumped without exclude_none: every unset optional member is null
            document |= {"resource_documentation": None, "resource_policy_uri": None}
        return json_response(document)

    async def authorization_server_metadata(
        self, request: Request, raw: bytes, caller: _Caller
    ) -> Response:
        issuer = self.issuer + "/" if self.faults.active("as-issuer-mismatch") else self.issuer
        methods = ["S256", "plain"] if self.faults.active("as-metadata-lists-plain") else ["S256"]
        document = {
            "issuer": issuer,
            "authorization_endpoint": f"{self.base_url}oauth/authorize",
            "token_endpoint": f"{self.base_url}oauth/token",
            "revocation_endpoint": f"{self.base_url}oauth/revoke",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": methods,
            "scopes_supported": self.granted_scope.split(),
            # the orchestrator's APP-Attestation; public PKCE clients need none
            "token_endpoint_auth_methods_supported": ["app_attestation", "none"],
        }
        if self.faults.active("as-metadata-no-revocation-endpoint"):
            del document["revocation_endpoint"]
        return json_response(document)

    # --- accounts ----------------------------------------------------------------------------
    def _validate(self, message: str, body: dict[str, Any]) -> None:
        if not self.settings.verify_requests:
            return  # the suite's instrument: the orchestrator checks judge body shapes
        issues = self._schemas.validate(self.profile, message, body)
        if issues:
            first = issues[0]
            raise HTTPProblem(400, "invalid_request", f"{first.path or '/'}: {first.message}")

    def _account_request_precheck(self, raw: bytes) -> None:
        """0.1d: a body that is no valid account request is refused before its signature."""
        body = parse_json_object(raw)
        if body.get("code_challenge_method") != "plain" or not self.faults.active(
            "account-request-accepts-plain"
        ):
            self._validate("account_request", body)

    async def account_requests(self, request: Request, raw: bytes, caller: _Caller) -> Response:
        body = parse_json_object(raw)
        if "email" not in body and caller.email and self.faults.active("email-from-attestation"):
            body["email"] = caller.email  # fills the missing email in from the attestation
        checked = body
        if body.get("code_challenge_method") == "plain" and self.faults.active(
            "account-request-accepts-plain"
        ):
            checked = {**body, "code_challenge_method": "S256"}  # plain normalised, not refused
        self._validate("account_request", checked)
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
            and deadline <= self.clock.timestamp()
            and not self.faults.active("expires-at-ignored")
        ):
            raise HTTPProblem(400, "expired", "the account request has expired")
        challenge = body.get("code_challenge")
        if self.next:
            return await self._account_next(request_id, email, caller, challenge)
        account = self.state.account_by_email(email)
        if account is None:
            account = self.state.create_account(email, origin="orchestrator")
            self.state.link(f"stripe\x1f{email.casefold()}", account["id"])
        if self.state.linked_account(f"stripe\x1f{email.casefold()}") == account["id"]:
            code = self._code(account["id"], challenge=challenge, request_id=request_id)
            return json_response({"id": request_id, "type": "oauth", "oauth": {"code": code}})
        url = f"{self.base_url}oauth/authorize?" + urlencode(
            {"account_request": request_id, "login_hint": email}
        )
        self.state.store.put(
            "account_requests",
            request_id,
            {
                "account": account["id"],
                "challenge": challenge,
                "identity": f"stripe\x1f{email.casefold()}",
            },
        )
        answer: dict[str, Any] = {"url": url}
        if self.faults.active("requires-auth-without-url"):
            answer = {}
        return json_response({"id": request_id, "type": "requires_auth", "requires_auth": answer})

    async def _account_next(
        self, request_id: str, email: str, caller: _Caller, challenge: Any
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
        code = self._code(linked, challenge=challenge, request_id=request_id)
        return json_response({"id": request_id, "type": "oauth", "oauth": {"code": code}})

    def _challenge_header(
        self, error: str | None = None, description: str | None = None, *, metadata: bool = True
    ) -> str:
        params = []
        if metadata:
            params.append(f'resource_metadata="{self.prm_url}"')
        params.append(f'scope="{self.scope}"')
        if error:
            params.append(f'error="{error}"')
        if description:
            params.append(f'error_description="{description}"')
        return "Bearer " + ", ".join(params)

    def _consent_required(self, message: str) -> HTTPProblem:
        consent = self.params.error("consent_required")
        return HTTPProblem(
            consent.status,
            consent.code,
            message,
            headers={
                "WWW-Authenticate": self._challenge_header(
                    metadata=not self.faults.active("no-resource-metadata")
                )
            },
            extra={"resource_metadata": self.prm_url},
        )

    def _code(self, account_id: str, *, challenge: Any, request_id: str, **extra: Any) -> str:
        return self.state.issue_code(
            {
                "account": account_id,
                "challenge": challenge if isinstance(challenge, str) else None,
                "exp": self.clock.timestamp() + CODE_LIFETIME,
                "request": request_id,
                **extra,
            }
        )

    # --- OAuth: authorize (scripted consent), token, revoke ---------------------------------
    async def authorize(self, request: Request, raw: bytes, caller: _Caller) -> Response:
        params = dict(request.query_params)
        if self.next:
            return self._authorize_next(params)
        pending = self.state.store.get("account_requests", params.get("account_request", ""))
        if pending is None:
            raise HTTPProblem(400, "invalid_request", "unknown or used account_request")
        if request.method == "GET" and params.get("approve") != "1":
            return self._consent_page(params)
        self.state.store.delete("account_requests", params["account_request"])
        self.state.link(str(pending["identity"]), str(pending["account"]))
        challenge = pending["challenge"]
        if self.faults.active("consent-rebinds-pkce"):
            # the consent page starts a PKCE flow of its own and binds the code to it
            _, challenge = pkce_pair()
        code = self._code(
            str(pending["account"]),
            challenge=challenge,
            request_id=params["account_request"],
        )
        return json_response({"code": code, "account_request": params["account_request"]})

    def _consent_page(self, params: dict[str, str]) -> Response:
        action = "?" + urlencode({**params, "approve": "1"})
        return HTMLResponse(
            "<!doctype html><title>Consent</title><form method=post action='"
            + action.replace("'", "%27").replace("<", "%3C")
            + "'><p>Link this account to the orchestrator?</p><button>Allow</button></form>"
        )

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
        lenient = not self.settings.verify_requests
        if not self.faults.active("authorize-without-pkce") and not lenient:
            if not challenge or not 43 <= len(challenge) <= 128:
                raise HTTPProblem(400, "invalid_request", "code_challenge is required (PKCE S256)")
            if method != "S256" and not (
                method == "plain" and self.faults.active("pkce-plain-accepted")
            ):
                raise HTTPProblem(400, "invalid_request", "code_challenge_method must be S256")
        resource = params.get("resource")
        if resource is not None and resource != self.resource_id:
            raise HTTPProblem(
                400, "invalid_target", "resource is not this provider's resource identifier"
            )
        hint = params.get("login_hint", "")
        account = self.state.account_by_email(hint) if hint else None
        if account is None:
            raise HTTPProblem(400, "invalid_request", "login_hint names no account here")
        code = self._code(
            account["id"],
            challenge=challenge,
            request_id=params.get("state", ""),
            method=method or "S256",
            redirect_uri=redirect_uri,
            resource=resource,
            consented=True,
        )
        query = {"code": code, "iss": self.issuer}
        if self.faults.active("authorize-redirect-without-iss"):
            del query["iss"]
        if "state" in params:
            query["state"] = params["state"]
        separator = "&" if "?" in redirect_uri else "?"
        return RedirectResponse(redirect_uri + separator + urlencode(query), status_code=302)

    async def token(self, request: Request, raw: bytes, caller: _Caller) -> Response:
        form = parse_form(raw)
        signed = False
        if self.next:
            if request.headers.get(self.params.attestation_header):
                claims = await self._verify_attestation(
                    request.headers.get(self.params.attestation_header), raw
                )
                caller = _Caller(issuer=str(claims["iss"]), subject=str(claims["sub"]))
                signed = True
        elif request.headers.get(self.params.signature_header):
            self._verify_hmac(request, raw)
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

    def _grant_code(self, form: dict[str, str], caller: _Caller, signed: bool) -> Response:
        code = form.get("code", "")
        # The code is used up only once every check passed (PRV-CNS-015): a refused attempt
        # leaves it to the client that holds the right verifier.
        early = self.faults.active("failed-exchange-consumes-code")
        record = self.state.take_code(code) if early else self.state.peek_code(code)
        if record is None or int(record["exp"]) <= self.clock.timestamp():
            raise HTTPProblem(400, "invalid_grant", "the code is unknown, used or expired")
        # RFC 8707 §2: any token request naming another resource is refused, whichever way
        # the code was obtained.
        resource = form.get("resource")
        if (
            resource is not None
            and resource != self.resource_id
            and not self.faults.active("token-resource-ignored")
        ):
            raise HTTPProblem(400, "invalid_target", "resource is not this provider's identifier")
        verifier = form.get("code_verifier")
        challenge = record.get("challenge")
        if challenge and not self.faults.active("pkce-not-enforced"):
            if verifier is None:
                raise HTTPProblem(401, "invalid_grant", "code_verifier is required for this code")
            if not (43 <= len(verifier) <= 128 and set(verifier) <= _VERIFIER_CHARS):
                raise HTTPProblem(
                    400, "invalid_grant", "code_verifier is malformed (RFC 7636 §4.1)"
                )
            computed = s256(verifier)
            plain_ok = record.get("method") == "plain" and verifier == challenge
            if not hmac.compare_digest(computed, str(challenge)) and not plain_ok:
                raise HTTPProblem(
                    400, "invalid_grant", "code_verifier does not match the code_challenge"
                )
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
        if record.get("consented") and self.next and caller.issuer and caller.subject:
            self.state.link(f"{caller.issuer}\x1f{caller.subject}", str(record["account"]))
        tokens = self.state.issue_tokens(
            str(record["account"]),
            self.granted_scope,
            expires_at=self.clock.timestamp() + ACCESS_LIFETIME,
        )
        return json_response(
            {
                "token_type": "bearer",
                **tokens,
                "expires_in": ACCESS_LIFETIME,
                "scope": self.granted_scope,
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
            expires_at=self.clock.timestamp() + ACCESS_LIFETIME,
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

    async def revoke(self, request: Request, raw: bytes, caller: _Caller) -> Response:
        if self.next:
            if not self.faults.active("revocation-unauthenticated"):
                await self._verify_attestation(
                    request.headers.get(self.params.attestation_header), raw
                )
        else:
            self._verify_hmac(request, raw)
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

    # --- resources -------------------------------------------------------------------------------
    def _bearer_account(self, request: Request) -> str:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise self._unauthorized(None)
        record = self.state.access_token(token.strip())
        if record is None or int(record["exp"]) <= self.clock.timestamp():
            raise self._unauthorized("invalid_token", token.strip())
        if self.scope not in str(record["scope"]).split():
            status = 401 if self.faults.active("insufficient-scope-401") else 403
            raise HTTPProblem(
                status,
                "forbidden",
                "the token lacks the provisioning scope",
                headers={"WWW-Authenticate": self._challenge_header("insufficient_scope")},
            )
        return str(record["account"])

    def _unauthorized(self, error: str | None, presented: str | None = None) -> HTTPProblem:
        headers = {}
        if self.next:
            headers["WWW-Authenticate"] = self._challenge_header(
                error, metadata=not self.faults.active("unauthorized-without-metadata")
            )
        message = "a valid provider access token is required"
        if presented and self.faults.active("secret-in-error"):
            message += f" (got {presented})"
        return HTTPProblem(401, "unauthorized", message, headers=headers)

    async def create_resource(self, request: Request, raw: bytes, caller: _Caller) -> Response:
        if "authorization" not in request.headers and self.faults.active("create-without-bearer"):
            account = "acct_unowned"  # the route forgot its auth dependency
        else:
            account = self._bearer_account(request)
        body = parse_json_object(raw)
        if self.faults.active("crash-on-unknown-member") and set(body) - _RESOURCE_MEMBERS:
            # `ResourceRequest(**body)` raises TypeError, which no handler maps to a 4xx
            return Response("Internal Server Error", status_code=500, media_type="text/plain")
        checked = body
        if self.faults.active("non-spt-credentials-accepted"):
            # the request model types payment_credentials as a free-form object
            checked = {name: value for name, value in body.items() if name != "payment_credentials"}
        self._validate("resource_create_request", checked)
        entry = catalog.service(str(body["service_id"]))
        if entry is None:
            status = 404 if self.faults.active("unknown-service-404") else 400
            raise HTTPProblem(
                status, "unknown_service", f"no service {str(body['service_id'])[:64]!r}"
            )
        project = body.get("project_id")
        if isinstance(project, str):
            owner = self.state.project_owner(project)
            if owner is not None and owner[0] != account:
                held = self.state.resource(owner[1])
                if held is not None and self.faults.active("project-id-cross-account"):
                    return json_response(self._resource_view(held))  # looked up without owner
                raise HTTPProblem(
                    409, "project_id_conflict", "project_id is bound to another account"
                )
            existing_id = self.state.project_resource(account, project)
            if existing_id is not None and not self.faults.active("project-id-ignored"):
                existing = self.state.resource(existing_id)
                if existing is not None and existing["service_id"] == entry.id:
                    return json_response(self._resource_view(existing))
                raise HTTPProblem(
                    409, "project_id_conflict", "project_id is bound to another service"
                )
        resource_id = new_id("res")
        unpaid_allowed = self.faults.active("provision-without-payment")
        if entry.paid and not (unpaid_allowed and body.get("payment_credentials") is None):
            try:
                await self._charge(
                    body.get("payment_credentials"), entry, resource_id, project, caller.subject
                )
            except HTTPProblem as refused:
                if self.faults.active("refused-payment-leaves-resource"):
                    # the resource was written before billing ran, and stays
                    self._leave_behind(account, entry, resource_id, body, refused)
                raise
        resource: dict[str, Any] = {
            "id": resource_id,
            "account": account,
            "service_id": entry.id,
            "configuration": body.get("configuration") or {},
            "status": "complete",
            "api_key": None,
            "created": self.clock.timestamp(),
        }
        if entry.asynchronous:
            has_query = bool((body.get("configuration") or {}).get("domain_query"))
            resource["status"] = "pending" if has_query else "needs_information"
        if resource["status"] == "complete":
            resource["api_key"] = self.state.new_api_key(resource_id)
            if self.faults.active("initial-key-unregistered"):
                # the key answered at creation is minted but never stored; rotation stores its
                self.state.drop_api_key(resource["api_key"])
        self.state.save_resource(resource)
        if isinstance(project, str):
            self.state.bind_project(account, project, resource_id)
        # REST habit: 201 Created, where APP answers a new resource with 200
        status = 201 if self.faults.active("create-answers-201") else 200
        return json_response(self._resource_view(resource), status)

    def _leave_behind(
        self,
        account: str,
        entry: catalog.Service,
        resource_id: str,
        body: dict[str, Any],
        refused: HTTPProblem,
    ) -> None:
        resource = {
            "id": resource_id,
            "account": account,
            "service_id": entry.id,
            "configuration": body.get("configuration") or {},
            "status": "complete",
            "api_key": self.state.new_api_key(resource_id),
            "created": self.clock.timestamp(),
        }
        self.state.save_resource(resource)
        refused.extra["id"] = resource_id

    async def _charge(
        self,
        credentials: Any,
        entry: catalog.Service,
        resource_id: str,
        project: Any,
        subject: str | None = None,
    ) -> None:
        if not isinstance(credentials, dict):
            raise HTTPProblem(400, "requires_payment_credentials", f"{entry.id} is a paid service")
        if not self.next:
            token = credentials.get("stripe_payment_token")
            if credentials.get("type") != "stripe_payment_token" and self.faults.active(
                "non-spt-credentials-accepted"
            ):
                return  # taken as a payment method already on file
            if (
                credentials.get("type") == "stripe_payment_token"
                and isinstance(token, str)
                and token.startswith("spt_")
                and self.faults.active("spt-activated-after-provision")
            ):
                return  # activation runs after provisioning, and its failure is only logged
            if (
                credentials.get("type") != "stripe_payment_token"
                or not isinstance(token, str)
                or _SHARED_PAYMENT_TOKEN.fullmatch(token) is None
            ):
                raise HTTPProblem(
                    400, "billing_activation_failed", "the shared payment token was refused"
                )
            return
        token = credentials.get("app_payment_token")
        if credentials.get("type") != "app_payment_token" or not isinstance(token, str):
            raise HTTPProblem(
                400, "requires_payment_credentials", "an app_payment_token is required"
            )
        claims = await self._verify_payment_token(token, entry, project, subject)
        self.tokens.append(token)
        if self.faults.active("skip-redemption") or not self.settings.redeem:
            return
        await self._redeem(token, claims, entry, resource_id, project)

    async def _verify_payment_token(
        self, token: str, entry: catalog.Service, project: Any, subject: str | None = None
    ) -> dict[str, Any]:
        for attempt in range(2):
            keys = await self._keys_to_verify(
                token,
                refresh=attempt == 1,
                trust_header_keys=self.faults.active("payment-token-header-key-honoured"),
            )
            try:
                claims = self._payment_token_signature(token, keys)
                audience = self.resource_id
                if self.faults.active("payment-token-aud-unchecked"):
                    audience = _single_audience(claims)
                lifetime = self.params.payment_token_lifetime
                if self.faults.active("accept-long-lived-payment-token"):
                    lifetime = 86400  # only exp is checked; the 15-minute bound is forgotten
                jose.validate_claims(
                    claims,
                    issuer=self.settings.orchestrator_issuer,
                    audience=audience,
                    now=self.clock.timestamp(),
                    max_lifetime=lifetime,
                    require=(*PAYMENT_TOKEN_CLAIMS, "service_id"),
                )
                break
            except jose.JOSEError as error:
                if error.reason == "unknown_kid" and attempt == 0:
                    continue
                raise HTTPProblem(
                    400, "billing_activation_failed", f"payment token refused: {error}"
                ) from None
        amount = claims.get("max_amount")
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
            raise HTTPProblem(
                400, "billing_activation_failed", "max_amount must be an integer in minor units"
            )
        if claims.get("service_id") != entry.id and not self.faults.active(
            "payment-token-service-unchecked"
        ):
            raise HTTPProblem(
                400, "billing_activation_failed", "the payment token is for another service"
            )
        if claims.get("currency") != self.currency and not self.faults.active(
            "payment-token-currency-unchecked"
        ):
            raise HTTPProblem(
                400,
                "billing_activation_failed",
                f"the payment token's currency is not the price's ({self.currency})",
            )
        if (
            subject is not None
            and claims.get("sub") != subject
            and not self.faults.active("payment-token-sub-unchecked")
        ):
            raise HTTPProblem(
                400, "billing_activation_failed", "the payment token pays for another user"
            )
        if (
            project is not None
            and claims.get("project_id") != project
            and not self.faults.active("payment-token-project-unchecked")
        ):
            raise HTTPProblem(
                400, "billing_activation_failed", "the payment token is for another project"
            )
        if amount < entry.price and not self.faults.active("redeem-over-max-amount"):
            raise HTTPProblem(
                402,
                "amount_exceeds_token",
                f"{entry.id} costs {entry.price}; the token allows {amount}",
            )
        return claims

    def _payment_token_signature(
        self, token: str, keys: Mapping[str, jose.PublicKey]
    ) -> dict[str, Any]:
        typ = PAYMENT_TOKEN_TYP
        if self.faults.active("payment-token-typ-unchecked"):
            # whatever typ the token says it is
            header_typ = jose.unverified_parts(token)[0].get("typ")
            typ = header_typ if isinstance(header_typ, str) else PAYMENT_TOKEN_TYP
        try:
            _, claims = jose.verify_signature(
                token, keys=keys, algorithms=self.params.algorithms, typ=typ
            )
        except jose.JOSEError as error:
            if error.reason != "bad_signature" or not self.faults.active(
                "payment-signature-unchecked"
            ):
                raise
            # verify() answered, and nobody read the answer
            claims = jose.unverified_parts(token)[1]
        return claims

    async def _redeem(
        self,
        token: str,
        claims: dict[str, Any],
        entry: catalog.Service,
        resource_id: str,
        project: Any,
    ) -> None:
        endpoint = (await self._orchestrator_meta())["metadata"].get("redemption_endpoint")
        if not isinstance(endpoint, str):
            raise HTTPProblem(
                502, "orchestrator_unreachable", "orchestrator metadata has no redemption_endpoint"
            )
        body = {
            "payment_token": token,
            # the fault: a rounding that charges one minor unit less than the price
            "amount": entry.price - 1
            if self.faults.active("redeems-less-than-price")
            else entry.price,
            "currency": claims.get("currency", self.currency),
            "description": f"{self.settings.name} {entry.id}",
            "resource_id": resource_id,
        }
        raw = _canonical(body)
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json, application/problem+json",
        }
        if self.faults.active("idempotency-key-per-service"):
            # the key names the user and the service, not the payment: a second purchase
            # of the same service reuses the first one's key
            headers["Idempotency-Key"] = f"{claims.get('sub')}:{entry.id}"
        elif not self.faults.active("redeem-without-idempotency-key"):
            headers["Idempotency-Key"] = f"{claims['jti']}"
        if not self.faults.active("redeem-unsigned"):
            headers[self.params.attestation_header] = mint_attestation(
                self.signing_key,
                issuer=self.resource_id,
                audience=self.settings.orchestrator_issuer,
                subject=str(claims.get("sub", "")),
                body=raw,
                now=self.clock.timestamp(),
                lifetime=self.params.attestation_lifetime,
            )
        try:
            self.settings.ssrf.check_url(endpoint)
            async with self._client() as client:
                answer = await client.post(endpoint, content=raw, headers=headers)
        except (SSRFError, httpx.HTTPError) as error:
            raise HTTPProblem(
                502, "orchestrator_unreachable", f"redemption failed: {error}"
            ) from None
        if answer.status_code in (200, 201):
            return
        if answer.status_code >= 500 and self.faults.active("provision-on-redemption-error"):
            log.info("redemption failed (%s); provisioning now, charging later", answer.status_code)
            return
        try:
            refusal = parse_json_object(answer.content)
        except HTTPProblem:
            refusal = {}
        code = (
            refusal.get("code")
            if isinstance(refusal.get("code"), str)
            else "billing_activation_failed"
        )
        cap_code = self.params.error("spend_cap_exceeded")
        if code == cap_code.code:
            if self.faults.active("provision-on-cap-refusal"):
                return
            raise HTTPProblem(
                cap_code.status,
                cap_code.code,
                "the orchestrator refused the charge: the spend cap is reached",
                extra={"cap": refusal["cap"]} if isinstance(refusal.get("cap"), dict) else None,
            )
        raise HTTPProblem(
            402, str(code), f"the orchestrator refused the redemption ({answer.status_code})"
        )

    def _owned(self, request: Request) -> dict[str, Any]:
        account = self._bearer_account(request)
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

    def _resource_view(self, resource: dict[str, Any]) -> dict[str, Any]:
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
                    "base_url": f"{self.base_url}api/",
                }
            }
            if self.faults.active("credential-values-not-strings"):
                # the provider's numeric project id, serialised as a number
                view["complete"]["access_configuration"]["project_id"] = 12345
            if self.faults.active("complete-expires-at-integer"):
                # a Unix timestamp where the schema wants an RFC 3339 date-time
                view["complete"]["expires_at"] = self.clock.timestamp() + 86400
        elif status == "pending":
            view["pending"] = {"message": "registering the domain"}
        elif status == "needs_information":
            view["needs_information"] = {
                "message": "which domain should be registered?",
                "schema": catalog.service(resource["service_id"]).configuration_schema,  # type: ignore[union-attr]
            }
        return view

    async def get_resource(self, request: Request, raw: bytes, caller: _Caller) -> Response:
        resource = self._owned(request)
        if (
            resource["status"] == "pending"
            and self.clock.timestamp() - int(resource["created"]) >= PENDING_SECONDS
        ):
            resource["status"] = "complete"
            resource["api_key"] = self.state.new_api_key(resource["id"])
            self.state.save_resource(resource)
        return json_response(self._resource_view(resource))

    async def resource_action(self, request: Request, raw: bytes, caller: _Caller) -> Response:
        action = request.path_params["action"]
        if action not in ("rotate_credentials", "update_service", "remove"):
            raise HTTPProblem(404, "not_found", f"unknown resource action {action[:40]!r}")
        resource = self._owned(request)
        body = parse_json_object(raw) if raw.strip() else {}
        message = f"{action}_request"
        self._validate(message, body)
        if action == "rotate_credentials":
            if resource["status"] != "complete":
                raise HTTPProblem(
                    400, "invalid_request", "only a complete resource has credentials"
                )
            if resource["api_key"] and not self.faults.active("rotation-keeps-old-key"):
                self.state.drop_api_key(resource["api_key"])
            resource["api_key"] = self.state.new_api_key(resource["id"])
        elif action == "update_service":
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
                raise HTTPProblem(
                    400, "invalid_request", f"{current.id} cannot change to {target.id}"
                )
            if target.paid and not self.faults.active("provision-without-payment"):
                await self._charge(
                    body.get("payment_credentials"), target, resource["id"], None, caller.subject
                )
            resource["service_id"] = target.id
        else:
            if self.faults.active("removed-resource-still-served"):
                # answers "removed" but changes nothing: the resource keeps being served
                return json_response(
                    {
                        "status": "removed",
                        "id": resource["id"],
                        "service_id": resource["service_id"],
                    }
                )
            if resource["api_key"] and not self.faults.active("remove-keeps-credentials"):
                self.state.drop_api_key(resource["api_key"])
            resource["status"] = "removed"
            resource["api_key"] = None
            self.state.save_resource(resource)
            return json_response(
                {"status": "removed", "id": resource["id"], "service_id": resource["service_id"]}
            )
        self.state.save_resource(resource)
        return json_response(self._resource_view(resource))

    async def deep_links(self, request: Request, raw: bytes, caller: _Caller) -> Response:
        account = self._bearer_account(request)
        body = parse_json_object(raw)
        self._validate("deep_link_request", body)
        lifetime = 86400 if self.faults.active("deep-link-long-lived") else DEEP_LINK_LIFETIME
        expires = self.clock.timestamp() + lifetime
        login = secrets.token_urlsafe(16)
        self.state.store.put(DEEP_LINKS, login, {"account": account, "exp": expires})
        url = f"{self.base_url}dashboard?login=" + login
        return json_response({"url": url, "expires_at": iso_utc(expires)})

    async def dashboard(self, request: Request) -> Response:
        """Where a deep link lands, in a browser: the login token signs in once (a session
        cookie, then the dashboard); used, expired or unknown, it goes to the login page."""
        login = request.query_params.get("login", "")
        link = self.state.store.get(DEEP_LINKS, login) if login else None
        if link is not None and not self.faults.active("deep-link-reusable"):
            self.state.store.delete(DEEP_LINKS, login)
        if link is None or int(link["exp"]) <= self.clock.timestamp():
            return RedirectResponse(f"{self.base_url}dashboard/login?error=link_used", 302)
        answer = RedirectResponse(f"{self.base_url}dashboard/home", 302)
        answer.set_cookie("mock_session", secrets.token_urlsafe(16), httponly=True)
        return answer

    # --- the provider API the credentials unlock -----------------------------------------
    async def whoami(self, request: Request, raw: bytes, caller: _Caller) -> Response:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        resource_id = (
            self.state.api_key_resource(key.strip()) if scheme.lower() == "bearer" else None
        )
        if resource_id is None:
            raise HTTPProblem(401, "unauthorized", "a valid API key is required")
        resource = self.state.resource(resource_id)
        assert resource is not None
        return json_response({"resource_id": resource_id, "service_id": resource["service_id"]})


def _canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()


def _parse_time(value: str) -> int | None:
    try:
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return None


_RESOURCE_MEMBERS = frozenset(
    {"service_id", "project_id", "configuration", "label_prefix", "payment_credentials"}
)
"""The members resource_create_request models (what the crash-on-unknown-member fault's
typed model accepts)."""


def _lenient_parts(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    """The duplicate-claims-last-wins fault: a JWS split and parsed with Python's json, where
    a repeated member silently keeps its last value."""
    parts = token.split(".") if isinstance(token, str) else []
    if len(parts) != 3:
        raise jose.JOSEError("malformed", "compact JWS has 3 segments")
    try:
        header = json.loads(jose.b64url_decode(parts[0]))
        claims = json.loads(jose.b64url_decode(parts[1]))
    except ValueError:
        raise jose.JOSEError("malformed", "header or claims are not JSON") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise jose.JOSEError("malformed", "header and claims must be JSON objects")
    return header, claims, jose.b64url_decode(parts[2])


def _single_audience(claims: Mapping[str, Any]) -> str:
    aud = claims.get("aud")
    if isinstance(aud, list) and len(aud) == 1:
        aud = aud[0]
    return aud if isinstance(aud, str) else ""
