"""The mock orchestrator acting for its signed-in user: one object over the client's rooms.

`Orchestrator` is what the agent-facing CLI drives, and what sandboxes and checks hold. It
holds one user (stable opaque id, verified email, a payment method), the providers it knows,
and custody of the credentials it obtains. The work is done in `mocks.orchestrator.client`:
the session (user, providers, connections, signed calls), consent, payment, custody,
catalogs and provisioning; this class wires them together and keeps their one public face.
"""

from __future__ import annotations

import httpx

from mocks.orchestrator.client._records import AddOutcome, ProviderRecord, User, stated_price
from mocks.orchestrator.client._server import OrchestratorServer
from mocks.orchestrator.client.catalog import Catalogs
from mocks.orchestrator.client.consent import Consent
from mocks.orchestrator.client.custody import Custody
from mocks.orchestrator.client.payment import Payments
from mocks.orchestrator.client.provisioning import Provisioning
from mocks.orchestrator.client.session import Session

__all__ = ["AddOutcome", "Orchestrator", "ProviderRecord", "User", "stated_price"]


class Orchestrator:
    def __init__(
        self, core: OrchestratorServer, http: httpx.AsyncClient, *, auto_consent: bool = True
    ) -> None:
        self.core = core
        self.http = http
        self.spec = core.spec
        self.params = core.params
        self.profile = core.spec.name
        self.family = core.spec.family
        """The built-in profile whose wire this orchestrator speaks (a draft's base)."""
        self.faults = core.faults
        self.store = core.store
        self.session = session = Session(core, http)
        self.consent = Consent(session, auto_consent=auto_consent)
        self.payments = Payments(session)
        self.custody = Custody(session)
        self.catalogs = Catalogs(session)
        self.provisioning = Provisioning(
            session,
            catalogs=self.catalogs,
            consent=self.consent,
            custody=self.custody,
            payments=self.payments,
        )
        # The one public face, room by room.
        self.user, self.new_user, self.set_user = session.user, session.new_user, session.set_user
        self.add_provider, self.providers = session.add_provider, session.providers
        self.provider, self.connection = session.provider, session.connection
        self.accept_tos, self.tos_accepted = session.accept_tos, session.tos_accepted
        self.call, self.attestation = session.call, session.attestation
        self.connect, self.complete_consent = self.consent.connect, self.consent.complete_consent
        self.mint_payment_token = self.payments.mint_payment_token
        self.services, self.speaks_profile = self.catalogs.services, self.catalogs.speaks_profile
        self.add = self.provisioning.add
        self.resources, self.env = self.custody.resources, self.custody.env
        self.poll, self.remove = self.custody.poll, self.custody.remove
        self.revoke, self.revoke_all = self.custody.revoke, self.custody.revoke_all

    @property
    def auto_consent(self) -> bool:
        """True: a scripted user approves consent at once; False: a human must."""
        return self.consent.auto_consent

    @auto_consent.setter
    def auto_consent(self, value: bool) -> None:
        self.consent.auto_consent = value

    @property
    def strict_answers(self) -> bool:
        """True (the agent-facing CLI): refuse provider answers that do not belong to the
        request (ORC-ACC-009). The provider checks keep it off to reach further."""
        return self.session.strict_answers

    @strict_answers.setter
    def strict_answers(self, value: bool) -> None:
        self.session.strict_answers = value

    def held_tokens(self) -> list[str]:
        """Every access token the current user holds, provider by provider."""
        return self.session.held_tokens()
