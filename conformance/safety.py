"""The live-target interlock: provspec refuses to run against what looks like production.

The suite creates accounts, provisions paid services and redeems payment tokens. Pointed at
production with live keys, that spends real money. So before a run starts, every value the
run was configured with is read (no network call is made) and the run is refused (exit 2)
when one looks live, unless `--i-know-this-is-live` is given:

* a live payment key: `sk_live_`, `rk_live_`, `pk_live_` or `whsec_live_` followed by key
  characters, in any secret, URL or command given to the run — and, when the suite runs an
  orchestrator's CLI (which inherits provspec's environment), in any environment variable;
* a production host: the host of the target URL (provider base URL, resource URL,
  orchestrator issuer) is safe when it is a loopback, private or link-local address,
  `localhost`, under a reserved test name (`.test`, `.example`, `.invalid`, `.localhost`,
  `.local`, `.internal`, `example.com/net/org`), or when one of its labels (split on `.` and
  `-`) is a test marker: test, testing, staging, stage, stg, sandbox, dev, qa, preview, mock,
  local, ci, uat. Any other host is taken for production.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from wire.errors import UsageError

__all__ = ["LIVE_KEY", "check_not_live", "live_reasons", "production_host"]

LIVE_KEY = re.compile(r"(?<![A-Za-z0-9])(?:sk|rk|pk|whsec)_live_[A-Za-z0-9]{4,}")
TEST_MARKERS = frozenset(
    {"test", "testing", "staging", "stage", "stg", "sandbox", "dev", "qa", "preview"}
    | {"mock", "local", "ci", "uat"}
)
RESERVED_SUFFIXES = (
    ".test",
    ".example",
    ".invalid",
    ".localhost",
    ".local",
    ".internal",
    ".mock",
)
RESERVED_DOMAINS = ("example.com", "example.net", "example.org")
FLAG = "--i-know-this-is-live"


def production_host(url: str) -> str | None:
    """The host of `url` when it looks like production, else None."""
    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    if not host:
        return None
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        if address.is_loopback or address.is_private or address.is_link_local:
            return None
        return host
    if host == "localhost" or host.endswith(RESERVED_SUFFIXES):
        return None
    if any(host == domain or host.endswith("." + domain) for domain in RESERVED_DOMAINS):
        return None
    labels = set(re.split(r"[.\-]", host))
    if labels & TEST_MARKERS:
        return None
    return host


def live_reasons(
    urls: Iterable[str | None],
    values: Mapping[str, str | None],
    environment: Mapping[str, str] | None = None,
) -> list[str]:
    """Why the run looks live: one line per production host or live key (never the key)."""
    reasons: list[str] = []
    for url in urls:
        if url and (host := production_host(url)):
            reasons.append(
                f"{url} is on {host}, which looks like a production host (no loopback or "
                "private address, no reserved test domain, no test/staging/sandbox label)"
            )
    for name, value in values.items():
        if value and (match := LIVE_KEY.search(value)):
            reasons.append(f"{name} holds a live key ({match.group(0)[:8]}…)")
    for name, value in sorted((environment or {}).items()):
        if value and (match := LIVE_KEY.search(value)):
            reasons.append(
                f"the environment variable {name} holds a live key ({match.group(0)[:8]}…), "
                "and the orchestrator's CLI runs with this environment"
            )
    return reasons


def check_not_live(reasons: list[str], allowed: bool) -> None:
    if reasons and not allowed:
        raise UsageError(
            "refusing to run against what looks like a live target: "
            + "; ".join(reasons)
            + f". The suite creates accounts and spends money. Point it at a test or staging "
            f"deployment with test keys, or pass {FLAG} if you mean it."
        )
