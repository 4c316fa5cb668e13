"""Who the suite is when it plays the orchestrator: the signed-in humans it acts for, and the
orchestrator account it names for them.

A real orchestrator sends both in every account request: `email` and `name` describe the
human, and `orchestrator` names the orchestrator-side account the request is made for
(Stripe: `{"type": "stripe", "stripe": {"account": "acct_…"}}`; any other orchestrator:
`{"type": …, "account": …}`), which a provider such as PostHog requires and keeps with the
account it creates (wire-facts §1.5; PostHog `views.py`, "orchestrator.stripe.account is
required"). By default every user acts under a Stripe-shaped account id of its own;
`[provider] orchestrator_account` in provspec.toml pins the one the provider has on file.
"""

from __future__ import annotations

import re
import secrets
import string
from dataclasses import dataclass, field
from typing import Any

from faker import Faker

__all__ = ["IdentityFactory", "OrchestratorIdentity", "User", "stripe_account_id"]

_IDENTIFIER = re.compile(r"[A-Za-z0-9_\-]{1,255}")
_ALPHANUMERIC = string.ascii_letters + string.digits


def stripe_account_id() -> str:
    """A fresh id shaped like Stripe's: `acct_1` and 15 letters or digits."""
    return "acct_1" + "".join(secrets.choice(_ALPHANUMERIC) for _ in range(15))


@dataclass(frozen=True)
class User:
    """A signed-in human the orchestrator acts for."""

    id: str
    """Stable and opaque: the orchestrator's user id (app-next `sub`), never the email."""
    email: str
    name: str
    account: str
    """The orchestrator-side account the user acts under (Stripe: an `acct_` id)."""
    email_verified: bool = True


@dataclass(frozen=True)
class OrchestratorIdentity:
    """How the suite names the orchestrator side in account requests."""

    type: str = "stripe"
    account: str | None = None
    """Pinned account id for every user; None: each user's own."""
    organisation: str | None = None
    """Stripe: the organisation of the account (`orchestrator.stripe.organisation`)."""

    def __post_init__(self) -> None:
        for name in ("type", "account", "organisation"):
            value = getattr(self, name)
            if value is not None and not _IDENTIFIER.fullmatch(value):
                raise ValueError(f"orchestrator {name} {value!r} is not a short identifier")

    def block(self, user: User) -> dict[str, Any]:
        """The account request's `orchestrator` member for `user`."""
        account = self.account or user.account
        if self.type == "stripe":
            stripe: dict[str, str] = {"account": account}
            if self.organisation:
                stripe["organisation"] = self.organisation
            return {"type": "stripe", "stripe": stripe}
        return {"type": self.type, "account": account}


@dataclass
class IdentityFactory:
    """Fresh users with realistic names and short, unique, reserved-domain emails.

    Names come from a seeded Faker (the seed is kept with the run); emails, user ids and
    account ids are random on every run, so two runs against one staging system never share
    an identity, even with the same seed."""

    seed: int = field(default_factory=lambda: secrets.randbelow(2**31))
    _faker: Faker = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._faker = Faker("en_US")
        self._faker.seed_instance(self.seed)

    def user(self, email: str | None = None, *, email_verified: bool = True) -> User:
        """A new user; `email` pins the address (an account the provider already has)."""
        return User(
            id="usr_" + secrets.token_hex(8),
            # example.com (RFC 2606) is never a real mailbox, and the address stays short
            # enough for any column a provider derives from it (PostHog names a new
            # organisation "Stripe (<email>)" in 64 characters).
            email=email or f"provspec+{secrets.token_hex(6)}@example.com",
            name=self._faker.name(),
            account=stripe_account_id(),
            email_verified=email_verified,
        )
