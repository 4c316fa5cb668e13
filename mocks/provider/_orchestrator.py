"""The mock provider's view of the orchestrator: its metadata and JWKS, fetched through the
SSRF guard, cached, refetched once when a token names an unknown key."""

from __future__ import annotations

from typing import Any

import httpx

from mocks._core.http import HTTPProblem, parse_json_object
from mocks.provider._context import ProviderContext
from wire import jose
from wire.ssrf import SSRFError
from wire.urls import orchestrator_metadata_url

__all__ = ["OrchestratorLink"]


class OrchestratorLink:
    def __init__(self, ctx: ProviderContext) -> None:
        self.ctx = ctx
        self._cached: dict[str, Any] | None = None

    async def get_json(
        self, client: httpx.AsyncClient, url: str, *, guard: bool = True
    ) -> dict[str, Any]:
        try:
            if guard:
                self.ctx.settings.ssrf.check_url(url)
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

    async def metadata(self, *, refresh: bool = False) -> dict[str, Any]:
        """{"metadata": the orchestrator's metadata document, "keys": its JWKS, parsed}."""
        faults = self.ctx.faults
        if refresh and faults.active("jwks-never-refetched"):
            refresh = False  # fetched once at first use, kept until a restart
        if self._cached is None or refresh:
            issuer = self.ctx.settings.orchestrator_issuer
            async with self.ctx.client() as client:
                # OpenID Connect Discovery §4's rule: a terminating "/" goes before the suffix
                url = orchestrator_metadata_url(issuer)
                metadata = await self.get_json(client, url)
                announced = metadata.get("issuer")
                if faults.active("metadata-issuer-normalised"):
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
                guard = not faults.active("jwks-uri-unguarded")
                try:
                    keys = jose.parse_jwks(await self.get_json(client, jwks_uri, guard=guard))
                except jose.JOSEError as error:
                    raise HTTPProblem(
                        502, "orchestrator_unreachable", f"the orchestrator's JWKS: {error}"
                    ) from None
            self._cached = {"metadata": metadata, "keys": keys}
        return self._cached

    async def keys(self, *, refresh: bool = False) -> dict[str, jose.PublicKey]:
        found: dict[str, jose.PublicKey] = (await self.metadata(refresh=refresh))["keys"]
        return found

    async def keys_to_verify(
        self, token: str | None, *, refresh: bool, trust_header_keys: bool = False
    ) -> dict[str, jose.PublicKey]:
        """The orchestrator's keys for an incoming token. Keys that cannot be had make the
        token unverifiable: 503 (try again), never a 502 or a pass (PRV-ATT-029)."""
        try:
            keys = await self.keys(refresh=refresh)
        except HTTPProblem as unavailable:
            if self.ctx.faults.active("metadata-failure-500"):
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
                async with self.ctx.client() as client:
                    named |= jose.parse_jwks(await self.get_json(client, header["jku"]))
            except HTTPProblem:
                pass
        return named
