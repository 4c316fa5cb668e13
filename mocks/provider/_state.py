"""The mock provider's records: accounts, identity links, codes, tokens, resources, account
requests awaiting consent and deep links.

All of it lives in the injected `Store`, so `--state FILE` keeps a served sandbox across a
restart; each record is a JSON object, typed here (`TypedDict`) so the rooms read and write
named members. Secrets are random (`secrets.token_urlsafe`), never derived from inputs.
"""

from __future__ import annotations

import secrets
from typing import Any, NotRequired, TypedDict, Unpack, cast

from mocks._core.store import Store

__all__ = [
    "Account",
    "AccountRequest",
    "AccessToken",
    "CodeBinding",
    "CodeRecord",
    "DeepLink",
    "ProviderState",
    "RefreshToken",
    "Resource",
    "new_id",
]

ACCOUNTS = "accounts"
LINKS = "links"
CODES = "codes"
TOKENS = "tokens"
REFRESH = "refresh_tokens"
RESOURCES = "resources"
API_KEYS = "api_keys"
PROJECTS = "projects"
REQUESTS = "account_requests"
DEEP_LINKS = "deep_links"


class Account(TypedDict):
    id: str
    email: str
    origin: str
    """"signup" (an account of the provider's own) or "orchestrator" (made for one)."""


class CodeBinding(TypedDict, total=False):
    """What app-next's authorization endpoint binds its code to, besides the challenge."""

    method: str
    redirect_uri: str
    resource: str | None
    consented: bool


class CodeRecord(TypedDict):
    account: str
    challenge: str | None
    exp: int
    request: str
    method: NotRequired[str]
    redirect_uri: NotRequired[str]
    resource: NotRequired[str | None]
    consented: NotRequired[bool]


class AccessToken(TypedDict):
    account: str
    scope: str
    exp: int
    refresh: str


class RefreshToken(TypedDict):
    account: str
    scope: str
    access: str


class Resource(TypedDict):
    id: str
    account: str
    service_id: str
    configuration: dict[str, Any]
    status: str
    """"complete", "pending", "needs_information" or "removed"."""
    api_key: str | None
    created: int


class AccountRequest(TypedDict):
    """app-0.1d: an account request answered `requires_auth`, awaiting the user's consent."""

    account: str
    challenge: Any
    identity: str


class DeepLink(TypedDict):
    account: str
    exp: int


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


