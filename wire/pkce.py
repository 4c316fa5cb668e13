"""PKCE (RFC 7636) with S256, the only method APP accepts (§4.1, §4.2).

The one place the challenge is computed: the suite's client, the mock orchestrator, the mock
agent and the mock resource server make pairs with `pkce_pair`, and every verifier (a mock's
token endpoint, a check of what a target sent) compares against `s256`.

    >>> s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")  # RFC 7636 Appendix B
    'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM'
"""

from __future__ import annotations

import secrets

from wire.jose import sha256_b64url

__all__ = ["pkce_pair", "s256"]


def s256(verifier: str) -> str:
    """BASE64URL-ENCODE(SHA256(ASCII(code_verifier))) (RFC 7636 §4.2).

    A verifier read off the wire may hold any character: it is encoded as UTF-8 (the same
    bytes as ASCII for every valid verifier), so a hostile one gives a challenge that does
    not match instead of an exception."""
    return sha256_b64url(verifier.encode("utf-8"))


def pkce_pair() -> tuple[str, str]:
    """A fresh (code_verifier, code_challenge): 64 unreserved characters, within §4.1's 43-128."""
    verifier = secrets.token_urlsafe(48)
    return verifier, s256(verifier)
