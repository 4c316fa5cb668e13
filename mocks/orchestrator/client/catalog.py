"""Reading providers' catalogs: whether a provider speaks the profile (its health
endpoint), and its services, read defensively. How the CLI reshapes them into the Stripe
Projects catalog is mocks/orchestrator/catalog.py.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any
from urllib.parse import urlsplit

import httpx

from mocks._core.http import HTTPProblem
from mocks.orchestrator.client._records import ProviderRecord
from mocks.orchestrator.client.session import Session
from wire import strictjson

__all__ = ["MAX_CATALOG_BYTES", "SAFE_ID", "Catalogs"]

MAX_CATALOG_BYTES = strictjson.DEFAULT_MAX_BYTES
"""A provider catalog above this is left out (ORC-DSC-014); the real 161-service Stripe
catalog is about 250 KB."""
SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
"""Service ids the catalog lists: ASCII letters, digits and `._:-` (`registrar:domain`). An
id with a lookalike letter, a zero-width or bidi control, or a space is left out rather than
shown to an agent next to the real one (ORC-DSC-013; UTS #39, ASCII allow-list)."""


class Catalogs:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.faults = session.faults

    async def speaks_profile(self, provider: ProviderRecord) -> bool:
        """Whether GET provisioning/health lists the profile's API version (ORC-DSC-016)."""
        target = provider
        if self.faults.active("health-url-from-origin"):
            # urljoin(base, "/provisioning/health"): the leading slash drops the base path
            parts = urlsplit(provider.base_url)
            target = dataclasses.replace(provider, base_url=f"{parts.scheme}://{parts.netloc}/")
        answer = await self.session.call(target, "GET", "provisioning/health")
        if self.faults.active("health-ignored"):
            return True
        if target is not provider and answer.status_code != 200:
            return True  # "no health endpoint: assume it speaks the profile"
        document = _parse(answer.content)
        versions = document.get("supported_versions") if isinstance(document, dict) else None
        return (
            answer.status_code == 200
            and isinstance(versions, list)
            and self.session.params.api_version in versions
        )

    async def services(self, provider: ProviderRecord) -> list[dict[str, Any]]:
        """`GET provisioning/services` relative to the provider's base URL, entries taken from
        the `data` array (ORC-DSC-015). A document over the size limit, with duplicate member
        names, NaN or too deep is refused whole (ORC-DSC-012, ORC-DSC-014)."""
        faults = self.faults
        answer = await self._fetch(provider)
        unlimited = faults.active("catalog-no-size-limit")
        if len(answer.content) > MAX_CATALOG_BYTES and not unlimited:
            raise HTTPProblem(
                502,
                "PROVIDER_ERROR",
                f"{provider.name} catalog is larger than {MAX_CATALOG_BYTES} bytes",
            )
        document = _parse(
            answer.content,
            lenient=faults.active("catalog-lenient-json"),
            max_bytes=max(len(answer.content), 1) if unlimited else MAX_CATALOG_BYTES,
        )
        if not isinstance(document, dict) or not isinstance(document.get("data"), list):
            raise HTTPProblem(
                502, "PROVIDER_ERROR", f"{provider.name} catalog is not a JSON object with data"
            )
        entries = list(document["data"])
        if faults.active("services-alias-accepted") and isinstance(document.get("services"), list):
            entries += document["services"]
        unfiltered = faults.active("catalog-ids-unfiltered")
        return [
            entry
            for entry in entries
            if isinstance(entry, dict)
            and isinstance(entry.get("id"), str)
            and (unfiltered or SAFE_ID.fullmatch(entry["id"]) is not None)
        ]

    async def _fetch(self, provider: ProviderRecord) -> httpx.Response:
        """The catalog answer; a 429 or any status but 200 is the provider's error."""
        bearer = None
        if self.faults.active("bearer-to-every-provider"):
            # a default Authorization header on the shared client: the last token in hand
            bearer = next(iter(self.session.held_tokens()), None)
        attempts = 3 if self.faults.active("retry-after-ignored") else 1
        for _ in range(attempts):
            answer = await self.session.call(
                provider, "GET", "provisioning/services", bearer=bearer
            )
            if answer.status_code != 429:
                break
        if answer.status_code == 429:
            raise HTTPProblem(
                502,
                "PROVIDER_RATE_LIMITED",
                f"{provider.name} asks to be called again after "
                f"{answer.headers.get('retry-after', 'a while')} s",
            )
        if answer.status_code != 200:
            raise HTTPProblem(
                502, "PROVIDER_ERROR", f"{provider.name} catalog unavailable ({answer.status_code})"
            )
        return answer


def _parse(raw: bytes, *, lenient: bool = False, max_bytes: int = MAX_CATALOG_BYTES) -> Any:
    try:
        if lenient:  # the catalog-lenient-json fault: Python's json, duplicates and NaN pass
            return json.loads(raw)
        return strictjson.loads(raw, max_bytes=max_bytes)
    except (ValueError, RecursionError):
        return None
