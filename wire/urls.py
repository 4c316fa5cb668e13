"""Where a peer's metadata lives: the well-known URL rules, built the same way on both sides.

- RFC 9728 §3.1 (protected resource metadata) and RFC 8414 §3.1 (authorization server
  metadata): the well-known segment goes between the host and the path (and the query, if
  any); a lone terminating "/" after the host is dropped first. Nothing is normalised: the
  URL is built from the identifier exactly as given.
- The orchestrator's metadata (`/.well-known/app-orchestrator`, DESIGN.md §2): OpenID Connect
  Discovery §4's rule, the issuer without a terminating "/", then the suffix.

    >>> prm_url("https://a.example/api/app/")
    'https://a.example/.well-known/oauth-protected-resource/api/app/'
    >>> as_metadata_url("https://a.example/")
    'https://a.example/.well-known/oauth-authorization-server'
    >>> orchestrator_metadata_url("https://o.example/")
    'https://o.example/.well-known/app-orchestrator'
"""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = [
    "AS_METADATA",
    "ORCHESTRATOR_METADATA",
    "PROTECTED_RESOURCE",
    "as_metadata_url",
    "orchestrator_metadata_url",
    "prm_url",
    "resource_for_metadata_url",
    "well_known_url",
]

PROTECTED_RESOURCE = "oauth-protected-resource"
"""RFC 9728 §3's well-known suffix."""
AS_METADATA = "oauth-authorization-server"
"""RFC 8414 §3's well-known suffix."""
ORCHESTRATOR_METADATA = "app-orchestrator"
"""APP's suffix for the orchestrator's metadata (app-next)."""


def well_known_url(identifier: str, suffix: str) -> str:
    """`identifier` with `/.well-known/<suffix>` inserted between its host and its path (RFC
    9728 §3.1, RFC 8414 §3.1); a path of just "/" is dropped, a query is kept."""
    parts = urlsplit(identifier)
    path = "" if parts.path in ("", "/") else parts.path
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.scheme}://{parts.netloc}/.well-known/{suffix}{path}{query}"


def prm_url(resource: str) -> str:
    """The protected resource metadata URL of `resource` (RFC 9728 §3.1)."""
    return well_known_url(resource, PROTECTED_RESOURCE)


def as_metadata_url(issuer: str) -> str:
    """The authorization server metadata URL of `issuer` (RFC 8414 §3.1)."""
    return well_known_url(issuer, AS_METADATA)


def resource_for_metadata_url(url: str) -> str | None:
    """The resource identifier a protected resource metadata URL was built from, or None when
    the URL is not of the RFC 9728 §3.1 form (then §3.3's first rule cannot be judged).

    Ambiguous by construction for a resource at the host root: both `https://h` and
    `https://h/` give `https://h/.well-known/oauth-protected-resource`; the former is
    returned, and callers accept both."""
    parts = urlsplit(url)
    prefix = f"/.well-known/{PROTECTED_RESOURCE}"
    if not parts.path.startswith(prefix):
        return None
    rest = parts.path[len(prefix) :]
    if rest and not rest.startswith("/"):
        return None
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.scheme}://{parts.netloc}{rest}{query}"


def orchestrator_metadata_url(issuer: str) -> str:
    """Where the orchestrator with `issuer` serves its metadata: the issuer without a
    terminating "/", then `/.well-known/app-orchestrator`."""
    return f"{issuer.removesuffix('/')}/.well-known/{ORCHESTRATOR_METADATA}"
