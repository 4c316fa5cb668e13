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

`fetch_document` is the one way a mock fetches a document from a URL a caller named (the
`iss` of an attestation leads to its metadata and JWKS): the guard on every hop, and limits on
what the fetch may cost — a whole-fetch deadline (a slow-drip body included), a size cap read
as it streams (never the whole answer into memory first), a redirect budget and the media
type. Its `FetchError` carries a message that says nothing about the network (no "connection
refused" against "timed out", no status of an internal service): a caller must not learn
which internal ports are open by pointing `iss` at them. The detail is for the mock's log.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import anyio
import httpx

__all__ = [
    "FetchError",
    "FetchLimits",
    "SSRFError",
    "SSRFGuard",
    "fetch_document",
    "resolve_host",
]

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


@dataclass(frozen=True)
class FetchLimits:
    """What one fetch of a caller-named document may cost."""

    max_bytes: int = 64 * 1024
    """A metadata document or a JWKS is a few kilobytes."""
    timeout: float = 5.0
    """Seconds for the whole fetch, every hop: connect, headers and the last body byte."""
    max_redirects: int = 0
    media_types: tuple[str, ...] = ("application/json",)
    """Accepted media types; any `application/*+json` (`jwk-set+json`) is accepted as well."""


class FetchError(Exception):
    """A caller-named document that could not be fetched. `str()` is safe to answer with;
    `reason` (a stable code) and `detail` are for the fetching side's own log only."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__("the document could not be fetched")
        self.reason = reason
        self.detail = detail


def _json_media(content_type: str, accepted: tuple[str, ...]) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media in accepted or (media.startswith("application/") and media.endswith("+json"))


async def fetch_document(
    client: httpx.AsyncClient,
    url: str,
    guard: SSRFGuard,
    limits: FetchLimits | None = None,
) -> bytes:
    """GET `url` under `guard` and `limits`; the body of a 200 answer, or `FetchError`."""
    limits = limits or FetchLimits()
    try:
        with anyio.fail_after(limits.timeout):
            return await _fetch(client, url, guard, limits)
    except TimeoutError:
        raise FetchError("timeout", f"no complete answer within {limits.timeout} s") from None
    except SSRFError as error:
        raise FetchError(f"refused_{error.reason}", str(error)) from None
    except httpx.HTTPError as error:
        raise FetchError("unreachable", f"{type(error).__name__}: {error}") from None


async def _fetch(
    client: httpx.AsyncClient, url: str, guard: SSRFGuard, limits: FetchLimits
) -> bytes:
    for _ in range(limits.max_redirects + 1):
        guard.check_url(url)
        headers = {"Accept": "application/json", "Accept-Encoding": "identity"}
        async with client.stream("GET", url, headers=headers, follow_redirects=False) as answer:
            if answer.is_redirect:
                location = answer.headers.get("location")
                if location is None:
                    raise FetchError("status", f"{answer.status_code} without a Location")
                url = urljoin(url, location)
                continue
            if answer.status_code != 200:
                raise FetchError("status", f"answered {answer.status_code}")
            if not _json_media(answer.headers.get("content-type", ""), limits.media_types):
                shown = answer.headers.get("content-type", "none")[:100]
                raise FetchError("media_type", f"answered {shown!r}, not JSON")
            if answer.headers.get("content-encoding", "identity").lower() != "identity":
                # A compressed answer would be inflated chunk by chunk past any cap.
                raise FetchError("encoding", "answered with a content-encoding")
            declared = answer.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limits.max_bytes:
                raise FetchError("too_large", f"declares {declared} bytes")
            chunks: list[bytes] = []
            size = 0
            async for chunk in answer.aiter_bytes():  # identity: the bytes as sent
                size += len(chunk)
                if size > limits.max_bytes:
                    raise FetchError("too_large", f"more than {limits.max_bytes} bytes")
                chunks.append(chunk)
            return b"".join(chunks)
    raise FetchError("redirects", f"more than {limits.max_redirects} redirects")
