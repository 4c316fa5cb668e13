"""`json.dumps(document, indent=2, ensure_ascii=False)`, the same text, without the
generator chain the standard library's pure-Python indenting encoder runs per value.

The embedded orchestrator CLI prints an indented envelope for every command; a check run
makes hundreds of them and the stdlib's indenting path (the C encoder does no indentation)
was a twentieth of a run's CPU. Strings are escaped by the standard library's own C escaper
and numbers printed by the same `repr`s it uses; anything outside plain JSON data (a key
that is not a string, an object it cannot encode, a cycle) is handed to `json.dumps`
itself, so the answer, or the error, is always exactly the standard library's.
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring
from typing import Any

__all__ = ["indented"]

_INFINITY = float("inf")


class _NotPlain(Exception):
    """A value the fast path leaves to `json.dumps`."""


def indented(document: Any) -> str:
    """`json.dumps(document, indent=2, ensure_ascii=False)`."""
    pieces: list[str] = []
    try:
        _write(document, "\n", pieces)
    except (_NotPlain, RecursionError):
        return json.dumps(document, indent=2, ensure_ascii=False)
    return "".join(pieces)


def _write(value: Any, newline: str, pieces: list[str]) -> None:
    # `newline` is "\n" and the indentation of the value's own line.
    if isinstance(value, str):
        pieces.append(encode_basestring(value))
    elif value is None:
        pieces.append("null")
    elif value is True:
        pieces.append("true")
    elif value is False:
        pieces.append("false")
    elif isinstance(value, int):
        pieces.append(int.__repr__(value))
    elif isinstance(value, float):
        pieces.append(_float(value))
    elif isinstance(value, dict):
        if not value:
            pieces.append("{}")
            return
        inner = newline + "  "
        separator = "{" + inner
        for key, item in value.items():
            if not isinstance(key, str):
                raise _NotPlain  # json.dumps turns numbers, booleans and None into keys
            pieces.append(separator)
            pieces.append(encode_basestring(key))
            pieces.append(": ")
            _write(item, inner, pieces)
            separator = "," + inner
        pieces.append(newline + "}")
    elif isinstance(value, list | tuple):
        if not value:
            pieces.append("[]")
            return
        inner = newline + "  "
        separator = "[" + inner
        for item in value:
            pieces.append(separator)
            _write(item, inner, pieces)
            separator = "," + inner
        pieces.append(newline + "]")
    else:
        raise _NotPlain


def _float(value: float) -> str:
    # As json.encoder's floatstr with allow_nan=True.
    if value != value:
        return "NaN"
    if value == _INFINITY:
        return "Infinity"
    if value == -_INFINITY:
        return "-Infinity"
    return float.__repr__(value)
