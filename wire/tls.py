"""The TLS settings of provspec's outgoing clients (the mocks calling peers, the suite's own)."""

from __future__ import annotations

import functools
import ssl

__all__ = ["tls_context"]


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One read-only TLS context per process: loading the CA bundle costs ~20 ms, and the
    mocks open a client per call dozens of times per run."""
    return ssl.create_default_context()
