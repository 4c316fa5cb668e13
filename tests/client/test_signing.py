"""The suite's signers, checked against the wire's own definitions, not against the mocks."""

from __future__ import annotations

import hashlib
import hmac

from conformance.client import ATTESTATION_TYP, attestation, stripe_signature
from wire import jose


def test_stripe_signature_is_t_then_v1_hex_of_t_dot_body_without_spaces() -> None:
    header = stripe_signature("whsec_x", b'{"a":1}', 1_700_000_000)
    expected = hmac.new(b"whsec_x", b'1700000000.{"a":1}', hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"
    assert " " not in header


def test_other_v1_values_come_before_the_real_one() -> None:
    header = stripe_signature("whsec_x", b"", 5, other_v1=("00" * 32,))
    t, first, second = header.split(",")
    assert (t, first) == ("t=5", "v1=" + "00" * 32)
    assert second == "v1=" + hmac.new(b"whsec_x", b"5.", hashlib.sha256).hexdigest()


def test_attestation_binds_the_body_and_names_both_parties() -> None:
    key = jose.generate_key("EdDSA")
    token = attestation(
        key,
        issuer="https://orchestrator.example",
        audience="https://provider.example/api/",
        subject="usr_1",
        raw=b"{}",
        now=100,
        lifetime=300,
        claims={"email": "a@example.com"},
    )
    header, claims = jose.verify_signature(
        token, keys={key.kid: key.public_key()}, algorithms=["EdDSA"], typ=ATTESTATION_TYP
    )
    assert header["typ"] == "app-attestation+jwt"
    assert claims["iss"] == "https://orchestrator.example"
    assert claims["aud"] == "https://provider.example/api/"
    assert (claims["iat"], claims["exp"]) == (100, 400)
    assert claims["body_sha256"] == jose.b64url_encode(hashlib.sha256(b"{}").digest())
    assert claims["email"] == "a@example.com"
    assert claims["jti"]
