"""JWS verification and key fetching for the independent app-next provider.

Written from the draft alone (DESIGN.md §2 app-next items 1, 3, 4; RFC 7515, 7519, 8725;
docs/decisions/app-next-provider.md): an explicit algorithm allow-list, an explicit `typ`
compared as a media type, keys only from the orchestrator's published JWKS found through its
metadata at the trusted issuer, header and claims parsed strictly (a duplicated member is an
error, RFC 7515 §5.2 / RFC 8725 §3.7). Signatures are checked with PyJWT; everything around the
signature is checked here, because PyJWT parses JSON leniently and knows nothing of APP.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import ipaddress
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

__all__ = [
    "ALGORITHMS",
    "JoseError",
    "KeysUnavailable",
    "OrchestratorTrust",
    "SigningKey",
    "b64url_sha256",
    "fetch_json",
    "strict_loads",
]

ALGORITHMS = ("EdDSA", "ES256")  # profile.toml [parameters] algorithms
LEEWAY = 60  # decisions: at most 60 s of clock leeway
FETCH_LIMIT = 64 * 1024
FETCH_TIMEOUT = 4.0
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_KEY_HEADERS = ("jku", "x5u", "jwk", "x5c")


class JoseError(Exception):
    """The token does not verify: the caller answers 401 (or refuses the payment)."""


class KeysUnavailable(Exception):
    """The orchestrator's metadata or keys cannot be had: the caller answers 503."""


def strict_loads(data: bytes | str) -> Any:
    """JSON with no duplicate member names, no NaN/Infinity, UTF-8 only."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                raise ValueError(f"duplicate member {key!r}")
            out[key] = value
        return out

    def constant(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    text = data.decode("utf-8") if isinstance(data, bytes) else data
    return json.loads(text, object_pairs_hook=pairs, parse_constant=constant)


def b64url_sha256(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _b64decode(segment: str) -> bytes:
    if not segment or any(c not in _B64URL for c in segment):
        raise JoseError("segment is not base64url")
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _media_type_equal(typ: object, expected: str) -> bool:
    """RFC 7515 §4.1.9: compared case-insensitively, `application/` may be left out."""
    if not isinstance(typ, str):
        return False
    value = typ.lower()
    if value.startswith("application/"):
        value = value[len("application/") :]
    return value == expected.lower()


def _is_numeric_date(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _url_allowed(url: str, *, allow_loopback: bool) -> bool:
    """DESIGN.md §5: https only, no private or link-local ranges; http and loopback only when
    the run allows loopback explicitly. Hostnames other than localhost are refused outright
    (this provider never needs one; a resolver check would be needed otherwise)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not host or parts.username or parts.password:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return allow_loopback
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return parts.scheme == "https"
    if address.is_loopback:
        return allow_loopback
    if (
        address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    ):
        return False
    return parts.scheme == "https"


async def fetch_json(url: str, *, allow_loopback: bool, guard: bool = True) -> Any:
    """GET a small JSON document: SSRF guard, no redirects, 64 KiB, 4 s."""
    if guard and not _url_allowed(url, allow_loopback=allow_loopback):
        raise KeysUnavailable(f"refused to fetch {url}")
    try:
        async with (
            httpx.AsyncClient(timeout=FETCH_TIMEOUT, follow_redirects=False) as client,
            client.stream("GET", url, headers={"Accept": "application/json"}) as response,
        ):
            if response.status_code != 200:
                raise KeysUnavailable(f"{url} answered {response.status_code}")
            body = b""
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > FETCH_LIMIT:
                    raise KeysUnavailable(f"{url} is too large")
    except httpx.HTTPError as exc:
        raise KeysUnavailable(f"{url}: {type(exc).__name__}") from exc
    try:
        return strict_loads(body)
    except ValueError as exc:
        raise KeysUnavailable(f"{url} is not JSON") from exc


