"""The mock orchestrator's own signing key: made once per state, published in its JWKS.

It signs attestations and payment tokens. A served sandbox keeps it across a restart (it
lives only in the state file), so tokens minted before the restart still verify, and
processes that start at once on one new file agree on one key (`Store.setdefault`).
"""

from __future__ import annotations

import hashlib
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from mocks._core.store import Store
from mocks.faults import FaultSet
from wire import jose

__all__ = ["jwks_document", "load_or_make_key", "unpublished_key"]

_KEYS = "orchestrator_keys"
_LEGACY_RSA_JWK = {
    "kty": "RSA",
    "kid": "legacy-rs256",
    "alg": "RS256",
    "use": "sig",
    "e": "AQAB",
    "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIR"
    "ROSBigeC5yjU1hGzHHyXss8UDprecbAaxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJ"
    "QbEGs4M6pDEbBhq1eInhnNc_bLWJvyZRvfxHYiSmYd4gpISqh_vR8oUjl15O_7Fdb4uQ6Ylav6UPxw",
}
"""The jwks-rsa-key fault's extra key: an RS256 key left over from a migration."""


def load_or_make_key(store: Store) -> jose.SigningKey:
    """The state's signing key, made and stored first if the state has none."""
    stored = store.get(_KEYS, "current")
    if stored is None:
        key = jose.generate_key("EdDSA")
        pem = key.private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        stored = store.setdefault(_KEYS, "current", {"kid": key.kid, "alg": key.alg, "pem": pem})
    private = serialization.load_pem_private_key(stored["pem"].encode(), password=None)
    return jose.SigningKey(kid=stored["kid"], alg=stored["alg"], private=private)  # type: ignore[arg-type]


def unpublished_key(signing_key: jose.SigningKey) -> jose.SigningKey:
    """A key derived from the signing key and never published (the
    payment-token-unpublished-key fault's)."""
    seed = hashlib.sha256(_raw_private(signing_key) + b"unpublished").digest()
    private = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    return jose.SigningKey(kid=signing_key.kid + "-unpublished", alg="EdDSA", private=private)


def jwks_document(signing_key: jose.SigningKey, faults: FaultSet) -> dict[str, Any]:
    """The published JWKS: the signing key's public half (and what the faults add)."""
    document = jose.jwks([signing_key])
    if faults.active("jwks-private-key-leak"):
        document["keys"][0]["d"] = jose.b64url_encode(_raw_private(signing_key))
    if faults.active("jwks-rsa-key"):
        document["keys"].append(dict(_LEGACY_RSA_JWK))
    if faults.active("jwks-junk-entry"):
        keys: list[Any] = document["keys"]
        keys.append("legacy-signing-key")
    return document


def _raw_private(signing_key: jose.SigningKey) -> bytes:
    return signing_key.private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
