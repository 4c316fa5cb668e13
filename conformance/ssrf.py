"""The SSRF guard: run before fetching any URL taken from a message.

URLs arrive in `resource_metadata`, `authorization_servers`, `jwks_uri`, catalog links and
redirects. RFC 9728 §7.7 and MCP's security best practices say a client should not let a
peer steer it at internal addresses. `check_url` refuses, with a `SSRFError` naming why:

- a scheme other than https (http only for loopback, and only when the run allows loopback);
- userinfo (`https://trusted.example@evil.test/`), a fragment, an empty host;
- any address — literal in any spelling (`2130706433`, `0x7f.1`, `0177.0.0.1`,
  `[::ffff:127.0.0.1]`) or resolved from a name — that is loopback, private, link-local
  (cloud metadata at 169.254.169.254), unique-local, multicast, reserved or unspecified,
  unless the host is explicitly allowed by the run.

Every resolved address is checked, not just the first. Redirects must be re-checked hop by
hop by the caller (the HTTP client never follows them blindly).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

__all__ = ["SSRFError", "SSRFGuard", "resolve_host"]

Resolver = Callable[[str], list[str]]


class SSRFError(ValueError):
    """A URL the guard refuses to fetch; `reason` is a stable machine code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def resolve_host(host: str) -> list[str]:
    """Every address the system resolver gives for `host`."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise SSRFError("unresolvable", f"cannot resolve {host!r}: {exc}") from None
    return sorted({str(info[4][0]) for info in infos})


def _literal_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return ipaddress.ip_address(bare)
    except ValueError:
        pass
    try:
        # inet_aton accepts the legacy spellings browsers and curl also accept: 2130706433,
        # 0x7f.1, 0177.0.0.1. Treat them as the address they mean.
        return ipaddress.IPv4Address(socket.inet_aton(bare))
    except OSError:
        return None


def _is_internal(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or (isinstance(address, ipaddress.IPv6Address) and address.is_site_local)
    )


@dataclass
class SSRFGuard:
    """The policy of one run: whether loopback mocks may be reached, and which hosts."""

    allow_loopback: bool = False
    allowed_hosts: Iterable[str] = ()
    resolver: Resolver = field(default=resolve_host, repr=False)

    def _resolve(self, host: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        addresses = [ipaddress.ip_address(item.split("%")[0]) for item in self.resolver(host)]
        if not addresses:
            raise SSRFError("unresolvable", f"{host!r} resolves to no address")
        return addresses

    def check_url(self, url: str) -> None:
        """Raise `SSRFError` unless `url` may be fetched under this policy."""
        if not isinstance(url, str) or not url or len(url) > 2048:
            raise SSRFError("malformed", "URL must be a non-empty string of at most 2048 chars")
        if any(ord(char) < 0x21 or ord(char) == 0x7F for char in url):
            raise SSRFError("malformed", "URL contains whitespace or control characters")
        try:
            parts = urlsplit(url)
            host = parts.hostname
            parts.port  # noqa: B018 - a bad port raises here
        except ValueError as exc:
            raise SSRFError("malformed", f"not a URL: {exc}") from None
        if parts.scheme not in ("https", "http"):
            raise SSRFError("scheme", f"scheme {parts.scheme!r} is not https")
        if parts.username is not None or parts.password is not None:
            raise SSRFError("userinfo", "URL carries userinfo (user@host), a classic host spoof")
        if parts.fragment:
            raise SSRFError("fragment", "URL carries a fragment")
        if not host:
            raise SSRFError("malformed", "URL has no host")
        loopback_only = False
        if host.lower() not in {name.lower() for name in self.allowed_hosts}:
            literal = _literal_address(host)
            addresses = [literal] if literal is not None else self._resolve(host)
            for address in addresses:
                mapped = address
                if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
                    mapped = address.ipv4_mapped
                if mapped.is_loopback and self.allow_loopback:
                    loopback_only = True
                elif _is_internal(address):
                    raise SSRFError(
                        "internal_address",
                        f"{host!r} is (or resolves to) internal address {address}",
                    )
        if parts.scheme == "http" and not loopback_only:
            raise SSRFError("scheme", "plain http is refused outside the run's loopback mocks")
