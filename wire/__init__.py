"""The wire layer: what both the suite (`conformance`) and the mocks (`mocks`) speak.

JOSE (`jose`), the strict JSON parser (`strictjson`), the SSRF guard and document fetch
(`ssrf`), the WWW-Authenticate parser (`www_authenticate`), string formats (`formats`), the
0.1d `Stripe-Signature` (`stripe_signature`), attestation and payment-token claims
(`attestation`), PKCE S256 (`pkce`), error envelopes (`envelopes`), clocks (`clock`), the
well-known URL rules (`urls`) and the base error types (`errors`).

Nothing here imports `conformance`, `mocks` or `spec` (tests/test_layers.py): a module both
sides need lives here, and takes what it would otherwise look up (a profile's parameters, a
replay store) as arguments. Import the modules themselves; this package exports nothing.
"""

from __future__ import annotations

__all__: list[str] = []
