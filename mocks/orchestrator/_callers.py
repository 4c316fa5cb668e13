"""Who is calling the money endpoints: a provider, proven by its `APP-Attestation`.

The attestation's `iss` names the provider; its keys come from the `jwks_uri` of the
provider's RFC 9728 metadata, fetched through the SSRF guard within a size and time budget,
cached, and fetched again once when a token names a key the cache lacks.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from functools import partial

import anyio
import httpx
from starlette.requests import Request

from mocks._core.http import HTTPProblem, parse_json_object
from mocks._core.network import DEFAULT_TIMEOUT
from mocks._core.replay import ReplayCache
from mocks.faults import FaultSet
from mocks.orchestrator._settings import OrchestratorSettings
from wire import jose
from wire.attestation import verify_attestation
from wire.ssrf import FetchError, FetchLimits, SSRFGuard, fetch_document
from wire.tls import tls_context
from wire.urls import prm_url

__all__ = ["Callers", "Claim", "UnknownKey"]

log = logging.getLogger("provspec.mock.orchestrator")


@dataclass(frozen=True)
class Claim:
    """A request's attestation before it is verified: the provider it names, the token
    (None under the redemption-unsigned-accepted fault, which verifies nothing), and the
    keys that provider publishes."""

    caller: str
    token: str | None
    keys: dict[str, jose.PublicKey]


class UnknownKey(Exception):
    """The attestation names a key the cached set lacks: fetch the keys again, once."""


class Callers:
    def __init__(self, settings: OrchestratorSettings, faults: FaultSet, replay: ReplayCache):
        self.settings = settings
        self.params = settings.params
        self.faults = faults
        self.replay = replay
        self._keys: dict[str, dict[str, jose.PublicKey]] = {}
        self._loading: dict[str, asyncio.Task[dict[str, jose.PublicKey]]] = {}
        """The fetch under way per provider: concurrent callers share it, so a burst of
        redemptions from a new provider costs one metadata and JWKS fetch, not one each."""

    async def claim(self, request: Request, *, refresh: bool = False) -> Claim:
        """Who the request says it comes from, with that provider's keys, not yet verified
        (401 when it names nobody usable). `refresh`: fetch the keys again."""
        header = self.params.attestation_header
        token = request.headers.get(header)
        if self.faults.active("redemption-unsigned-accepted"):
            try:
                _, claims, _ = jose.unverified_parts(token or "")
                return Claim(str(claims.get("iss", "")), None, {})
            except jose.JOSEError:
                return Claim("", None, {})
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
        return Claim(caller, token, await self.provider_keys(caller, refresh=refresh))

    def verify(self, claim: Claim, raw: bytes, *, keys_fresh: bool) -> str:
        """The calling provider's URL, once its attestation of `raw` verifies (401
        otherwise; `UnknownKey` when it names a key the cached set lacks and `keys_fresh`
        is False). Blocking: the replay cache takes the store's lock, so it runs in a worker
        thread."""
        if claim.token is None:
            return claim.caller  # the redemption-unsigned-accepted fault
        try:
            verify_attestation(
                claim.token,
                keys=claim.keys,
                issuer=claim.caller,
                audience=self.settings.issuer,
                body=raw,
                now=self.settings.clock.timestamp(),
                replay=self.replay,
                check_audience=not self.faults.active("redemption-attestation-any-audience"),
                max_lifetime=self.params.attestation_lifetime,
                algorithms=self.params.algorithms,
                header_name=self.params.attestation_header,
            )
        except jose.JOSEError as error:
            if error.reason == "unknown_kid" and not keys_fresh:
                raise UnknownKey from None
            raise HTTPProblem(401, "invalid_signature", f"attestation refused: {error}") from None
        return claim.caller

    async def provider_keys(
        self, provider: str, *, refresh: bool = False
    ) -> dict[str, jose.PublicKey]:
        """The provider's signing keys, from the `jwks_uri` of its RFC 9728 metadata."""
        if provider in self._keys and not refresh:
            return self._keys[provider]
        loop = asyncio.get_running_loop()
        loading = self._loading.get(provider)
        if loading is None or loading.get_loop() is not loop:
            loading = loop.create_task(self._load(provider))
            self._loading[provider] = loading
            loading.add_done_callback(partial(self._loaded, provider))
        # Shielded: one caller going away does not cancel the fetch the others wait for.
        return await asyncio.shield(loading)

    def _loaded(self, provider: str, loading: asyncio.Task[dict[str, jose.PublicKey]]) -> None:
        if self._loading.get(provider) is loading:
            del self._loading[provider]
        if not loading.cancelled():
            loading.exception()  # retrieved: its waiters may all have gone away

    async def _load(self, provider: str) -> dict[str, jose.PublicKey]:
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
        self._keys[provider] = keys
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

    def _client(self) -> httpx.AsyncClient:
        if self.settings.http is not None:
            return self.settings.http()
        return httpx.AsyncClient(
            timeout=DEFAULT_TIMEOUT, follow_redirects=False, verify=tls_context()
        )
