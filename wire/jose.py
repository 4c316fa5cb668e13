"""JWS compact serialisation: keys, signing, and verification with explicit allow-lists.

The one place provspec and its mocks sign and verify JWTs (APP attestations, payment tokens).
Verification is two separate steps, each raising `JOSEError` with a stable `reason`:

1. `verify_signature(token, keys=…, algorithms=…, typ=…)` — the compact form must be three
   base64url segments with no padding; header and claims are parsed with the strict JSON
   parser (a duplicated `alg` is refused, never last-wins); `alg` must be in the caller's
   allow-list (there is no default, and the header never chooses); `typ` must match; `crit`
   is refused (no extension is understood); the key comes only from the caller's key set by
   `kid` — `jku`, `x5u`, `jwk` and `x5c` in the header are never used; ES256 signatures must
   be 64-byte R‖S with 0 < r, s < n (RFC 7518 §3.4; CVE-2022-21449).
2. `validate_claims(claims, issuer=…, audience=…, now=…)` — exact string comparison for
   `iss` and `aud` (RFC 8725 §3.8 and §3.9), one audience only, NumericDate types, `exp` / `nbf` /
   `iat` with a bounded leeway, and a maximum lifetime.

Signing uses keys generated at start-up (`generate_key`); none is ever committed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from wire import strictjson

__all__ = [
    "SUPPORTED_ALGORITHMS",
    "JOSEError",
    "PublicKey",
    "SigningKey",
    "b64url_decode",
    "b64url_encode",
    "compact",
    "generate_key",
    "jwks",
    "parse_jwks",
    "sha256_b64url",
    "sign",
    "unverified_parts",
    "validate_claims",
    "verify_signature",
]

SUPPORTED_ALGORITHMS = ("EdDSA", "ES256")
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_SEGMENT = re.compile(r"[A-Za-z0-9_-]*")
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "k", "oth"})


class JOSEError(ValueError):
    """A token or key refused; `reason` is a stable machine code for checks and reports."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(segment: str) -> bytes:
    """Strict base64url: the URL-safe alphabet only, no padding, no whitespace."""
    if not _SEGMENT.fullmatch(segment) or len(segment) % 4 == 1:
        raise JOSEError("malformed", "segment is not unpadded base64url")
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise JOSEError("malformed", "segment is not unpadded base64url") from None


def sha256_b64url(data: bytes) -> str:
    """base64url(SHA-256(data)) without padding: the attestation's `body_sha256`."""
    return b64url_encode(hashlib.sha256(data).digest())


