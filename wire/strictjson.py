"""The one JSON parser provspec uses wherever it or its mocks read JSON.

Python's `json` accepts documents that interoperable JSON forbids, and a conformance suite
must not: two parsers that disagree about a document are the bug class behind JSON
interoperability attacks (a price read as 100 by one component and 1 by another).
`loads` refuses, with a `StrictJSONError` naming the reason:

- duplicate member names, at any depth (RFC 8259 §4 "SHOULD be unique", RFC 7493 §2.3 MUST);
- `NaN`, `Infinity`, `-Infinity`, and numbers that overflow to infinity (`1e400`) (RFC 8259 §6);
- integers longer than Python's digit limit (CVE-2020-10735 class);
- a byte-order mark, or bytes that are not UTF-8 (RFC 8259 §8.1);
- unpaired surrogate escapes such as `"\\ud800"` (RFC 8259 §8.2, RFC 7493 §2.1);
- documents over `max_bytes` or nested deeper than `max_depth`, checked *before* parsing, so
  a hostile document cannot exhaust memory or the interpreter's recursion limit.

Example::

    >>> loads('{"amount": 1, "amount": 9999}')
    Traceback (most recent call last):
    ...
    wire.strictjson.StrictJSONError: duplicate member name 'amount' in one object
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_DEPTH",
    "StrictJSONError",
    "load_path",
    "loads",
]

DEFAULT_MAX_BYTES = 5 * 1024 * 1024
"""5 MiB: above any real catalog (the 161-service Stripe capture is ~250 KB)."""
DEFAULT_MAX_DEPTH = 64
"""Real protocol messages nest about a dozen levels deep; 64 leaves room and stays far below
the interpreter's recursion limit."""

_STRING_OR_BRACKET = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class StrictJSONError(ValueError):
    """A document provspec refuses to read; `reason` is a stable machine code."""

    def __init__(self, reason: str, message: str, *, offset: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.offset = offset


def loads(
    data: bytes | bytearray | str,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> Any:
    """Parse one JSON document strictly; see the module docstring for what is refused."""
    text = _decode(data, max_bytes)
    _check_depth(text, max_depth)
    try:
        value = _DECODER.decode(text)
    except StrictJSONError:
        raise
    except json.JSONDecodeError as exc:
        raise StrictJSONError(
            "syntax",
            f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            offset=exc.pos,
        ) from None
    except ValueError as exc:  # the int-digits limit raises a bare ValueError
        raise StrictJSONError("number_too_long", f"number refused: {exc}") from None
    except RecursionError:
        raise StrictJSONError("too_deep", "document nests too deeply to parse") from None
    if _SURROGATE_ESCAPE.search(text):
        _refuse_lone_surrogates(value)
    return value


def load_path(
    path: Path | Traversable,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> Any:
    """Read and strictly parse a file; errors name the file."""
    try:
        return loads(path.read_bytes(), max_bytes=max_bytes, max_depth=max_depth)
    except StrictJSONError as exc:
        raise StrictJSONError(exc.reason, f"{path}: {exc}", offset=exc.offset) from None


def _decode(data: bytes | bytearray | str, max_bytes: int) -> str:
    if isinstance(data, str):
        # A code point is at most 4 bytes of UTF-8: only a text that long can be too large,
        # so the usual small document is not encoded just to be measured.
        if len(data) * 4 > max_bytes:
            size = len(data.encode("utf-8", "surrogatepass"))
            if size > max_bytes:
                raise StrictJSONError("too_large", f"document is {size} bytes; limit {max_bytes}")
        if data.startswith("\ufeff"):
            raise StrictJSONError("bom", "document starts with a byte-order mark (RFC 8259 §8.1)")
        return data
    if len(data) > max_bytes:
        raise StrictJSONError("too_large", f"document is {len(data)} bytes; limit {max_bytes}")
    if bytes(data[:3]) == b"\xef\xbb\xbf":
        raise StrictJSONError("bom", "document starts with a byte-order mark (RFC 8259 §8.1)")
    try:
        return bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StrictJSONError(
            "invalid_utf8",
            f"document is not UTF-8 (RFC 8259 §8.1): byte {exc.start} "
            f"({bytes(data[exc.start : exc.start + 1])!r})",
            offset=exc.start,
        ) from None


def _check_depth(text: str, max_depth: int) -> None:
    # Cheap exit: a document with no more brackets than the limit cannot nest past it.
    if text.count("[") + text.count("{") <= max_depth:
        return
    depth = 0
    for match in _STRING_OR_BRACKET.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > max_depth:
                raise StrictJSONError(
                    "too_deep",
                    f"document nests deeper than {max_depth} levels",
                    offset=match.start(),
                )
        elif token in "]}":
            depth -= 1


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)  # built in C; a duplicate shows as a shorter dict
    if len(result) != len(pairs):
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise StrictJSONError(
                    "duplicate_key", f"duplicate member name {name!r} in one object"
                )
            seen.add(name)
    return result


def _refuse_constant(name: str) -> Any:
    raise StrictJSONError("non_finite_number", f"{name} is not a JSON number (RFC 8259 §6)")


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise StrictJSONError(
            "non_finite_number", f"number {literal[:40]} overflows to infinity (RFC 8259 §6)"
        )
    return value


# One decoder for every call: `json.loads` with hooks would build a new decoder and scanner
# each time, which costs as much as parsing a small document.
_DECODER = json.JSONDecoder(
    object_pairs_hook=_unique_members,
    parse_constant=_refuse_constant,
    parse_float=_finite_float,
)


def _refuse_lone_surrogates(value: Any) -> None:
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        strings: Iterable[Any]
        if isinstance(item, dict):
            strings = item.keys()
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
            continue
        else:
            strings = (item,)
        for candidate in strings:
            if isinstance(candidate, str):
                try:
                    candidate.encode("utf-8")
                except UnicodeEncodeError:
                    raise StrictJSONError(
                        "lone_surrogate",
                        f"string {candidate[:40]!r} holds an unpaired UTF-16 surrogate "
                        "(RFC 8259 §8.2)",
                    ) from None
