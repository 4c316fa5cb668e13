"""Every requirement's source can be opened: a link with a section anchor (an RFC, a
specification, a file of a public repository at a fixed commit) or a document of this
repository with the anchor of one of its headings — never a document outside it."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest

from spec.registry import default_registry

ROOT = Path(__file__).resolve().parent.parent
ANCHORED_URL = re.compile(r"https?://[^\s)\]]+#[^\s)\];,]+")
PINNED_FILE = re.compile(r"https://github\.com/[^/\s]+/[^/\s]+/blob/[0-9a-f]{40}/[^\s)]+")
REPO_DOC = re.compile(r"(docs/[\w./-]+\.md)#([\w-]+)")
OUTSIDE = re.compile(r"\b(wire-facts|negative-test-catalog|conformance-anchors|DESIGN\.md)\b")


def _slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[*`]", "", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


@cache
def anchors(path: str) -> frozenset[str]:
    found: list[str] = []
    seen: dict[str, int] = {}
    fenced = False
    for line in (ROOT / path).read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fenced = not fenced
        match = None if fenced else re.match(r"^#{1,6}\s+(.*)$", line)
        if match:
            base = _slug(match.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.append(base if count == 0 else f"{base}-{count}")
    return frozenset(found)


REQUIREMENTS = sorted(default_registry().select(), key=lambda r: r.id)


@pytest.mark.parametrize("requirement", REQUIREMENTS, ids=lambda r: r.id)
def test_the_source_can_be_opened(requirement: object) -> None:
    source: str = requirement.source  # type: ignore[attr-defined]
    opened = ANCHORED_URL.search(source) or PINNED_FILE.search(source) or REPO_DOC.search(source)
    assert opened, f"{source!r} names nothing a user can open: link a section or a docs/ file"
    for part in re.split(r";\s+", source):
        if OUTSIDE.search(part) and not REPO_DOC.search(part):
            pytest.fail(
                f"{part!r} cites a document outside the repository without its copy in docs/"
            )
    for path, anchor in REPO_DOC.findall(source):
        assert (ROOT / path).is_file(), f"{path} does not exist"
        assert anchor in anchors(path), f"{path} has no heading with the anchor #{anchor}"
