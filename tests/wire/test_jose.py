"""One regression test per known JWT pitfall (the pyjwt test_advisory.py idea)."""

from __future__ import annotations

import hmac
import json
from hashlib import sha256

import pytest

from wire import jose
from wire.jose import JOSEError

NOW = 1_790_000_000
TYP = "app-attestation+jwt"
CLAIMS = {"iss": "https://orch.example", "aud": "https://prov.example/", "sub": "u_1",
          "iat": NOW, "exp": NOW + 300, "jti": "j1"}  # fmt: skip


@pytest.fixture(scope="module", params=["EdDSA", "ES256"])
def key(request: pytest.FixtureRequest) -> jose.SigningKey:
    return jose.generate_key(request.param)


@pytest.fixture(scope="module")
def keys(key: jose.SigningKey) -> dict[str, jose.PublicKey]:
    return jose.parse_jwks(jose.jwks([key]))


def _verify(token: str, keys: dict[str, jose.PublicKey], algorithms=("EdDSA", "ES256")):
    return jose.verify_signature(token, keys=keys, algorithms=algorithms, typ=TYP)


def _reason(token: str, keys: dict[str, jose.PublicKey], **kwargs) -> str:
    with pytest.raises(JOSEError) as caught:
        _verify(token, keys, **kwargs)
    return caught.value.reason


def test_round_trip(key: jose.SigningKey, keys: dict[str, jose.PublicKey]) -> None:
    header, claims = _verify(jose.sign(CLAIMS, key, typ=TYP), keys)
    assert header == {"alg": key.alg, "typ": TYP, "kid": key.kid}
    assert claims == CLAIMS


def test_published_jwk_has_no_private_member(key: jose.SigningKey) -> None:
    assert not {"d", "p", "q", "dp", "dq", "qi", "k"} & set(key.public_jwk())


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_alg_none_in_any_case_is_refused(key, keys, alg: str) -> None:
    token = jose.compact({"alg": alg, "typ": TYP, "kid": key.kid}, CLAIMS, b"")
    assert _reason(token, keys) == "alg_not_allowed"


def test_hs256_signed_with_the_public_key_is_refused(key, keys) -> None:
    # The key-confusion attack: HMAC keyed with the verifier's public key bytes.
    secret = json.dumps(key.public_jwk()).encode()
    head = {"alg": "HS256", "typ": TYP, "kid": key.kid}
    unsigned = jose.compact(head, CLAIMS, b"").rsplit(".", 1)[0]
    mac = hmac.new(secret, unsigned.encode(), sha256).digest()
    assert _reason(f"{unsigned}.{jose.b64url_encode(mac)}", keys) == "alg_not_allowed"


def test_a_key_is_used_with_its_one_algorithm_only(key, keys) -> None:
    other = "ES256" if key.alg == "EdDSA" else "EdDSA"
    token = jose.compact({"alg": other, "typ": TYP, "kid": key.kid}, CLAIMS, b"\x00" * 64)
    assert _reason(token, keys) == "alg_not_allowed"


def test_the_allow_list_is_the_callers_not_the_tokens(key, keys) -> None:
    other = "ES256" if key.alg == "EdDSA" else "EdDSA"
    assert _reason(jose.sign(CLAIMS, key, typ=TYP), keys, algorithms=(other,)) == "alg_not_allowed"
    with pytest.raises(ValueError, match="no default"):
        _verify(jose.sign(CLAIMS, key, typ=TYP), keys, algorithms=())


def test_wrong_key_unknown_kid_and_tampering_are_refused(key, keys) -> None:
    stranger = jose.generate_key(key.alg, kid=key.kid)
    assert _reason(jose.sign(CLAIMS, stranger, typ=TYP), keys) == "bad_signature"
    assert _reason(jose.sign(CLAIMS, jose.generate_key(key.alg), typ=TYP), keys) == "unknown_kid"
    head, _body, sig = jose.sign(CLAIMS, key, typ=TYP).split(".")
    forged_body = jose.b64url_encode(json.dumps({**CLAIMS, "sub": "admin"}).encode())
    assert _reason(f"{head}.{forged_body}.{sig}", keys) == "bad_signature"


def test_embedded_and_remote_keys_are_never_used(key, keys) -> None:
    attacker = jose.generate_key(key.alg, kid="attacker")
    token = jose.sign(
        CLAIMS, attacker, typ=TYP, jwk=attacker.public_jwk(), jku="https://evil.test/jwks"
    )
    assert _reason(token, keys) == "unknown_kid"


def test_psychic_ecdsa_signature_is_refused() -> None:
    key = jose.generate_key("ES256")
    keys = jose.parse_jwks(jose.jwks([key]))
    token = jose.compact({"alg": "ES256", "typ": TYP, "kid": key.kid}, CLAIMS, b"\x00" * 64)
    assert _reason(token, keys) == "bad_signature"
    der = jose.compact(
        {"alg": "ES256", "typ": TYP, "kid": key.kid}, CLAIMS, b"0\x06\x02\x01\x00\x02\x01\x00"
    )
    assert _reason(der, keys) == "bad_signature"


