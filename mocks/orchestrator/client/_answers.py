"""Reading a provider's answers: the JSON object it sent, parsed strictly, or nothing."""

from __future__ import annotations

import json
from typing import Any

import httpx

from wire import strictjson

__all__ = ["json_object"]


def json_object(answer: httpx.Response, *, lenient: bool = False) -> dict[str, Any]:
    """The answer's JSON object; {} for anything else (not JSON, duplicates, NaN, an array).
    `lenient` is the lenient-resource-json fault: Python's json, duplicates and NaN and all."""
    try:
        if lenient:
            value = json.loads(answer.content) if answer.content else {}
        else:
            value = strictjson.loads(answer.content) if answer.content else {}
    except (strictjson.StrictJSONError, ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}
