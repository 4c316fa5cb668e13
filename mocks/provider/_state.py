"""The mock provider's records: accounts, identity links, codes, tokens, resources.

All of it lives in the injected `Store`, so `--state FILE` keeps a served sandbox across a
restart. Secrets are random (`secrets.token_urlsafe`), never derived from inputs.
"""

from __future__ import annotations

import secrets
from typing import Any

from mocks._core.store import Store

__all__ = ["ProviderState"]

ACCOUNTS = "accounts"
LINKS = "links"
CODES = "codes"
TOKENS = "tokens"
REFRESH = "refresh_tokens"
RESOURCES = "resources"
API_KEYS = "api_keys"
PROJECTS = "projects"
REQUESTS = "account_requests"


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


class ProviderState:
    def __init__(self, store: Store) -> None:
        self.store = store

    # accounts -------------------------------------------------------------------------
    def account_by_email(self, email: str) -> dict[str, Any] | None:
        folded = email.casefold()
        for _, account in self.store.items(ACCOUNTS):
            if str(account["email"]).casefold() == folded:
                return dict(account)
        return None

    def create_account(self, email: str, *, origin: str) -> dict[str, Any]:
        account = {"id": new_id("acct"), "email": email, "origin": origin}
        self.store.put(ACCOUNTS, account["id"], account)
        return account

    def account(self, account_id: str) -> dict[str, Any] | None:
        found = self.store.get(ACCOUNTS, account_id)
        return dict(found) if found else None

    def link(self, identity: str, account_id: str) -> None:
        self.store.put(LINKS, identity, account_id)

    def linked_account(self, identity: str) -> str | None:
        found = self.store.get(LINKS, identity)
        return str(found) if found else None

    # authorization codes ----------------------------------------------------------------
    def issue_code(self, record: dict[str, Any]) -> str:
        code = secrets.token_urlsafe(24)
        self.store.put(CODES, code, record)
        return code

    def take_code(self, code: str) -> dict[str, Any] | None:
        """The code's record, consumed: a code works once (RFC 6749 §4.1.2)."""
        with self.store.transaction():
            record = self.store.get(CODES, code)
            if record is not None:
                self.store.delete(CODES, code)
        return dict(record) if record else None

    def peek_code(self, code: str) -> dict[str, Any] | None:
        record = self.store.get(CODES, code)
        return dict(record) if record else None

    # tokens -------------------------------------------------------------------------------
    def issue_tokens(self, account_id: str, scope: str, *, expires_at: int) -> dict[str, str]:
        access = "pma_" + secrets.token_urlsafe(24)
        refresh = "pmr_" + secrets.token_urlsafe(24)
        self.store.put(
            TOKENS,
            access,
            {"account": account_id, "scope": scope, "exp": expires_at, "refresh": refresh},
        )
        self.store.put(REFRESH, refresh, {"account": account_id, "scope": scope, "access": access})
        return {"access_token": access, "refresh_token": refresh}

    def access_token(self, token: str) -> dict[str, Any] | None:
        found = self.store.get(TOKENS, token)
        return dict(found) if found else None

    def refresh_token(self, token: str) -> dict[str, Any] | None:
        found = self.store.get(REFRESH, token)
        return dict(found) if found else None

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
    def save_resource(self, resource: dict[str, Any]) -> None:
        self.store.put(RESOURCES, resource["id"], resource)

    def resource(self, resource_id: str) -> dict[str, Any] | None:
        found = self.store.get(RESOURCES, resource_id)
        return dict(found) if found else None

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
