"""Where a problem is in a draft's files: the line of a JSON member or of a byte offset.

Every problem the draft checks report is `file:line: what`; these find the line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

__all__ = ["offset_line", "pointer_line"]


def offset_line(text: str, offset: int | None) -> int:
    return text.count("\n", 0, offset or 0) + 1


def pointer_line(text: str, path: Iterator[Any] | list[Any] | tuple[Any, ...]) -> int:
    """The line of a JSON document where the member at `path` (keys and indexes) is, found
    by searching each key in turn after the previous one: line-ish, never wrong by a file."""
    position = 0
    for part in path:
        if isinstance(part, int):
            continue
        found = text.find(json.dumps(str(part)) + ":", position)
        if found < 0:
            found = text.find(json.dumps(str(part)), position)
        if found < 0:
            break
        position = found
    return offset_line(text, position)
