"""PKCE S256 (wire.pkce): the one challenge computation of the suite and the mocks."""

from __future__ import annotations

from wire.pkce import pkce_pair, s256


def test_pkce_pair_is_s256_per_rfc7636_appendix_b() -> None:
    # RFC 7636 Appendix B's example verifier and challenge.
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert s256(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    fresh, challenge = pkce_pair()
    assert 43 <= len(fresh) <= 128
    assert s256(fresh) == challenge


def test_a_verifier_off_the_wire_never_raises() -> None:
    """A hostile verifier (not ASCII) gives a challenge that matches nothing, not an error."""
    assert s256("ünïcode") != s256("unicode")
