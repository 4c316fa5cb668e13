"""Custody: what the orchestrator holds for its user — provider tokens, resources and their
credentials — and giving tokens back (RFC 7009 revocation).

Provider calls that carry the connection's access token go through `bearer_call`, which
refreshes a rejected token once (RFC 6749 §6) and from then on uses only the newly issued
pair. Answers about a resource are believed only when they name the resource that was asked
about. The agent sees credentials only through `env` (mocks/orchestrator/custody.py).
"""

from __future__ import annotations

from typing import Any

import httpx

from mocks._core.http import HTTPProblem
from mocks.orchestrator.client._answers import json_object
from mocks.orchestrator.client._records import RESOURCES, STALE_REFRESH, ProviderRecord
from mocks.orchestrator.client.session import Session
from wire.urls import as_metadata_url, prm_url

__all__ = ["Custody"]


class Custody:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.faults = session.faults
        self.store = session.store

    # --- tokens -----------------------------------------------------------------------------
    async def refresh(
        self, provider: ProviderRecord, connection: dict[str, Any]
    ) -> dict[str, Any] | None:
        """A refresh_token grant; the stored connection afterwards, or None when refused."""
        old = connection.get("refresh_token")
        if not isinstance(old, str) or not old:
            return None
        answer = await self.session.call(
            provider,
            "POST",
            "oauth/token",
            form={"grant_type": "refresh_token", "refresh_token": old},
        )
        tokens = json_object(answer)
        token_type = tokens.get("token_type")
        if (
            answer.status_code != 200
            or not isinstance(tokens.get("access_token"), str)
            or not (isinstance(token_type, str) and token_type.lower() == "bearer")
        ):
            return None
        # RFC 6749 §6: a new refresh token replaces the old one; without one, the old one stays.
        rotated = (
            tokens.get("refresh_token") if isinstance(tokens.get("refresh_token"), str) else old
        )
        if self.faults.active("refresh-token-not-rotated"):
            rotated = old
        return self.session.save_connection(
            provider,
            {
                "access_token": tokens["access_token"],
                "refresh_token": rotated,
                "account": {"id": connection.get("account")},
            },
        )

    async def bearer_call(
        self,
        provider: ProviderRecord,
        connection: dict[str, Any],
        method: str,
        path: str,
        **options: Any,
    ) -> httpx.Response:
        """A signed call with the connection's access token; on 401, one refresh and one retry."""
        call = self.session.call
        answer = await call(provider, method, path, bearer=connection["access_token"], **options)
        if answer.status_code != 401:
            return answer
        fresh = await self.refresh(provider, connection)
        if fresh is None:
            return answer
        return await call(provider, method, path, bearer=fresh["access_token"], **options)

    # --- resources --------------------------------------------------------------------------
    def resources(self) -> list[dict[str, Any]]:
        return [value for _, value in self.store.items(RESOURCES)]

    def keep(self, resource: dict[str, Any]) -> None:
        """Store `resource` (its credentials with it) under its provider and name."""
        self.store.put(RESOURCES, f"{resource['provider']}\x1f{resource['name']}", resource)

    def env(self, *, reveal: bool = False) -> dict[str, str]:
        """Credentials as environment variables, `<NAME>_<KEY>` (wire-facts §1.3), redacted unless asked."""
        variables: dict[str, str] = {}
        for resource in self.resources():
            prefix = str(resource["name"]).upper().replace("-", "_").replace(":", "_")
            for key, value in sorted(resource["credentials"].items()):
                shown = value if reveal or self.faults.active("env-reveals-secrets") else "••••••••"
                variables[f"{prefix}_{key.upper()}"] = shown
        return variables

    async def poll(self, resource: dict[str, Any]) -> dict[str, Any]:
        """Ask the provider how an unfinished resource is doing (GET provisioning/resources/{id});
        the resource as now stored. Credentials are kept only from a complete answer about this
        very resource (ORC-CRD-005, ORC-CRD-010)."""
        provider = self.session.provider(str(resource["provider"]))
        connection = self.session.connection(provider)
        resource_id = resource.get("id")
        if connection is None or not isinstance(resource_id, str) or not resource_id:
            return resource
        path = f"provisioning/resources/{resource_id}"
        if self.faults.active("poll-token-in-query"):
            path += f"?access_token={connection['access_token']}"
        answer = await self.bearer_call(provider, connection, "GET", path)
        document = json_object(answer)
        status = document.get("status")
        if answer.status_code != 200 or status not in ("complete", "pending", "needs_information"):
            return resource
        same = (
            document.get("id") == resource_id
            and document.get("service_id", resource["service_id"]) == resource["service_id"]
        )
        if not same and not self.faults.active("resource-answer-unchecked"):
            return resource
        updated = {**resource, "status": status}
        if status == "complete":
            access = (document.get("complete") or {}).get("access_configuration")
            updated["credentials"] = dict(access) if isinstance(access, dict) else {}
        self.keep(updated)
        return updated

    async def remove(self, name: str) -> dict[str, Any]:
        """Deprovision the resource called `name`: reported removed once the provider says so."""
        resource = self._the_one_named(name)
        provider = self.session.provider(str(resource["provider"]))
        connection = self.session.connection(provider)
        if connection is None or not isinstance(resource.get("id"), str):
            raise HTTPProblem(409, "PROVIDER_NOT_LINKED", f"no connection to {provider.name}")
        answer = await self.bearer_call(
            provider,
            connection,
            "POST",
            f"provisioning/resources/{resource['id']}/remove",
            body={},
        )
        document = json_object(answer)
        accepted = answer.status_code == 200 and document.get("status") == "removed"
        if not accepted and not self.faults.active("remove-ignores-provider-answer"):
            error = document.get("error")
            code = error.get("code") if isinstance(error, dict) else None
            raise HTTPProblem(
                502,
                "PROVIDER_ERROR",
                f"{provider.name} did not remove {name!r} ({answer.status_code}"
                + (f", {code}" if code else "")
                + "); it is still provisioned",
            )
        self.keep({**resource, "status": "removed", "credentials": {}})
        return {"provider": provider.name, "name": name, "id": resource["id"], "status": "removed"}

    def _the_one_named(self, name: str) -> dict[str, Any]:
        found = [
            resource
            for resource in self.resources()
            if resource.get("name") == name and resource.get("status") != "removed"
        ]
        if not found:
            raise HTTPProblem(404, "RESOURCE_NOT_FOUND", f"no resource named {name!r}")
        if len(found) > 1:
            raise HTTPProblem(
                400,
                "INVALID_ARGUMENT",
                f"{len(found)} resources are named {name!r}, at "
                + ", ".join(sorted(str(r["provider"]) for r in found)),
            )
        return found[0]

    # --- revocation -------------------------------------------------------------------------
    async def revoke(self, provider_name: str) -> dict[str, Any]:
        provider = self.session.provider(provider_name)
        connection = self.session.connection(provider)
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
        self.session.drop_connection(provider)
        if self.faults.active("revoked-refresh-token-retried") and connection.get("refresh_token"):
            self.store.put(STALE_REFRESH, self.session.key(provider), connection["refresh_token"])
        return {"provider": provider.name, "revoked": True}

    async def revoke_all(self) -> list[dict[str, Any]]:
        """Revocation fan-out: every provider this user holds tokens for."""
        return [
            await self.revoke(record.name)
            for record in self.session.providers()
            if self.session.connection(record) is not None
        ]

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
            answer = await self.session.http.post(endpoint, data=form)
        else:
            path = endpoint[len(provider.base_url) :] if endpoint else path
            answer = await self.session.call(
                provider, "POST", path, form=form, headers_override=self._unsigned_headers()
            )
        failed = answer.status_code != 200
        if self.faults.active("revocation-needs-body") and not answer.content:
            failed = True
        if failed and not self.faults.active("revocation-failure-ignored"):
            raise HTTPProblem(502, "PROVIDER_ERROR", f"revocation failed ({answer.status_code})")

    def _unsigned_headers(self) -> dict[str, str]:
        """The revocation-unsigned faults: the signature header removed after signing."""
        params = self.session.params
        removed: dict[str, str] = {}
        if self.faults.active("revocation-unsigned"):
            removed[params.attestation_header] = ""
        if self.faults.active("revocation-hmac-unsigned"):
            removed[params.signature_header] = ""
        return removed

    async def _unvalidated_revocation_endpoint(self, provider: ProviderRecord) -> str | None:
        """The revocation-endpoint-unvalidated fault: the revocation_endpoint of whatever AS
        metadata the provider's PRM leads to, its issuer and URL unchecked. Without the fault
        the orchestrator revokes at the provider's own oauth/revoke (ORC-REV-001, -009)."""
        if not self.faults.active("revocation-endpoint-unvalidated"):
            return None
        http = self.session.http
        prm = json_object(await http.get(prm_url(provider.base_url)))
        servers = prm.get("authorization_servers") or [provider.base_url.rstrip("/")]
        as_url = as_metadata_url(str(servers[0]))
        endpoint = json_object(await http.get(as_url)).get("revocation_endpoint")
        return endpoint if isinstance(endpoint, str) else None
