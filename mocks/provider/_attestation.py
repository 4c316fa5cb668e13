"""The mock provider's verification of an app-next attestation: PyJWT for the standard parts.

The suite signs its attestations with `wire.jose` (`conformance/client/_signing.py`). Were
the reference provider to verify them with the same module, a mistake shared by signer and
verifier (an ES256 signature in the wrong encoding, a claim compared the wrong way) would
pass both ways and hide. So the signature and the registered claims (`iss` exact, `aud`,
the required claims) are checked by PyJWT, with the profile's explicit algorithm list.

What PyJWT cannot express exactly stays hand-written here, each for its reason:

* strict parsing (`jose.unverified_parts`: duplicate members, size and depth limits):
  PyJWT's `json.loads` keeps the last of two duplicate members;
* the header: `typ` (PyJWT does not read it), `crit` (any, since APP implements no
  extension; PyJWT understands `b64`), the key picked by `kid` from the orchestrator's JWKS
  with its own algorithm (an unknown `kid` makes the caller refetch the JWKS once), the
  allow-list first, so a refused token gets the answer it always got;
* an ES256 signature's length and the range of r and s: PyJWT hands them to `cryptography`,
  which refuses them too, but in one message for every cause;
* the times (`exp`, `nbf`, `iat`, the lifetime bound): PyJWT reads the wall clock
  (`datetime.now`, no clock argument) where the mock runs on an injected clock, and
  `int()`-coerces `"123"` and `1.5` where a NumericDate here is an integer;
* `aud` as a one-element array is one audience; PyJWT accepts an array naming the
  audience among others (and `strict_aud` refuses the one-element array);
* `body_sha256`, `jti` and the replay check, which are APP's, not JWT's.

One answer changes with PyJWT, on purpose: a header with `"b64": false` (RFC 7797's
unencoded payload, which must be named in `crit`) is refused as malformed, where `wire.jose`
ignored the member; no check sends one, and APP implements no extension.

The signature step is a parameter (`SignatureVerifier`): the mock's signature faults swap
in `FaultySignature`, a hand-rolled step with the one mistake each names.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ed25519

from mocks.faults import FaultName, FaultSet
from wire import jose
from wire.attestation import ATTESTATION_TYP, REQUIRED_CLAIMS, ReplayGuard, SignatureVerifier

__all__ = ["SIGNATURE_FAULTS", "FaultySignature", "single_audience", "verify_attestation"]

_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_JWT = jwt.PyJWT()

SIGNATURE_FAULTS: tuple[FaultName, ...] = (
    "empty-signature-accepted",
    "signature-result-ignored",
    "attestation-hs256-accepted",
    "psychic-signature-accepted",
    "jwk-header-honoured",
    "typ-not-checked",
    "crit-ignored",
    "duplicate-claims-last-wins",
    "typ-compared-exactly",
)
"""Faults of the attestation signature step; any of them swaps in `FaultySignature`."""


def verify_attestation(
    token: str | None,
    *,
    keys: Mapping[str, jose.PublicKey],
    issuer: str,
    audience: str,
    body: bytes,
    now: int,
    replay: ReplayGuard | None,
    algorithms: Sequence[str],
    max_lifetime: int,
    header_name: str,
    check_body: bool = True,
    check_audience: bool = True,
    signature_fault: SignatureVerifier | None = None,
    same_issuer: Callable[[Any], bool] | None = None,
    leeway: int = 30,
    require: Sequence[str] = REQUIRED_CLAIMS,
) -> dict[str, Any]:
    """The verified claims, or `JOSEError` with a stable reason: the rules and the order of
    `wire.attestation.verify_attestation` (signature, claims, body, replay), its arguments
    too (every one after `header_name` loosens one rule, for the mock's named faults;
    `signature_fault` replaces the signature step)."""
    if not token:
        raise jose.JOSEError("missing", f"no {header_name} header")
    if signature_fault is None:
        claims = _standard_verification(
            token,
            keys=keys,
            algorithms=algorithms,
            issuer=issuer,
            audience=audience if check_audience else None,
            same_issuer=same_issuer,
            require=require,
        )
        _times(claims, now=now, leeway=leeway, max_lifetime=max_lifetime)
    else:
        # The signature faults' hand-rolled step, then the claims as wire.jose checks them:
        # PyJWT cannot be handed claims already verified by someone else, and it refuses a
        # crit header (the crit-ignored fault) before it reads any claim.
        _, claims = signature_fault(
            token, keys=keys, algorithms=tuple(algorithms), typ=ATTESTATION_TYP
        )
        jose.validate_claims(
            claims,
            issuer=_expected_issuer(claims, issuer, same_issuer),
            audience=audience if check_audience else single_audience(claims),
            now=now,
            leeway=leeway,
            max_lifetime=max_lifetime,
            require=require,
        )
    if check_body:
        bound = claims.get("body_sha256")
        if not isinstance(bound, str) or not hmac.compare_digest(bound, _sha256_b64url(body)):
            raise jose.JOSEError("body_mismatch", "body_sha256 does not match the request body")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > 256:
        raise jose.JOSEError("missing_claim", "jti must be a non-empty string")
    # Without exp (only when `require` lets it pass) the jti is kept for the longest lifetime.
    exp = claims.get("exp", now + max_lifetime)
    if replay is not None and not replay.first_use(issuer, jti, int(exp), now):
        raise jose.JOSEError("replayed", f"jti {jti[:32]!r} was already used")
    return claims


def _standard_verification(
    token: str,
    *,
    keys: Mapping[str, jose.PublicKey],
    algorithms: Sequence[str],
    issuer: str,
    audience: str | None,
    same_issuer: Callable[[Any], bool] | None,
    require: Sequence[str],
) -> dict[str, Any]:
    """The reference step: the header checked by hand (see the module's notes), then PyJWT
    verifies the signature with the profile's algorithm list, the required claims, `iss`
    exactly and `aud` (`audience` None: the token's own single audience, a fault's)."""
    if not algorithms:
        raise ValueError("algorithms must name at least one algorithm; there is no default")
    header, claims, signature = jose.unverified_parts(token)
    key = _trusted_key(header, keys, algorithms, ATTESTATION_TYP)
    if key.alg == "ES256":
        _es256_shape(signature)
    expected_issuer = _expected_issuer(claims, issuer, same_issuer)
    options: Any = {
        "verify_aud": audience is not None,
        # by hand, after this: the times against the mock's clock; sub and jti as
        # wire.attestation reads them (jti after the body binding)
        "verify_exp": False,
        "verify_nbf": False,
        "verify_iat": False,
        "verify_sub": False,
        "verify_jti": False,
        # PyJWT takes a claim that is present but null for an absent one; here a null claim
        # is refused by its own rule (iss, aud, the times), so PyJWT is asked to require
        # only those that are absent, and names the first of them
        "require": [name for name in require if name not in claims],
    }
    try:
        _JWT.decode(
            token,
            key=key.key,
            algorithms=list(algorithms),
            options=options,
            issuer=expected_issuer,
            audience=audience,
        )
    except jwt.InvalidSignatureError:
        raise jose.JOSEError("bad_signature", "signature does not verify") from None
    except jwt.MissingRequiredClaimError as error:
        if error.claim in claims:  # PyJWT's word for an aud of "" or []
            raise _wrong_audience(claims.get("aud"), str(audience)) from None
        raise jose.JOSEError("missing_claim", f"required claim {error.claim!r} is absent") from None
    except jwt.InvalidIssuerError:
        raise jose.JOSEError(
            "wrong_iss", f"iss {claims.get('iss')!r} is not {expected_issuer!r}"
        ) from None
    except jwt.InvalidAudienceError:
        raise _wrong_audience(claims.get("aud"), str(audience)) from None
    except jwt.PyJWTError as error:
        raise jose.JOSEError("malformed", f"PyJWT refused the token: {error}") from None
    # PyJWT found the audience, perhaps among others; or (audience None, the accept-wrong-aud
    # fault) the token names its own single audience
    _one_audience(claims.get("aud"), single_audience(claims) if audience is None else audience)
    return claims


def _expected_issuer(
    claims: Mapping[str, Any], issuer: str, same_issuer: Callable[[Any], bool] | None
) -> str:
    """The trusted issuer; under the issuer-normalised fault, the token's own when
    `same_issuer` takes it for the trusted one."""
    if same_issuer is not None and same_issuer(claims.get("iss")):
        return str(claims["iss"])
    return issuer


def _trusted_key(
    header: Mapping[str, Any],
    keys: Mapping[str, jose.PublicKey],
    algorithms: Sequence[str],
    typ: str,
) -> jose.PublicKey:
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in algorithms:
        raise jose.JOSEError(
            "alg_not_allowed", f"alg {alg!r} is not in the allow-list {list(algorithms)}"
        )
    if "crit" in header:
        raise jose.JOSEError(
            "crit_not_understood", "crit names extensions this verifier does not implement"
        )
    header_typ = header.get("typ")
    if not isinstance(header_typ, str) or _media_type(header_typ) != _media_type(typ):
        raise jose.JOSEError("wrong_typ", f"typ {header_typ!r} is not {typ!r}")
    kid = header.get("kid")
    if not isinstance(kid, str) or kid not in keys:
        raise jose.JOSEError("unknown_kid", f"kid {str(kid)[:64]!r} is not in the trusted key set")
    key = keys[kid]
    if key.alg != alg:
        raise jose.JOSEError("alg_not_allowed", f"key {kid!r} is for {key.alg}, token says {alg}")
    return key


def _es256_shape(signature: bytes) -> None:
    if len(signature) != 64:
        raise jose.JOSEError("bad_signature", "ES256 signature must be 64 bytes of R||S")
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    if not (0 < r < _P256_ORDER and 0 < s < _P256_ORDER):
        raise jose.JOSEError("bad_signature", "ES256 signature has r or s out of range")


def _one_audience(aud: Any, audience: str) -> None:
    """`aud` names exactly one audience, `audience` (a string or a one-element array)."""
    if isinstance(aud, list) and len(aud) == 1:
        aud = aud[0]
    if isinstance(aud, list) or aud != audience:
        raise _wrong_audience(aud, audience)


def _wrong_audience(aud: Any, audience: str) -> jose.JOSEError:
    if isinstance(aud, list):
        if len(aud) != 1:
            return jose.JOSEError("wrong_aud", "aud must name exactly one audience")
        aud = aud[0]
    return jose.JOSEError("wrong_aud", f"aud {aud!r} is not {audience!r}")


def _times(claims: Mapping[str, Any], *, now: int, leeway: int, max_lifetime: int) -> None:
    """exp, nbf and iat against the mock's clock: integers, in their window, and the token
    no longer-lived than the profile allows."""
    times = {}
    for name in ("exp", "iat", "nbf"):
        if name in claims:
            value = claims[name]
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**40:
                raise jose.JOSEError("bad_time", f"{name} must be an integer NumericDate")
            times[name] = value
    if "exp" in times and now >= times["exp"] + leeway:
        raise jose.JOSEError(
            "expired", f"exp {times['exp']} is past (now {now}, leeway {leeway} s)"
        )
    if "nbf" in times and now + leeway < times["nbf"]:
        raise jose.JOSEError("not_yet_valid", f"nbf {times['nbf']} is in the future (now {now})")
    if "iat" in times and times["iat"] > now + leeway:
        raise jose.JOSEError("bad_time", f"iat {times['iat']} is in the future (now {now})")
    if "exp" in times and "iat" in times and times["exp"] - times["iat"] > max_lifetime:
        raise jose.JOSEError("lifetime_too_long", f"exp - iat exceeds {max_lifetime} s")
    if "iat" in times and now - times["iat"] > max_lifetime + leeway:
        raise jose.JOSEError("bad_time", f"iat {times['iat']} is older than the maximum lifetime")


class FaultySignature:
    """A hand-rolled signature step with the active signature fault's one mistake; every
    other rule stays as the reference step enforces it."""

    def __init__(self, faults: FaultSet) -> None:
        self.faults = faults

    def __call__(
        self,
        token: str,
        *,
        keys: Mapping[str, jose.PublicKey],
        algorithms: Sequence[str],
        typ: str,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        faults = self.faults
        if faults.active("duplicate-claims-last-wins"):
            header, claims, signature = _lenient_parts(token)
        else:
            header, claims, signature = jose.unverified_parts(token)
        head, body, _ = token.split(".")
        signing_input = f"{head}.{body}".encode("ascii")
        alg, kid = header.get("alg"), header.get("kid")
        if faults.active("jwk-header-honoured") and isinstance(header.get("jwk"), dict):
            # CVE-2018-0114: the key embedded in the token's own header is trusted
            keys = {**keys, **jose.parse_jwks({"keys": [header["jwk"]]})}
        confused = faults.active("attestation-hs256-accepted") and alg == "HS256" and kid in keys
        if confused and _hs256_with_public_key(keys[str(kid)], signing_input, signature):
            return header, claims
        if not isinstance(alg, str) or alg not in algorithms:
            raise jose.JOSEError("alg_not_allowed", f"alg {alg!r} is not allowed")
        if "crit" in header and not faults.active("crit-ignored"):
            raise jose.JOSEError("crit_not_understood", "crit names unknown extensions")
        header_typ = header.get("typ")
        typ_ok = isinstance(header_typ, str) and (
            header_typ == typ
            if faults.active("typ-compared-exactly")
            else header_typ.lower().removeprefix("application/") == typ.lower()
        )
        if not typ_ok and not faults.active("typ-not-checked"):
            raise jose.JOSEError("wrong_typ", f"typ {header_typ!r} is not {typ!r}")
        if not isinstance(kid, str) or kid not in keys:
            raise jose.JOSEError("unknown_kid", f"kid {str(kid)[:64]!r} is not trusted")
        key = keys[kid]
        r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        psychic = alg == "ES256" and len(signature) == 64 and (not r or not s)
        if psychic and faults.active("psychic-signature-accepted"):
            # CVE-2022-21449: the verifier follows the header's alg and never range-checks
            # r and s, so r = s = 0 satisfies its equation for any key
            return header, claims
        if key.alg != alg:
            raise jose.JOSEError("alg_not_allowed", f"key {kid!r} is for {key.alg}, not {alg}")
        if not signature and faults.active("empty-signature-accepted"):
            return header, claims  # `if signature: verify(...)`: nothing to verify, so valid
        try:
            key.verify(signature, signing_input)
        except jose.JOSEError:
            # a verify() that answers False instead of raising, its result never read; only
            # the signature's length is checked
            if not (faults.active("signature-result-ignored") and len(signature) == 64):
                raise
        return header, claims


def _hs256_with_public_key(key: jose.PublicKey, signing_input: bytes, signature: bytes) -> bool:
    """The attestation-hs256-accepted fault (algorithm confusion): the header picks HMAC,
    keyed with the public key's text."""
    public = key.key
    if not isinstance(public, ed25519.Ed25519PublicKey):
        return False
    secret = jose.b64url_encode(public.public_bytes_raw()).encode()
    mac = hmac.new(secret, signing_input, hashlib.sha256).digest()
    return hmac.compare_digest(mac, signature)


def _lenient_parts(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    """The duplicate-claims-last-wins fault: a JWS split and parsed with Python's json, where
    a repeated member silently keeps its last value."""
    parts = token.split(".") if isinstance(token, str) else []
    if len(parts) != 3:
        raise jose.JOSEError("malformed", "compact JWS has 3 segments")
    try:
        header = json.loads(jose.b64url_decode(parts[0]))
        claims = json.loads(jose.b64url_decode(parts[1]))
    except ValueError:
        raise jose.JOSEError("malformed", "header or claims are not JSON") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise jose.JOSEError("malformed", "header and claims must be JSON objects")
    return header, claims, jose.b64url_decode(parts[2])


def _media_type(value: str) -> str:
    # RFC 7515 §4.1.9: media types compare case-insensitively; "application/" may be omitted.
    return value.lower().removeprefix("application/")


def single_audience(claims: Mapping[str, Any]) -> str:
    """The token's one audience ("" when it names none or several): what a verifier that
    does not check aud (a fault) takes for the expected one."""
    aud = claims.get("aud")
    if isinstance(aud, list) and len(aud) == 1:
        aud = aud[0]
    return aud if isinstance(aud, str) else ""


def _sha256_b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode("ascii")
