"""Credential probes: how the credentials a provider issues are used at its own API.

A provider's `access_configuration` is a map of names to secret strings whose meaning only
the provider knows (PostHog: a `phc_` project key for `POST {host}/flags/`, a `phx_`
personal key for `GET {host}/api/projects/@current/`). To judge that credentials work, that a
rotation ends the old ones and that removal ends them, the suite must know how to use them:
a probe is one request template over the `access_configuration` members.

    [[provider.credential_probe]]
    credential = "api_key"                      # the member this probe judges
    method = "POST"
    url = "{host}/flags/?v=2"                   # {member} is that member's value
    headers = { "Content-Type" = "application/json" }
    body = '{"token": "{api_key}", "distinct_id": "provspec"}'
    works = [200]                               # statuses meaning "the credential works"
    refused = [401, 403]                        # statuses meaning "it does not"
    judge = ["works", "rotation", "removal"]    # which checks use this probe (default: all)

`{name}` placeholders name members of the `access_configuration` being probed, or
`{provider_base_url}`; anything else in braces (JSON) is left alone. Values go in as they are.
Any other status than `works` or `refused` says nothing either way, and the check says so.
With no probe configured, the built-in one fits provspec's mock provider (`GET
{base_url}whoami` with the `api_key` as a bearer token).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "BUILT_IN_PROBES",
    "CredentialProbe",
    "ProbeRequest",
    "parse_probes",
]

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"}
_FIELDS = {"credential", "method", "url", "headers", "body", "works", "refused", "judge"}
USES = ("works", "rotation", "removal")
"""What a probe can judge: that issued credentials work (PRV-CRD-002), that a rotation ends
the previous value (PRV-CRD-003), that removal ends them (PRV-PRO-019)."""
CONTEXT_NAMES = frozenset({"provider_base_url"})


@dataclass(frozen=True)
class ProbeRequest:
    """A probe filled in with one set of credentials."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None


@dataclass(frozen=True)
class CredentialProbe:
    credential: str
    url: str
    method: str = "GET"
    headers: Mapping[str, str] = field(default_factory=dict)
    body: str | None = None
    works: tuple[int, ...] = (200,)
    refused: tuple[int, ...] = (401, 403)
    judge: tuple[str, ...] = USES

    def names(self) -> set[str]:
        """Every placeholder the probe uses."""
        texts = [self.url, self.body or "", *self.headers.values()]
        return {name for text in texts for name in _PLACEHOLDER.findall(text)}

    def applies_to(self, credentials: Mapping[str, Any]) -> bool:
        """Whether `credentials` carry the judged member and every member the probe uses."""
        needed = (self.names() - CONTEXT_NAMES) | {self.credential}
        return all(isinstance(credentials.get(name), str) for name in needed)

    def render(self, credentials: Mapping[str, Any], context: Mapping[str, str]) -> ProbeRequest:
        values = {**{k: v for k, v in credentials.items() if isinstance(v, str)}, **context}

        def fill(text: str) -> str:
            return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)

        return ProbeRequest(
            self.method,
            fill(self.url),
            {name: fill(value) for name, value in self.headers.items()},
            fill(self.body).encode() if self.body is not None else None,
        )

    def verdict(self, status: int) -> bool | None:
        """True: the credential works; False: refused; None: the answer says neither."""
        if status in self.works:
            return True
        if status in self.refused:
            return False
        return None

    def describe(self) -> str:
        return f"{self.method} {self.url} (judges {self.credential})"


BUILT_IN_PROBES = (
    CredentialProbe(
        credential="api_key",
        url="{base_url}whoami",
        headers={"Authorization": "Bearer {api_key}"},
    ),
)
"""The guess when no probe is configured: provspec's mock provider's API."""


def parse_probes(raw: Any, where: str) -> tuple[tuple[CredentialProbe, ...], list[str]]:
    """Probes from provspec.toml's `[[provider.credential_probe]]` tables, and every problem."""
    if raw is None:
        return (), []
    if not isinstance(raw, list):
        return (), [f"{where} must be an array of tables ([[provider.credential_probe]])"]
    probes: list[CredentialProbe] = []
    problems: list[str] = []
    for index, table in enumerate(raw):
        at = f"{where}[{index}]"
        if not isinstance(table, dict):
            problems.append(f"{at} must be a table")
            continue
        unknown = set(table) - _FIELDS
        if unknown:
            problems.append(f"{at}: unknown keys {sorted(unknown)} (known: {sorted(_FIELDS)})")
        credential, url = table.get("credential"), table.get("url")
        method = str(table.get("method", "GET")).upper()
        headers = table.get("headers", {})
        body = table.get("body")
        works, refused = table.get("works", [200]), table.get("refused", [401, 403])
        judge = table.get("judge", list(USES))
        found: list[str] = []
        if not isinstance(credential, str) or not credential:
            found.append("credential must name an access_configuration member")
        if not isinstance(url, str) or not _PLACEHOLDER.sub("x", url).startswith(
            ("http://", "https://", "x")
        ):
            found.append("url must be an http(s) URL template")
        if method not in _METHODS:
            found.append(f"method must be one of {sorted(_METHODS)}")
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            found.append("headers must be a table of strings")
        if body is not None and not isinstance(body, str):
            found.append("body must be a string")
        for name, statuses in (("works", works), ("refused", refused)):
            if not isinstance(statuses, list) or not all(
                isinstance(s, int) and not isinstance(s, bool) and 100 <= s <= 599 for s in statuses
            ):
                found.append(f"{name} must be a list of HTTP status codes")
        if not isinstance(judge, list) or not judge or not set(judge) <= set(USES):
            found.append(f"judge must be a non-empty list drawn from {list(USES)}")
        if not found and set(works) & set(refused):
            found.append("a status cannot both work and be refused")
        if found:
            problems.extend(f"{at}: {problem}" for problem in found)
            continue
        assert isinstance(credential, str)
        assert isinstance(url, str)
        assert isinstance(headers, dict)
        probes.append(
            CredentialProbe(
                credential=credential,
                url=url,
                method=method,
                headers=dict(headers),
                body=body,
                works=tuple(works),
                refused=tuple(refused),
                judge=tuple(judge),
            )
        )
    return tuple(probes), problems
