"""The mock orchestrator's HTTP side: issuer metadata, JWKS, redemption and refund.

DESIGN.md §2 (app-next, items 3 to 5). The provider redeems a payment token by calling
`redemption_endpoint`, signed with its own key (`APP-Attestation`, `aud` = this issuer) and
carrying an `Idempotency-Key`. The orchestrator checks, in this order: key present, caller
attestation, idempotency record, body shape, payment token (signature, `iss`, `aud` = the
calling provider, expiry, single use), amount and currency against the token, then the spend
cap — the last three and the recording of the redemption inside one store transaction, so
concurrent redemptions cannot overshoot the cap or use one token twice. Processing runs in
worker threads, so that guarantee rests on the store's transaction, as it would in a real
deployment, and not on the event loop happening to run one handler at a time. Errors are RFC 9457
problem documents with a `code` member (schemas/app-next/problem.schema.json).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio.to_thread
import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from starlette.applications import Starlette
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mocks._core.http import HTTPProblem, json_response, parse_json_object, read_body
from mocks._core.network import DEFAULT_TIMEOUT
from mocks._core.replay import ReplayCache
from mocks._core.store import MemoryStore, Store
from mocks.faults import FaultSet
from mocks.orchestrator._idempotency import Begun, Conflict, IdempotencyLedger, InFlight, Replay
from mocks.orchestrator.engine import Orchestrator
from mocks.orchestrator.ledger import CapExceeded, SpendLedger
from spec.profiles import Profile, ProfileParameters
from spec.schemas import default_store
from wire import jose, strictjson
from wire.attestation import PAYMENT_TOKEN_CLAIMS, PAYMENT_TOKEN_TYP, verify_attestation
from wire.clock import Clock, SystemClock, iso_utc
from wire.envelopes import PROBLEM_JSON, problem
from wire.ssrf import FetchError, FetchLimits, SSRFGuard, fetch_document
from wire.tls import tls_context
from wire.urls import orchestrator_metadata_url, prm_url

__all__ = ["OrchestratorMock", "OrchestratorSettings"]

log = logging.getLogger("provspec.mock.orchestrator")

_REDEEMED = "redeemed_tokens"
_REDEMPTIONS = "redemptions"
_KEYS = "orchestrator_keys"
_MINTED = "minted_tokens"
_KEY_FETCH = FetchLimits(max_bytes=64 * 1024, timeout=4.0)
"""A caller's RFC 9728 metadata and JWKS: both fetches within 4 s, each at most 64 KiB."""
_LEGACY_RSA_JWK = {
    "kty": "RSA",
    "kid": "legacy-rs256",
    "alg": "RS256",
    "use": "sig",
    "e": "AQAB",
    "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIR"
    "ROSBigeC5yjU1hGzHHyXss8UDprecbAaxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJ"
    "QbEGs4M6pDEbBhq1eInhnNc_bLWJvyZRvfxHYiSmYd4gpISqh_vR8oUjl15O_7Fdb4uQ6Ylav6UPxw",
}
"""The jwks-rsa-key fault's extra key: an RS256 key left over from a migration."""


@dataclass
class OrchestratorSettings:
    profile: Profile | str = "app-next"
    """The profile object (a name or a draft's path is resolved on construction): header
    names, lifetimes, algorithms, the default cap and error codes come from its parameters."""
    issuer: str = "http://orchestrator.mock"
    default_limit: int | None = None
    """None: the profile's [parameters.default_cap] limit."""
    faults: tuple[str, ...] = ()
    clock: Clock = field(default_factory=SystemClock)
    store: Store = field(default_factory=MemoryStore)
    http: Callable[[], httpx.AsyncClient] | None = None
    ssrf: SSRFGuard = field(default_factory=lambda: SSRFGuard(allow_loopback=True))
    key_fetch: FetchLimits = field(default_factory=lambda: _KEY_FETCH)
    """What loading a caller's keys (its RFC 9728 metadata, then its JWKS) may cost."""
    before_charge: Callable[[], Awaitable[None]] | None = None
    """Awaited after a redemption takes its idempotency key and before it charges: the seam
    tests use to hold a request "in flight" without sleeping."""

    def __post_init__(self) -> None:
        self.spec: Profile = (
            default_store().profile(self.profile) if isinstance(self.profile, str) else self.profile
        )
        self.params: ProfileParameters = self.spec.params
        if self.default_limit is None:
            self.default_limit = self.params.default_cap.limit
        parts = urlsplit(self.issuer)
        if (
            parts.scheme not in ("http", "https")
            or not parts.netloc
            or parts.query
            or parts.fragment
        ):
            raise ValueError(
                f"issuer must be an http(s) URL without query or fragment: {self.issuer!r}"
            )


