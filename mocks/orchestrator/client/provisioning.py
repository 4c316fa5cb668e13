"""Provisioning: `add PROVIDER/SERVICE` for the user, from the catalog entry to the stored
resource — terms, payment method and cost confirmed first, the connection made, paid calls
carrying payment credentials under the cap, and the provider's answer judged before any
credentials are kept.
"""

from __future__ import annotations

import secrets
from typing import Any

from mocks._core.http import HTTPProblem
from mocks.orchestrator.client._answers import json_object
from mocks.orchestrator.client._records import (
    AddOutcome,
    ProviderRecord,
    error_details,
    error_text,
    provider_code,
    stated_price,
)
from mocks.orchestrator.client.catalog import Catalogs
from mocks.orchestrator.client.consent import Consent
from mocks.orchestrator.client.custody import Custody
from mocks.orchestrator.client.payment import Payments
from mocks.orchestrator.client.session import Session
from mocks.orchestrator.ledger import CapExceeded

__all__ = ["Provisioning"]

_UNFINISHED = ("complete", "pending", "needs_information")


class Provisioning:
    def __init__(
        self,
        session: Session,
        *,
        catalogs: Catalogs,
        consent: Consent,
        custody: Custody,
        payments: Payments,
    ) -> None:
        self.session = session
        self.faults = session.faults
        self.catalogs = catalogs
        self.consent = consent
        self.custody = custody
        self.payments = payments

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
        provider = self.session.provider(provider_name)
        entry = await self._entry(provider, service_id)
        if accept_tos:
            self.session.accept_tos(provider)
        refused = self._refused_before_connecting(provider, service_id, entry, confirm_paid)
        if refused is not None:
            return refused
        connection = await self.consent.connect(provider)
        if isinstance(connection, AddOutcome):
            return connection
        body = self._creation_body(service_id, name, configuration)
        unpaid: CapExceeded | None = None
        if _is_paid(entry):
            try:
                self._pay(provider, entry, body, max_amount)
            except CapExceeded as refusal:
                if not self.faults.active("cap-refusal-after-creation"):
                    return self.payments.capped(provider, refusal.state.as_json(), at_mint=True)
                unpaid = refusal  # the fault: the creation goes out anyway, without a token
        answer = await self.custody.bearer_call(
            provider, connection, "POST", "provisioning/resources", body=body
        )
        for _ in range(20 if self.faults.active("auth-retry-unbounded") else 0):
            if answer.status_code not in (401, 403):
                break
            answer = await self.custody.bearer_call(
                provider, connection, "POST", "provisioning/resources", body=body
            )
        if unpaid is not None:
            return self.payments.capped(provider, unpaid.state.as_json())
        document = json_object(answer, lenient=self.faults.active("lenient-resource-json"))
        capped = self._cap_refusal(provider, document, entry, max_amount)
        if capped is not None:
            return capped
        self._judge(provider, service_id, answer.status_code, document)
        return self._keep(provider, service_id, name, document)

    async def _entry(self, provider: ProviderRecord, service_id: str) -> dict[str, Any]:
        """The service's entry in the provider's own catalog (404 when it lists none)."""
        entries = {str(e.get("id")): e for e in await self.catalogs.services(provider)}
        entry = entries.get(service_id)
        if entry is None:
            raise HTTPProblem(
                404, "SERVICE_NOT_FOUND", f"{provider.name} has no service {service_id!r}"
            )
        return entry

    def _refused_before_connecting(
        self, provider: ProviderRecord, service_id: str, entry: dict[str, Any], confirmed: bool
    ) -> AddOutcome | None:
        """What the human must do first: accept the terms, add a payment method, confirm
        the cost of a paid service; None when nothing is missing."""
        if not self.session.tos_accepted(provider):
            return AddOutcome(
                "tos_acceptance_required",
                f"accept {provider.name}'s terms of service first",
                {"provider": provider.name},
                ["Re-run with --accept-tos after reading the terms."],
            )
        paid = _is_paid(entry)
        unchecked = self.faults.active("payment-method-not-checked")
        if paid and not self.session.user().payment_method and not unchecked:
            return AddOutcome(
                "payment_method_required",
                "no payment method on file",
                {"provider": provider.name},
                [
                    "Ask the human to add a payment method: provspec orchestrator billing --add-payment-method"
                ],
            )
        if paid and not confirmed:
            return AddOutcome(
                "confirmation_required",
                f"{provider.name}/{service_id} is a paid service",
                {"provider": provider.name, "pricing": entry.get("pricing")},
                ["Ask the human to confirm the cost, then re-run with --confirm-paid-service."],
            )
        return None

    def _creation_body(
        self, service_id: str, name: str | None, configuration: dict[str, Any] | None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "service_id": service_id,
            "project_id": "proj_" + secrets.token_hex(6),
            "configuration": configuration or {},
        }
        if not configuration and self.faults.active("resource-create-null-configuration"):
            body["configuration"] = None
        if name:
            body["label_prefix"] = name
        return body

    def _pay(
        self,
        provider: ProviderRecord,
        entry: dict[str, Any],
        body: dict[str, Any],
        max_amount: int | None,
    ) -> None:
        """Put the payment credentials on a paid creation's `body` (CapExceeded: none)."""
        plan = entry.get("kind") == "plan"
        body["payment_credentials"] = self.payments.credentials(
            provider,
            body["service_id"],
            body["project_id"],
            max_amount,
            plan=plan,
            price=self._price(entry),
        )
        if plan and self.faults.active("paid-create-without-credentials"):
            body.pop("payment_credentials", None)  # "a plan is billed elsewhere"

    def _price(self, entry: dict[str, Any]) -> int | None:
        """The price held against the remaining cap: app-next's stated price, if any."""
        if self.session.family != "app-next" or self.faults.active("cap-checked-only-when-empty"):
            return None  # the fault: the price is read but not held against what is left
        return stated_price(entry)

    def _cap_refusal(
        self,
        provider: ProviderRecord,
        document: dict[str, Any],
        entry: dict[str, Any],
        max_amount: int | None,
    ) -> AddOutcome | None:
        """The provider's answer as a cap refusal, or None when it is not one."""
        error: dict[str, Any] = document["error"] if isinstance(document.get("error"), dict) else {}
        # Without a stated price the token's max_amount was the whole remaining cap: the
        # provider's amount_exceeds_token then says the price is above what is left.
        capped = (
            _is_paid(entry)
            and max_amount is None
            and self._price(entry) is None
            and self.session.family == "app-next"
        )
        refusal = self.session.params.error_codes.get("spend_cap_exceeded")  # app-next only
        if (refusal is not None and error.get("code") == refusal.code) or (
            capped and error.get("code") == "amount_exceeds_token"
        ):
            ledger, user = self.session.core.ledger, self.session.user()
            cap = document.get("cap") or ledger.state(user.id, provider.base_url).as_json()
            return self.payments.capped(provider, cap)
        return None

    def _judge(
        self, provider: ProviderRecord, service_id: str, status: int, document: dict[str, Any]
    ) -> None:
        """Refuse an answer that is an error or is about another resource (502)."""
        if status != 200 or document.get("status") not in _UNFINISHED:
            refusal, code = error_text(document), provider_code(document)
            if self.faults.active("resource-error-code-dropped"):
                refusal, code = "the provider could not create the resource", None
            raise HTTPProblem(
                502,
                "PROVIDER_ERROR",
                f"{provider.name} refused: {refusal}",
                extra=error_details(code),
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

    def _keep(
        self, provider: ProviderRecord, service_id: str, name: str | None, document: dict[str, Any]
    ) -> AddOutcome:
        """Store the resource (credentials only once complete) and say what comes next."""
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
        self.custody.keep(resource)
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


def _is_paid(entry: dict[str, Any]) -> bool:
    return (entry.get("pricing") or {}).get("type") == "paid"
