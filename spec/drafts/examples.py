"""The examples of a Markdown draft: its ```` ```json app:<message> ```` blocks.

`provspec profile examples FILE` validates each against its message's schema.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Example", "find_examples"]

_FENCE_OPEN = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*json\s+app:(?P<message>\S+)")


@dataclass
class Example:
    message: str
    line: int
    """The line of the opening fence (1-based)."""
    text: str
    first_line: int
    """The line of the example's first JSON line."""


def find_examples(markdown: str) -> list[Example]:
    """Every fenced block tagged ```` ```json app:<message> ````, in order."""
    examples: list[Example] = []
    lines = markdown.splitlines()
    index = 0
    while index < len(lines):
        match = _FENCE_OPEN.match(lines[index])
        if match is None:
            index += 1
            continue
        fence = match["fence"]
        body: list[str] = []
        start = index
        index += 1
        while index < len(lines) and not lines[index].strip().startswith(fence):
            body.append(lines[index])
            index += 1
        examples.append(Example(match["message"], start + 1, "\n".join(body), start + 2))
        index += 1
    return examples