@dataclass
class SigningKey:
    """The provider's own Ed25519 key: signs its redemption attestations, published at the
    jwks_uri of its Protected Resource Metadata (DESIGN.md §2 app-next item 4)."""

    private: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    kid: str = field(default_factory=lambda: "prv-" + secrets.token_hex(4))

    def jwks(self) -> dict[str, Any]:
        public = jwt.algorithms.OKPAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        return {"keys": [{**public, "kid": self.kid, "alg": "EdDSA", "use": "sig"}]}

    def attest(self, *, iss: str, sub: str, aud: str, body: bytes) -> str:
        now = int(time.time())
        claims = {
            "iss": iss,
            "sub": sub,
            "aud": aud,
            "iat": now,
            "exp": now + 120,
            "jti": secrets.token_urlsafe(16),
            "body_sha256": b64url_sha256(body),
        }
        headers = {"typ": "app-attestation+jwt", "kid": self.kid}
        return jwt.encode(claims, self.private, algorithm="EdDSA", headers=headers)


@dataclass
class _Cache:
    metadata: dict[str, Any] | None = None
    keys: dict[str, dict[str, Any]] | None = None
    fetched_at: float = 0.0


class OrchestratorTrust:
    """Everything the provider knows about the one orchestrator it trusts: its issuer (the
    only configured value), and what it fetched from `{issuer}/.well-known/app-orchestrator`."""

    CACHE_SECONDS = 300.0

    def __init__(self, issuer: str, *, allow_loopback: bool = False) -> None:
        self.issuer = issuer
        self.allow_loopback = allow_loopback
        self._cache = _Cache()
        self._lock = asyncio.Lock()
        self._seen_jti: dict[str, int] = {}

    @property
    def metadata_url(self) -> str:
        # decisions#unavailable-keys: issuer without a terminating "/", then the well-known.
        return self.issuer.rstrip("/") + "/.well-known/app-orchestrator"

    async def _refresh(self) -> None:
        metadata = await fetch_json(self.metadata_url, allow_loopback=self.allow_loopback)
        if not isinstance(metadata, dict):
            raise KeysUnavailable("the orchestrator metadata is not an object")
        if metadata.get("issuer") != self.issuer:  # PRV-RED-007: exact, never normalised
            raise KeysUnavailable("the metadata issuer is not the trusted issuer")
        for member in ("jwks_uri", "redemption_endpoint"):
            if not isinstance(metadata.get(member), str):
                raise KeysUnavailable(f"the metadata has no {member}")
        keys = _parse_jwks(
            await fetch_json(metadata["jwks_uri"], allow_loopback=self.allow_loopback)
        )
        self._cache = _Cache(metadata=metadata, keys=keys, fetched_at=time.monotonic())

    async def metadata(self) -> dict[str, Any]:
        async with self._lock:
            stale = time.monotonic() - self._cache.fetched_at > self.CACHE_SECONDS
            if self._cache.metadata is None or stale:
                await self._refresh()
            assert self._cache.metadata is not None
            return self._cache.metadata

    async def _key(self, kid: str) -> dict[str, Any]:
        async with self._lock:
            stale = time.monotonic() - self._cache.fetched_at > self.CACHE_SECONDS
            if self._cache.keys is None or stale or kid not in self._cache.keys:
                # PRV-ATT-026: an unknown kid refetches once (a rotated key).
                await self._refresh()
            assert self._cache.keys is not None
            if kid not in self._cache.keys:
                raise JoseError("the token's kid is not in the orchestrator's JWKS")
            return self._cache.keys[kid]

    async def verify(
        self,
        token: str,
        *,
        typ: str,
        audience: str,
        max_lifetime: int,
        required: tuple[str, ...],
        check_audience: bool = True,
        trust_jku: bool = False,
    ) -> dict[str, Any]:
        """The verified claims, or JoseError / KeysUnavailable. `trust_jku` is a one-bug
        variant's switch: follow a `jku` header (PRV-ATT-014 / PRV-PAY-013)."""
        parts = token.split(".")
        if len(parts) != 3:
            raise JoseError("not a compact JWS")
        try:
            header = strict_loads(_b64decode(parts[0]))
            claims = strict_loads(_b64decode(parts[1]))
        except (ValueError, UnicodeDecodeError) as exc:
            raise JoseError("header or claims are not strict JSON") from exc
        signature = _b64decode(parts[2])
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise JoseError("header and claims must be objects")
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise JoseError("algorithm not allowed")
        if typ and not _media_type_equal(header.get("typ"), typ):  # "": the typ-unchecked variant
            raise JoseError("wrong typ")
        if "crit" in header:
            raise JoseError("crit names a parameter this verifier does not understand")
        kid = header.get("kid")
        jku = header.get("jku")
        if trust_jku and isinstance(jku, str):
            # The one-bug variant: the key set the token names is fetched and believed.
            keys = _parse_jwks(await fetch_json(jku, allow_loopback=True, guard=False))
            if not isinstance(kid, str) or kid not in keys:
                raise JoseError("kid not in the named key set")
            jwk = keys[kid]
        else:
            if any(name in header for name in _KEY_HEADERS):
                raise JoseError("a key named or embedded by the token is never used")
            if not isinstance(kid, str) or not kid:
                raise JoseError("no kid")
            jwk = await self._key(kid)
        _check_key_matches(jwk, alg)
        if alg == "ES256":
            _check_ecdsa_range(signature)
        try:
            key = jwt.PyJWK(jwk, algorithm=alg).key
            jwt.api_jws.PyJWS().decode_complete(token, key=key, algorithms=[alg])
        except jwt.PyJWTError as exc:
            raise JoseError("signature does not verify") from exc

        if claims.get("iss") != self.issuer:
            raise JoseError("untrusted issuer")
        if check_audience and not _audience_ok(claims.get("aud"), audience):
            raise JoseError("wrong audience")
        for name in required:
            if name not in claims:
                raise JoseError(f"no {name}")
        now = int(time.time())
        iat, exp = claims.get("iat"), claims.get("exp")
        if not _is_numeric_date(iat) or not _is_numeric_date(exp):
            raise JoseError("iat and exp must be NumericDate integers")
        assert isinstance(iat, int)
        assert isinstance(exp, int)
        if exp < iat or exp - iat > max_lifetime:
            raise JoseError("lifetime too long")
        if exp + LEEWAY < now:
            raise JoseError("expired")
        if iat - LEEWAY > now:
            raise JoseError("issued in the future")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti:
            raise JoseError("no jti")
        return claims

    def use_jti(self, jti: str, exp: int) -> bool:
        """Single use (PRV-ATT-022): False when the jti was seen before its expiry."""
        now = int(time.time())
        for seen, until in list(self._seen_jti.items()):
            if until < now:
                del self._seen_jti[seen]
        if jti in self._seen_jti:
            return False
        self._seen_jti[jti] = exp + LEEWAY
        return True


