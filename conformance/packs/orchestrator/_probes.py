"""Shared moves of the catalog, signing, account, provisioning and custody checks.

The suite plays both providers the orchestrator is registered with; these helpers read what
those providers received and answered (`RawRequest`), shape adversarial answers for
`ctx.tampered`, and read the agent-facing CLI's envelopes without trusting their shape.
"""

from __future__ import annotations

import json
import re
import secrets
import unicodedata
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs

from conformance.adapters.orchestrator import (
    OTHER_PROVIDER_NAME,
    PROVIDER_NAME,
    OrchestratorContext,
    RawRequest,
    Tamper,
)
from wire import jose, strictjson

__all__ = [
    "ADD_STATUSES",
    "attestations",
    "card_numbers_in",
    "catalog_services",
    "contains",
    "creations",
    "deep",
    "envelope_text",
    "error_code",
    "form",
    "listed",
    "marker",
    "replace_json",
    "serve",
    "status_of",
    "suspicious",
    "urls_in",
]

_CARD_DIGITS = re.compile(r"(?<![0-9A-Za-z_-])[0-9]{13,19}(?![0-9A-Za-z_-])")
"""A card-number-long run of digits standing as a word of its own, not inside an id."""


def card_numbers_in(text: str) -> list[str]:
    """The card numbers in `text`: 13 to 19 digit runs standing alone (no letter, digit,
    `_` or `-` either side) that pass the Luhn check. Digits inside an identifier are not a
    card number: a hex id such as `usr_7a4242424242424242` holds a Luhn-valid run of 13+
    digits about once in two thousand random ids, and failed correct orchestrators."""
    found = []
    for digits in _CARD_DIGITS.findall(text):
        total = 0
        for index, char in enumerate(reversed(digits)):
            number = int(char) * (2 if index % 2 else 1)
            total += number - 9 if number > 9 else number
        if total % 10 == 0:
            found.append(digits)
    return found


ADD_STATUSES = frozenset(
    {
        "provisioned",
        "pending",
        "needs_information",
        "consent_required",
        "payment_method_required",
        "confirmation_required",
        "tos_acceptance_required",
        "spend_cap_exceeded",
    }
)
"""ORC-PRO-002: what an add command may answer."""
_ALIASES = {"json_requires_confirmation": "confirmation_required"}
"""Observed Stripe Projects spellings of the same answers (wire-facts §1.1)."""
_URL = re.compile(r"https?://[^\s\"'<>\\]+")


def marker(kind: str) -> str:
    """A unique, recognisable value to plant in an adversarial answer."""
    return f"provspec-{kind}-{secrets.token_hex(6)}"


def status_of(envelope: dict[str, Any]) -> str:
    """The outcome an add envelope reports: data.status, else the error code, lower-cased."""
    data = envelope.get("data")
    status = data.get("status") if isinstance(data, dict) else None
    if not isinstance(status, str):
        status = error_code(envelope)
    status = status.lower()
    return _ALIASES.get(status, status)


def error_code(envelope: dict[str, Any]) -> str:
    error = envelope.get("error")
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) else ""


def envelope_text(envelope: dict[str, Any]) -> str:
    return json.dumps(envelope, ensure_ascii=False)


def urls_in(envelope: dict[str, Any]) -> list[str]:
    return _URL.findall(envelope_text(envelope))


def deep(value: Any, wanted: Any) -> bool:
    """Whether `wanted` occurs as a value anywhere inside `value`."""
    if value == wanted:
        return True
    if isinstance(value, dict):
        return any(deep(item, wanted) for item in value.values())
    if isinstance(value, list):
        return any(deep(item, wanted) for item in value)
    return False


def contains(text: str, values: dict[str, str]) -> list[str]:
    """The kinds of the secret values that occur in `text`."""
    if not text:  # most CLI calls print nothing on stderr
        return []
    return sorted({kind for value, kind in values.items() if len(value) >= 8 and value in text})


