"""PKCE (RFC 7636) with S256, the only method APP accepts (§4.1, §4.2)."""

from __future__ import annotations

import hashlib
import secrets

from conformance import jose

__all__ = ["pkce_pair", "s256"]


def s256(verifier: str) -> str:
    """BASE64URL-ENCODE(SHA256(ASCII(code_verifier))) (RFC 7636 §4.2)."""
    return jose.b64url_encode(hashlib.sha256(verifier.encode("ascii")).digest())


def pkce_pair() -> tuple[str, str]:
    """A fresh (code_verifier, code_challenge): 64 unreserved characters, within §4.1's 43-128."""
    verifier = secrets.token_urlsafe(48)
    return verifier, s256(verifier)
