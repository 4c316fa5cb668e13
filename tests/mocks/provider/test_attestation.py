"""The mock provider verifies attestations with PyJWT (`mocks/provider/_attestation.py`), so the
suite's signer (`wire.jose`) is not also the judge of its own tokens; a refused token keeps
the answer `wire.attestation` gave it, reason and message alike."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from mocks.provider._attestation import verify_attestation as mock_verify
from wire import jose
from wire.attestation import attestation_claims
from wire.attestation import verify_attestation as wire_verify

NOW = 1_800_000_000
ISSUER, AUDIENCE = "http://orchestrator.mock", "http://provider.mock/api/app/"
BODY = b'{"service_id":"free"}'
TYP = "app-attestation+jwt"

EDDSA, ES256 = jose.generate_key("EdDSA"), jose.generate_key("ES256")
KEYS = jose.parse_jwks(jose.jwks([EDDSA, ES256]))
ATTACKER = jose.generate_key("EdDSA")
"""Not in the orchestrator's JWKS: what a token naming or carrying its own key is signed with."""


def claims(**changes: Any) -> dict[str, Any]:
    made = attestation_claims(
        issuer=ISSUER, audience=AUDIENCE, subject="user-1", body=BODY, now=NOW, lifetime=300
    )
    made.update(changes)
    return {name: value for name, value in made.items() if value is not ...}


def signed(key: jose.SigningKey = EDDSA, typ: str = TYP, **header: Any) -> Callable[..., str]:
    return lambda **changes: jose.sign(claims(**changes), key, typ=typ, **header)


def unsigned(header: Mapping[str, Any], payload: Mapping[str, Any], signature: bytes) -> str:
    parts = [json.dumps(header).encode(), json.dumps(payload).encode(), signature]
    return ".".join(jose.b64url_encode(part) for part in parts)


def es256_with(signature: bytes) -> str:
    header = jose.unverified_parts(signed(ES256)())[0]
    return unsigned(header, claims(), signature)


GOOD = signed()()
HEADER, CLAIMS, SIGNATURE = jose.unverified_parts(GOOD)

TOKENS: dict[str, str] = {
    "valid EdDSA": GOOD,
    "valid ES256": signed(ES256)(),
    "alg none": unsigned({**HEADER, "alg": "none"}, CLAIMS, b""),
    "alg HS256": unsigned({**HEADER, "alg": "HS256"}, CLAIMS, b"x" * 32),
    "jku in the header": signed(ATTACKER, jku="http://attacker.example/jwks.json")(),
    "jwk in the header": signed(ATTACKER, jwk=ATTACKER.public_jwk())(),
    "crit": signed(crit=["exp"])(),
    "kid traversal": unsigned({**HEADER, "kid": "../../etc/passwd"}, CLAIMS, SIGNATURE),
    "kid not a string": unsigned({**HEADER, "kid": 7}, CLAIMS, SIGNATURE),
    "typ JWT": signed(typ="JWT")(),
    "typ as a media type": signed(typ="application/APP-Attestation+JWT")(),
    "no typ": unsigned({k: v for k, v in HEADER.items() if k != "typ"}, CLAIMS, SIGNATURE),
    "empty signature": GOOD.rsplit(".", 1)[0] + ".",
    "claims changed": unsigned(HEADER, {**CLAIMS, "sub": "user-2"}, SIGNATURE),
    "claims changed, iss gone": unsigned(
        HEADER, {k: v for k, v in CLAIMS.items() if k != "iss"}, SIGNATURE
    ),
    "ES256 r = s = 0": es256_with(bytes(64)),
    "ES256 short": es256_with(b"\1" * 10),
    "ES256 out of range": es256_with(b"\xff" * 64),
    "duplicate member": ".".join(
        [
            jose.b64url_encode(json.dumps(HEADER).encode()),
            jose.b64url_encode(b'{"iss":"a","iss":"b"}'),
            "",
        ]
    ),
    "not a JWS": "garbage",
    "two segments": "a.b",
    "padded base64": "a=.b.c",
    "iss with a slash": signed()(iss=ISSUER + "/"),
    "iss a number": signed()(iss=5),
    "iss null": signed()(iss=None),
    "aud another": signed()(aud="http://other.example/"),
    "aud one-element array": signed()(aud=[AUDIENCE]),
    "aud two-element array": signed()(aud=[AUDIENCE, "http://other.example/"]),
    "aud empty": signed()(aud=""),
    "aud empty array": signed()(aud=[]),
    "aud a number": signed()(aud=5),
    "no exp": signed()(exp=...),
    "no jti": signed()(jti=...),
    "no body_sha256": signed()(body_sha256=...),
    "exp a string": signed()(exp=str(NOW + 100)),
    "exp a float": signed()(exp=NOW + 100.5),
    "exp null": signed()(exp=None),
    "expired": signed()(iat=NOW - 1000, exp=NOW - 700),
    "issued in the future": signed()(iat=NOW + 1000, exp=NOW + 1300),
    "lives too long": signed()(exp=NOW + 3600),
    "nbf in the future": signed()(nbf=NOW + 100),
    "sub a number": signed()(sub=5),
    "jti empty": signed()(jti=""),
    "body of another request": signed()(body_sha256="x"),
}