class OrchestratorMock:
    def __init__(self, settings: OrchestratorSettings | None = None) -> None:
        self.settings = settings = settings or OrchestratorSettings()
        self.issuer = settings.issuer
        self.spec = settings.spec
        self.params = settings.params
        self.faults = FaultSet("orchestrator", settings.spec.family, settings.faults)
        # The metadata-issuer-mismatch fault is a misconfigured issuer (a stray trailing slash)
        # used consistently, as a real deployment would: in metadata, attestations and tokens.
        self.announced_issuer = (
            self.issuer + "/" if self.faults.active("metadata-issuer-mismatch") else self.issuer
        )
        if self.faults.active("issuer-with-fragment"):
            self.announced_issuer = self.issuer + "#main"
        self.clock = settings.clock
        self.store = settings.store
        self.ledger = SpendLedger(
            settings.store,
            settings.clock,
            default_limit=self.params.default_cap.limit + 500
            if self.faults.active("cap-default-limit-wrong")
            else settings.default_limit,
            currency=self.params.default_cap.currency,
            atomic=not self.faults.active("cap-not-atomic"),
            shared_across_providers=self.faults.active("cap-shared-across-providers"),
            # a server keeping the month in its local time zone, UTC+1
            month_offset_seconds=3600 if self.faults.active("cap-month-in-local-time") else 0,
            exact_limit_refused=self.faults.active("cap-exact-limit-refused"),
            resets_early_by=1 if self.faults.active("cap-resets-at-month-end") else 0,
            report_summed=self.faults.active("billing-sums-providers"),
        )
        if self.faults.active("cap-charges-expired-tokens"):
            self.ledger.holds = self._expired_unredeemed
        self.idempotency = IdempotencyLedger(settings.store, settings.clock)
        self.replay = ReplayCache(settings.store, table="seen_provider_jti")
        self.signing_key = self._load_or_make_key()
        self.metadata_url = orchestrator_metadata_url(self.issuer)
        self.jwks_url = f"{self.issuer}/jwks.json"
        self.redemption_endpoint = f"{self.issuer}/redemptions"
        self.refund_endpoint = f"{self.issuer}/refunds"
        self._provider_keys: dict[str, dict[str, jose.PublicKey]] = {}
        self._schemas = default_store()
        self.app = self._build()

    def payment_keys(self) -> dict[str, jose.PublicKey]:
        """The keys a payment token may be signed with: the published one, and under the
        payment-token-unpublished-key fault a second key the JWKS never shows (ORC-PAY-002)."""
        keys = {self.signing_key.kid: self.signing_key.public_key()}
        if self.faults.active("payment-token-unpublished-key"):
            hidden = self.unpublished_key()
            keys[hidden.kid] = hidden.public_key()
        return keys

    def unpublished_key(self) -> jose.SigningKey:
        """A key derived from the signing key and never published (the fault's key)."""
        raw = self.signing_key.private.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        seed = hashlib.sha256(raw + b"unpublished").digest()
        private = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
        kid = self.signing_key.kid + "-unpublished"
        return jose.SigningKey(kid=kid, alg="EdDSA", private=private)

    def _load_or_make_key(self) -> jose.SigningKey:
        """One signing key per state: a served sandbox keeps it across a restart, so tokens
        minted before the restart still verify. It lives only in the state file. Processes
        that start at once on one new file agree on one key (`Store.setdefault`)."""
        stored = self.store.get(_KEYS, "current")
        if stored is None:
            key = jose.generate_key("EdDSA")
            pem = key.private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ).decode()
            stored = self.store.setdefault(
                _KEYS, "current", {"kid": key.kid, "alg": key.alg, "pem": pem}
            )
        private = serialization.load_pem_private_key(stored["pem"].encode(), password=None)
        return jose.SigningKey(kid=stored["kid"], alg=stored["alg"], private=private)  # type: ignore[arg-type]

    # --- app ---------------------------------------------------------------------------------
    def _build(self) -> Starlette:
        path = urlsplit(self.issuer).path.rstrip("/")
        routes = [
            Route(
                f"{path}/.well-known/app-orchestrator", self._wrap(self.metadata), methods=["GET"]
            ),
            Route(f"{path}/jwks.json", self._wrap(self.jwks), methods=["GET"]),
            Route(f"{path}/redemptions", self._wrap(self.redeem), methods=["POST"]),
            Route(f"{path}/refunds", self._wrap(self.refund), methods=["POST"]),
            Route(f"{path}/oauth/callback", self._wrap(self.consent_callback), methods=["GET"]),
        ]
        handlers: dict[Any, Any] = {StarletteHTTPException: self._http_exception}
        return Starlette(routes=routes, exception_handlers=handlers)

    async def _http_exception(self, request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "invalid_request")
        return json_response(
            problem(exc.status_code, code, str(exc.detail)),
            exc.status_code,
            media_type=PROBLEM_JSON,
        )

    def _wrap(
        self, handler: Callable[[Request], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)
            except HTTPProblem as error:
                return self._problem(error)
            except Exception:
                log.exception("mock orchestrator failed on %s %s", request.method, request.url.path)
                return self._problem(
                    HTTPProblem(500, "server_error", "the mock orchestrator failed")
                )

        return endpoint

    def _problem(self, error: HTTPProblem) -> Response:
        body = problem(error.status, error.code, error.message)
        body.update(error.extra)
        return json_response(body, error.status, error.headers, media_type=PROBLEM_JSON)

    # --- consent -------------------------------------------------------------------------------
    async def consent_callback(self, request: Request) -> Response:
        """The redirect URI the human's browser returns to after approving at a provider."""
        query = parse_qs(request.url.query, keep_blank_values=True)
        if "error" in query:
            raise HTTPProblem(400, "consent_denied", f"the provider answered {query['error'][0]}")
        async with httpx.AsyncClient(
            timeout=10, follow_redirects=False, verify=tls_context()
        ) as http:
            connection = await Orchestrator(self, http).complete_consent(query)
        return json_response({"connected": True, "scope": connection.get("scope")})

    # --- discovery -------------------------------------------------------------------------------
    async def metadata(self, request: Request) -> Response:
        return json_response(
            {
                "issuer": self.announced_issuer,
                "jwks_uri": self.jwks_url,
                "redemption_endpoint": self.redemption_endpoint,
                "refund_endpoint": self.refund_endpoint,
                "attestation_signing_alg_values_supported": [self.signing_key.alg],
            },
            media_type="text/plain"
            if self.faults.active("metadata-text-plain")
            else "application/json",
        )

    async def jwks(self, request: Request) -> Response:
        document = jose.jwks([self.signing_key])
        if self.faults.active("jwks-private-key-leak"):
            raw = self.signing_key.private.private_bytes(
                serialization.Encoding.Raw,
                serialization.PrivateFormat.Raw,
                serialization.NoEncryption(),
            )
            document["keys"][0]["d"] = jose.b64url_encode(raw)
        if self.faults.active("jwks-rsa-key"):
            document["keys"].append(dict(_LEGACY_RSA_JWK))
        if self.faults.active("jwks-junk-entry"):
            keys: list[Any] = document["keys"]
            keys.append("legacy-signing-key")
        return json_response(document)

    # --- the calling provider ------------------------------------------------------------
    def _client(self) -> httpx.AsyncClient:
        if self.settings.http is not None:
            return self.settings.http()
        return httpx.AsyncClient(
            timeout=DEFAULT_TIMEOUT, follow_redirects=False, verify=tls_context()
        )

    async def provider_keys(
        self, provider: str, *, refresh: bool = False
    ) -> dict[str, jose.PublicKey]:
        """The provider's signing keys, from the `jwks_uri` of its RFC 9728 metadata."""
        if provider in self._provider_keys and not refresh:
            return self._provider_keys[provider]
        unverifiable = HTTPProblem(
            401,
            "invalid_signature",
            "cannot verify the caller: no signing keys could be loaded from the RFC 9728 "
            "metadata its iss names",
        )
        guard, limits = self.settings.ssrf, self.settings.key_fetch
        try:
            with anyio.fail_after(limits.timeout):  # both fetches together, not each
                keys = await self._fetch_keys(provider, guard, limits)
        except TimeoutError:
            log.info(
                "caller keys not loaded for %.200r: no answer within %s s", provider, limits.timeout
            )
            raise unverifiable from None
        except (FetchError, HTTPProblem, ValueError) as error:
            # One answer for every way the fetch fails: the caller chose the URL, so the
            # answer must not tell it what is listening where. The operator's log says why.
            detail = error.detail if isinstance(error, FetchError) else str(error)
            log.info("caller keys not loaded for %.200r: %.300s", provider, detail)
            raise unverifiable from None
        self._provider_keys[provider] = keys
        return keys

    async def _fetch_keys(
        self, provider: str, guard: SSRFGuard, limits: FetchLimits
    ) -> dict[str, jose.PublicKey]:
        async with self._client() as client:
            metadata_url = prm_url(provider)
            metadata = parse_json_object(await fetch_document(client, metadata_url, guard, limits))
            if metadata.get("resource") != provider:
                raise FetchError("resource", "the metadata's resource is not the caller")
            jwks_uri = metadata.get("jwks_uri")
            if not isinstance(jwks_uri, str):
                raise FetchError("jwks_uri", "the metadata names no jwks_uri")
            document = await fetch_document(client, jwks_uri, guard, limits)
            return jose.parse_jwks(parse_json_object(document))

    async def _caller(self, request: Request, raw: bytes) -> str:
        header = self.params.attestation_header
        token = request.headers.get(header)
        if self.faults.active("redemption-unsigned-accepted"):
            try:
                _, claims, _ = jose.unverified_parts(token or "")
                return str(claims.get("iss", ""))
            except jose.JOSEError:
                return ""
        if not token:
            raise HTTPProblem(401, "invalid_signature", f"no {header} header")
        try:
            _, unverified, _ = jose.unverified_parts(token)
        except jose.JOSEError as error:
            raise HTTPProblem(401, "invalid_signature", f"attestation refused: {error}") from None
        caller = unverified.get("iss")
        if not isinstance(caller, str) or not caller.startswith(("http://", "https://")):
            raise HTTPProblem(
                401, "invalid_signature", "the attestation's iss is not a provider URL"
            )
        for attempt in range(2):
            keys = await self.provider_keys(caller, refresh=attempt == 1)
            try:
                # Off the event loop: the replay cache takes the store's lock.
                await anyio.to_thread.run_sync(
                    partial(
                        verify_attestation,
                        token,
                        keys=keys,
                        issuer=caller,
                        audience=self.issuer,
                        body=raw,
                        now=self.clock.timestamp(),
                        replay=self.replay,
                        check_audience=not self.faults.active(
                            "redemption-attestation-any-audience"
                        ),
                        max_lifetime=self.params.attestation_lifetime,
                        algorithms=self.params.algorithms,
                        header_name=header,
                    ),
                )
                return caller
            except jose.JOSEError as error:
                if error.reason == "unknown_kid" and attempt == 0:
                    continue
                raise HTTPProblem(
                    401, "invalid_signature", f"attestation refused: {error}"
                ) from None
        raise AssertionError("unreachable")

    # --- redemption ------------------------------------------------------------------------
    async def redeem(self, request: Request) -> Response:
        return await self._money(request, "redemptions", self._process_redemption)

    async def refund(self, request: Request) -> Response:
        if self.faults.active("refund-endpoint-missing"):
            # The metadata still names refund_endpoint: false advertising.
            return json_response({"error": "not_found"}, 404)
        return await self._money(request, "refunds", self._process_refund)

    async def _money(
        self,
        request: Request,
        endpoint: str,
        process: Callable[[str, dict[str, Any]], tuple[int, dict[str, Any]]],
    ) -> Response:
        try:
            return await self._idempotent(request, endpoint, process)
        except HTTPProblem as error:
            response = self._problem(error)
            if self.faults.active("redemption-errors-plain-json"):
                response.headers["content-type"] = "application/json"
            return response

    def _parse_money_body(self, raw: bytes, endpoint: str) -> dict[str, Any]:
        """The request body, strictly parsed and checked against its schema (400 otherwise)."""
        if self.faults.active("redemption-deep-body-crashes"):
            # "validates" with a recursive parser that has no depth limit first
            try:
                json.loads(raw)
            except RecursionError:
                raise HTTPProblem(500, "server_error", "the mock orchestrator failed") from None
            except ValueError:
                pass
        try:
            body = parse_json_object(raw)
        except HTTPProblem:
            loose = _last_duplicate_wins(raw)
            if loose is None or not self.faults.active("redemption-duplicate-keys-last-wins"):
                raise
            body = loose
        if endpoint == "redemptions":
            currency = body.get("currency")
            if isinstance(currency, str) and self.faults.active(
                "redemption-currency-case-insensitive"
            ):
                body["currency"] = currency.strip().lower()
            if "currency" not in body and self.faults.active("redemption-currency-defaults"):
                body["currency"] = self.ledger.currency
        message = "redemption_request" if endpoint == "redemptions" else "refund_request"
        issues = self._schemas.validate(self.spec.name, message, body)
        if (
            endpoint == "redemptions"
            and body.get("amount") == 0
            and self.faults.active("redemption-zero-amount-accepted")
        ):
            issues = [issue for issue in issues if issue.path != "/amount"]
        if issues:
            raise HTTPProblem(
                400, "invalid_request", f"{issues[0].path or '/'}: {issues[0].message}"
            )
        return body

    async def _idempotent(
        self,
        request: Request,
        endpoint: str,
        process: Callable[[str, dict[str, Any]], tuple[int, dict[str, Any]]],
    ) -> Response:
        raw = await read_body(request)
        key = request.headers.get("idempotency-key")
        if key is None and not self.faults.active("idempotency-key-optional"):
            raise HTTPProblem(
                400, "idempotency_key_required", "the Idempotency-Key header is required"
            )
        if (
            key is not None
            and not 1 <= len(key) <= 255
            and not (self.faults.active("idempotency-key-length-unchecked") and key)
        ):
            raise HTTPProblem(400, "invalid_request", "Idempotency-Key must be 1 to 255 characters")
        caller = await self._caller(request, raw)
        content_type = request.headers.get("content-type")
        media = (content_type or "").split(";", 1)[0].strip().lower()
        if media != "application/json" and not self.faults.active("redemption-any-content-type"):
            shown = "none" if content_type is None else repr(media[:100])
            raise HTTPProblem(
                415, "unsupported_media_type", f"the body must be application/json, not {shown}"
            )
        body = self._parse_money_body(raw, endpoint)
        # Keys are scoped to the authenticated caller (draft-ietf-httpapi-idempotency-key-header
        # §2: a composite key), so one provider can never replay another's answer.
        scope = "" if self.faults.active("idempotency-keys-not-scoped") else caller
        if key is None:
            status, answer = await anyio.to_thread.run_sync(process, caller, body)
            return self._answer(status, answer)
        replay_charges = self.faults.active("replay-double-charges")
        outcome = await anyio.to_thread.run_sync(self.idempotency.begin, scope, endpoint, key, raw)
        if isinstance(outcome, Conflict) and not self.faults.active("idempotency-conflict-ignored"):
            raise HTTPProblem(
                422, "idempotency_conflict", "this Idempotency-Key was used with another body"
            )
        if isinstance(outcome, InFlight):
            if self.faults.active("idempotency-in-flight-reprocessed"):
                status, answer = await anyio.to_thread.run_sync(process, caller, body)
                return self._answer(status, answer)
            raise _in_flight()
        if isinstance(outcome, Replay):
            if replay_charges:  # the original answer, replayed, and its amount charged again
                await anyio.to_thread.run_sync(self._charge_again, outcome.body)
            return self._answer(outcome.status, outcome.body, replayed=True)
        if not isinstance(outcome, Begun):
            # idempotency-conflict-ignored: processed again, nothing recorded.
            status, answer = await anyio.to_thread.run_sync(process, caller, body)
            return self._answer(status, answer)
        try:
            if self.settings.before_charge is not None:
                await self.settings.before_charge()
            # The charge, the redemption record and the recorded answer commit together.
            settled = await anyio.to_thread.run_sync(
                partial(
                    self.idempotency.settle,
                    scope,
                    endpoint,
                    key,
                    raw,
                    partial(process, caller, body),
                    transaction=self._redemption_transaction,
                )
            )
        except BaseException:
            # Nothing was recorded under the key: release it so the request can be retried.
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self.idempotency.abandon, scope, endpoint, key)
            raise
        if isinstance(settled, InFlight):
            raise _in_flight()
        return self._answer(settled.status, settled.body, replayed=settled.replayed)

    def _charge_again(self, answer: dict[str, Any]) -> None:
        """The replay-double-charges fault: a replayed redemption charges its amount again."""
        record = self.store.get(_REDEMPTIONS, str(answer.get("id")))
        if record is not None:
            with contextlib.suppress(CapExceeded):
                self.ledger.charge(record["user"], record["provider"], int(record["amount"]))

    def _answer(self, status: int, body: dict[str, Any], *, replayed: bool = False) -> Response:
        headers = {"Idempotent-Replayed": "true"} if replayed else {}
        media = PROBLEM_JSON if status >= 400 else "application/json"
        return json_response(body, status, headers, media_type=media)

    def _verify_payment_token(self, token: str, caller: str) -> dict[str, Any]:
        try:
            header, unverified, _ = jose.unverified_parts(token)
            if header.get("alg") == "none" and self.faults.active(
                "redemption-token-alg-none-accepted"
            ):
                claims = unverified
            else:
                _, claims = jose.verify_signature(
                    token,
                    keys=self.payment_keys(),
                    algorithms=self.params.algorithms,
                    typ=PAYMENT_TOKEN_TYP,
                )
            jose.validate_claims(
                claims,
                issuer=self.announced_issuer,
                audience=claims.get("aud")
                if self.faults.active("redemption-any-audience")
                else caller,  # type: ignore[arg-type]
                now=self.clock.timestamp(),
                leeway=10**9 if self.faults.active("redemption-accepts-expired") else 30,
                max_lifetime=10**9
                if self.faults.active("redemption-accepts-expired")
                else self.params.payment_token_lifetime,
                require=PAYMENT_TOKEN_CLAIMS,
            )
        except jose.JOSEError as error:
            code = "payment_token_expired" if error.reason == "expired" else "payment_token_invalid"
            raise HTTPProblem(402, code, f"payment token refused: {error}") from None
        # Signed by this orchestrator is not well formed: a token minted with a bad value
        # (or by a faulty minting path) is refused like any other invalid token, never a 500.
        max_amount, currency = claims.get("max_amount"), claims.get("currency")
        if isinstance(max_amount, bool) or not isinstance(max_amount, int) or max_amount < 0:
            raise HTTPProblem(
                402,
                "payment_token_invalid",
                "payment token refused: max_amount is not a non-negative integer in minor units",
            )
        if not isinstance(currency, str):
            raise HTTPProblem(
                402, "payment_token_invalid", "payment token refused: currency is not a string"
            )
        return claims

    def minted(self, claims: dict[str, Any]) -> None:
        """Told of every payment token the engine mints (only the fault below keeps them)."""
        if self.faults.active("cap-charges-expired-tokens"):
            self.store.put(
                _MINTED,
                str(claims["jti"]),
                {k: claims.get(k) for k in ("sub", "aud", "exp", "max_amount")},
            )

    def _expired_unredeemed(self, user: str, provider: str, period: str) -> int:
        """The cap-charges-expired-tokens fault: tokens that expired unredeemed in `period`
        count against the cap at their max_amount, as if the orchestrator captured them."""
        now = self.clock.timestamp()
        total = 0
        for jti, token in self.store.items(_MINTED):
            exp = token.get("exp")
            if (
                token.get("sub") == user
                and token.get("aud") == provider
                and isinstance(exp, int)
                and exp <= now
                and iso_utc(exp)[:7] == period
                and self.store.get(_REDEEMED, jti) is None
            ):
                total += int(token.get("max_amount") or 0)
        return total

    def _redemption_transaction(self) -> AbstractContextManager[Any]:
        # The cap-not-atomic fault drops the transaction that makes check-and-charge one step.
        if self.faults.active("cap-not-atomic"):
            return nullcontext()
        transaction: AbstractContextManager[Any] = self.store.transaction()
        return transaction

    def _process_redemption(self, caller: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        claims = self._verify_payment_token(str(body["payment_token"]), caller)
        amount, currency = int(body["amount"]), str(body["currency"])
        if amount > int(claims["max_amount"]) and not self.faults.active(
            "redemption-over-max-amount"
        ):
            raise HTTPProblem(
                402,
                "amount_exceeds_token",
                f"{amount} exceeds the token's max_amount {claims['max_amount']}",
            )
        if currency != claims["currency"] and not self.faults.active(
            "redemption-currency-mismatch"
        ):
            raise HTTPProblem(
                402,
                "currency_mismatch",
                f"{currency} differs from the token's {claims['currency']}",
            )
        user, jti = str(claims["sub"]), str(claims["jti"])
        with self._redemption_transaction():
            used = self.store.get(_REDEEMED, jti)
            if used is not None and not self.faults.active("redemption-reuses-token"):
                raise HTTPProblem(
                    402, "payment_token_used", "this payment token was already redeemed"
                )
            try:
                if amount == 0 and self.faults.active("redemption-zero-amount-accepted"):
                    state = self.ledger.state(user, caller)
                else:
                    state = self.ledger.charge(user, caller, amount)
            except CapExceeded as refused:
                cap = refused.state.as_json()
                code = self.params.error("spend_cap_exceeded")
                if self.faults.active("cap-refusal-without-figures"):
                    return code.status, problem(code.status, code.code, str(refused))
                status = 400 if self.faults.active("cap-refusal-wrong-status") else code.status
                return status, {**problem(status, code.code, str(refused)), "cap": cap}
            redemption_id = "rdm_" + secrets.token_hex(8)
            record = {
                "id": redemption_id,
                "user": user,
                "provider": caller,
                "amount": amount,
                "currency": currency,
                "period": state.period,
                "refunded": 0,
                "jti": jti,
                "resource_id": body.get("resource_id"),
                "created": self.clock.timestamp(),
            }
            self.store.put(_REDEMPTIONS, redemption_id, record)
            self.store.put(_REDEEMED, jti, redemption_id)
        return 201, {
            "id": redemption_id,
            "object": "redemption",
            "amount": amount,
            "currency": currency,
            "status": "succeeded",
            "resource_id": body.get("resource_id"),
            "created": self.clock.timestamp()
            if self.faults.active("redemption-created-as-timestamp")
            else iso_utc(self.clock.timestamp()),
            "cap": state.as_json(),
        }

    def _process_refund(self, caller: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        amount = int(body["amount"])
        with self.store.transaction():
            record = self.store.get(_REDEMPTIONS, str(body["redemption_id"]))
            if record is None or (
                record["provider"] != caller and not self.faults.active("refund-by-any-provider")
            ):
                raise HTTPProblem(
                    404, "redemption_not_found", "no such redemption for this provider"
                )
            refunded = (
                0
                if self.faults.active("refund-limit-ignores-earlier-refunds")
                else int(record["refunded"])
            )
            if amount > int(record["amount"]) - refunded:
                raise HTTPProblem(
                    400,
                    "refund_exceeds_redemption",
                    "the refund exceeds what remains of the redemption",
                )
            record["refunded"] = int(record["refunded"]) + amount
            self.store.put(_REDEMPTIONS, record["id"], record)
            # The money goes back to the provider that was paid, in the month it was charged in.
            provider, period = str(record["provider"]), str(record["period"])
            if self.faults.active("refund-credits-current-month"):
                period = self.ledger.current_period()
            if not self.faults.active("refund-keeps-spend"):
                self.ledger.credit(record["user"], provider, amount, period)
            state = self.ledger.state(record["user"], provider)
        return 201, {
            "id": "rfd_" + secrets.token_hex(8),
            "object": "refund",
            "redemption_id": record["id"],
            "amount": amount,
            "currency": record["currency"],
            "status": "succeeded",
            "created": iso_utc(self.clock.timestamp()),
            "cap": state.as_json(),
        }


def _in_flight() -> HTTPProblem:
    return HTTPProblem(
        409, "idempotency_in_flight", "a request with this Idempotency-Key is in progress"
    )


def _last_duplicate_wins(raw: bytes) -> dict[str, Any] | None:
    """A body refused only for a duplicate member name, read as a lax parser would (the last
    duplicate wins); None for any other body. Only the duplicate-keys fault uses it."""
    try:
        strictjson.loads(raw)
    except strictjson.StrictJSONError as error:
        if error.reason != "duplicate_key":
            return None
        loose = json.loads(raw)
        return loose if isinstance(loose, dict) else None
    return None
