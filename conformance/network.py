"""Was the target reached at all? The line between an environment error and a target's.

An HTTP error that means the target was never reached (connection refused, DNS, TLS, a
connect or pool timeout) is the environment's: the engine reports it as an `error` with
blame `environment`, the preflight as a message naming the cause. A target that was reached
and then misbehaved (hung, reset the connection, broke its answer) is judged like any other
answer. The engine, the preflight and the adapters all draw the line here.
"""

from __future__ import annotations

import socket
import ssl
from urllib.parse import urlsplit

import httpx

from conformance.errors import PreflightError

__all__ = ["environment_error", "network_problem"]


def environment_error(error: BaseException) -> bool:
    """Whether an HTTP error means the target was never reached (connection refused, DNS,
    TLS, a connect or pool timeout), as opposed to reached and misbehaving."""
    if isinstance(error, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return True
    seen: BaseException | None = error
    for _ in range(10):
        if seen is None:
            break
        if isinstance(seen, ssl.SSLError | socket.gaierror | ConnectionRefusedError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def network_problem(error: BaseException, url: str, what: str) -> PreflightError | None:
    """The environment error behind an HTTP failure, as a preflight message; None when the
    target was reached (then it is the target's answer that is wrong)."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    chain: list[BaseException] = []
    seen: BaseException | None = error
    while seen is not None and len(chain) < 10:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    if any(isinstance(item, socket.gaierror) for item in chain):
        return PreflightError(
            f"{what}: the host {host} cannot be resolved (DNS)",
            f"check the host name in {url} and that this machine can resolve it",
            environment=True,
        )
    tls = next((item for item in chain if isinstance(item, ssl.SSLError)), None)
    if tls is not None:
        reason = getattr(tls, "reason", None) or str(tls)
        return PreflightError(
            f"{what}: the TLS handshake with {host}:{port} failed ({reason})",
            "give the host a certificate this machine trusts, or use http:// for a plain-HTTP "
            "test server on loopback",
            environment=True,
        )
    if any(isinstance(item, ConnectionRefusedError) for item in chain) or (
        isinstance(error, httpx.ConnectError) and "refused" in str(error).lower()
    ):
        return PreflightError(
            f"{what}: nothing accepts connections at {host}:{port} (connection refused)",
            f"start it there, or correct the host and port in {url}",
            environment=True,
        )
    if isinstance(error, httpx.ConnectTimeout | httpx.PoolTimeout):
        return PreflightError(
            f"{what}: no connection to {host}:{port} within the request timeout",
            "check that the host is up and reachable from this machine (firewall, VPN, proxy)",
            environment=True,
        )
    if isinstance(error, httpx.ConnectError):
        return PreflightError(
            f"{what}: cannot connect to {host}:{port} ({error})",
            "check that the host is up and reachable from this machine",
            environment=True,
        )
    return None
