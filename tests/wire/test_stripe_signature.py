from __future__ import annotations

import pytest

from wire.stripe_signature import SignatureError, sign, verify

SECRET = "whsec_test"
BODY = b'{"email":"dev@example.com"}'
T = 1_790_000_000


def test_a_fresh_signature_over_the_exact_body_verifies() -> None:
    assert verify(sign(SECRET, BODY, T), BODY, SECRET, now=T + 299) == T


def test_a_known_vector() -> None:
    # printf '%s' '1790000000.{"email":"dev@example.com"}' | openssl dgst -sha256 -hmac whsec_test
    expected = "f061e4c074c5d7fab9df74584acf003479e7695995bb1a7cb4cefdb87a29e906"
    assert sign(SECRET, BODY, T) == f"t={T},v1={expected}"


@pytest.mark.parametrize(
    ("header", "body", "secret", "now", "reason"),
    [
        (None, BODY, SECRET, T, "missing"),
        ("", BODY, SECRET, T, "missing"),
        ("garbage", BODY, SECRET, T, "malformed"),
        (f"t={T}", BODY, SECRET, T, "malformed"),
        (f"t=abc,v1={'0' * 64}", BODY, SECRET, T, "malformed"),
        (f"t={T},t={T},v1={'0' * 64}", BODY, SECRET, T, "malformed"),
        (sign(SECRET, BODY, T), BODY, SECRET, T + 301, "expired"),
        (sign(SECRET, BODY, T), BODY, SECRET, T - 301, "expired"),
        (sign("wrong", BODY, T), BODY, SECRET, T, "mismatch"),
        (sign(SECRET, BODY, T), BODY + b" ", SECRET, T, "mismatch"),
        (sign(SECRET, b"{}", T), BODY, SECRET, T, "mismatch"),
    ],
    ids=["none", "empty", "garbage", "no-v1", "t-not-numeric", "two-t", "301s-late", "301s-early",
         "wrong-secret", "body-altered", "other-body"],
)  # fmt: skip
def test_refusals_name_their_reason(header, body, secret, now, reason) -> None:
    with pytest.raises(SignatureError) as caught:
        verify(header, body, secret, now=now)
    assert caught.value.reason == reason


def test_one_matching_v1_among_several_is_enough() -> None:
    good = sign(SECRET, BODY, T).split("v1=")[1]
    assert verify(f"t={T},v1={'0' * 64},v1={good}", BODY, SECRET, now=T) == T
