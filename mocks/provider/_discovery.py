"""What the mock provider tells about itself: health, the service catalog, its JWKS, and
(app-next) its RFC 9728 protected-resource and RFC 8414 authorization-server metadata."""

from __future__ import annotations

import json
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519
from starlette.requests import Request
from starlette.responses import Response

import mocks.provider.catalog as catalog
from mocks._core.http import json_response
from mocks.provider._context import Caller, ProviderContext
from wire import jose

__all__ = ["Discovery"]


class Discovery:
    def __init__(self, ctx: ProviderContext) -> None:
        self.ctx = ctx
        self.faults = ctx.faults

    async def health(self, request: Request, raw: bytes, caller: Caller) -> Response:
        versions = [self.ctx.params.api_version]
        if self.faults.active("health-wrong-versions"):
            versions = []
        return json_response({"supported_versions": versions, "status": "ok"})

    async def services(self, request: Request, raw: bytes, caller: Caller) -> Response:
        entries = [
            entry.as_json(structured_price=self.ctx.next, currency=self.ctx.currency)
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

    async def jwks(self, request: Request, raw: bytes, caller: Caller) -> Response:
        document = jose.jwks([self.ctx.signing_key])
        if self.faults.active("jwks-leaks-private-key"):
            # the rotated-out key is serialised whole, private half (d) included
            retired = self.ctx.retired_key.private
            assert isinstance(retired, ed25519.Ed25519PrivateKey)
            private = jose.b64url_encode(retired.private_bytes_raw())
            document["keys"].append({**self.ctx.retired_key.public_jwk(), "d": private})
        return json_response(document)

    async def protected_resource_metadata(
        self, request: Request, raw: bytes, caller: Caller
    ) -> Response:
        resource = self.ctx.resource_id
        if self.faults.active("prm-resource-mismatch"):
            resource = resource.rstrip("/") + "/other/"
        if self.faults.active("prm-resource-slash-differs"):
            # The classic near-miss: the same URL but for the trailing slash.
            resource = resource.rstrip("/") if resource.endswith("/") else resource + "/"
        document: dict[str, Any] = {
            "resource": resource,
            "authorization_servers": [self.ctx.issuer],
            "scopes_supported": self.ctx.granted_scope.split(),
            "bearer_methods_supported": ["header"],
            "jwks_uri": f"{self.ctx.base_url}jwks.json",
            "resource_name": self.ctx.settings.name,
        }
        if self.faults.active("prm-no-authorization-servers"):
            del document["authorization_servers"]
        if self.faults.active("prm-nulls-not-omitted"):
            # a metadata model dumped without exclude_none: every unset optional member is null
            document |= {"resource_documentation": None, "resource_policy_uri": None}
        return json_response(document)

    async def authorization_server_metadata(
        self, request: Request, raw: bytes, caller: Caller
    ) -> Response:
        issuer = self.ctx.issuer
        if self.faults.active("as-issuer-mismatch"):
            issuer += "/"
        methods = ["S256", "plain"] if self.faults.active("as-metadata-lists-plain") else ["S256"]
        base_url = self.ctx.base_url
        document = {
            "issuer": issuer,
            "authorization_endpoint": f"{base_url}oauth/authorize",
            "token_endpoint": f"{base_url}oauth/token",
            "revocation_endpoint": f"{base_url}oauth/revoke",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": methods,
            "scopes_supported": self.ctx.granted_scope.split(),
            # the orchestrator's APP-Attestation; public PKCE clients need none
            "token_endpoint_auth_methods_supported": ["app_attestation", "none"],
        }
        if self.faults.active("as-metadata-no-revocation-endpoint"):
            del document["revocation_endpoint"]
        return json_response(document)