@pytest.mark.parametrize("typ", ["JWT", "at+jwt", "app-payment+jwt", None])
def test_wrong_typ_is_refused(key, keys, typ) -> None:
    header = {"alg": key.alg, "kid": key.kid} | ({"typ": typ} if typ else {})
    unsigned = jose.compact(header, CLAIMS, b"").rsplit(".", 1)[0]
    token = f"{unsigned}.{jose.b64url_encode(key.raw_sign(unsigned.encode()))}"
    assert _reason(token, keys) == "wrong_typ"


def test_typ_compares_as_a_media_type(key, keys) -> None:
    assert _verify(jose.sign(CLAIMS, key, typ="Application/App-Attestation+JWT"), keys)


def test_crit_is_refused(key, keys) -> None:
    assert (
        _reason(jose.sign(CLAIMS, key, typ=TYP, crit=["x-foo"], **{"x-foo": 1}), keys)
        == "crit_not_understood"
    )


@pytest.mark.parametrize(
    "token",
    [
        "a.b",
        "a.b.c.d.e",
        "eyJhbGciOiJFZERTQSJ9.e30=.AA",
        "eyJhbGciOiJFZERTQSJ9 .e30.AA",
        "eyJhbGciOiJFZERTQSJ9.e30.A+/A",
    ],
    ids=["two-segments", "jwe-shape", "padding", "whitespace", "std-base64"],
)
def test_format_confusion_is_refused(keys, token: str) -> None:
    assert _reason(token, keys) == "malformed"


def test_duplicate_header_members_are_refused_not_last_wins(key, keys) -> None:
    raw = (f'{{"alg":"none","typ":"{TYP}","kid":"{key.kid}","alg":"{key.alg}"}}').encode()
    unsigned = f"{jose.b64url_encode(raw)}.{jose.b64url_encode(json.dumps(CLAIMS).encode())}"
    token = f"{unsigned}.{jose.b64url_encode(key.raw_sign(unsigned.encode()))}"
    assert _reason(token, keys) == "malformed"


def test_jwks_skips_unusable_keys_and_refuses_duplicate_kids(key) -> None:
    document = jose.jwks([key])
    document["keys"] += [
        {"kty": "AKP", "kid": "pq"},
        {**key.public_jwk(), "kid": "enc", "use": "enc"},
    ]
    assert list(jose.parse_jwks(document)) == [key.kid]
    document["keys"].append(key.public_jwk())
    with pytest.raises(JOSEError, match="appears twice"):
        jose.parse_jwks(document)


# --- claims -----------------------------------------------------------------------------


def _claims_reason(claims) -> str:
    with pytest.raises(JOSEError) as caught:
        jose.validate_claims(
            claims, issuer="https://orch.example", audience="https://prov.example/",
            now=NOW, leeway=30, max_lifetime=300,
        )  # fmt: skip
    return caught.value.reason


def test_valid_claims_pass_including_a_one_element_aud_array() -> None:
    for claims in (CLAIMS, {**CLAIMS, "aud": ["https://prov.example/"]}):
        jose.validate_claims(claims, issuer="https://orch.example", audience="https://prov.example/",
                             now=NOW + 320, leeway=30, max_lifetime=300)  # fmt: skip


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"iss": "https://orch.example/"}, "wrong_iss"),
        ({"iss": "https://orch.exam"}, "wrong_iss"),
        ({"iss": ["https://orch.example"]}, "wrong_iss"),
        ({"aud": "https://other.example/"}, "wrong_aud"),
        ({"aud": "https://prov.example"}, "wrong_aud"),
        ({"aud": ["https://prov.example/", "https://other.example/"]}, "wrong_aud"),
        ({"aud": []}, "wrong_aud"),
        ({"exp": "1790000300"}, "bad_time"),
        ({"exp": True}, "bad_time"),
        ({"exp": 1.5e18}, "bad_time"),
        ({"exp": NOW - 31}, "expired"),
        ({"nbf": NOW + 61}, "not_yet_valid"),
        ({"iat": NOW + 61}, "bad_time"),
        ({"iat": NOW - 7 * 86400, "exp": NOW + 60}, "lifetime_too_long"),
        ({"exp": NOW + 3600}, "lifetime_too_long"),
    ],
)
def test_claim_vectors_are_refused(change, reason: str) -> None:
    assert _claims_reason({**CLAIMS, **change}) == reason


@pytest.mark.parametrize("missing", ["iss", "aud", "exp", "iat", "jti", "sub"])
def test_required_claims(missing: str) -> None:
    assert _claims_reason({k: v for k, v in CLAIMS.items() if k != missing}) == "missing_claim"


def test_skew_positive_control() -> None:
    # exp 5 s ago but inside the 30 s leeway: accepted.
    claims = {**CLAIMS, "exp": NOW - 5, "iat": NOW - 300}
    jose.validate_claims(
        claims, issuer="https://orch.example", audience="https://prov.example/",
        now=NOW, leeway=30, max_lifetime=300,
    )  # fmt: skip