class ProviderState:
    def __init__(self, store: Store) -> None:
        self.store = store

    # accounts -------------------------------------------------------------------------
    def account_by_email(self, email: str) -> Account | None:
        folded = email.casefold()
        for _, account in self.store.items(ACCOUNTS):
            if str(account["email"]).casefold() == folded:
                return cast(Account, dict(account))
        return None

    def create_account(self, email: str, *, origin: str) -> Account:
        account: Account = {"id": new_id("acct"), "email": email, "origin": origin}
        self.store.put(ACCOUNTS, account["id"], account)
        return account

    def account(self, account_id: str) -> Account | None:
        found = self.store.get(ACCOUNTS, account_id)
        return cast(Account, dict(found)) if found else None

    def link(self, identity: str, account_id: str) -> None:
        self.store.put(LINKS, identity, account_id)

    def linked_account(self, identity: str) -> str | None:
        found = self.store.get(LINKS, identity)
        return str(found) if found else None

    # account requests awaiting consent (app-0.1d) ------------------------------------------
    def await_consent(self, request_id: str, pending: AccountRequest) -> None:
        self.store.put(REQUESTS, request_id, pending)

    def awaiting_consent(self, request_id: str) -> AccountRequest | None:
        found = self.store.get(REQUESTS, request_id)
        return cast(AccountRequest, dict(found)) if found is not None else None

    def consented(self, request_id: str) -> None:
        self.store.delete(REQUESTS, request_id)

    # authorization codes ----------------------------------------------------------------
    def issue_code(
        self,
        account_id: str,
        *,
        challenge: str | None,
        exp: int,
        request: str,
        **binding: Unpack[CodeBinding],
    ) -> str:
        record: CodeRecord = {
            "account": account_id,
            "challenge": challenge,
            "exp": exp,
            "request": request,
            **binding,
        }
        code = secrets.token_urlsafe(24)
        self.store.put(CODES, code, record)
        return code

    def take_code(self, code: str) -> CodeRecord | None:
        """The code's record, consumed: a code works once (RFC 6749 §4.1.2)."""
        with self.store.transaction():
            record = self.store.get(CODES, code)
            if record is not None:
                self.store.delete(CODES, code)
        return cast(CodeRecord, dict(record)) if record else None

    def peek_code(self, code: str) -> CodeRecord | None:
        record = self.store.get(CODES, code)
        return cast(CodeRecord, dict(record)) if record else None

    # tokens -------------------------------------------------------------------------------
    def issue_tokens(self, account_id: str, scope: str, *, expires_at: int) -> dict[str, str]:
        access = "pma_" + secrets.token_urlsafe(24)
        refresh = "pmr_" + secrets.token_urlsafe(24)
        access_record: AccessToken = {
            "account": account_id,
            "scope": scope,
            "exp": expires_at,
            "refresh": refresh,
        }
        refresh_record: RefreshToken = {"account": account_id, "scope": scope, "access": access}
        self.store.put(TOKENS, access, access_record)
        self.store.put(REFRESH, refresh, refresh_record)
        return {"access_token": access, "refresh_token": refresh}

    def access_token(self, token: str) -> AccessToken | None:
        found = self.store.get(TOKENS, token)
        return cast(AccessToken, dict(found)) if found else None

    def refresh_token(self, token: str) -> RefreshToken | None:
        found = self.store.get(REFRESH, token)
        return cast(RefreshToken, dict(found)) if found else None

    def revoke_access(self, token: str) -> bool:
        return self.store.delete(TOKENS, token)

    def revoke_refresh(self, token: str) -> bool:
        record = self.store.get(REFRESH, token)
        if record is None:
            return False
        with self.store.transaction():
            self.store.delete(REFRESH, token)
            self.store.delete(TOKENS, str(record["access"]))
        return True

    # resources ------------------------------------------------------------------------------
    def save_resource(self, resource: Resource) -> None:
        self.store.put(RESOURCES, resource["id"], resource)

    def resource(self, resource_id: str) -> Resource | None:
        found = self.store.get(RESOURCES, resource_id)
        return cast(Resource, dict(found)) if found else None

    def new_api_key(self, resource_id: str) -> str:
        key = "pmk_" + secrets.token_urlsafe(24)
        self.store.put(API_KEYS, key, resource_id)
        return key

    def api_key_resource(self, key: str) -> str | None:
        found = self.store.get(API_KEYS, key)
        return str(found) if found else None

    def drop_api_key(self, key: str) -> None:
        self.store.delete(API_KEYS, key)

    def project_owner(self, project_id: str) -> tuple[str, str] | None:
        """(account, resource) holding `project_id`, whichever account that is."""
        found = self.store.get(PROJECTS, f"owner\x1f{project_id}")
        return (str(found[0]), str(found[1])) if isinstance(found, list) else None

    def project_resource(self, account_id: str, project_id: str) -> str | None:
        found = self.store.get(PROJECTS, f"{account_id}\x1f{project_id}")
        return str(found) if found else None

    def bind_project(self, account_id: str, project_id: str, resource_id: str) -> None:
        self.store.put(PROJECTS, f"{account_id}\x1f{project_id}", resource_id)
        if self.project_owner(project_id) is None:
            self.store.put(PROJECTS, f"owner\x1f{project_id}", [account_id, resource_id])

    # deep links ---------------------------------------------------------------------------
    def save_deep_link(self, login: str, link: DeepLink) -> None:
        self.store.put(DEEP_LINKS, login, link)

    def deep_link(self, login: str) -> DeepLink | None:
        found = self.store.get(DEEP_LINKS, login)
        return cast(DeepLink, dict(found)) if found is not None else None

    def drop_deep_link(self, login: str) -> None:
        self.store.delete(DEEP_LINKS, login)
