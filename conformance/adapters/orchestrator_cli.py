"""The agent-facing CLI contract the suite drives (docs/orchestrator-cli.md): what each
command's answer must be, where an answer breaks it, and the envelope read from its stdout."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from spec.schemas import default_store
from wire import strictjson

__all__ = ["CLI_DATA", "CONTRACT_RULE", "contract_issues", "envelope_of"]


CLI_DATA: Mapping[str, str] = MappingProxyType(
    {
        "init": "cli_init_data",
        "catalog": "cli_catalog",
        "add": "cli_add_data",
        "status": "cli_status_data",
        "env": "cli_env_data",
        "billing": "cli_billing_data",
        "revoke": "cli_revoke_data",
        "remove": "cli_remove_data",
    }
)
"""The agent-facing CLI contract the suite drives (docs/orchestrator-cli.md): for each
command, the schema of its answer's `data` (cli_catalog: the whole catalog envelope)."""

CONTRACT_RULE: Mapping[str, str] = MappingProxyType(
    {"catalog": "ORC-DSC-006", "add": "ORC-PRO-002"}
)
"""The requirement an answer outside the contract breaks: the catalog's and add's own, every
other command's ORC-PRO-015."""


def contract_issues(profile: str, command: str, envelope: dict[str, Any]) -> list[str]:
    """Where an answer of `command` breaks the CLI contract (ORC-PRO-015): a success whose
    data is not valid against the command's schema, or an add failure whose data (when it
    has one) is not. An empty or unparsable answer is ORC-PRO-004's and -013's matter."""
    message = CLI_DATA.get(command)
    if message is None or not envelope:
        return []
    store = default_store()
    if message == "cli_catalog":
        if envelope.get("ok") is not True:
            return []
        issues = store.validate(profile, message, envelope)
        return [
            f"{issue.path or '/'}: {_short(issue.message)} [{issue.keyword}]" for issue in issues
        ][:3]
    data = envelope.get("data")
    if envelope.get("ok") is not True and not (command == "add" and isinstance(data, dict)):
        return []
    issues = store.validate(profile, message, data)
    return [f"data{issue.path}: {_short(issue.message)} [{issue.keyword}]" for issue in issues][:3]


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def envelope_of(stdout: str) -> dict[str, Any]:
    """The JSON envelope in a command's stdout. Stray text around it (ORC-PRO-013's finding)
    does not hide the envelope from the other checks: failing that, the last line that
    starts a JSON object and parses to the end is taken."""
    text = stdout.strip()
    if not text:
        return {}
    candidates = [text]
    offset = 0
    starts = []
    for line in text.splitlines(keepends=True):
        if line.startswith("{"):
            starts.append(offset)
        offset += len(line)
    candidates += [text[start:] for start in reversed(starts)]
    for candidate in candidates:
        try:
            # A big catalog is still one envelope: the size limit is the output's own.
            document = strictjson.loads(
                candidate, max_bytes=max(len(candidate) * 4, strictjson.DEFAULT_MAX_BYTES)
            )
        except strictjson.StrictJSONError:
            continue
        return document if isinstance(document, dict) else {}
    return {}
