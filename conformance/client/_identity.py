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

import random
import re
import secrets
import string
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from faker import Faker

__all__ = [
    "EMAIL_DOMAIN",
    "MAX_EMAIL",
    "IdentityFactory",
    "OrchestratorIdentity",
    "User",
    "new_seed",
    "stripe_account_id",
]

EMAIL_DOMAIN = "example.com"
MAX_EMAIL = 48
"""The longest address the suite sends: realistic, and 64 characters with "Stripe ()"."""

_IDENTIFIER = re.compile(r"[A-Za-z0-9_\-]{1,255}")
_ALPHANUMERIC = string.ascii_letters + string.digits


def new_seed() -> int:
    """A fresh seed for an `IdentityFactory`: what a run records so it can be reproduced."""
    return secrets.randbelow(2**31)


def stripe_account_id(source: random.Random | None = None) -> str:
    """An id shaped like Stripe's: `acct_1` and 15 letters or digits, drawn from `source`
    (a seeded generator) or fresh."""
    draw = source.choice if source is not None else secrets.choice
    return "acct_1" + "".join(draw(_ALPHANUMERIC) for _ in range(15))


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
    """Fresh users with realistic names and emails, all drawn from one seed.

    The names come from a seeded Faker, and so do the emails (`first.last+tag@example.com`),
    user ids and account ids: the same seed gives the same identities in the same order, so
    a run can be reproduced by giving it the seed its results recorded. The default seed is
    fresh on every run, so two runs against one staging system do not share an identity."""

    seed: int = field(default_factory=new_seed)
    _faker: Faker = field(init=False, repr=False)
    _random: random.Random = field(init=False, repr=False)
    _count: int = field(init=False, default=0, repr=False)

    def __post_init__(self) -> None:
        self._faker = Faker("en_US")
        self._faker.seed_instance(self.seed)
        self._random = random.Random(self.seed)

    def user(self, email: str | None = None, *, email_verified: bool = True) -> User:
        """A new user; `email` pins the address (an account the provider already has)."""
        first, last = self._faker.first_name(), self._faker.last_name()
        self._count += 1
        return User(
            id="usr_" + self._hex(16),
            email=email or self.email(first, last),
            name=f"{first} {last}",
            account=stripe_account_id(self._random),
            email_verified=email_verified,
        )

    def email(self, first: str | None = None, last: str | None = None) -> str:
        """A new address for a person named `first last` (drawn when not given).

        example.com (RFC 2606) is never a real mailbox; the local part is plain lowercase
        atoms (RFC 5321 dot-string) and the address stays within MAX_EMAIL, short enough for
        any column a provider derives from it (PostHog names a new organisation
        "Stripe (<email>)" in 64 characters). The tag keeps it unique within the run."""
        first = first or self._faker.first_name()
        last = last or self._faker.last_name()
        name = ".".join(part for part in (_atom(first), _atom(last)) if part) or "user"
        tag = f"{self._count:x}{self._hex(6)}"
        room = MAX_EMAIL - len(f"+{tag}@{EMAIL_DOMAIN}")
        local = name[:room].rstrip(".")
        return f"{local}+{tag}@{EMAIL_DOMAIN}"

    def _hex(self, digits: int) -> str:
        return "".join(self._random.choice(string.hexdigits[:16]) for _ in range(digits))


def _atom(text: str) -> str:
    """`text` as lowercase ASCII letters and digits (Faker's names may carry an apostrophe,
    a hyphen or an accent)."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]", "", folded.lower())