# --- what the suite's providers received ------------------------------------------------------
def answer_of(raw: RawRequest) -> Any:
    if not raw.response or len(raw.response) > strictjson.DEFAULT_MAX_BYTES:
        return None
    try:
        return strictjson.loads(raw.response)
    except strictjson.StrictJSONError:
        return None


def form(raw: RawRequest) -> dict[str, str]:
    return {
        key: values[0]
        for key, values in parse_qs(raw.body.decode("latin-1"), keep_blank_values=True).items()
    }


def creations(
    ctx: OrchestratorContext, since: int, provider: str | None = PROVIDER_NAME
) -> list[RawRequest]:
    """Resource creation requests (POST provisioning/resources) since `since`."""
    return [
        raw
        for raw in ctx.received(since, "/provisioning/resources", provider=provider)
        if raw.method == "POST"
    ]


def attestations(
    ctx: OrchestratorContext, requests: list[RawRequest]
) -> Iterator[tuple[RawRequest, dict[str, Any], dict[str, Any]]]:
    """(request, header, claims) of every parsable attestation (the profile's header) among
    `requests`."""
    for raw in requests:
        token = raw.headers.get(ctx.params.attestation_header.lower())
        if not token:
            continue
        try:
            header, claims, _ = jose.unverified_parts(token)
        except jose.JOSEError:
            continue
        yield raw, header, claims


# --- adversarial answers -----------------------------------------------------------------------
def serve(status: int, body: bytes | str | dict[str, Any], **headers: str) -> Tamper:
    """Answer with exactly this, whatever the provider said."""
    content = (
        body.encode()
        if isinstance(body, str)
        else body
        if isinstance(body, bytes)
        else json.dumps(body).encode()
    )

    def rule(
        _status: int, original: dict[str, str], _body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        answer = {"content-type": "application/json", **{k.lower(): v for k, v in headers.items()}}
        return status, answer, content

    return rule


def replace_json(change: Callable[[Any], tuple[int, Any] | Any]) -> Tamper:
    """Rewrite the provider's JSON answer: `change(document)` gives the new document, or
    (status, document), or bytes to send as they are."""

    def rule(
        status: int, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        try:
            document = json.loads(body) if body else None
        except ValueError:
            return status, headers, body
        changed = change(document)
        if isinstance(changed, tuple):
            status, changed = changed
        content = changed if isinstance(changed, bytes) else json.dumps(changed).encode()
        return status, {**headers, "content-type": "application/json"}, content

    return rule


# --- the aggregated catalog ------------------------------------------------------------------------
def catalog_services(envelope: dict[str, Any]) -> list[dict[str, Any]]:
    data = envelope.get("data")
    services = data.get("services") if isinstance(data, dict) else None
    return [entry for entry in services or [] if isinstance(entry, dict)]


def listed(envelope: dict[str, Any], provider: str) -> list[dict[str, Any]]:
    """Entries the catalog attributes to `provider` (add reference lower(provider_name)/…)."""
    return [
        entry
        for entry in catalog_services(envelope)
        if isinstance(entry.get("provider_name"), str)
        and entry["provider_name"].lower() == provider
    ]


def suspicious(identifier: str) -> str:
    """Why an id could pass for another one (UTS #39 classes), or "" when it cannot."""
    if identifier != identifier.strip():
        return "leading or trailing space"
    for character in identifier:
        category = unicodedata.category(character)
        if category in ("Cf", "Cc", "Zs", "Zl", "Zp"):
            return f"invisible or control character U+{ord(character):04X}"
    if unicodedata.normalize("NFKC", identifier) != identifier:
        return "compatibility characters (NFKC changes it)"
    letters = [character for character in identifier if character.isalpha()]
    if any(character.isascii() for character in letters) and not all(
        character.isascii() for character in letters
    ):
        return "ASCII letters mixed with lookalike letters of another script"
    return ""


PROVIDERS = (PROVIDER_NAME, OTHER_PROVIDER_NAME)
