"""The CLI's indented JSON is the standard library's text, byte for byte."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mocks._core.pretty import indented

_leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
)
_documents = st.recursive(
    _leaves,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(_documents)
def test_any_json_document_is_printed_as_json_dumps_prints_it(document: Any) -> None:
    assert indented(document) == json.dumps(document, indent=2, ensure_ascii=False)


@pytest.mark.parametrize(
    "document",
    [
        {"ok": True, "data": {"services": [{"id": "a/b", "price": {"amount": 0}}], "e": []}},
        {"emoji": '🙂 é \u2028 \x00 " \\ /', "nested": {"": {}, "x": [[], {}]}},
        [math.nan, math.inf, -math.inf, 1e300, -0.0, 10**30, True, False, None],
        ("a", ("b",)),
        "plain",
        {1: "int key", None: "none key", False: "bool key", 1.5: "float key"},
    ],
)
def test_edge_documents_match(document: Any) -> None:
    assert indented(document) == json.dumps(document, indent=2, ensure_ascii=False)


def test_what_json_cannot_encode_raises_what_json_raises() -> None:
    with pytest.raises(TypeError):
        indented({"when": object()})
    cycle: list[Any] = []
    cycle.append(cycle)
    with pytest.raises(ValueError, match="Circular"):
        indented(cycle)
