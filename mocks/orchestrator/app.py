"""The mock orchestrator's server side: issuer metadata, JWKS, the consent redirect URI,
and the money endpoints (redemption and refund).

DESIGN.md §2 (app-next, items 3 to 5). The provider redeems a payment token by calling
`redemption_endpoint`, signed with its own key (`APP-Attestation`, `aud` = this issuer) and
carrying an `Idempotency-Key`. The rooms: who calls (mocks/orchestrator/_callers.py), the
HTTP flow of the money endpoints with their idempotency (_money.py), redemptions and refunds
against the spend ledger (_redemption.py, ledger.py), the signing key (_keys.py). Errors are
RFC 9457 problem documents with a `code` member (schemas/app-next/problem.schema.json).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mocks._core.http import HTTPProblem, json_response
from mocks._core.replay import ReplayCache
from mocks.faults import FaultSet
from mocks.orchestrator._callers import Callers
from mocks.orchestrator._idempotency import IdempotencyLedger
from mocks.orchestrator._keys import jwks_document, load_or_make_key, unpublished_key
from mocks.orchestrator._money import MoneyEndpoints, problem_response
from mocks.orchestrator._redemption import Redemptions
from mocks.orchestrator._settings import OrchestratorSettings
from mocks.orchestrator.engine import Orchestrator
from mocks.orchestrator.ledger import SpendLedger
from wire import jose
from wire.envelopes import PROBLEM_JSON, problem
from wire.ssrf import SSRFGuard
from wire.tls import tls_context
from wire.urls import orchestrator_metadata_url

__all__ = ["OrchestratorMock", "OrchestratorSettings"]

log = logging.getLogger("provspec.mock.orchestrator")


class OrchestratorMock:
    def __init__(self, settings: OrchestratorSettings | None = None) -> None:
        self.settings = settings = settings or OrchestratorSettings()
        self.issuer = settings.issuer
        self.spec = settings.spec
        self.params = settings.params
        self.faults = FaultSet("orchestrator", settings.spec.family, settings.faults)
        self.announced_issuer = _announced_issuer(self.issuer, self.faults)
        self.clock = settings.clock
        self.store = settings.store
        self.ledger = _ledger(settings, self.faults)
        self.idempotency = IdempotencyLedger(settings.store, settings.clock)
        self.replay = ReplayCache(settings.store, table="seen_provider_jti")
        self.signing_key = load_or_make_key(self.store)
        # Derived once: every redemption verifies against it.
        self._published = {self.signing_key.kid: self.signing_key.public_key()}
        self.metadata_url = orchestrator_metadata_url(self.issuer)
        self.jwks_url = f"{self.issuer}/jwks.json"
        self.redemption_endpoint = f"{self.issuer}/redemptions"
        self.refund_endpoint = f"{self.issuer}/refunds"
        self.callers = Callers(settings, self.faults, self.replay)
        self.redemptions = Redemptions(
            store=self.store,
            ledger=self.ledger,
            clock=self.clock,
            faults=self.faults,
            params=self.params,
            issuer=self.announced_issuer,
            payment_keys=self.payment_keys,
        )
        self.money = MoneyEndpoints(
            spec=self.spec,
            faults=self.faults,
            callers=self.callers,
            idempotency=self.idempotency,
            redemptions=self.redemptions,
            settings=settings,
        )
        self.app = self._build()

    @property
    def ssrf(self) -> SSRFGuard:
        """The guard every URL taken from a message passes (the settings' current one)."""
        return self.settings.ssrf

    def payment_keys(self) -> dict[str, jose.PublicKey]:
        """The keys a payment token may be signed with: the published one, and under the
        payment-token-unpublished-key fault a second key the JWKS never shows (ORC-PAY-002)."""
        keys = dict(self._published)
        if self.faults.active("payment-token-unpublished-key"):
            hidden = self.unpublished_key()
            keys[hidden.kid] = hidden.public_key()
        return keys

    def unpublished_key(self) -> jose.SigningKey:
        """A key derived from the signing key and never published (the fault's key)."""
        return unpublished_key(self.signing_key)

    def minted(self, claims: dict[str, Any]) -> None:
        """Told of every payment token the engine mints."""
        self.redemptions.minted(claims)

    async def provider_keys(
        self, provider: str, *, refresh: bool = False
    ) -> dict[str, jose.PublicKey]:
        """The provider's signing keys, from the `jwks_uri` of its RFC 9728 metadata."""
        return await self.callers.provider_keys(provider, refresh=refresh)

    # --- app ---------------------------------------------------------------------------------
    def _build(self) -> Starlette:
        path = urlsplit(self.issuer).path.rstrip("/")
        routes = [
            Route(
                f"{path}/.well-known/app-orchestrator", self._wrap(self.metadata), methods=["GET"]
            ),
            Route(f"{path}/jwks.json", self._wrap(self.jwks), methods=["GET"]),
            Route(f"{path}/redemptions", self._wrap(self.money.redeem), methods=["POST"]),
            Route(f"{path}/refunds", self._wrap(self.money.refund), methods=["POST"]),
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
                return problem_response(error)
            except Exception:
                log.exception("mock orchestrator failed on %s %s", request.method, request.url.path)
                return problem_response(
                    HTTPProblem(500, "server_error", "the mock orchestrator failed")
                )

        return endpoint

    # --- consent -------------------------------------------------------------------------------
    async def consent_callback(self, request: Request) -> Response:
        """The redirect URI the human's browser returns to after approving at a provider."""
        query = parse_qs(request.url.query, keep_blank_values=True)
        if "error" in query:
            raise HTTPProblem(400, "consent_denied", f"the provider answered {query['error'][0]}")
        http = (
            self.settings.http()
            if self.settings.http is not None
            else httpx.AsyncClient(timeout=10, follow_redirects=False, verify=tls_context())
        )
        async with http:
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
        return json_response(jwks_document(self.signing_key, self.faults))


def _announced_issuer(issuer: str, faults: FaultSet) -> str:
    # The metadata-issuer-mismatch fault is a misconfigured issuer (a stray trailing slash)
    # used consistently, as a real deployment would: in metadata, attestations and tokens.
    announced = issuer + "/" if faults.active("metadata-issuer-mismatch") else issuer
    if faults.active("issuer-with-fragment"):
        announced = issuer + "#main"
    return announced


def _ledger(settings: OrchestratorSettings, faults: FaultSet) -> SpendLedger:
    """The spend ledger, as the cap faults skew it."""
    cap = settings.params.default_cap
    return SpendLedger(
        settings.store,
        settings.clock,
        default_limit=cap.limit + 500
        if faults.active("cap-default-limit-wrong")
        else settings.default_limit,
        currency=cap.currency,
        atomic=not faults.active("cap-not-atomic"),
        shared_across_providers=faults.active("cap-shared-across-providers"),
        # a server keeping the month in its local time zone, UTC+1
        month_offset_seconds=3600 if faults.active("cap-month-in-local-time") else 0,
        exact_limit_refused=faults.active("cap-exact-limit-refused"),
        resets_early_by=1 if faults.active("cap-resets-at-month-end") else 0,
        report_summed=faults.active("billing-sums-providers"),
    )