@dataclass(frozen=True)
class PublicKey:
    """A verification key taken from a JWKS: one `kid`, one algorithm."""

    kid: str
    alg: str
    key: ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey

    def verify(self, signature: bytes, signing_input: bytes) -> None:
        try:
            if isinstance(self.key, ed25519.Ed25519PublicKey):
                self.key.verify(signature, signing_input)
                return
            if len(signature) != 64:
                raise JOSEError("bad_signature", "ES256 signature must be 64 bytes of R||S")
            r = int.from_bytes(signature[:32], "big")
            s = int.from_bytes(signature[32:], "big")
            if not (0 < r < _P256_ORDER and 0 < s < _P256_ORDER):
                raise JOSEError("bad_signature", "ES256 signature has r or s out of range")
            self.key.verify(encode_dss_signature(r, s), signing_input, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise JOSEError("bad_signature", "signature does not verify") from None


@dataclass(frozen=True)
class SigningKey:
    """A private key made at start-up, with its `kid` and its one algorithm."""

    kid: str
    alg: str
    private: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey = field(repr=False)

    def public_jwk(self) -> dict[str, str]:
        """The public JWK (RFC 7517): never any private member."""
        public = self.private.public_key()
        if isinstance(public, ed25519.Ed25519PublicKey):
            raw = public.public_bytes_raw()
            return {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(raw), "kid": self.kid,
                    "alg": self.alg, "use": "sig"}  # fmt: skip
        numbers = public.public_numbers()
        return {"kty": "EC", "crv": "P-256", "x": b64url_encode(numbers.x.to_bytes(32, "big")),
                "y": b64url_encode(numbers.y.to_bytes(32, "big")), "kid": self.kid,
                "alg": self.alg, "use": "sig"}  # fmt: skip

    def public_key(self) -> PublicKey:
        return PublicKey(kid=self.kid, alg=self.alg, key=self.private.public_key())

    def raw_sign(self, signing_input: bytes) -> bytes:
        if isinstance(self.private, ed25519.Ed25519PrivateKey):
            return self.private.sign(signing_input)
        r, s = decode_dss_signature(self.private.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def generate_key(alg: str, kid: str | None = None) -> SigningKey:
    """A fresh EdDSA (Ed25519) or ES256 (P-256) key; `kid` defaults to its RFC 7638 thumbprint."""
    private: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
    if alg == "EdDSA":
        private = ed25519.Ed25519PrivateKey.generate()
    elif alg == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
    else:
        raise ValueError(f"unsupported algorithm {alg!r}; supported: {SUPPORTED_ALGORITHMS}")
    key = SigningKey(kid=kid or "", alg=alg, private=private)
    if kid is None:
        key = SigningKey(kid=_thumbprint(key.public_jwk()), alg=alg, private=private)
    return key


def _thumbprint(jwk: Mapping[str, str]) -> str:
    required = ("crv", "kty", "x") if jwk["kty"] == "OKP" else ("crv", "kty", "x", "y")
    canonical = json.dumps({name: jwk[name] for name in required}, separators=(",", ":"))
    return b64url_encode(hashlib.sha256(canonical.encode()).digest())


def jwks(keys: Iterable[SigningKey]) -> dict[str, list[dict[str, str]]]:
    return {"keys": [key.public_jwk() for key in keys]}


def parse_jwks(document: Any) -> dict[str, PublicKey]:
    """Public keys by `kid`. Keys that cannot be used (unknown kty or curve, `use: enc`,
    private members) are skipped, as RFC 7517 §5 allows; a duplicated `kid` is refused."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise JOSEError("bad_jwks", "a JWKS is an object with a 'keys' array")
    keys: dict[str, PublicKey] = {}
    for jwk in document["keys"]:
        if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str):
            continue
        if _PRIVATE_MEMBERS & set(jwk) or jwk.get("use", "sig") != "sig":
            continue
        public = _public_key(jwk)
        if public is None:
            continue
        if public.kid in keys:
            raise JOSEError("bad_jwks", f"kid {public.kid!r} appears twice in the JWKS")
        keys[public.kid] = public
    return keys


def _public_key(jwk: Mapping[str, Any]) -> PublicKey | None:
    try:
        if (
            jwk.get("kty") == "OKP"
            and jwk.get("crv") == "Ed25519"
            and jwk.get("alg", "EdDSA") == "EdDSA"
        ):
            raw = b64url_decode(jwk["x"])
            return PublicKey(jwk["kid"], "EdDSA", ed25519.Ed25519PublicKey.from_public_bytes(raw))
        if (
            jwk.get("kty") == "EC"
            and jwk.get("crv") == "P-256"
            and jwk.get("alg", "ES256") == "ES256"
        ):
            x = int.from_bytes(b64url_decode(jwk["x"]), "big")
            y = int.from_bytes(b64url_decode(jwk["y"]), "big")
            point = ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
            return PublicKey(jwk["kid"], "ES256", point)
    except (KeyError, TypeError, ValueError):
        return None
    return None


def compact(
    header: Mapping[str, Any] | bytes, claims: Mapping[str, Any] | bytes, signature: bytes
) -> str:
    """Assemble a compact JWS from parts, unchecked: how hostile test tokens are built."""
    head = (
        header if isinstance(header, bytes) else json.dumps(header, separators=(",", ":")).encode()
    )
    body = (
        claims if isinstance(claims, bytes) else json.dumps(claims, separators=(",", ":")).encode()
    )
    return f"{b64url_encode(head)}.{b64url_encode(body)}.{b64url_encode(signature)}"


def sign(claims: Mapping[str, Any], key: SigningKey, *, typ: str, **header: Any) -> str:
    """A compact JWS over `claims`, header `{alg, typ, kid}` plus any extra members."""
    protected = {"alg": key.alg, "typ": typ, "kid": key.kid, **header}
    head = b64url_encode(json.dumps(protected, separators=(",", ":")).encode())
    body = b64url_encode(json.dumps(dict(claims), separators=(",", ":")).encode())
    signature = key.raw_sign(f"{head}.{body}".encode("ascii"))
    return f"{head}.{body}.{b64url_encode(signature)}"


def unverified_parts(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    """Header, claims and signature of a compact JWS, strictly parsed and NOT verified."""
    if not isinstance(token, str) or len(token) > 16_384:
        raise JOSEError("malformed", "token is not a string of at most 16 KiB")
    parts = token.split(".")
    if len(parts) != 3:
        raise JOSEError("malformed", f"compact JWS has 3 segments; this has {len(parts)}")
    decoded = [b64url_decode(part) for part in parts]
    try:
        header = strictjson.loads(decoded[0], max_bytes=8192, max_depth=4)
        claims = strictjson.loads(decoded[1], max_bytes=16_384, max_depth=8)
    except strictjson.StrictJSONError as exc:
        raise JOSEError("malformed", f"header or claims refused: {exc}") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise JOSEError("malformed", "header and claims must be JSON objects")
    return header, claims, decoded[2]


def verify_signature(
    token: str,
    *,
    keys: Mapping[str, PublicKey],
    algorithms: Sequence[str],
    typ: str,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Step 1: the token is well formed, of the expected type, and signed by a known key."""
    if not algorithms:
        raise ValueError("algorithms must name at least one algorithm; there is no default")
    header, claims, signature = unverified_parts(token)
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in algorithms:
        raise JOSEError(
            "alg_not_allowed", f"alg {alg!r} is not in the allow-list {list(algorithms)}"
        )
    if "crit" in header:
        raise JOSEError(
            "crit_not_understood", "crit names extensions this verifier does not implement"
        )
    header_typ = header.get("typ")
    if not isinstance(header_typ, str) or _media_type(header_typ) != _media_type(typ):
        raise JOSEError("wrong_typ", f"typ {header_typ!r} is not {typ!r}")
    kid = header.get("kid")
    if not isinstance(kid, str) or kid not in keys:
        raise JOSEError("unknown_kid", f"kid {str(kid)[:64]!r} is not in the trusted key set")
    key = keys[kid]
    if key.alg != alg:
        raise JOSEError("alg_not_allowed", f"key {kid!r} is for {key.alg}, token says {alg}")
    head, body, _ = token.split(".")
    key.verify(signature, f"{head}.{body}".encode("ascii"))
    return header, claims


def _media_type(value: str) -> str:
    # RFC 7515 §4.1.9: media types compare case-insensitively; "application/" may be omitted.
    lowered = value.lower()
    return lowered.removeprefix("application/")


def validate_claims(
    claims: Mapping[str, Any],
    *,
    issuer: str,
    audience: str,
    now: int,
    leeway: int = 30,
    max_lifetime: int,
    require: Sequence[str] = ("iss", "aud", "exp", "iat", "jti", "sub"),
) -> None:
    """Step 2: who issued it, for whom, and whether it is valid now."""
    for name in require:
        if name not in claims:
            raise JOSEError("missing_claim", f"required claim {name!r} is absent")
    if claims.get("iss") != issuer:  # exact code-point comparison, never normalised
        raise JOSEError("wrong_iss", f"iss {claims.get('iss')!r} is not {issuer!r}")
    aud = claims.get("aud")
    if isinstance(aud, list):
        if len(aud) != 1:
            raise JOSEError("wrong_aud", "aud must name exactly one audience")
        aud = aud[0]
    if aud != audience:
        raise JOSEError("wrong_aud", f"aud {aud!r} is not {audience!r}")
    times = {}
    for name in ("exp", "iat", "nbf"):
        if name in claims:
            value = claims[name]
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**40:
                raise JOSEError("bad_time", f"{name} must be an integer NumericDate")
            times[name] = value
    if "exp" in times and now >= times["exp"] + leeway:
        raise JOSEError("expired", f"exp {times['exp']} is past (now {now}, leeway {leeway} s)")
    if "nbf" in times and now + leeway < times["nbf"]:
        raise JOSEError("not_yet_valid", f"nbf {times['nbf']} is in the future (now {now})")
    if "iat" in times and times["iat"] > now + leeway:
        raise JOSEError("bad_time", f"iat {times['iat']} is in the future (now {now})")
    if "exp" in times and "iat" in times and times["exp"] - times["iat"] > max_lifetime:
        raise JOSEError("lifetime_too_long", f"exp - iat exceeds {max_lifetime} s")
    if "iat" in times and now - times["iat"] > max_lifetime + leeway:
        raise JOSEError("bad_time", f"iat {times['iat']} is older than the maximum lifetime")