def _audience_ok(aud: object, expected: str) -> bool:
    """decisions#audiences: a string equal to the base URL, or an array holding exactly it."""
    if isinstance(aud, str):
        return aud == expected
    return isinstance(aud, list) and aud == [expected]


def _parse_jwks(document: object) -> dict[str, dict[str, Any]]:
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise KeysUnavailable("not a JWK Set")
    keys: dict[str, dict[str, Any]] = {}
    for jwk in document["keys"]:
        if isinstance(jwk, dict) and isinstance(jwk.get("kid"), str):
            if any(private in jwk for private in ("d", "p", "q", "k")):
                continue  # a published private key is not a key to trust
            keys[jwk["kid"]] = jwk
    return keys


def _check_key_matches(jwk: dict[str, Any], alg: str) -> None:
    """The key's type and curve must be the header algorithm's (no algorithm confusion)."""
    expected = {"EdDSA": ("OKP", "Ed25519"), "ES256": ("EC", "P-256")}[alg]
    if (jwk.get("kty"), jwk.get("crv")) != expected:
        raise JoseError("the key does not fit the algorithm")
    if "alg" in jwk and jwk["alg"] != alg:
        raise JoseError("the key is for another algorithm")


def _check_ecdsa_range(signature: bytes) -> None:
    """CVE-2022-21449: r and s in 1..n-1 (RFC 7518 §3.4: R || S, 32 bytes each)."""
    if len(signature) != 64:
        raise JoseError("an ES256 signature is 64 bytes")
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:], "big")
    if not (0 < r < _P256_ORDER and 0 < s < _P256_ORDER):
        raise JoseError("r or s out of range")