LOOSENED: dict[str, dict[str, Any]] = {
    "the reference": {},
    "accept-wrong-aud": {"check_audience": False},
    "five-minute-leeway": {"leeway": 300},
    "exp-not-required": {"require": ("iss", "sub", "aud", "iat", "jti", "body_sha256")},
    "issuer-normalised": {
        "same_issuer": lambda iss: isinstance(iss, str) and iss.rstrip("/") == ISSUER
    },
}


def answer(verify: Callable[..., dict[str, Any]], token: str, **loosened: Any) -> str:
    try:
        verify(
            token,
            keys=KEYS,
            issuer=ISSUER,
            audience=AUDIENCE,
            body=BODY,
            now=NOW,
            replay=None,
            algorithms=("EdDSA", "ES256"),
            max_lifetime=300,
            header_name="APP-Attestation",
            **loosened,
        )
    except jose.JOSEError as error:
        return f"{error.reason}: {error}"
    return "accepted"


@pytest.mark.parametrize("rules", LOOSENED)
@pytest.mark.parametrize("name", TOKENS)
def test_pyjwt_gives_every_token_the_answer_wire_gave(name: str, rules: str) -> None:
    token, loosened = TOKENS[name], LOOSENED[rules]
    assert answer(mock_verify, token, **loosened) == answer(wire_verify, token, **loosened)


def test_the_reference_accepts_what_it_must_and_refuses_the_rest() -> None:
    accepted = {name for name, token in TOKENS.items() if answer(mock_verify, token) == "accepted"}
    assert accepted == {
        "valid EdDSA",
        "valid ES256",
        "typ as a media type",
        "aud one-element array",
        "sub a number",
    }


def test_a_token_signed_by_pyjwt_itself_verifies() -> None:
    """Signed without wire.jose at all: the mock's verifier does not depend on the suite's
    signer agreeing with it."""
    for alg, private in (
        ("EdDSA", ed25519.Ed25519PrivateKey.generate()),
        ("ES256", ec.generate_private_key(ec.SECP256R1())),
    ):
        public_jwk = json.loads(
            jwt.algorithms.get_default_algorithms()[alg].to_jwk(private.public_key())
        )
        kid = hashlib.sha256(json.dumps(public_jwk, sort_keys=True).encode()).hexdigest()[:16]
        keys = jose.parse_jwks({"keys": [{**public_jwk, "kid": kid, "alg": alg}]})
        token = jwt.encode(claims(), private, algorithm=alg, headers={"kid": kid, "typ": TYP})
        verified = mock_verify(
            token,
            keys=keys,
            issuer=ISSUER,
            audience=AUDIENCE,
            body=BODY,
            now=NOW,
            replay=None,
            algorithms=("EdDSA", "ES256"),
            max_lifetime=300,
            header_name="APP-Attestation",
        )
        assert verified["sub"] == "user-1"


def test_an_unencoded_payload_header_is_refused_now() -> None:
    """The one answer PyJWT changes (documented in _attestation): b64 false without crit."""
    token = signed(b64=False)()
    assert answer(wire_verify, token) == "accepted"
    assert answer(mock_verify, token).startswith("malformed: ")
